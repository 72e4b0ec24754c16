"""Softmax cross-entropy fused with the softmax, on logits."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Array, Backend
from ..layers.softmax import softmax
from .base import Loss, same_shape


def one_hot(backend: Backend, labels: Array, classes: int, dtype: Any) -> Array:
    """(N,) integer labels -> (N, classes) one-hot rows in ``dtype``, on the labels' backend."""
    ar = backend.arange(classes, dtype=labels.dtype)
    return backend.astype(labels[:, None] == ar[None, :], dtype)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of ``softmax(logits)``, computed with log-sum-exp.

    ``L = mean_n( logsumexp(z_n) - sum_c t_nc z_nc )`` for targets ``t`` that are one-hot (or
    any probability rows); integer labels (N,) in ``[0, C)`` are turned into one-hot rows.
    Gradient: ``dL/dz = (softmax(z) - t) / N``. Shapes: logits (N, C); target (N,) integer
    labels or (N, C) probabilities.
    """

    def __init__(self) -> None:
        super().__init__()
        self.p: Array | None = None
        self.t: Array | None = None
        # On a fused backend: the kernel's gradient, and (pred, target, accuracy).
        self.dz: Array | None = None
        self.fused_accuracy: tuple[Array, Array, Array] | None = None

    def check_target(self, pred_shape: tuple[int, ...], target: Any) -> None:
        name = "SoftmaxCrossEntropy"
        if len(pred_shape) != 2:
            raise ValueError(f"{name}: expected logits of shape (batch, classes), got {pred_shape}")
        n, c = pred_shape
        kind = np.dtype(str(target.dtype).rsplit(".", 1)[-1]).kind
        if target.ndim == 1:
            if kind not in "iu":
                raise TypeError(
                    f"{name}: 1-D targets must be integer class labels, got dtype {target.dtype}"
                )
            if target.shape[0] != n:
                raise ValueError(f"{name}: got {target.shape[0]} labels for {n} rows of logits")
            host = self.backend.to_host(target) if not isinstance(target, np.ndarray) else target
            if host.size and (int(host.min()) < 0 or int(host.max()) >= c):
                bad = host[(host < 0) | (host >= c)]
                raise ValueError(
                    f"{name}: labels must be in [0, {c - 1}] for {c} classes, got {int(bad[0])} "
                    f"({bad.size} label(s) out of range)"
                )
        elif target.ndim == 2:
            same_shape(name, pred_shape, tuple(target.shape))
            if kind != "f":
                raise TypeError(f"{name}: (N, C) targets must be floating, got {target.dtype}")
            host = self.backend.to_host(target) if not isinstance(target, np.ndarray) else target
            sums = host.sum(axis=1, dtype=np.float64)
            if host.size and (host.min() < 0 or not np.allclose(sums, 1.0, atol=1e-3)):
                raise ValueError(
                    f"{name}: (N, C) targets must be one-hot or probability rows (non-negative, "
                    f"summing to 1); got a row summing to {float(sums[np.argmax(abs(sums - 1))])}"
                )
        else:
            raise ValueError(
                f"{name}: target must be (N,) labels or (N, C) one-hot rows, got shape "
                f"{tuple(target.shape)}"
            )

    def forward(self, pred: Array, target: Array, *, check: bool = True) -> Array:
        if check:
            self.check_target(tuple(pred.shape), target)
        self.dz = self.fused_accuracy = None
        if target.ndim == 1:
            # One kernel where the backend has one (fused CuPy): loss, gradient and accuracy by
            # the same rule as below.
            fused = self.backend.softmax_xent(pred, target)
            if fused is not None:
                loss, self.dz, acc = fused
                self.p = self.t = None
                self.fused_accuracy = (pred, target, acc)
                return loss
        xp = self.xp
        if target.ndim == 1:
            t = one_hot(self.backend, target, pred.shape[1], pred.dtype)
        else:
            t = self.backend.astype(target, pred.dtype)
        m = xp.max(pred, axis=1, keepdims=True)
        z = pred - m
        e = xp.exp(z)
        s = xp.sum(e, axis=1, keepdims=True)
        self.p = e / s
        self.t = t
        # logsumexp(z) - <t, z> per row: no exp of a large number, no log 0.
        # Where t is 0 the logit is left out: a spread of logits beyond the dtype's range makes
        # z = -inf there, and 0 * -inf would be NaN (the true term is 0).
        tz = t * xp.where(t > 0, z, xp.zeros_like(z))
        per_row = xp.log(s)[:, 0] - xp.sum(tz, axis=1)
        if target.ndim == 2:
            # Probability rows sum to 1 only to within rounding (1/3 in float32 does not): add
            # m (1 - sum t) so the loss is exactly logsumexp - <t, pred>, whose gradient is
            # p - t, rather than a function that also moves with the row maximum (a kink
            # wherever two logits tie). One-hot rows from labels sum to 1 exactly.
            per_row = per_row + m[:, 0] * (1.0 - xp.sum(t, axis=1))
        return self.backend.mean(per_row)

    def probabilities(self, out: Array) -> Array:
        return softmax(self.xp, out)

    def backward(self) -> Array:
        if self.dz is not None:
            return self.dz
        p = self._saved(self.p)
        t = self._saved(self.t)
        return (p - t) * (1.0 / p.shape[0])

    def accuracy(self, pred: Array, target: Array) -> Array:
        saved = self.fused_accuracy
        if saved is not None and saved[0] is pred and saved[1] is target:
            return saved[2]  # computed by the fused forward
        xp, be = self.xp, self.backend
        guess = xp.argmax(pred, axis=1)
        labels = target if target.ndim == 1 else xp.argmax(target, axis=1)
        return xp.mean(be.astype(guess == be.astype(labels, guess.dtype), pred.dtype))
