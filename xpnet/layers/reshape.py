"""Flatten and Reshape: per-sample shape changes (the batch axis is kept), no copy where the
backend can give a view."""

from __future__ import annotations

import math
import numbers
from typing import Any

from ..backends import Array
from .base import Layer, Shape


def _known_size(shape: Shape) -> int | None:
    return None if any(d is None for d in shape) else math.prod(d for d in shape if d is not None)


class _Reshaping(Layer):
    """Saves the input's shape for ``backward``, which reshapes ``dy`` back to it."""

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple[int, ...] | None = None

    def _check(self, x: Array) -> None:
        if not self.backend.is_array(x):
            raise TypeError(
                f"{self.name}: expected a {self.backend.name} array, got "
                f"{type(x).__module__}.{type(x).__name__}; convert it with backend.asarray(x)"
            )
        if x.ndim < 1:
            raise ValueError(f"{self.name}: expected a batch of samples, got a 0-d array")
        self.x_shape = tuple(int(d) for d in x.shape)

    def backward(self, dy: Array) -> Array:
        if self.x_shape is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        return self.xp.reshape(dy, self.x_shape)


class Flatten(_Reshaping):
    """(N, d1, d2, ...) -> (N, d1 d2 ...): each sample as one row (C, H, W order)."""

    def forward(self, x: Array, training: bool = False) -> Array:
        self._check(x)
        return self.xp.reshape(x, (self.x_shape[0] if self.x_shape else 0, -1))

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is None:
            return None
        return (_known_size(input_shape),)


class Reshape(_Reshaping):
    """(N, ...) -> (N, *shape): each sample reshaped (row-major), e.g. ``Reshape((1, 28, 28))``
    turns flat MNIST rows into 1-channel images for :class:`~xpnet.layers.Conv2D`.

    ``shape`` is a per-sample shape of positive ints, one of which may be -1 (inferred). With
    no -1 the layer asks for flat rows of ``prod(shape)`` features (its ``input_shape``, which
    a model starting with it reports), and accepts any input of that many elements per sample.
    """

    def __init__(self, shape: Any) -> None:
        super().__init__()
        msg = f"shape must be a tuple of positive ints (one may be -1), got {shape!r}"
        if not isinstance(shape, (tuple, list)) or not shape or any(
            isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in shape
        ):
            raise TypeError(msg)
        dims = tuple(int(d) for d in shape)
        if any(d < 1 and d != -1 for d in dims) or dims.count(-1) > 1:
            raise ValueError(msg)
        self.shape = dims

    @property
    def size(self) -> int | None:
        """Elements per sample, or None when ``shape`` holds a -1."""
        return None if -1 in self.shape else math.prod(self.shape)

    def forward(self, x: Array, training: bool = False) -> Array:
        self._check(x)
        assert self.x_shape is not None
        n, per = self.x_shape[0], math.prod(self.x_shape[1:])
        known = math.prod(d for d in self.shape if d != -1)
        if (self.size is not None and per != self.size) or per % known:
            raise ValueError(
                f"{self.name}: cannot reshape samples of shape {self.x_shape[1:]} ({per} "
                f"elements) to {self.shape}"
            )
        return self.xp.reshape(x, (n, *self.shape))

    def accepts(self, shape: Shape) -> bool:
        per = _known_size(shape)
        known = math.prod(d for d in self.shape if d != -1)
        return per is None or (per == self.size if self.size is not None else per % known == 0)

    @property
    def input_shape(self) -> Shape | None:
        return None if self.size is None else (self.size,)

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        if -1 not in self.shape:
            return self.shape
        per = _known_size(input_shape) if input_shape is not None else None
        known = math.prod(d for d in self.shape if d != -1)
        fill = per // known if per is not None else None
        return tuple(fill if d == -1 else d for d in self.shape)

    def config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    def describe(self) -> str:
        return f"Reshape to {self.shape}"

    def describe_input(self) -> str:
        if self.size is None:
            return f"input whose samples reshape to {self.shape}"
        return f"input of {self.size} elements per sample"
