"""Mean squared error."""

from __future__ import annotations

from typing import Any

from ..backends import Array
from .base import Loss, same_shape


class MSE(Loss):
    """Mean squared error over every element: ``L = mean((pred - target)^2)``.

    Convention: the mean runs over all ``N * K`` elements (not halved), so
    ``dL/dpred = 2 (pred - target) / (N * K)``. Shapes: ``pred`` and ``target`` (N, K), or a
    (N,) target for a (N, 1) prediction.
    """

    def __init__(self) -> None:
        super().__init__()
        self.diff: Array | None = None

    def check_target(self, pred_shape: tuple[int, ...], target: Any) -> None:
        shape = tuple(target.shape)
        if len(pred_shape) == 2 and pred_shape[1] == 1 and shape == (pred_shape[0],):
            return
        same_shape("MSE", pred_shape, shape)

    def forward(self, pred: Array, target: Array, *, check: bool = True) -> Array:
        if check:
            self.check_target(tuple(pred.shape), target)
        if target.ndim == 1 and pred.ndim == 2:
            target = self.xp.reshape(target, (-1, 1))
        self.diff = pred - self.backend.astype(target, pred.dtype)
        return self.backend.mean(self.diff * self.diff)

    def backward(self) -> Array:
        d = self._saved(self.diff)
        return d * (2.0 / d.size)
