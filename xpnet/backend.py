"""Choose the array module at runtime: NumPy (CPU), CuPy (NVIDIA GPU) or any array-API module.

This is the only module in xpnet that knows CuPy exists, and it imports CuPy lazily: xpnet
imports and runs with NumPy alone. Every array a layer, loss or optimizer creates is made
through a :class:`Backend`, which owns

* ``xp``: the array module (``numpy``, ``cupy``, ``array_api_strict``, ...);
* ``dtype``: the default floating dtype (float32; float64 on request);
* moving arrays to and from the host (:meth:`Backend.asarray`, :meth:`Backend.to_host`);
* synchronizing with the device (:meth:`Backend.synchronize`);
* seeded random generators that draw on the device (:meth:`Backend.generator`);
* a few hot operations (Adam update, dropout mask, ReLU) that a backend may fuse.

Initial weights are *not* drawn here: layers draw them from a seeded host NumPy generator and
move them with :meth:`Backend.asarray`, so one seed gives the same model on every backend.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import threading
from types import ModuleType
from typing import Any

import numpy as np

from .cuda_kernels import ELEMENTWISE, raw_source

Array = Any  # an array of the backend's module (numpy.ndarray, cupy.ndarray, ...)

_FLOAT_DTYPES = ("float32", "float64")


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used on this machine."""


