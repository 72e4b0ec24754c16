"""Losses: ``forward(pred, target) -> scalar`` and ``backward() -> dpred``."""

from .base import LOSS_TYPES, Loss
from .binary_cross_entropy import BinaryCrossEntropy
from .mse import MSE
from .softmax_cross_entropy import SoftmaxCrossEntropy

__all__ = ["LOSS_TYPES", "MSE", "BinaryCrossEntropy", "Loss", "SoftmaxCrossEntropy"]
