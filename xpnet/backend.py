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

Array = Any  # an array of the backend's module (numpy.ndarray, cupy.ndarray, ...)

_FLOAT_DTYPES = ("float32", "float64")


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used on this machine."""


class DeviceGenerator:
    """A seeded random generator that draws arrays on the backend's device.

    The NumPy and generic backends use a host ``numpy.random.Generator`` (PCG64), whose state
    is a plain dict and can be saved and restored exactly; CuPy uses ``cupy.random`` on the GPU.
    """

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
    """CuPy on an NVIDIA GPU. Created only through :func:`get_backend`, which checks for a GPU."""

    name = "cupy"

    def __init__(self, cupy: ModuleType, dtype: str = "float32") -> None:
        super().__init__(cupy, dtype)
        self._kernels: dict[str, Any] = {}

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

    def generator(self, seed: int | np.random.SeedSequence | None = None) -> DeviceGenerator:
        return _CupyGenerator(self, seed)

    def _kernel(self, name: str) -> Any:
        """Compile (once) and return one of the fused elementwise kernels."""
        k = self._kernels.get(name)
        if k is None:
            k = self._kernels[name] = _make_cupy_kernel(self.xp, name)
        return k

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return self.xp.matmul(a, b, out=out)

    def sum_rows(self, a: Array, out: Array | None = None) -> Array:
        return self.xp.sum(a, axis=0, out=out)

    def relu_backward(self, dy: Array, y: Array) -> Array:
        return self._kernel("relu_backward")(dy, y)

    def relu(self, x: Array) -> Array:
        return self._kernel("relu")(x)

    def dropout_mask(self, gen: DeviceGenerator, shape: tuple[int, ...], keep: float) -> Array:
        # One fused kernel turns the device uniforms into the mask in place. CuPy draws from
        # its own stream, so masks differ from the host backends' (see _CupyGenerator); the
        # keep probability is the exact ``keep`` here.
        keep_threshold(keep)  # validates keep
        u = gen.random(shape)
        t = u.dtype.type
        return self._kernel("dropout_mask")(u, t(keep), t(1.0 / keep), u)

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


class _CupyGenerator(DeviceGenerator):
    """Random draws made on the GPU by ``cupy.random`` (state not exportable)."""

    def __init__(self, backend: Backend, seed: int | np.random.SeedSequence | None) -> None:
        super().__init__(backend, seed)
        if isinstance(seed, np.random.SeedSequence):
            seed = int(seed.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        self._dev = backend.xp.random.default_rng(seed)

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        return self._dev.random(shape, dtype=np.dtype(dtype or self.backend.dtype_name))

    def bits16(self, shape: tuple[int, ...]) -> Array:
        # float32 uniforms in [0, 1) times 65536 floor to 0..65535 (float32 has 24 bits).
        u = self._dev.random(shape, dtype=np.float32)
        return (u * 65536.0).astype(np.uint16)

    def get_state(self) -> dict[str, Any]:
        raise BackendError("the state of CuPy's random generator cannot be saved")

    def set_state(self, state: dict[str, Any]) -> None:
        raise BackendError("the state of CuPy's random generator cannot be restored")


def _make_cupy_kernel(cp: ModuleType, name: str) -> Any:
    """Fused CuPy elementwise kernels: one launch and no temporaries per hot operation."""
    # Each kernel mirrors the generic Backend rule of the same name (tests compare them).
    if name == "relu":
        # max(x, 0) with NaN propagated, as xp.maximum does.
        return cp.ElementwiseKernel("T x", "T y", "y = (x > (T)0 || x != x) ? x : (T)0",
                                    "xpnet_relu")
    if name == "relu_backward":
        # dy * (y > 0): NaN in dy propagates, as the generic multiply does.
        return cp.ElementwiseKernel(
            "T dy, T y", "T dx", "dx = dy * (y > (T)0 ? (T)1 : (T)0)", "xpnet_relu_bw"
        )
    if name == "dropout_mask":
        return cp.ElementwiseKernel(
            "T u, T keep, T scale", "T mask", "mask = u < keep ? scale : (T)0",
            "xpnet_dropout_mask"
        )
    if name == "adam":
        return cp.ElementwiseKernel(
            "T g, T lr_t, T beta1, T beta2, T eps_t",
            "T p, T m, T v",
            """
            m = beta1 * m + ((T)1 - beta1) * g;
            v = beta2 * v + ((T)1 - beta2) * g * g;
            p -= lr_t * m / (sqrt(v) + eps_t);
            """,
            "xpnet_adam",
        )
    raise KeyError(name)


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
