"""The optimizer interface: per-parameter state on the parameters' backend, an epoch clock."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._checks import real
from ..backends import Array, Backend, get_backend
from .schedules import Constant, Schedule

OPTIMIZER_TYPES: dict[str, type[Optimizer]] = {}

#: (name, parameter, gradient): what ``Optimizer.step`` consumes; names are stable across runs
ParamGrad = tuple[str, Array, Array]


class Optimizer:
    """Base class: ``step(params)`` updates every parameter in place from its gradient.

    The learning rate is ``schedule(lr, epoch)``; ``set_epoch`` is called by ``fit`` at the
    start of each epoch. State arrays (momenta) are created on first use with the parameter's
    shape on ``self.backend``, so they live where the parameters live.
    """

    slots: tuple[str, ...] = ()

    def __init__(
        self, lr: float, *, weight_decay: float = 0.0, schedule: Schedule | None = None
    ) -> None:
        self.base_lr = real("lr", lr, low=0.0, low_open=True)
        self.weight_decay = real("weight_decay", weight_decay, low=0.0)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be an xpnet.optim Schedule, got {schedule!r}")
        self.schedule: Schedule = schedule or Constant()
        self.backend: Backend = get_backend("numpy")
        self.epoch = 0
        self.t = 0  # steps taken
        self.state: dict[str, dict[str, Array]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        OPTIMIZER_TYPES[cls.__name__] = cls

    @property
    def lr(self) -> float:
        """The learning rate in force for the current epoch."""
        return float(self.schedule(self.base_lr, self.epoch))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def to(self, backend: Any, dtype: str | None = None) -> Optimizer:
        """Move the state arrays to ``backend`` (through the host)."""
        new = get_backend(backend, dtype)
        for slots in self.state.values():
            for k, arr in slots.items():
                slots[k] = new.asarray(self.backend.to_host(arr), dtype=new.dtype)
        self.backend = new
        return self

    def _slots(self, name: str, p: Array) -> dict[str, Array]:
        st = self.state.get(name)
        if st is None:
            if not self.backend.is_array(p):
                raise TypeError(
                    f"parameter {name!r} is a {type(p).__module__}.{type(p).__name__} but this "
                    f"optimizer keeps its state on {self.backend!r}: call optimizer.to(backend) "
                    "first (Sequential.compile does this)"
                )
            shape = tuple(p.shape)
            st = self.state[name] = {s: self.backend.zeros(shape, p.dtype) for s in self.slots}
        return st

    def step(self, params: Iterable[ParamGrad]) -> None:
        """Apply one update to every ``(name, param, grad)``."""
        self.t += 1
        lr = self.lr
        for name, p, g in params:
            self.update(name, p, g, lr)

    def update(self, name: str, p: Array, g: Array, lr: float) -> None:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"lr": self.base_lr, "weight_decay": self.weight_decay}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args}, schedule={self.schedule!r})"
