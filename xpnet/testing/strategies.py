"""Hypothesis strategies for xpnet: arrays on a backend, targets, layers, whole random models.

Needs Hypothesis (``pip install xpnet[test]``); ``import xpnet`` never imports it. Every
strategy that builds arrays takes a ``backend`` (a :class:`~xpnet.backend.Backend` or a spec
for :func:`xpnet.get_backend`) and returns arrays of that backend, in its dtype, on its device.

Floats are "well scaled": finite, no subnormals, bounded (default ``|x| <= 3``), and exactly
representable in float32, so a float32 model and its float64 copy see the very same numbers.
Batch sizes start at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from hypothesis import assume
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # pragma: no cover - exercised only without the test extra
    raise ImportError(
        "xpnet.testing.strategies needs Hypothesis: pip install xpnet[test] "
        "(or pip install hypothesis)"
    ) from exc

from ..backends import Array, Backend, get_backend
from ..layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from ..layers.base import Layer
from ..losses import MSE, BinaryCrossEntropy, SoftmaxCrossEntropy
from ..losses.base import Loss
from ..model import Sequential

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "Problem",
    "activations",
    "arrays",
    "batch_sizes",
    "binary_targets",
    "conv_layers",
    "dense_layers",
    "floats",
    "host_arrays",
    "image_shapes",
    "labels",
    "layers",
    "losses",
    "pool_layers",
    "probabilities",
    "problems",
    "sequentials",
    "shapes",
    "targets_for",
]

#: activation names :func:`activations` draws from
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
#: loss names :func:`losses` and :func:`problems` draw from
LOSSES = ("mse", "softmax_cross_entropy", "binary_cross_entropy", "binary_cross_entropy_logits")


def _be(backend: Any) -> Backend:
    return get_backend(backend)


def batch_sizes(max_size: int = 8) -> st.SearchStrategy[int]:
    """Batch sizes ``1..max_size`` (shrinking towards 1)."""
    return st.integers(1, max_size)


def shapes(max_batch: int = 8, max_features: int = 8) -> st.SearchStrategy[tuple[int, int]]:
    """``(batch, features)`` shapes, both at least 1."""
    return st.tuples(batch_sizes(max_batch), st.integers(1, max_features))


def floats(bound: float = 3.0) -> st.SearchStrategy[float]:
    """Finite, non-subnormal floats in ``[-bound, bound]``, exact in float32."""
    b = float(np.float32(bound))
    if b > bound:  # round down to a float32
        b = float(np.nextafter(np.float32(b), np.float32(0)))
    return st.floats(-b, b, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     width=32)


def host_arrays(shape: Any, bound: float = 3.0) -> st.SearchStrategy[np.ndarray]:
    """Host float64 arrays of ``shape`` (a tuple or a strategy) with :func:`floats` entries."""
    return hnp.arrays(np.float64, shape, elements=floats(bound))


def arrays(backend: Any, shape: Any, bound: float = 3.0) -> st.SearchStrategy[Array]:
    """Arrays of ``backend`` (its dtype and device) with :func:`floats` entries."""
    be = _be(backend)
    return host_arrays(shape, bound).map(lambda a: be.asarray(a, dtype=be.dtype))


def labels(backend: Any, n: int, classes: int) -> st.SearchStrategy[Array]:
    """(n,) integer class labels in ``[0, classes)`` on ``backend``."""
    be = _be(backend)
    return hnp.arrays(np.int64, (n,), elements=st.integers(0, classes - 1)).map(be.asarray)


def probabilities(backend: Any, n: int, classes: int) -> st.SearchStrategy[Array]:
    """(n, classes) rows of non-negative numbers summing to 1 (soft targets), on ``backend``."""
    be = _be(backend)

    def rows(a: np.ndarray) -> Array:
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return be.asarray(e / e.sum(axis=1, keepdims=True), dtype=be.dtype)

    return host_arrays((n, classes), 3.0).map(rows)


def binary_targets(backend: Any, shape: tuple[int, ...]) -> st.SearchStrategy[Array]:
    """Targets in ``[0, 1]`` of ``shape`` (hard 0/1 or soft), on ``backend``."""
    be = _be(backend)
    hard = hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0]))
    soft = hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0, width=32))
    return st.one_of(hard, soft).map(lambda a: be.asarray(a, dtype=be.dtype))


def activations() -> st.SearchStrategy[Layer]:
    """A fresh ReLU, LeakyReLU (random slope), Sigmoid or Tanh."""
    return st.one_of(
        st.builds(ReLU),
        st.builds(LeakyReLU, st.sampled_from([0.01, 0.1, 0.3])),
        st.builds(Sigmoid),
        st.builds(Tanh),
    )


def _activation(name: str) -> Layer:
    return {"relu": ReLU, "leaky_relu": lambda: LeakyReLU(0.1), "sigmoid": Sigmoid,
            "tanh": Tanh}[name]()


@st.composite
def dense_layers(
    draw: st.DrawFn, backend: Any, in_features: int, max_width: int = 8
) -> Dense:
    """A Dense layer from ``in_features`` to 1..``max_width`` outputs, random init and bias."""
    be = _be(backend)
    out = draw(st.integers(1, max_width))
    init = draw(st.sampled_from(("he_normal", "glorot_uniform", "uniform", "normal")))
    bias = draw(st.booleans())
    layer = Dense(in_features, out, bias=bias, init=init, rng=draw(st.integers(0, 2**32 - 1)),
                  backend=be)
    if bias:  # biases start at zero: give them values so their gradient paths are exercised
        b = draw(host_arrays((out,), 0.5))
        layer.params["b"] = be.asarray(b, dtype=be.dtype)
    return layer


@st.composite
def layers(draw: st.DrawFn, backend: Any, in_features: int, max_width: int = 8) -> Layer:
    """Any single layer on ``backend`` accepting ``in_features`` inputs: Dense, an
    activation, Softmax or Dropout."""
    be = _be(backend)
    kind = draw(st.sampled_from(("dense", "activation", "softmax", "dropout")))
    layer: Layer
    if kind == "dense":
        return draw(dense_layers(be, in_features, max_width))
    if kind == "activation":
        layer = draw(activations())
    elif kind == "softmax":
        layer = Softmax()
    else:
        layer = Dropout(draw(st.sampled_from([0.0, 0.1, 0.25, 0.5])), seed=draw(st.integers(0, 99)))
    return layer.to(be)


@st.composite
def sequentials(
    draw: st.DrawFn,
    backend: Any,
    in_features: int | None = None,
    out_features: int | None = None,
    *,
    max_depth: int = 3,
    max_width: int = 6,
    dropout: bool = True,
    final: tuple[str, ...] = ("none", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"),
) -> Sequential:
    """A random ``Sequential`` on ``backend``: 1..``max_depth`` hidden blocks of
    ``Dense -> activation [-> Dropout]`` of random widths, then ``Dense(out_features)`` and a
    final activation drawn from ``final`` ("none" for raw outputs)."""
    be = _be(backend)
    width = in_features if in_features is not None else draw(st.integers(1, max_width))
    out = out_features if out_features is not None else draw(st.integers(1, max_width))
    stack: list[Layer] = []
    for _ in range(draw(st.integers(0, max_depth))):
        dense = draw(dense_layers(be, width, max_width))
        stack += [dense, _activation(draw(st.sampled_from(ACTIVATIONS)))]
        if dropout and draw(st.booleans()):
            stack.append(Dropout(draw(st.sampled_from([0.1, 0.25, 0.5]))))
        width = dense.out_features
    init = draw(st.sampled_from(("he_normal", "glorot_uniform", "uniform", "normal")))
    stack.append(Dense(width, out, bias=draw(st.booleans()), init=init, backend=be))
    end = draw(st.sampled_from(final))
    if end == "softmax":
        stack.append(Softmax())
    elif end != "none":
        stack.append(_activation(end))
    model = Sequential(stack, backend=be, seed=draw(st.integers(0, 2**32 - 1)))
    for layer in model.layers:  # Sequential(seed=...) zeroed the biases: give them values
        if isinstance(layer, Dense) and layer.bias:
            layer.params["b"] = be.asarray(draw(host_arrays((layer.out_features,), 0.5)),
                                           dtype=be.dtype)
    return model


def losses(names: tuple[str, ...] = LOSSES) -> st.SearchStrategy[str]:
    """A loss name from :data:`LOSSES`."""
    return st.sampled_from(names)


def make_loss(name: str, backend: Any) -> Loss:
    """The loss called ``name`` (see :data:`LOSSES`) on ``backend``."""
    loss: Loss = {
        "mse": MSE,
        "softmax_cross_entropy": SoftmaxCrossEntropy,
        "binary_cross_entropy": BinaryCrossEntropy,
        "binary_cross_entropy_logits": lambda: BinaryCrossEntropy(from_logits=True),
    }[name]()
    return loss.to(_be(backend))


def targets_for(backend: Any, loss_name: str, n: int, k: int) -> st.SearchStrategy[Array]:
    """Targets for ``n`` predictions of width ``k`` under the loss ``loss_name``."""
    if loss_name == "mse":
        return arrays(backend, (n, k))
    if loss_name == "softmax_cross_entropy":
        return st.one_of(labels(backend, n, k), probabilities(backend, n, k))
    return binary_targets(backend, (n, k))


@dataclass
class Problem:
    """A model, a loss, a batch of inputs and its targets, all on one backend."""

    model: Sequential
    loss: Loss
    x: Array
    target: Array
    loss_name: str


@st.composite
def problems(
    draw: st.DrawFn,
    backend: Any,
    loss_names: tuple[str, ...] = LOSSES,
    *,
    max_batch: int = 5,
    max_depth: int = 3,
    max_width: int = 6,
    dropout: bool = True,
) -> Problem:
    """A random :class:`Problem`: a :func:`sequentials` model whose output suits the loss
    (logits for softmax cross-entropy and BCE on logits, a sigmoid for BCE on
    probabilities), a batch of 1..``max_batch`` inputs and matching targets."""
    be = _be(backend)
    name = draw(losses(loss_names))
    n = draw(batch_sizes(max_batch))
    k_in = draw(st.integers(1, max_width))
    k_out = draw(st.integers(2 if name == "softmax_cross_entropy" else 1, max_width))
    final = {"softmax_cross_entropy": ("none",), "binary_cross_entropy": ("sigmoid",),
             "binary_cross_entropy_logits": ("none",)}.get(
        name, ("none", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"))
    probs = name == "binary_cross_entropy"
    model = draw(sequentials(be, k_in, k_out, max_depth=max_depth, max_width=max_width,
                             dropout=dropout and not probs, final=final))
    x = draw(arrays(be, (n, k_in)))
    if probs:
        # BCE on probabilities clips p to [eps, 1 - eps]: the loss is flat beyond the clip but
        # its backward still returns (p - t) / (p (1 - p)), so keep the outputs inside.
        out = be.to_host(model.forward(x))
        assume(bool(((out > 1e-4) & (out < 1 - 1e-4)).all()))
    target = draw(targets_for(be, name, n, k_out))
    return Problem(model, make_loss(name, be), x, target, name)


# ------------------------------------------------------------------ images (NCHW) and conv
@st.composite
def conv_layers(
    draw: st.DrawFn,
    backend: Any,
    in_channels: int | None = None,
    *,
    max_channels: int = 3,
    max_kernel: int = 3,
    max_stride: int = 3,
    max_padding: int = 2,
) -> Conv2D:
    """A Conv2D on ``backend``: random channels, kernel (1x1 included), stride (beyond the
    kernel included), padding (odd and uneven included), init and bias (given values)."""
    be = _be(backend)
    c = in_channels if in_channels is not None else draw(st.integers(1, max_channels))
    dims = st.integers(1, max_kernel)
    layer = Conv2D(
        c, draw(st.integers(1, max_channels)), (draw(dims), draw(dims)),
        stride=(draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))),
        padding=(draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding))),
        bias=draw(st.booleans()),
        init=draw(st.sampled_from(("he_normal", "glorot_uniform", "uniform", "normal"))),
        rng=draw(st.integers(0, 2**32 - 1)), backend=be,
    )
    if layer.bias:  # biases start at zero: give them values so their gradient paths are exercised
        b = draw(host_arrays((layer.out_channels,), 0.5))
        layer.params["b"] = be.asarray(b, dtype=be.dtype)
    return layer


@st.composite
def pool_layers(
    draw: st.DrawFn, backend: Any, *, max_kernel: int = 3, max_stride: int = 3
) -> Layer:
    """A MaxPool2D or AvgPool2D on ``backend``: random kernel and stride (None: the kernel's)."""
    cls = draw(st.sampled_from((MaxPool2D, AvgPool2D)))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = draw(st.none() | st.tuples(st.integers(1, max_stride), st.integers(1, max_stride)))
    return cls(kernel, stride).to(_be(backend))  # type: ignore[no-any-return]


@st.composite
def image_shapes(
    draw: st.DrawFn,
    channels: int,
    kernel: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    *,
    max_batch: int = 3,
    max_size: int = 6,
) -> tuple[int, int, int, int]:
    """``(N, C, H, W)`` with ``C = channels`` and an image at least as large as ``kernel``
    once ``padding`` is added (so a layer of that geometry has an output)."""
    n = draw(batch_sizes(max_batch))
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), max(max_size, kernel[0])))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), max(max_size, kernel[1])))
    return (n, channels, h, w)
