"""Inverted dropout: scale at training time so inference is the identity."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import real
from ..backend import Array, BackendError, DeviceGenerator
from .base import Layer


class Dropout(Layer):
    """Zero each input with probability ``p`` in training, scaling survivors by ``1 / (1 - p)``.

    Training: ``y = x * m`` with ``m = 1/(1-p)`` w.p. ``1 - p`` else 0, so ``E[y] = x``;
    ``dx = dy * m``. Inference (``training=False``): ``y = x`` and ``dx = dy``. Masks are drawn
    on the layer's backend from a generator seeded by ``seed`` (``Sequential(seed=...)`` reseeds
    it); any input shape.
    """

    stochastic = True

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        super().__init__()
        self.p = real("p", p, low=0.0, high=1.0, high_open=True)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise (ValueError if isinstance(seed, (int, np.integer)) else TypeError)(
                f"seed must be a non-negative int or None, got {seed!r}"
            )
        self.seed = seed
        self.mask: Array | None = None
        self.gen: DeviceGenerator = self.backend.generator(seed)

    def reseed(self, seed: int | np.random.SeedSequence | None) -> None:
        """Restart the mask stream from ``seed``."""
        self.gen = self.backend.generator(seed)

    def _on_backend_change(self) -> None:
        # Carry the mask stream over (Sequential(seed=...) seeded it): restarting from
        # ``self.seed`` (usually None: OS entropy) would make seeded runs irreproducible.
        old = self.gen
        try:
            new = self.backend.generator(None)
            new.set_state(old.get_state())
        except BackendError:  # CuPy's stream can't be saved or restored: seed from the old one
            entropy = [int(v) for v in old._host.bit_generator.random_raw(4)]
            new = self.backend.generator(np.random.SeedSequence(entropy))
        self.gen = new

    def forward(self, x: Array, training: bool = False) -> Array:
        if not training or self.p == 0.0:
            self.mask = None
            return x
        self.mask = self.backend.dropout_mask(self.gen, tuple(x.shape), 1.0 - self.p)
        return x * self.mask

    def backward(self, dy: Array) -> Array:
        return dy if self.mask is None else dy * self.mask

    def config(self) -> dict[str, Any]:
        return {"p": self.p}
