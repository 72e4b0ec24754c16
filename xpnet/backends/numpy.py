"""NumPy on the CPU: in-place ``out=`` kernels that keep temporaries and float64 away."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import dlpack
from .base import Array, Backend, DeviceGenerator


class NumpyBackend(Backend):
    """NumPy on the CPU: in-place ``out=`` kernels keep temporaries and float64 away."""

    name = "numpy"

    def __init__(self, dtype: str = "float32") -> None:
        super().__init__(np, dtype)
        self._zero_rows: dict[tuple[int, str], np.ndarray] = {}
        self._scratch = threading.local()  # per-thread: the backend object is shared

    def _init_dtype(self, dtype: str) -> None:
        super()._init_dtype(dtype)
        self.dtype = np.dtype(dtype)

    @property
    def is_host(self) -> bool:
        return True

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        arr = np.asarray(x)
        if dtype is None:
            dtype = self.dtype if arr.dtype.kind == "f" else None
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def from_dlpack(self, x: Any, name: str = "X") -> Array:
        # The CPU computes here: a GPU tensor is refused rather than copied behind the user's
        # back (a silent device->host copy per call is the surprise to avoid).
        if not dlpack.on_host(x):
            raise TypeError(
                f"{name} is {dlpack.describe(x)}, but the model computes on the CPU (numpy "
                "backend): move it to the CPU first (PyTorch: X.cpu()), or use a model on the "
                "GPU (backend='cupy', or model.to('cupy'))"
            )
        return dlpack.host_from_dlpack(x, name)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def to_float(self, x: Array) -> float:
        return float(x)

    def astype(self, x: Array, dtype: Any) -> Array:
        return x.astype(dtype, copy=False)

    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        return np.zeros(shape, dtype=dtype or self.dtype)

    def arange(self, n: int, dtype: Any = None) -> Array:
        return np.arange(n, dtype=dtype)

    def take_rows(self, x: Array, idx: Array) -> Array:
        return np.take(x, idx, axis=0)

    def index_array(self, idx: np.ndarray) -> Array:
        return idx

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return np.matmul(a, b, out=out)

    def sum_rows(self, a: Array, out: Array | None = None) -> Array:
        return np.sum(a, axis=0, out=out)

    def _zero_row(self, width: int, dtype: np.dtype) -> np.ndarray:
        """A read-only (width,) vector of zeros: ``maximum`` against a broadcast row runs several
        times faster than against a scalar 0 (NumPy 2.4's SIMD loops), with the same result."""
        key = (width, dtype.str)
        row = self._zero_rows.get(key)
        if row is None:
            row = np.zeros((width,), dtype=dtype)
            row.flags.writeable = False
            self._zero_rows[key] = row
        return row

    def relu(self, x: Array) -> Array:
        if x.ndim == 0 or x.dtype.kind != "f":
            return np.maximum(x, x.dtype.type(0))
        return np.maximum(x, self._zero_row(x.shape[-1], x.dtype))

    def relu_backward(self, dy: Array, y: Array) -> Array:
        return np.multiply(dy, y > 0, dtype=dy.dtype)

    def full(self, shape: tuple[int, ...], value: float, dtype: Any = None) -> Array:
        return np.full(shape, value, dtype=dtype or self.dtype)

    def mask_from_draws(
        self, gen: DeviceGenerator, shape: tuple[int, ...], threshold: int, scale: float
    ) -> Array:
        # Backend.mask_from_draws's rule in one pass: bool * scale straight into the dtype.
        kept = np.less(gen.bits16(shape), threshold)
        return np.multiply(kept, self.dtype.type(scale), dtype=self.dtype)

    def _scratch_like(self, p: np.ndarray) -> np.ndarray:
        """A reusable scratch array with ``p``'s shape and dtype (one per thread)."""
        cache: dict[tuple[tuple[int, ...], str], np.ndarray] | None = getattr(
            self._scratch, "arrays", None
        )
        if cache is None:
            cache = self._scratch.arrays = {}
        key = (p.shape, p.dtype.str)
        buf = cache.get(key)
        if buf is None:
            buf = cache[key] = np.empty(p.shape, dtype=p.dtype)
        return buf

    def adam_update(
        self,
        p: Array,
        g: Array,
        m: Array,
        v: Array,
        *,
        lr_t: float,
        beta1: float,
        beta2: float,
        eps_t: float,
    ) -> None:
        # Backend.adam_update's rule, operation for operation (so the same bits), as 12
        # in-place passes over one reused scratch array: no temporaries, no float64.
        if p.dtype != g.dtype or p.dtype != m.dtype or p.dtype != v.dtype:
            super().adam_update(p, g, m, v, lr_t=lr_t, beta1=beta1, beta2=beta2, eps_t=eps_t)
            return
        tmp = self._scratch_like(p)
        beta1, beta2, lr_t, eps_t = float(beta1), float(beta2), float(lr_t), float(eps_t)
        np.multiply(g, 1.0 - beta1, out=tmp)
        m *= beta1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - beta2
        v *= beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps_t
        np.divide(m, tmp, out=tmp)
        tmp *= lr_t
        p -= tmp
