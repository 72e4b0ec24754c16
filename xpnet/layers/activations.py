"""Elementwise activations: ReLU, LeakyReLU, Sigmoid, Tanh. Any input shape."""

from __future__ import annotations

from typing import Any

from .._checks import real
from ..backends import Array
from .base import Layer


class _Elementwise(Layer):
    """Shared bookkeeping: ``backward`` needs what ``forward`` saved."""

    def _saved(self, value: Array | None) -> Array:
        if value is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        return value


class ReLU(_Elementwise):
    """``y = max(x, 0)``; ``dx = dy * (x > 0)`` (subgradient 0 at ``x = 0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.y: Array | None = None

    def forward(self, x: Array, training: bool = False) -> Array:
        self.y = self.backend.relu(x)
        return self.y

    def backward(self, dy: Array) -> Array:
        return self.backend.relu_backward(dy, self._saved(self.y))


class LeakyReLU(_Elementwise):
    """``y = x`` for ``x > 0`` else ``slope * x``; ``dx = dy`` or ``slope * dy`` likewise."""

    def __init__(self, slope: float = 0.01) -> None:
        super().__init__()
        self.slope = real("slope", slope, low=0.0, high=1.0, high_open=True)
        self.x: Array | None = None

    def forward(self, x: Array, training: bool = False) -> Array:
        self.x = x
        return self.xp.where(x > 0, x, self.slope * x)

    def backward(self, dy: Array) -> Array:
        return self.xp.where(self._saved(self.x) > 0, dy, self.slope * dy)

    def config(self) -> dict[str, Any]:
        return {"slope": self.slope}


class Sigmoid(_Elementwise):
    """``y = 1 / (1 + exp(-x))``, computed without overflow; ``dx = dy * y * (1 - y)``.

    With ``e = exp(-|x|)`` (never above 1): ``y = 1 / (1 + e)`` for ``x >= 0`` and
    ``e / (1 + e)`` for ``x < 0``, so no branch ever evaluates ``exp`` of a large number.
    """

    def __init__(self) -> None:
        super().__init__()
        self.y: Array | None = None

    def forward(self, x: Array, training: bool = False) -> Array:
        self.y = sigmoid(self.xp, x)
        return self.y

    def backward(self, dy: Array) -> Array:
        y = self._saved(self.y)
        return dy * y * (1.0 - y)


def sigmoid(xp: Any, x: Array) -> Array:
    """Numerically stable logistic function (see :class:`Sigmoid`)."""
    e = xp.exp(-xp.abs(x))
    one = 1.0 / (1.0 + e)
    return xp.where(x >= 0, one, e * one)


class Tanh(_Elementwise):
    """``y = tanh(x)``; ``dx = dy * (1 - y^2)``."""

    def __init__(self) -> None:
        super().__init__()
        self.y: Array | None = None

    def forward(self, x: Array, training: bool = False) -> Array:
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, dy: Array) -> Array:
        y = self._saved(self.y)
        return dy * (1.0 - y * y)
