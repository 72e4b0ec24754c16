"""Optimizers and learning-rate schedules."""

from .._namespace import warn_if_shadowed
from .adam import Adam
from .base import OPTIMIZER_TYPES, Optimizer
from .schedules import (
    SCHEDULE_TYPES,
    Constant,
    CosineDecay,
    InverseTimeDecay,
    Schedule,
    StepDecay,
    schedule_from_config,
)
from .sgd import SGD, Momentum

warn_if_shadowed()  # imported through a clone folder named xpnet? say so

__all__ = [
    "OPTIMIZER_TYPES",
    "SCHEDULE_TYPES",
    "SGD",
    "Adam",
    "Constant",
    "CosineDecay",
    "InverseTimeDecay",
    "Momentum",
    "Optimizer",
    "Schedule",
    "StepDecay",
    "schedule_from_config",
]
