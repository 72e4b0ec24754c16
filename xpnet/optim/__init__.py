"""Optimizers and learning-rate schedules."""

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
