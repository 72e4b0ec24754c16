"""Softmax over the last axis, with its Jacobian-vector-product backward."""

from __future__ import annotations

from typing import Any

from ..backends import Array
from .base import Layer


def softmax(xp: Any, x: Array) -> Array:
    """``exp(x - max) / sum(exp(x - max))`` over the last axis: stable for any finite logits."""
    z = x - xp.max(x, axis=-1, keepdims=True)
    e = xp.exp(z)
    return e / xp.sum(e, axis=-1, keepdims=True)


def log_softmax(xp: Any, x: Array) -> Array:
    """``x - logsumexp(x)`` over the last axis, stable for any finite logits."""
    z = x - xp.max(x, axis=-1, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))


class Softmax(Layer):
    """``y_i = exp(x_i) / sum_j exp(x_j)`` over the last axis (rows sum to 1).

    Backward is the Jacobian-vector product ``dx = y * (dy - sum(dy * y, axis=-1))``, never
    the (C, C) Jacobian itself. For training a classifier prefer the fused
    :class:`xpnet.losses.SoftmaxCrossEntropy` on logits: its gradient is simpler and stabler.
    """

    def __init__(self) -> None:
        super().__init__()
        self.y: Array | None = None

    def forward(self, x: Array, training: bool = False) -> Array:
        self.y = softmax(self.xp, x)
        return self.y

    def backward(self, dy: Array) -> Array:
        if self.y is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        y = self.y
        return y * (dy - self.xp.sum(dy * y, axis=-1, keepdims=True))
