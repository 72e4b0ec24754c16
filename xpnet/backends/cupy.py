"""CuPy on an NVIDIA GPU: the only module in xpnet that imports CuPy, and only when asked to.

:func:`import_cupy` imports it and checks for a usable CUDA device (a :class:`BackendError`
naming the fix otherwise); :class:`CupyBackend` compiles the kernels of
:mod:`xpnet.backends.cuda_kernels` on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from ..fusion import plan_fusions
from . import dlpack
from .base import KEEP_ALL, Array, Backend, BackendError, DeviceGenerator, keep_threshold
from .cuda_kernels import ELEMENTWISE, raw_source

_CUPY_HINT = (
    "install CuPy for your CUDA version with `pip install xpnet[cuda12]` (CUDA 12) or "
    "`pip install xpnet[cuda13]` (CUDA 13), or use backend='numpy'"
)


def import_cupy() -> ModuleType:
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
        import_cupy()
    except BackendError:
        return False
    return True


def nccl_module(backend: Backend) -> ModuleType:
    """CuPy's NCCL bindings (``cupy.cuda.nccl``) for a CuPy ``backend`` (xpnet.distributed).

    A BackendError says why when there are none: not a CuPy backend, or a CuPy without NCCL.
    """
    if backend.name != "cupy":
        raise BackendError(f"NCCL runs on CuPy arrays: it needs a CuPy backend, got {backend!r}")
    try:
        nccl = importlib.import_module("cupy.cuda.nccl")
    except ImportError as exc:
        raise BackendError(f"CuPy's NCCL bindings cannot be imported ({exc})") from exc
    if not getattr(nccl, "available", False):
        raise BackendError(
            "this CuPy was built without NCCL: install the NCCL wheel for your CUDA version "
            "(`pip install nvidia-nccl-cu12`, or -cu13) or use the MPI communicator"
        )
    return nccl



class CupyBackend(Backend):
    """CuPy on an NVIDIA GPU, normally made by :func:`get_backend` (which checks for a GPU).

    The hot operations run as fused kernels (sources in :mod:`xpnet.backends.cuda_kernels`,
    compiled on first use): ReLU and its backward, dropout masks hashed on the device from a
    host-drawn key (no device random state, so checkpoints restore them exactly), a row-sum for bias
    gradients, and, with ``fused=True`` (the default), bias + ReLU + dropout, softmax
    cross-entropy with its gradient and accuracy, and Adam for every parameter in one launch
    each. ``fused=False`` keeps the single-layer kernels only: the plain path the fused one is
    tested against. ``fused`` is read here only: it decides the training :meth:`plan`
    (:mod:`xpnet.fusion`), the one-kernel softmax cross-entropy and the one-launch Adam.
    """

    name = "cupy"

    def __init__(self, cupy: ModuleType, dtype: str = "float32", *, fused: bool = True) -> None:
        super().__init__(cupy, dtype)
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be True or False, got {fused!r}")
        self.fused = fused
        self._kernels: dict[str, Any] = {}
        self._adam_tables: dict[tuple[tuple[int, ...], ...], tuple[Array, Array, int]] = {}

    def _init_dtype(self, dtype: str) -> None:
        super()._init_dtype(dtype)
        self._scalar = np.dtype(dtype).type  # kernel scalars in the backend's dtype, not float64

    def options(self) -> tuple[Hashable, ...]:
        return (self.fused,)

    def plan(self, layers: Sequence[Any]) -> list[Any]:
        """Fused steps (``Dense -> ReLU -> Dropout`` as one kernel after the matmul...) when
        ``fused``; the layers one by one otherwise."""
        return plan_fusions(layers) if self.fused else list(layers)

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        cp = self.xp
        if dtype is None:
            kind = x.dtype.kind if hasattr(x, "dtype") else np.asarray(x).dtype.kind
            dtype = self.dtype if kind == "f" else None
        if isinstance(x, cp.ndarray):
            return x if dtype is None else x.astype(dtype, copy=False)
        return cp.asarray(np.asarray(x), dtype=dtype)

    def from_dlpack(self, x: Any, name: str = "X") -> Array:
        # Host data comes back as a NumPy view, checked on the host and then copied up once
        # like any NumPy input; CUDA memory on this device is used in place (no copy).
        kind, index = dlpack.device_of(x)
        if kind in dlpack.HOST_DEVICES:
            return dlpack.host_from_dlpack(x, name)
        current = int(self.xp.cuda.runtime.getDevice())
        if kind not in dlpack.CUDA_DEVICES or index != current:
            raise TypeError(
                f"{name} is {dlpack.describe(x)}, but the model computes on CUDA device "
                f"{current}: move it there first (PyTorch: X.to('cuda:{current}'))"
            )
        try:
            return self.xp.from_dlpack(x)
        except Exception as exc:  # the producer refuses (requires grad, unsupported dtype...)
            raise TypeError(
                f"{name}: {dlpack.describe(x)} of dtype {getattr(x, 'dtype', '?')} cannot be "
                f"read through DLPack ({exc}); pass a detached tensor of a NumPy dtype"
            ) from None

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

    def full(self, shape: tuple[int, ...], value: float, dtype: Any = None) -> Array:
        dt = dtype or self.dtype
        return self.xp.full(shape, np.dtype(dt).type(value), dtype=dt)

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

    def mask_from_draws(
        self, gen: DeviceGenerator, shape: tuple[int, ...], threshold: int, scale: float
    ) -> Array:
        # One kernel hashes a key drawn from the host generator (see cuda_kernels.HASH16):
        # no device random state, no host->device copy of random numbers. Generators holding
        # draws fixed (draws_keys False) get the host rule instead.
        if not gen.draws_keys:
            return super().mask_from_draws(gen, shape, threshold, scale)
        mask = self.xp.empty(shape, dtype=self.dtype)
        self._kernel("dropout_mask")(
            np.uint64(gen.key()), np.uint32(threshold), self._scalar(scale), mask
        )
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
        if threshold >= KEEP_ALL or not gen.draws_keys or not self._is_float(z, b) or (
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
        if not self.fused or z.ndim != 2 or labels.ndim != 1 or not self._is_float(z):
            return None
        if z.shape[0] == 0:
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
