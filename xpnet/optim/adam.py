"""Adam with bias correction and optional decoupled weight decay."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .._checks import real
from ..backends import Array
from .base import Optimizer, ParamGrad
from .schedules import Schedule


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), bias-corrected.

    ``m <- b1 m + (1 - b1) g``; ``v <- b2 v + (1 - b2) g^2``;
    ``p <- p - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)`` and
    ``v_hat = v / (1 - b2^t)``. The corrections are folded into two scalars so one fused
    kernel does the update. ``weight_decay`` is decoupled (AdamW): ``p <- p - lr wd p`` first.
    """

    slots = ("m", "v")

    def __init__(
        self,
        lr: float = 0.001,
        *,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        schedule: Schedule | None = None,
    ) -> None:
        super().__init__(lr, weight_decay=weight_decay, schedule=schedule)
        self.beta1 = real("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = real("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = real("eps", eps, low=0.0, low_open=True)

    def step(self, params: Iterable[ParamGrad]) -> None:
        """One Adam step on every ``(name, param, grad)``; the backend may fuse them all."""
        self.t += 1
        lr = self.lr
        items = [self._prepare(name, p, g, lr) for name, p, g in params]
        self.backend.adam_step(items, **self._scalars(lr))

    def update(self, name: str, p: Array, g: Array, lr: float) -> None:
        self.backend.adam_update(*self._prepare(name, p, g, lr), **self._scalars(lr))

    def _prepare(self, name: str, p: Array, g: Array, lr: float) -> tuple[Array, ...]:
        """``(p, g, m, v)`` for one parameter, decoupled weight decay applied to ``p`` first."""
        st = self._slots(name, p)
        if self.weight_decay:
            p -= (lr * self.weight_decay) * p
        return p, g, st["m"], st["v"]

    def _scalars(self, lr: float) -> dict[str, float]:
        """The rule's scalars at step ``t``, bias corrections folded into ``lr_t``/``eps_t``."""
        c2 = math.sqrt(1.0 - self.beta2**self.t)
        return {
            "lr_t": lr * c2 / (1.0 - self.beta1**self.t),
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps_t": self.eps * c2,
        }

    def config(self) -> dict[str, Any]:
        return {**super().config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
