"""Losses: ``forward(pred, target) -> scalar`` and ``backward() -> dpred``."""

from .._namespace import warn_if_shadowed
from .base import LOSS_TYPES, Loss
from .binary_cross_entropy import BinaryCrossEntropy
from .mse import MSE
from .softmax_cross_entropy import SoftmaxCrossEntropy

#: the names ``Sequential.compile`` accepts for a loss
LOSS_NAMES = {
    "softmax_cross_entropy": "SoftmaxCrossEntropy",
    "mse": "MSE",
    "binary_cross_entropy": "BinaryCrossEntropy",
}


def loss_from_name(name: str) -> Loss:
    """A new loss from its short name (``"mse"``...), or a ValueError listing the names."""
    if name not in LOSS_NAMES:
        raise ValueError(f"loss must be a Loss or one of {sorted(LOSS_NAMES)}, got {name!r}")
    return LOSS_TYPES[LOSS_NAMES[name]]()


warn_if_shadowed()  # imported through a clone folder named xpnet? say so

__all__ = [
    "LOSS_NAMES",
    "LOSS_TYPES",
    "MSE",
    "BinaryCrossEntropy",
    "Loss",
    "SoftmaxCrossEntropy",
    "loss_from_name",
]
