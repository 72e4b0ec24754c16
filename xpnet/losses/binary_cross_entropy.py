"""Binary cross-entropy, on probabilities or (fused with the sigmoid) on logits."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import real
from ..backends import Array
from ..layers.activations import sigmoid
from .base import Loss, same_shape


class BinaryCrossEntropy(Loss):
    """``L = -mean(t log p + (1 - t) log(1 - p))`` over every element; targets in [0, 1].

    ``from_logits=False``: ``pred`` are probabilities (after a Sigmoid), clipped to
    ``[eps, 1 - eps]``; ``dL/dp = (p - t) / (p (1 - p)) / size``.
    ``from_logits=True``: ``pred`` are logits ``z`` and the sigmoid is fused in:
    ``L = mean(max(z, 0) - z t + log(1 + exp(-|z|)))``, ``dL/dz = (sigmoid(z) - t) / size``.
    Shapes: ``pred`` (N, K) with a target of the same shape, or (N, 1) with a (N,) target.
    """

    def __init__(self, from_logits: bool = False, eps: float = 1e-7) -> None:
        super().__init__()
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits
        self.eps = real("eps", eps, low=0.0, high=0.5, low_open=True, high_open=True)
        self.pred: Array | None = None
        self.t: Array | None = None

    def check_target(self, pred_shape: tuple[int, ...], target: Any) -> None:
        shape = tuple(target.shape)
        if not (len(pred_shape) == 2 and pred_shape[1] == 1 and shape == (pred_shape[0],)):
            same_shape("BinaryCrossEntropy", pred_shape, shape)
        host = self.backend.to_host(target)
        if host.size and (float(host.min()) < 0.0 or float(host.max()) > 1.0):
            raise ValueError(
                f"BinaryCrossEntropy: targets must be in [0, 1], got values in "
                f"[{float(host.min())}, {float(host.max())}]"
            )

    def forward(self, pred: Array, target: Array, *, check: bool = True) -> Array:
        if check:
            self.check_target(tuple(pred.shape), target)
        xp = self.xp
        t = self.backend.astype(target, pred.dtype)
        if t.ndim == 1 and pred.ndim == 2:
            t = xp.reshape(t, (-1, 1))
        self.pred, self.t = pred, t
        if self.from_logits:
            z = pred
            # log(1 + exp(-|z|)) never overflows; log1p keeps precision when it is tiny.
            return self.backend.mean(
                xp.maximum(z, xp.zeros_like(z)) - z * t + xp.log1p(xp.exp(-xp.abs(z)))
            )
        p = self._clip(pred)
        return -self.backend.mean(t * xp.log(p) + (1.0 - t) * xp.log(1.0 - p))

    def _clip(self, pred: Array) -> Array:
        """``pred`` clipped to ``[eps, 1 - eps]``, bounds made representable in its dtype.

        An ``eps`` below the dtype's resolution (e.g. 1e-10 in float32) would round
        ``1 - eps`` to 1 and ``eps`` to 0, and ``log(0)`` is -inf: the bounds are moved in to
        the nearest numbers strictly inside (0, 1).
        """
        fi = np.finfo(str(pred.dtype).rsplit(".", 1)[-1])
        lo = max(self.eps, float(fi.tiny))
        hi = min(1.0 - self.eps, 1.0 - float(fi.epsneg))
        return self.xp.clip(pred, lo, hi)

    def backward(self) -> Array:
        pred, t = self._saved(self.pred), self._saved(self.t)
        scale = 1.0 / pred.size
        if self.from_logits:
            return (sigmoid(self.xp, pred) - t) * scale
        p = self._clip(pred)
        return (p - t) / (p * (1.0 - p)) * scale

    def probabilities(self, out: Array) -> Array:
        return sigmoid(self.xp, out) if self.from_logits else out

    def classes(self, out: np.ndarray) -> np.ndarray:
        if out.ndim == 2 and out.shape[1] > 1:
            return super().classes(out)
        return (out.reshape(-1) > (0.0 if self.from_logits else 0.5)).astype(np.int64)

    def accuracy(self, pred: Array, target: Array) -> Array:
        xp = self.xp
        threshold = 0.0 if self.from_logits else 0.5
        t = xp.reshape(target, pred.shape) if target.ndim != pred.ndim else target
        hit = (pred > threshold) == (self.backend.astype(t, pred.dtype) > 0.5)
        return xp.mean(self.backend.astype(hit, pred.dtype))

    def config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "eps": self.eps}
