"""The loss interface: ``forward(pred, target) -> scalar`` and ``backward() -> dpred``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Array, Backend, get_backend

LOSS_TYPES: dict[str, type[Loss]] = {}


class Loss:
    """Base class for losses.

    ``forward(pred, target)`` returns the mean loss as a 0-d array on the backend (reading it
    with ``float()`` waits for the device, so training loops read it rarely); ``backward()``
    returns ``dL/dpred`` with ``pred``'s shape, from what ``forward`` saved.
    """

    def __init__(self) -> None:
        self.backend: Backend = get_backend("numpy")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LOSS_TYPES[cls.__name__] = cls

    def to(self, backend: Any, dtype: str | None = None) -> Loss:
        self.backend = get_backend(backend, dtype)
        return self

    @property
    def xp(self) -> Any:
        return self.backend.xp

    def forward(self, pred: Array, target: Array, *, check: bool = True) -> Array:
        """Mean loss over the batch. ``check=False`` skips target validation (done once by fit)."""
        raise NotImplementedError

    def backward(self) -> Array:
        raise NotImplementedError

    def __call__(self, pred: Array, target: Array) -> Array:
        return self.forward(pred, target)

    def accuracy(self, pred: Array, target: Array) -> Array | None:
        """Fraction of correct predictions as a 0-d array, or None where it means nothing."""
        return None

    def probabilities(self, out: Array) -> Array:
        """What the model's outputs mean as probabilities (``predict_proba``): the outputs
        themselves here; softmax or sigmoid for losses fused with one. Shapes: (N, K) -> (N, K).
        """
        return out

    def classes(self, out: np.ndarray) -> np.ndarray:
        """Predicted classes (host int64, (N,)) from host outputs (N, K): the argmax over K > 1
        outputs, else 1 where the single output exceeds 0.5 (a probability)."""
        if out.ndim == 2 and out.shape[1] > 1:
            return np.argmax(out, axis=1).astype(np.int64)
        return (out.reshape(-1) > 0.5).astype(np.int64)

    def check_target(self, pred_shape: tuple[int, ...], target: Any) -> None:
        """Raise a clear error if ``target`` can't go with predictions of ``pred_shape``.

        ``target`` may be a host or backend array; this may read it (a device sync on GPU).
        """

    def config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def _saved(self, value: Array | None) -> Array:
        if value is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        return value


def same_shape(name: str, pred_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> None:
    """Raise ValueError unless the target has the prediction's shape."""
    if tuple(pred_shape) != tuple(target_shape):
        raise ValueError(
            f"{name}: target shape {tuple(target_shape)} does not match prediction shape "
            f"{tuple(pred_shape)}"
        )
