"""Learning-rate schedules: the learning rate as a function of the epoch (0-based)."""

from __future__ import annotations

import math
from typing import Any

from .._checks import positive_int, real

SCHEDULE_TYPES: dict[str, type[Schedule]] = {}


class Schedule:
    """``lr(epoch) = f(base_lr, epoch)``; the optimizer asks once per epoch."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        SCHEDULE_TYPES[cls.__name__] = cls

    def __call__(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``lr = base_lr`` at every epoch."""

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr


class InverseTimeDecay(Schedule):
    """``lr = base_lr / (1 + decay * epoch)``."""

    def __init__(self, decay: float) -> None:
        self.decay = real("decay", decay, low=0.0)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr / (1.0 + self.decay * epoch)

    def config(self) -> dict[str, Any]:
        return {"decay": self.decay}


class StepDecay(Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = positive_int("step_size", step_size)
        self.gamma = real("gamma", gamma, low=0.0, high=1.0, low_open=True)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)

    def config(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}


class CosineDecay(Schedule):
    """``lr = min_lr + (base_lr - min_lr) (1 + cos(pi * min(epoch, epochs) / epochs)) / 2``."""

    def __init__(self, epochs: int, min_lr: float = 0.0) -> None:
        self.epochs = positive_int("epochs", epochs)
        self.min_lr = real("min_lr", min_lr, low=0.0)

    def __call__(self, base_lr: float, epoch: int) -> float:
        frac = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def config(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "min_lr": self.min_lr}


def schedule_from_config(data: dict[str, Any] | None) -> Schedule:
    """Rebuild a schedule from ``{"type": name, "config": {...}}`` (None: constant)."""
    if data is None:
        return Constant()
    kind = data.get("type")
    if kind not in SCHEDULE_TYPES:
        raise ValueError(f"unknown learning-rate schedule {kind!r}")
    return SCHEDULE_TYPES[kind](**data.get("config", {}))
