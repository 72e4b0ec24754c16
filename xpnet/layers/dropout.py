"""Inverted dropout: scale at training time so inference is the identity."""

from __future__ import annotations

from typing import Any

from .._checks import real
from ..backends import Array
from .base import Stochastic


class Dropout(Stochastic):
    """Zero each input with probability ``p`` in training, scaling survivors by ``1 / (1 - p)``.

    Training: ``y = x * m`` with ``m = 1/(1-p)`` w.p. ``1 - p`` else 0, so ``E[y] = x``;
    ``dx = dy * m``. Inference (``training=False``): ``y = x`` and ``dx = dy``. Masks are drawn
    on the layer's backend from a generator seeded by ``seed`` (``Sequential(seed=...)`` reseeds
    it); any input shape.
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        p = real("p", p, low=0.0, high=1.0, high_open=True)
        super().__init__(seed)
        self.p = p
        self.mask: Array | None = None

    def forward(self, x: Array, training: bool = False) -> Array:
        if not training or self.p == 0.0:
            self.mask = None
            return x
        keep, be = 1.0 - self.p, self.backend
        self.mask = self.draw(tuple(x.shape), lambda shape: be.dropout_mask(self.gen, shape, keep))
        return x * self.mask

    def replay(self, x: Array) -> Array:
        return x if self.mask is None else x * self.mask

    def backward(self, dy: Array) -> Array:
        return dy if self.mask is None else dy * self.mask

    def describe(self) -> str:
        return f"Dropout {self.p:g}"

    def config(self) -> dict[str, Any]:
        return {"p": self.p}
