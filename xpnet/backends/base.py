"""The generic backend: an array-API module plus a default dtype, and the operations layers use.

A :class:`Backend` owns

* ``xp``: the array module (``numpy``, ``cupy``, ``array_api_strict``, ...);
* ``dtype``: the default floating dtype (float32; float64 on request);
* moving arrays to and from the host (:meth:`Backend.asarray`, :meth:`Backend.to_host`);
* seeded random generators whose state lives on the host (:class:`DeviceGenerator`);
* the operations layers, losses and optimizers call (matmul, ReLU, dropout masks, Adam...),
  written once here against the array API standard. :mod:`xpnet.backends.numpy` and
  :mod:`xpnet.backends.cupy` override the hot ones, the way Thinc's ``CupyOps`` overrides
  ``Ops``;
* :meth:`Backend.plan`: how a model's layers run in training (here: one by one; a backend with
  fused kernels returns fused steps, see :mod:`xpnet.fusion`).

Initial weights are *not* drawn here: layers draw them from a seeded host NumPy generator and
move them with :meth:`Backend.asarray`, so one seed gives the same model on every backend.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from . import dlpack
from .conv_ops import WindowOps

Array = Any  # an array of the backend's module (numpy.ndarray, cupy.ndarray, ...)

FLOAT_DTYPES = ("float32", "float64")
#: ``keep_threshold`` at or above this keeps every element (no draw needed)
KEEP_ALL = 0x10000


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used on this machine."""


