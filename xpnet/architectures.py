"""Named model builders (what ``xpnet train --arch NAME`` builds), and short descriptions.

A builder takes keyword options and returns an uncompiled :class:`~xpnet.Sequential`; each
ignores the options that do not concern it, so the command line can pass one set to any.
Register one of your own with :func:`register_architecture`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .layers import (
    BatchNorm2d,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
)
from .layers.base import Layer, Stochastic
from .model import Sequential

#: activation name (as the command line spells it) -> layer class
ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid,
}

Builder = Callable[..., Sequential]
#: architecture name -> builder
ARCHITECTURES: dict[str, Builder] = {}


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``builder`` available as ``build(name, ...)`` (and ``--arch name``)."""

    def add(builder: Builder) -> Builder:
        ARCHITECTURES[name] = builder
        return builder

    return add


def build(name: str, **options: Any) -> Sequential:
    """The model architecture ``name`` builds with ``options``."""
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name](**options)


def default_init(activation: str) -> str:
    """He init for the ReLU family, Glorot for the saturating activations."""
    return "he" if activation in ("relu", "leaky_relu") else "glorot"


@register_architecture("mlp")
def mlp(
    *,
    in_features: int = 784,
    classes: int = 10,
    hidden: Sequence[int] = (400, 100),
    activation: str = "relu",
    dropout: float = 0.2,
    init: str | None = None,
    seed: int | None = 0,
    backend: Any = "numpy",
    dtype: str | None = None,
    **_: Any,
) -> Sequential:
    """A fully connected classifier: ``Dense -> activation [-> Dropout]`` per hidden width,
    then ``Dense`` to ``classes`` logits (for softmax cross-entropy)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    init = init or default_init(activation)
    widths = [in_features, *hidden]
    layers: list[Layer] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [Dense(a, b, init=init), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(Dropout(dropout))
    layers.append(Dense(widths[-1], classes, init=init))
    return Sequential(layers, backend=backend, dtype=dtype, seed=seed)


@register_architecture("cnn")
def cnn(
    *,
    in_features: int = 784,
    classes: int = 10,
    channels: Sequence[int] = (32, 64),
    hidden: Sequence[int] = (128,),
    activation: str = "relu",
    dropout: float = 0.2,
    batch_norm: bool = True,
    init: str | None = None,
    seed: int | None = 0,
    backend: Any = "numpy",
    dtype: str | None = None,
    **_: Any,
) -> Sequential:
    """A small LeNet-like convolutional classifier for square one-channel images given as
    flat rows (``in_features = side * side``, 784 for MNIST):

    ``Reshape((1, side, side))``, then per entry of ``channels`` a block ``Conv2D 3x3
    (padding 1) [-> BatchNorm2d] -> activation -> MaxPool2D 2`` (each block halves the side),
    ``Flatten``, ``Dense -> activation [-> Dropout]`` per ``hidden`` width, and ``Dense`` to
    ``classes`` logits. Shapes: (N, in_features) -> (N, classes).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    side = int(round(in_features**0.5))
    if side * side != in_features:
        raise ValueError(f"cnn: in_features must be a square image's pixel count (784 = 28 * 28), "
                         f"got {in_features!r}")
    if not channels:
        raise ValueError(f"cnn: channels needs at least one convolution block, got {channels!r}")
    if side >> len(channels) < 1:
        raise ValueError(f"cnn: {len(channels)} blocks each halving the side leave nothing of a "
                         f"{side}x{side} image; give fewer channels, got {list(channels)}")
    init = init or default_init(activation)
    layers: list[Layer] = [Reshape((1, side, side))]
    previous = 1
    for width in channels:
        layers.append(Conv2D(previous, width, 3, padding=1, init=init, bias=not batch_norm))
        if batch_norm:  # BatchNorm's beta is the bias: a conv bias before it would be wasted
            layers.append(BatchNorm2d(width))
        layers += [ACTIVATIONS[activation](), MaxPool2D(2)]
        previous, side = width, side // 2
    layers.append(Flatten())
    widths = [previous * side * side, *hidden]
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [Dense(a, b, init=init), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(Dropout(dropout))
    layers.append(Dense(widths[-1], classes, init=init))
    return Sequential(layers, backend=backend, dtype=dtype, seed=seed)


def short_description(model: Sequential) -> str:
    """``"784-400-100-10 ReLU, dropout 0.2"``: the widths where the shape changes, the kinds of
    shape-keeping layers, and the first random layer."""
    shape = model.input_shape
    sizes = [_size(shape)] if shape is not None else []
    kinds: list[str] = []
    random: list[str] = []
    for layer in model.layers:
        out = layer.output_shape(shape)
        if isinstance(layer, Stochastic):
            random.append(layer.describe().lower())
        elif out != shape or any(len(getattr(p, "shape", ())) >= 2 for p in layer.params.values()):
            # A weight matrix or kernel: a new width even when it equals the last (100 -> 100);
            # per-channel scales alone (BatchNorm) keep the shape and are a kind.
            sizes.append(_size(out))
        elif type(layer).__name__ not in kinds:
            kinds.append(type(layer).__name__)
        shape = out
    text = "-".join(sizes)
    if kinds:
        text += " " + "/".join(kinds)
    if random:
        text += f", {random[0]}"
    return text


def _size(shape: Any) -> str:
    if shape is None:
        return "?"
    return "x".join("?" if d is None else str(d) for d in shape)
