"""Batch normalization over the features of (N, C) rows or the channels of (N, C, H, W) images."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._checks import flag, positive_int, real
from ..backends import Array, get_backend
from ..backends.conv_ops import permute
from .base import Layer, Shape


class BatchNorm(Layer):
    """Shared base of :class:`BatchNorm1d` and :class:`BatchNorm2d` (one channel axis, axis 1).

    Training (``training=True``): each channel is normalised with the statistics of the batch,
    ``xhat = (x - mean) / sqrt(var + eps)`` with the *biased* variance (divided by ``m``, the
    values per channel: ``N`` for 1d, ``N*H*W`` for 2d), then ``y = gamma * xhat + beta``. The
    running statistics are updated by PyTorch's rule ``running = (1 - momentum) * running +
    momentum * batch_stat``, where ``running_var`` takes the *unbiased* batch variance
    (``var * m / (m - 1)``), as PyTorch does. Inference (``training=False``): ``running_mean``
    and ``running_var`` replace the batch statistics, and the layer is a per-channel affine map.

    Backward in training is the full one (the batch statistics depend on every input):
    ``dxhat = dy * gamma``, ``dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat xhat))``
    (sums per channel), ``dgamma = sum(dy xhat)``, ``dbeta = sum(dy)``; at inference
    ``dx = dy * gamma * inv_std``. ``params``: ``gamma`` (C,) starting at 1 and ``beta`` (C,) at
    0 (none with ``affine=False``); ``buffers``: ``running_mean`` (C,) at 0, ``running_var``
    (C,) at 1, saved with the model and moved by :meth:`to`. Training needs more than one value
    per channel (a variance of one value is 0), as in PyTorch.

    In data-parallel training each process would see only its shard of the batch, so these
    layers are marked :attr:`~xpnet.layers.Layer.batch_dependent` and ``fit(comm=...)`` over
    several processes refuses them.
    """

    batch_dependent: ClassVar[bool] = True
    #: rank of the input, batch axis included (2: (N, C); 4: (N, C, H, W))
    input_rank: ClassVar[int] = 2

    def __init__(
        self,
        num_features: int,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        backend: Any = "numpy",
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.num_features = positive_int("num_features", num_features)
        self.eps = real("eps", eps, low=0.0, low_open=True)
        self.momentum = real("momentum", momentum, low=0.0, high=1.0)
        self.affine = flag("affine", affine)
        self.backend = get_backend(backend, dtype)
        self.axes = (0, *range(2, self.input_rank))
        self.mode: str | None = None  # "train" or "eval": which forward backward follows
        self.xc: Array | None = None
        self.inv_std: Array | None = None
        self.reset_parameters(np.random.default_rng(0))

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """gamma = 1, beta = 0, running_mean = 0, running_var = 1 (draws nothing from rng)."""
        be, c = self.backend, self.num_features
        if self.affine:
            self.params["gamma"] = be.full((c,), 1.0)
            self.params["beta"] = be.zeros((c,))
            self.grads["gamma"] = be.zeros((c,))
            self.grads["beta"] = be.zeros((c,))
        self.buffers["running_mean"] = be.zeros((c,))
        self.buffers["running_var"] = be.full((c,), 1.0)

    # ------------------------------------------------------------------ forward / backward
    def _check_input(self, x: Array) -> None:
        be = self.backend
        want = format_input(self.num_features, self.input_rank)
        if not be.is_array(x):
            raise TypeError(
                f"{self.name}: expected a {be.name} array of shape {want}, got "
                f"{type(x).__module__}.{type(x).__name__}; convert it with backend.asarray(x)"
            )
        if x.ndim != self.input_rank or x.shape[1] != self.num_features:
            raise ValueError(f"{self.name}: expected input of shape {want}, got {tuple(x.shape)}")
        if x.dtype != be.dtype:
            raise TypeError(
                f"{self.name}: expected input dtype {be.dtype_name}, got {x.dtype}; "
                f"cast it first (backend.asarray(x)) so that no silent promotion happens"
            )

    def _rows(self, x: Array) -> Array:
        """``x`` as an (M, C) matrix, one row per value of each channel: (N, C) as is, (N, C,
        H, W) through its (N, H, W, C) permutation (a view on NumPy, whose images are NHWC in
        memory), so that every statistic is a column sum of a contiguous matrix."""
        if self.input_rank == 2:
            return x
        return self.xp.reshape(permute(self.xp, x, (0, 2, 3, 1)), (-1, self.num_features))

    def _like_input(self, rows: Array, shape: tuple[int, ...]) -> Array:
        """(M, C) rows back to the input's shape (an NCHW view of NHWC rows for images)."""
        if self.input_rank == 2:
            return rows
        n, c, h, w = shape
        return permute(self.xp, self.xp.reshape(rows, (n, h, w, c)), (0, 3, 1, 2))

    def forward(self, x: Array, training: bool = False) -> Array:
        self._check_input(x)
        xp, be, rows = self.xp, self.backend, self._rows(x)
        if training:
            m = int(np.prod([x.shape[a] for a in self.axes]))
            if m < 2:
                raise ValueError(
                    f"{self.name}: expected more than 1 value per channel when training, got "
                    f"input of shape {tuple(x.shape)} (one value has no variance; in fit, a "
                    "last batch of one row: choose a batch_size that does not leave one)"
                )
            mean = be.column_sums(rows) * (1.0 / m)
            xc = be.channel_op("subtract", rows, mean)
            var = be.column_dots(xc, xc) * (1.0 / m)  # biased: / m
            self._update_running(mean, var, m)
            self.mode = "train"
        else:
            xc = be.channel_op("subtract", rows, self.buffers["running_mean"])
            var = self.buffers["running_var"]
            self.mode = "eval"
        self.inv_std = 1.0 / xp.sqrt(var + self.eps)
        # Saved: xc = x - mean (xhat = xc inv_std is never formed: one pass fewer each way)
        self.xc = xc  # (M, C) rows
        if not self.affine:
            return self._like_input(be.channel_op("multiply", xc, self.inv_std), tuple(x.shape))
        y = be.channel_op("multiply", xc, self.inv_std * self.params["gamma"])
        be.channel_op("add", y, self.params["beta"], out=y)
        return self._like_input(y, tuple(x.shape))

    def _update_running(self, mean: Array, var: Array, m: int) -> None:
        """``running = (1 - momentum) running + momentum batch_stat`` (unbiased var), in place."""
        xp, c, mom = self.xp, (self.num_features,), self.momentum
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm *= 1.0 - mom
        rm += mom * xp.reshape(mean, c)
        rv *= 1.0 - mom
        rv += (mom * m / (m - 1)) * xp.reshape(var, c)

    def backward(self, dy: Array) -> Array:
        if self.xc is None or self.inv_std is None or self.mode is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        be, xc, inv_std = self.backend, self.xc, self.inv_std
        dy_rows = self._rows(dy)
        # With dxhat = dy gamma: sum(dxhat) = gamma sum(dy), sum(dxhat xhat) = gamma sum(dy xhat)
        sum_dy = be.column_sums(dy_rows)
        sum_dy_xhat = be.column_dots(dy_rows, xc) * inv_std
        scale = inv_std
        if self.affine:
            self.grads["gamma"][...] = sum_dy_xhat
            self.grads["beta"][...] = sum_dy
            scale = inv_std * self.params["gamma"]
        if self.mode == "eval":
            return self._like_input(be.channel_op("multiply", dy_rows, scale), tuple(dy.shape))
        # dx = inv_std / m (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)), gamma factored out
        m = int(dy_rows.shape[0])
        dx = be.channel_op("subtract", dy_rows, sum_dy * (1.0 / m))
        dx -= be.channel_op("multiply", xc, sum_dy_xhat * (inv_std / m))  # xhat = xc inv_std
        be.channel_op("multiply", dx, scale, out=dx)
        return self._like_input(dx, tuple(dy.shape))

    # ------------------------------------------------------------------- description
    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
        }

    @classmethod
    def param_shapes_for(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        c = positive_int("num_features", config.get("num_features"))
        return {"gamma": (c,), "beta": (c,)} if config.get("affine", True) else {}

    @classmethod
    def buffer_shapes_for(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        c = positive_int("num_features", config.get("num_features"))
        return {"running_mean": (c,), "running_var": (c,)}

    @property
    def input_shape(self) -> Shape:
        return (self.num_features,) + (None,) * (self.input_rank - 2)

    def output_shape(self, input_shape: Shape | None) -> Shape:
        return input_shape if input_shape is not None else self.input_shape

    def describe(self) -> str:
        return f"{type(self).__name__} {self.num_features}"

    def describe_input(self) -> str:
        return f"num_features={self.num_features}"


def format_input(channels: int, rank: int) -> str:
    """``(batch, 16)`` or ``(batch, 16, H, W)``."""
    return f"(batch, {channels}" + ", H, W" * (rank == 4) + ")"


class BatchNorm1d(BatchNorm):
    """Batch normalization of (N, C) rows, per feature (see :class:`BatchNorm`)."""

    input_rank: ClassVar[int] = 2


class BatchNorm2d(BatchNorm):
    """Batch normalization of (N, C, H, W) images, per channel over N, H and W (see
    :class:`BatchNorm`)."""

    input_rank: ClassVar[int] = 4