def keep_threshold(keep: float) -> int:
    """``round(keep * 65536)``: the dropout rule keeps an element whose 16-bit draw is below it.

    Every backend decides masks with it (host draws or the GPU hash alike); ``KEEP_ALL`` or
    more means keep everything.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    return round(keep * 65536)


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
        than float uniforms; dropout masks compare them with :func:`keep_threshold`.
        """
        n = math.prod(shape)
        raw = self._host.bit_generator.random_raw((n + 3) // 4)
        return self.backend.asarray(raw.view(np.uint16)[:n].reshape(shape))

    def key(self) -> int:
        """One uniform 64-bit integer: the seed of a counter-based hash drawn on the device."""
        return int(self._host.bit_generator.random_raw())

    def spawn_entropy(self) -> list[int]:
        """Four 64-bit words from the stream, to seed an independent one."""
        return [int(v) for v in self._host.bit_generator.random_raw(4)]

    def get_state(self) -> dict[str, Any]:
        """The generator's state as JSON-serializable data."""
        return dict(self._host.bit_generator.state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`get_state`."""
        self._host.bit_generator.state = state


class Backend(WindowOps):
    """An array module plus a default dtype, written against the Python array API standard.

    This generic class works for any module that follows the standard (``array_api_strict``
    included, which refuses silent conversions to NumPy and mixing devices, so it catches the
    mistakes CuPy would). :class:`~xpnet.backends.numpy.NumpyBackend` and
    :class:`~xpnet.backends.cupy.CupyBackend` override the hot paths. Convolution and
    pooling operations come from :class:`~xpnet.backends.conv_ops.WindowOps`.
    """

    name: str = "array-api"

    def __init__(self, xp: ModuleType, dtype: str = "float32", device: Any = None) -> None:
        self.xp = xp
        self.device = device
        self._init_dtype(dtype)
        self._array_type = type(xp.asarray(0.0, device=device)) if device is not None else None
        if self.name == "array-api":
            self.name = getattr(xp, "__name__", "array-api")

    def _init_dtype(self, dtype: str) -> None:
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        self.dtype_name = dtype
        self.dtype = getattr(self.xp, dtype)

    def with_dtype(self, dtype: str) -> Backend:
        """This backend (same module, device and options) with another default dtype."""
        new = copy.copy(self)
        new._init_dtype(dtype)
        return new

    def options(self) -> tuple[Hashable, ...]:
        """The constructor options that make two backends of one class and dtype differ."""
        return ()

    def cache_key(self) -> Hashable:
        """What tells this backend apart from others: class, module, device, dtype, options."""
        return (type(self).__qualname__, id(type(self)), self.name, repr(self.device),
                self.dtype_name, *self.options())

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
            kind = host.dtype.kind if host is not None else dtype_kind(x)
            dtype = self.dtype if kind == "f" else None
        if self.is_array(x):
            return x if dtype is None or x.dtype == dtype else xp.astype(x, dtype)
        return xp.asarray(np.ascontiguousarray(x), dtype=dtype, device=self.device)

    def from_dlpack(self, x: Any, name: str = "X") -> Array:
        """``x`` (anything with ``__dlpack__``: a PyTorch tensor, a JAX array...) without a copy.

        Returns a host NumPy view when ``x`` is in host memory (the caller checks and moves it
        like any host array), else an array of this module sharing ``x``'s device memory.
        Raises TypeError naming ``name`` when this backend cannot read it there.
        """
        if dlpack.on_host(x):
            return dlpack.host_from_dlpack(x, name)
        try:
            return self.xp.from_dlpack(x)
        except Exception as exc:  # each producer/consumer pair raises its own kind
            raise TypeError(
                f"{name} is {dlpack.describe(x)}, which the {self.name} backend cannot read "
                f"({exc}); move it to the CPU first"
            ) from None

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

    def full(self, shape: tuple[int, ...], value: float, dtype: Any = None) -> Array:
        """An array of ``shape`` filled with ``value`` (default dtype: the backend's)."""
        return self.xp.full(shape, value, dtype=dtype or self.dtype, device=self.device)

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

    # ------------------------------------------------------------------ training plans
    def plan(self, layers: Sequence[Any]) -> list[Any]:
        """How ``layers`` run in a training step: here each on its own (the layers themselves).

        A backend with fused kernels returns steps that run several layers at once (see
        :func:`xpnet.fusion.plan_fusions`); every step has a layer's ``forward``, ``backward``
        and ``backward_params``.
        """
        return list(layers)

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

    def column_sums(self, a: Array) -> Array:
        """The column sums of a tall matrix ``a`` (M, C) (per-channel statistics): ``sum_rows``
        here; NumPy sums with BLAS."""
        return self.sum_rows(a)

    def channel_op(self, op: str, a: Array, row: Array, out: Array | None = None) -> Array:
        """``a op row`` for ``a`` (M, C) and a per-channel ``row`` (C,) broadcast over the rows,
        ``op`` one of ``"add"``, ``"subtract"``, ``"multiply"``; into ``out`` when given."""
        res = getattr(self.xp, op)(a, row)
        if out is None:
            return res
        out[...] = res
        return out

    def column_dots(self, a: Array, b: Array) -> Array:
        """``column_sums(a * b)`` for two (M, C) matrices (NumPy: one pass, no temporary)."""
        return self.column_sums(a * b)

    def relu(self, x: Array) -> Array:
        """``max(x, 0)`` elementwise."""
        return self.xp.maximum(x, self.xp.zeros_like(x))

    def relu_backward(self, dy: Array, y: Array) -> Array:
        """``dy * (y > 0)``: the subgradient 0 is taken at ``x == 0`` (NaN in ``dy`` stays NaN)."""
        return dy * self.xp.astype(y > 0, dy.dtype)

    def dropout_mask(self, gen: DeviceGenerator, shape: tuple[int, ...], keep: float) -> Array:
        """Inverted-dropout mask: ``1/keep`` with probability ``keep``, else 0, in the dtype.

        Element ``i`` is kept when its 16-bit draw is below :func:`keep_threshold` ``(keep)``, so
        the keep probability is ``keep`` to within 2**-17. Keeping everything draws nothing.
        """
        threshold = keep_threshold(keep)
        if threshold >= KEEP_ALL:
            return self.full(shape, 1.0 / keep)
        return self.mask_from_draws(gen, shape, threshold, 1.0 / keep)

    def mask_from_draws(
        self, gen: DeviceGenerator, shape: tuple[int, ...], threshold: int, scale: float
    ) -> Array:
        """``scale`` where ``gen.bits16(shape) < threshold``, else 0: the host rule, so every
        host backend draws the same masks from the same generator state."""
        kept = gen.bits16(shape) < threshold
        return self.xp.where(kept, self.full(shape, scale), self.zeros(shape))

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


def dtype_kind(x: Any) -> str:
    """NumPy's kind letter (``"f"``, ``"i"``...) of an array of any module; ``"f"`` if unknown."""
    dt = getattr(x, "dtype", None)
    try:
        return np.dtype(str(dt).rsplit(".", 1)[-1]).kind
    except TypeError:
        return "f"
