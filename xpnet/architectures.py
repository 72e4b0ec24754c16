"""Named model builders (what ``xpnet train --arch NAME`` builds), and short descriptions.

A builder takes keyword options and returns an uncompiled :class:`~xpnet.Sequential`; each
ignores the options that do not concern it, so the command line can pass one set to any.
Register one of your own with :func:`register_architecture`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .layers import Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
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
        elif out != shape or layer.params:
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
