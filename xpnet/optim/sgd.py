"""Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay."""

from __future__ import annotations

from typing import Any

from .._checks import real
from ..backends import Array
from .base import Optimizer
from .schedules import Schedule


class SGD(Optimizer):
    """Gradient descent: ``p <- p - lr * u``.

    With ``g' = g + weight_decay * p`` (L2 penalty, coupled):

    * plain (``momentum=0``): ``u = g'``;
    * momentum: ``v <- momentum * v + g'``, ``u = v``;
    * Nesterov: ``v <- momentum * v + g'``, ``u = g' + momentum * v``.
    """

    def __init__(
        self,
        lr: float = 0.01,
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        schedule: Schedule | None = None,
    ) -> None:
        super().__init__(lr, weight_decay=weight_decay, schedule=schedule)
        self.momentum = real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
        self.nesterov = nesterov
        self.slots = ("v",) if self.momentum > 0.0 else ()

    def update(self, name: str, p: Array, g: Array, lr: float) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum == 0.0:
            p -= lr * g
            return
        v = self._slots(name, p)["v"]
        v *= self.momentum
        v += g
        p -= lr * (g + self.momentum * v) if self.nesterov else lr * v

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum, "nesterov": self.nesterov}


def Momentum(lr: float = 0.01, momentum: float = 0.9, **kwargs: Any) -> SGD:  # noqa: N802
    """SGD with classical momentum (a shorthand for ``SGD(lr, momentum=momentum)``)."""
    return SGD(lr, momentum=momentum, **kwargs)