class DeviceGenerator:
    """A seeded random generator that draws arrays on the backend's device.

    Every backend uses a host ``numpy.random.Generator`` (PCG64), whose state is a plain dict
    and can be saved and restored exactly. The host backends draw the numbers themselves; on a
    GPU a dropout mask costs one 64-bit :meth:`key` from it and is hashed on the device.
    """

    #: Whether a GPU backend may draw a mask as :meth:`key` plus a device hash. Generators that
    #: hand out fixed numbers (test doubles holding masks fixed across backends) set it False,
    #: and then every backend builds masks from :meth:`bits16`, the host rule.
    draws_keys: bool = True

    def __init__(self, backend: Backend, seed: int | np.random.SeedSequence | None) -> None:
        self.backend = backend
        self._host = np.random.Generator(np.random.PCG64(seed))

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        """Uniform samples in [0, 1) of ``shape`` and ``dtype`` (default: the backend's)."""
        dt = np.dtype(dtype or self.backend.dtype_name)
        return self.backend.asarray(self._host.random(shape, dtype=dt))

    def bits16(self, shape: tuple[int, ...]) -> Array:
        """Uniform integers in ``[0, 65536)`` as uint16, on the backend's device.

        Four values per 64-bit draw (``random_raw``, viewed as uint16), several times cheaper
        than float uniforms; dropout masks compare them with ``round(keep * 65536)``.
        """
        n = math.prod(shape)
        raw = self._host.bit_generator.random_raw((n + 3) // 4)
        return self.backend.asarray(raw.view(np.uint16)[:n].reshape(shape))

    def key(self) -> int:
        """One uniform 64-bit integer: the seed of a counter-based hash drawn on the device."""
        return int(self._host.bit_generator.random_raw())

    def get_state(self) -> dict[str, Any]:
        """The generator's state as JSON-serializable data."""
        return dict(self._host.bit_generator.state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`get_state`."""
        self._host.bit_generator.state = state


class Backend:
    """An array module plus a default dtype, written against the Python array API standard.

    This generic class works for any module that follows the standard (``array_api_strict``
    included, which refuses silent conversions to NumPy and mixing devices, so it catches the
    mistakes CuPy would). :class:`NumpyBackend` and :class:`CupyBackend` override the hot paths.
    """

    name: str = "array-api"
    #: Whether training uses the fused multi-layer kernels (CuPy): bias + ReLU + dropout in one
    #: pass, softmax cross-entropy forward + backward + accuracy in one, one Adam launch for all
    #: parameters. False everywhere else, and on a CuPy backend made with ``fused=False``.
    fused: bool = False

    def __init__(self, xp: ModuleType, dtype: str = "float32", device: Any = None) -> None:
        if dtype not in _FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {_FLOAT_DTYPES}, got {dtype!r}")
        self.xp = xp
        self.dtype_name = dtype
        self.dtype = getattr(xp, dtype)
        self.device = device
        self._array_type = type(xp.asarray(0.0, device=device)) if device is not None else None
        if self.name == "array-api":
            self.name = getattr(xp, "__name__", "array-api")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dtype={self.dtype_name!r})"

    # ----------------------------------------------------------------- arrays and the host
    @property
    def is_host(self) -> bool:
        """True when arrays live in host memory and reading a scalar costs no device sync."""
        return False

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """Move ``x`` (host data or an array of this backend) to the backend, cast to ``dtype``.

        ``dtype=None`` keeps integer data integer and casts floating data to the default dtype.
        """
        xp = self.xp
        if dtype is None:
            host = np.asarray(x) if not self.is_array(x) else None
            kind = host.dtype.kind if host is not None else _kind_of(x)
            dtype = self.dtype if kind == "f" else None
        if self.is_array(x):
            return x if dtype is None or x.dtype == dtype else xp.astype(x, dtype)
        return xp.asarray(np.ascontiguousarray(x), dtype=dtype, device=self.device)

    def is_array(self, x: Any) -> bool:
        """Whether ``x`` is already an array of this backend's module."""
        if self._array_type is None:
            self._array_type = type(self.xp.asarray(0.0))
        return isinstance(x, self._array_type)

    def to_host(self, x: Array) -> np.ndarray:
        """Copy ``x`` to a host NumPy array (a no-op for NumPy arrays)."""
        if isinstance(x, np.ndarray):
            return x
        return np.from_dlpack(x)

    def to_float(self, x: Array) -> float:
        """Read a 0-d array as a Python float. On a GPU this waits for the device."""
        return float(self.to_host(x))

    def synchronize(self) -> None:
        """Wait until all queued device work is done (no-op on the CPU)."""

    def fits_on_device(self, nbytes: int) -> bool:
        """Whether ``nbytes`` of training data can stay on the device (half its free memory)."""
        return True

    def nbytes(self, x: Array) -> int:
        """Size of ``x``'s data in bytes (the array API has no ``nbytes``)."""
        n = getattr(x, "nbytes", None)
        if n is not None:
            return int(n)
        return int(x.size) * np.dtype(str(x.dtype).rsplit(".", 1)[-1]).itemsize

    def astype(self, x: Array, dtype: Any) -> Array:
        """Cast ``x`` to ``dtype``, without a copy when it already has it."""
        return x if x.dtype == dtype else self.xp.astype(x, dtype)

    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        return self.xp.zeros(shape, dtype=dtype or self.dtype, device=self.device)

    def arange(self, n: int, dtype: Any = None) -> Array:
        """``[0, 1, ..., n-1]`` on the device (integer by default)."""
        return self.xp.arange(n, dtype=dtype, device=self.device)

    def zeros_like(self, x: Array) -> Array:
        return self.xp.zeros_like(x)

    def generator(self, seed: int | np.random.SeedSequence | None = None) -> DeviceGenerator:
        """A seeded generator that draws random arrays on this backend."""
        return DeviceGenerator(self, seed)

    def take_rows(self, x: Array, idx: Array) -> Array:
        """Rows ``x[idx]`` for an integer index array ``idx`` (gathering a minibatch)."""
        return self.xp.take(x, idx, axis=0)

    def index_array(self, idx: np.ndarray) -> Array:
        """Move a host integer index array to the device."""
        return self.xp.asarray(idx, device=self.device)

    # ----------------------------------------------------------------------- hot operations
    def mean(self, x: Array) -> Array:
        """Mean of every element of ``x`` as a 0-d array, ``sum(x * (1/n))``, never overflowing.

        ``xp.mean`` sums first and divides after, so a batch of float32 losses near 1.7e38 (each
        representable) overflows to inf in the sum; scaling each term by ``1/n`` first keeps
        every partial sum within ``max |x|``.
        """
        n = math.prod(x.shape)
        return self.xp.sum(x * (1.0 / n)) if n else self.xp.mean(x)

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        """``a @ b``, written into ``out`` when given (gradients are updated in place)."""
        if out is None:
            return a @ b
        out[...] = a @ b
        return out

    def sum_rows(self, a: Array, out: Array | None = None) -> Array:
        """``sum(a, axis=0)``, written into ``out`` when given."""
        if out is None:
            return self.xp.sum(a, axis=0)
        out[...] = self.xp.sum(a, axis=0)
        return out

    def relu(self, x: Array) -> Array:
        """``max(x, 0)`` elementwise."""
        return self.xp.maximum(x, self.xp.zeros_like(x))

    def relu_backward(self, dy: Array, y: Array) -> Array:
        """``dy * (y > 0)``: the subgradient 0 is taken at ``x == 0`` (NaN in ``dy`` stays NaN)."""
        return dy * self.xp.astype(y > 0, dy.dtype)

    def dropout_mask(self, gen: DeviceGenerator, shape: tuple[int, ...], keep: float) -> Array:
        """Inverted-dropout mask: ``1/keep`` with probability ``keep``, else 0, in the dtype.

        Element ``i`` is kept when ``gen.bits16(shape)[i] < round(keep * 65536)``, so the keep
        probability is ``keep`` to within 2**-17; every host backend draws the same masks from
        the same generator state.
        """
        threshold = keep_threshold(keep)
        scale = self.xp.full(shape, 1.0 / keep, dtype=self.dtype, device=self.device)
        if threshold > 0xFFFF:
            return scale  # keep everything, and draw nothing
        bits = gen.bits16(shape)
        return self.xp.where(bits < threshold, scale, self.xp.zeros_like(scale))

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
        """One bias-corrected Adam step, in place on ``p``, ``m`` and ``v``.

        ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
        ``p <- p - lr_t m / (sqrt(v) + eps_t)`` where the caller folds the bias corrections
        into ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)`` and ``eps_t = eps sqrt(1 - b2^t)``.
        """
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        p -= lr_t * (m / (self.xp.sqrt(v) + eps_t))

    # ------------------------------------------- multi-layer operations (fused on CuPy)
    def bias_relu(self, z: Array, b: Array) -> Array:
        """``relu(z + b)``: a Dense layer's bias and the ReLU after it."""
        return self.relu(z + b)

    def bias_relu_dropout(
        self, z: Array, b: Array, gen: DeviceGenerator, keep: float
    ) -> tuple[Array, Array, Array]:
        """``(a, mask, a * mask)`` with ``a = relu(z + b)`` and ``mask`` a dropout mask."""
        a = self.bias_relu(z, b)
        mask = self.dropout_mask(gen, tuple(a.shape), keep)
        return a, mask, a * mask

    def dropout_relu_backward(self, dy: Array, mask: Array, a: Array) -> Array:
        """Dropout's backward (``dy * mask``) then ReLU's (``* (a > 0)``)."""
        return self.relu_backward(dy * mask, a)

    def softmax_xent(self, z: Array, labels: Array) -> tuple[Array, Array, Array] | None:
        """``(mean loss, dz, accuracy)`` of softmax cross-entropy on integer labels in one
        kernel, where a backend has one (CuPy); None here: the loss computes it step by step."""
        return None

    def adam_step(
        self,
        items: list[tuple[Array, Array, Array, Array]],
        *,
        lr_t: float,
        beta1: float,
        beta2: float,
        eps_t: float,
    ) -> None:
        """:meth:`adam_update` on every ``(p, g, m, v)`` of ``items`` (one step of a model).

        A backend may do them all in one launch (CuPy); the rule is the same.
        """
        for p, g, m, v in items:
            self.adam_update(p, g, m, v, lr_t=lr_t, beta1=beta1, beta2=beta2, eps_t=eps_t)


def keep_threshold(keep: float) -> int:
    """``round(keep * 65536)``: a 16-bit draw below it keeps an element (see dropout_mask)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    return round(keep * 65536)


class NumpyBackend(Backend):
    """NumPy on the CPU: in-place ``out=`` kernels keep temporaries and float64 away."""

    name = "numpy"

    def __init__(self, dtype: str = "float32") -> None:
        super().__init__(np, dtype)
        self.dtype = np.dtype(dtype)
        self._zero_rows: dict[tuple[int, str], np.ndarray] = {}
        self._scratch = threading.local()  # per-thread: the backend object is shared

    @property
    def is_host(self) -> bool:
        return True

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        arr = np.asarray(x)
        if dtype is None:
            dtype = self.dtype if arr.dtype.kind == "f" else None
        return arr if dtype is None else arr.astype(dtype, copy=False)

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

    def dropout_mask(self, gen: DeviceGenerator, shape: tuple[int, ...], keep: float) -> Array:
        # Same draws and rule as Backend.dropout_mask: 16-bit integers against a threshold.
        threshold = keep_threshold(keep)
        scale = self.dtype.type(1.0 / keep)
        if threshold > 0xFFFF:
            return np.full(shape, scale, dtype=self.dtype)
        kept = np.less(gen.bits16(shape), threshold)
        return np.multiply(kept, scale, dtype=self.dtype)

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


class CupyBackend(Backend):
    """CuPy on an NVIDIA GPU, normally made by :func:`get_backend` (which checks for a GPU).

    The hot operations run as fused kernels (sources in :mod:`xpnet.cuda_kernels`, compiled on
    first use): ReLU and its backward, dropout masks hashed on the device from a host-drawn key
    (no device random state, so checkpoints restore them exactly), a row-sum for bias
    gradients, and, with ``fused=True`` (the default), bias + ReLU + dropout, softmax
    cross-entropy with its gradient and accuracy, and Adam for every parameter in one launch
    each. ``fused=False`` keeps the single-layer kernels only: the plain path the fused one is
    tested against.
    """

    name = "cupy"

    def __init__(self, cupy: ModuleType, dtype: str = "float32", *, fused: bool = True) -> None:
        super().__init__(cupy, dtype)
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be True or False, got {fused!r}")
        self.fused = fused
        self._scalar = np.dtype(dtype).type  # kernel scalars in the backend's dtype, not float64
        self._kernels: dict[str, Any] = {}
        self._adam_tables: dict[tuple[tuple[int, ...], ...], tuple[Array, Array, int]] = {}

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        cp = self.xp
        if dtype is None:
            kind = x.dtype.kind if hasattr(x, "dtype") else np.asarray(x).dtype.kind
            dtype = self.dtype if kind == "f" else None
        if isinstance(x, cp.ndarray):
            return x if dtype is None else x.astype(dtype, copy=False)
        return cp.asarray(np.asarray(x), dtype=dtype)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, self.xp.ndarray)

    def to_host(self, x: Array) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return x
        return self.xp.asnumpy(x)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def fits_on_device(self, nbytes: int) -> bool:
        free, _total = self.xp.cuda.runtime.memGetInfo()
        pool = self.xp.get_default_memory_pool()
        return nbytes < 0.5 * (free + pool.free_bytes())

    def astype(self, x: Array, dtype: Any) -> Array:
        return x.astype(dtype, copy=False)

    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        return self.xp.zeros(shape, dtype=dtype or self.dtype)

    def index_array(self, idx: np.ndarray) -> Array:
        return self.xp.asarray(idx)

    def arange(self, n: int, dtype: Any = None) -> Array:
        return self.xp.arange(n, dtype=dtype)

    # --------------------------------------------------------------------------- kernels
    def _kernel(self, name: str) -> Any:
        """Compile (once) and return one of the fused elementwise kernels."""
        k = self._kernels.get(name)
        if k is None:
            in_params, out_params, op, preamble = ELEMENTWISE[name]
            k = self._kernels[name] = self.xp.ElementwiseKernel(
                in_params, out_params, op, f"xpnet_{name}", preamble=preamble
            )
        return k

    def _raw(self, name: str, dtype: Any) -> Any:
        """Compile (once per dtype) and return one of the raw kernels."""
        ctype = "float" if np.dtype(dtype) == np.float32 else "double"
        key = f"{name}:{ctype}"
        k = self._kernels.get(key)
        if k is None:
            src, fn = raw_source(name, ctype)
            k = self._kernels[key] = self.xp.RawKernel(src, fn)
        return k

    def _is_float(self, *arrays: Array) -> bool:
        """All C-contiguous, of one floating dtype (what the raw kernels index)."""
        # A plain loop: this runs a dozen times per training step, where a generator
        # expression's overhead showed up in profiles.
        dt = arrays[0].dtype
        if dt.char not in "fd":
            return False
        for a in arrays:
            if a.dtype != dt or not a.flags.c_contiguous:
                return False
        return True

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        # cupy.matmul costs ~33 us of host time per call at these sizes; calling cublasSgemm
        # directly measured the same (the time is cuBLAS's own), so CuPy's is kept.
        return self.xp.matmul(a, b, out=out)

    def sum_rows(self, a: Array, out: Array | None = None) -> Array:
        # A raw kernel launches several times faster than CuPy's generic reduction.
        if a.ndim != 2 or not self._is_float(a) or (
            out is not None and (out.shape != (a.shape[1],) or not self._is_float(a, out))
        ):
            return self.xp.sum(a, axis=0, out=out)
        n, c = a.shape
        if out is None:
            out = self.xp.empty((c,), dtype=a.dtype)
        if c:
            self._raw("sum_rows", a.dtype)(((c + 31) // 32,), (32, 8), (a, out, np.int32(n),
                                                                      np.int32(c)))
        return out

    def relu_backward(self, dy: Array, y: Array) -> Array:
        return self._kernel("relu_backward")(dy, y)

    def relu(self, x: Array) -> Array:
        return self._kernel("relu")(x)

    def dropout_mask(self, gen: DeviceGenerator, shape: tuple[int, ...], keep: float) -> Array:
        # One kernel hashes a key drawn from the host generator (see xpnet.cuda_kernels):
        # no device random state, no host->device copy of random numbers.
        threshold = keep_threshold(keep)
        scale = self._scalar(1.0 / keep)
        if threshold > 0xFFFF:
            return self.xp.full(shape, scale, dtype=self.dtype)  # keep everything, draw nothing
        if not gen.draws_keys:  # the host rule, from the generator's own 16-bit draws
            kept = gen.bits16(shape) < threshold
            return self.xp.where(kept, scale, self._scalar(0)).astype(self.dtype, copy=False)
        mask = self.xp.empty(shape, dtype=self.dtype)
        self._kernel("dropout_mask")(np.uint64(gen.key()), np.uint32(threshold), scale, mask)
        return mask

    def bias_relu(self, z: Array, b: Array) -> Array:
        """``relu(z + b)`` for ``z`` (N, C) and ``b`` (C,), in one pass (fused training)."""
        if not self._is_float(z, b) or z.ndim != 2 or z.shape[1] != b.shape[0]:
            return super().bias_relu(z, b)
        return self._kernel("bias_relu")(z, b, np.int32(b.shape[0]))

    def bias_relu_dropout(
        self, z: Array, b: Array, gen: DeviceGenerator, keep: float
    ) -> tuple[Array, Array, Array]:
        """``a = relu(z + b)``, the dropout ``mask`` and ``a * mask``, in one pass.

        Bit for bit what Dense (bias), ReLU and Dropout give one after the other on this
        backend from the same generator state (the mask is :meth:`dropout_mask`'s).
        """
        threshold = keep_threshold(keep)
        if threshold > 0xFFFF or not gen.draws_keys or not self._is_float(z, b) or (
            z.ndim != 2 or z.shape[1] != b.shape[0]
        ):
            return super().bias_relu_dropout(z, b, gen, keep)
        a, mask, out = self._kernel("bias_relu_dropout")(
            z, b, np.int32(b.shape[0]), np.uint64(gen.key()), np.uint32(threshold),
            self._scalar(1.0 / keep),
        )
        return a, mask, out

    def dropout_relu_backward(self, dy: Array, mask: Array, a: Array) -> Array:
        """``relu_backward(dy * mask, a)``: Dropout's then ReLU's backward in one pass."""
        return self._kernel("dropout_relu_backward")(dy, mask, a)

    def softmax_xent(self, z: Array, labels: Array) -> tuple[Array, Array, Array] | None:
        """Mean softmax cross-entropy of logits ``z`` (N, C) on integer ``labels`` (N,), its
        gradient ``(softmax(z) - onehot) / N`` and the accuracy, from one launch: ``(loss,
        dz, accuracy)`` (0-d, (N, C), 0-d). None where the kernel does not apply."""
        if z.ndim != 2 or labels.ndim != 1 or not self._is_float(z) or z.shape[0] == 0:
            return None
        n, c = z.shape
        if c == 0 or labels.shape[0] != n or labels.dtype.kind not in "iu":
            return None
        y = self.xp.ascontiguousarray(labels.astype(np.int64, copy=False))
        dz = self.xp.empty_like(z)
        out = self.xp.empty((2,), dtype=z.dtype)
        t = np.dtype(z.dtype).type
        self._raw("softmax_xent", z.dtype)((1,), (256,), (z, y, np.int32(n), np.int32(c),
                                                          t(1.0 / n), dz, out))
        return out[0], dz, out[1]

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
        t = p.dtype.type
        self._kernel("adam")(g, t(lr_t), t(beta1), t(beta2), t(eps_t), p, m, v)

    def adam_step(
        self,
        items: list[tuple[Array, Array, Array, Array]],
        *,
        lr_t: float,
        beta1: float,
        beta2: float,
        eps_t: float,
    ) -> None:
        # One launch for every parameter: a table of device addresses, built once per set of
        # arrays (updates are in place, so the addresses stay the same from step to step).
        kw = {"lr_t": lr_t, "beta1": beta1, "beta2": beta2, "eps_t": eps_t}
        if not self.fused or not items:
            super().adam_step(items, **kw)
            return
        key = []
        for p, g, m, v in items:
            if not self._is_float(p, g, m, v) or not p.shape == g.shape == m.shape == v.shape:
                super().adam_step(items, **kw)
                return
            key.append((p.data.ptr, g.data.ptr, m.data.ptr, v.data.ptr, p.size))
        table_key = tuple(key)
        table = self._adam_tables.get(table_key)
        if table is None:
            ptrs = np.array([k[:4] for k in key], dtype=np.uint64).reshape(-1)
            offsets = np.zeros(len(key) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum([k[4] for k in key])
            if len(self._adam_tables) >= 32:  # models come and go in a long session
                self._adam_tables.clear()
            table = self._adam_tables[table_key] = (
                self.xp.asarray(ptrs), self.xp.asarray(offsets), int(offsets[-1])
            )
        ptrs_d, offsets_d, total = table
        if total == 0:
            return
        t = items[0][0].dtype.type
        blocks = min((total + 255) // 256, 4096)
        self._raw("adam_multi", items[0][0].dtype)(
            (blocks,), (256,),
            (ptrs_d, offsets_d, np.int32(len(key)), t(lr_t), t(beta1), t(beta2), t(eps_t)),
        )


def _kind_of(x: Any) -> str:
    dt = getattr(x, "dtype", None)
    try:
        return np.dtype(str(dt).rsplit(".", 1)[-1]).kind
    except TypeError:
        return "f"


# --------------------------------------------------------------------------- choosing one
BackendLike = "str | Backend | ModuleType"

_CUPY_HINT = (
    "install CuPy for your CUDA version with `pip install xpnet[cuda12]` (CUDA 12) or "
    "`pip install xpnet[cuda13]` (CUDA 13), or use backend='numpy'"
)


def _import_cupy() -> ModuleType:
    """Import CuPy and check that a CUDA device is usable, else a BackendError naming the fix."""
    try:
        cp = importlib.import_module("cupy")
    except ImportError as exc:
        raise BackendError(
            f"backend='cupy' needs CuPy, which is not installed: {_CUPY_HINT}"
        ) from exc
    except Exception as exc:  # a broken CuPy install raises all sorts of things on import
        raise BackendError(f"backend='cupy': importing CuPy failed ({exc}); {_CUPY_HINT}") from exc
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise BackendError(
            f"backend='cupy': CuPy is installed but no CUDA device found ({exc}); check the "
            "NVIDIA driver (`nvidia-smi`) or use backend='numpy'"
        ) from exc
    if count < 1:
        raise BackendError(
            "backend='cupy': CuPy is installed but no CUDA device found; use backend='numpy'"
        )
    return cp


def cuda_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    try:
        _import_cupy()
    except BackendError:
        return False
    return True


_CACHE: dict[tuple[str, str], Backend] = {}


def get_backend(spec: Any = "numpy", dtype: str | None = None, *, verbose: bool = True) -> Backend:
    """Return the backend for ``spec``: ``"numpy"``, ``"cupy"``, ``"auto"``, a module or a Backend.

    ``"auto"`` picks CuPy when a CUDA device is usable and NumPy otherwise, and says which it
    chose on stderr (``verbose=False`` silences it). A module passed in directly (``numpy``,
    ``cupy``, ``array_api_strict``...) is wrapped. ``dtype`` is ``"float32"`` (default) or
    ``"float64"``; for a Backend passed in, a different ``dtype`` gives a copy with that dtype.
    """
    if isinstance(spec, Backend):
        if dtype is None or dtype == spec.dtype_name:
            return spec
        if spec.device is not None and spec.name not in ("numpy", "cupy"):
            # Keep the device (e.g. array_api_strict's "device1"): the module alone loses it.
            dev_key = (f"{spec.name}@{spec.device!r}", str(np.dtype(dtype)))
            if dev_key not in _CACHE:
                _CACHE[dev_key] = type(spec)(spec.xp, dev_key[1], device=spec.device)
            return _CACHE[dev_key]
        return get_backend(spec.xp if spec.name not in ("numpy", "cupy") else spec.name, dtype)
    dt = "float32" if dtype is None else str(np.dtype(dtype)) if _is_dtype_like(dtype) else dtype
    if dt not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if isinstance(spec, ModuleType):
        name = spec.__name__
        if name == "numpy":
            return get_backend("numpy", dt)
        if name == "cupy":
            return get_backend("cupy", dt)
        key = (name, dt)
        if key not in _CACHE:
            _CACHE[key] = Backend(spec, dt)
        return _CACHE[key]
    if not isinstance(spec, str):
        raise TypeError(
            f"backend must be 'numpy', 'cupy', 'auto', an array module or a Backend, got {spec!r}"
        )
    name = spec.lower()
    if name == "auto":
        name = "cupy" if cuda_available() else "numpy"
        if verbose:
            print(f"xpnet: backend='auto' chose {name!r}", file=sys.stderr)
    key = (name, dt)
    if key in _CACHE:
        return _CACHE[key]
    backend: Backend
    if name == "numpy":
        backend = NumpyBackend(dt)
    elif name == "cupy":
        backend = CupyBackend(_import_cupy(), dt)
    else:
        raise ValueError(f"backend must be 'numpy', 'cupy' or 'auto', got {spec!r}")
    _CACHE[key] = backend
    return backend


def _is_dtype_like(d: Any) -> bool:
    try:
        np.dtype(d)
    except TypeError:
        return False
    return True


def default_backend() -> Backend:
    """The backend named by ``XPNET_BACKEND`` (default ``"numpy"``), float32."""
    return get_backend(os.environ.get("XPNET_BACKEND", "numpy"), verbose=False)
