"""NumPy on the CPU: in-place ``out=`` kernels that keep temporaries and float64 away."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import dlpack
from .base import Array, Backend, DeviceGenerator
from .conv_ops import Geometry, _slices, out_hw

#: the fusion rules NumPy plans (rules that only save passes, with no kernels of their own)
HOST_FUSIONS = ("relu_maxpool",)


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

    def plan(self, layers: Sequence[Any]) -> list[Any]:
        """The layers one by one, but ``ReLU -> MaxPool2D`` as one step (its backward applies
        ReLU's mask to the pooled gradient, a quarter of the values; see
        :mod:`xpnet.layers.fusions`): no kernels of its own, only fewer passes."""
        from ..fusion import plan_fusions  # the fusion module imports the backends

        return plan_fusions(layers, names=HOST_FUSIONS)

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
        if x.ndim == 0 or x.dtype.kind != "f" or not x.flags.c_contiguous:
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

    # ------------------------------------------------------- convolution and pooling
    # Images stay NCHW to the layers but NHWC in memory (channels innermost): conv outputs are
    # NCHW views of an (N Ho Wo, O) matmul result, and every array made here follows the
    # layout of what it came from, so the transposes below are views, not copies.
    im2col_order = "hwc"

    def im2col(self, x: Array, geom: Geometry) -> Array:
        kh, kw, sh, sw, ph, pw = geom
        n, c, h, w = x.shape
        ho, wo = out_hw(h, w, geom)
        xh = self._nhwc(x, ph, pw)
        if c == 1:
            # one channel (a first layer): build the (K, N Ho Wo) transpose, row by contiguous
            # row, and hand out its (N Ho Wo, K) view; BLAS takes either layout without a copy
            cols_t = np.empty((kh * kw, n, ho, wo), dtype=x.dtype)
            for k, (rows, cs) in enumerate(_slices(geom, ho, wo)):
                cols_t[k] = xh[:, rows, cs, 0]
            return cols_t.reshape(kh * kw, n * ho * wo).T
        cols = np.empty((n, ho, wo, kh, kw * c), dtype=x.dtype)
        if kw * c >= 8:
            # one copy per kernel row: a window's row (kw, C) is contiguous in NHWC memory
            s0, s1, s2, s3 = xh.strides
            for i in range(kh):
                cols[:, :, :, i, :] = as_strided(
                    xh[:, i:], shape=(n, ho, wo, kw * c), strides=(s0, s1 * sh, s2 * sw, s3),
                    writeable=False)
        else:  # few channels (a first layer): one strided slice per kernel position
            cols6 = cols.reshape(n, ho, wo, kh, kw, c)
            for k, (rows, cs) in enumerate(_slices(geom, ho, wo)):
                cols6[:, :, :, k // kw, k % kw, :] = xh[:, rows, cs, :]
        return cols.reshape(n * ho * wo, kh * kw * c)

    @staticmethod
    def _nhwc(x: Array, ph: int, pw: int) -> Array:
        """``x`` (N, C, H, W) as a C-contiguous NHWC array, zero-padded (a view when ``x`` is
        NHWC in memory already and there is no padding)."""
        n, c, h, w = x.shape
        if not (ph or pw):
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        padded = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
        padded[:, ph : ph + h, pw : pw + w, :] = x.transpose(0, 2, 3, 1)
        return padded

    def col2im(self, cols: Array, x_shape: tuple[int, ...], geom: Geometry) -> Array:
        kh, kw, sh, sw, ph, pw = geom
        n, c, h, w = x_shape
        ho, wo = out_hw(h, w, geom)
        win = cols.reshape(n, ho, wo, kh, kw, c)
        dx = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
        for k, (rows, cs) in enumerate(_slices(geom, ho, wo)):
            dx[:, rows, cs, :] += win[:, :, :, k // kw, k % kw, :]
        return dx[:, ph : ph + h, pw : pw + w, :].transpose(0, 3, 1, 2)

    def conv_input_grad(
        self, dy2: Array, w2: Array, x_shape: tuple[int, ...], geom: Geometry
    ) -> Array:
        # col2im(dy2 @ w2) one kernel position at a time, straight into the unpadded (N, H, W,
        # C) gradient: each (N Ho Wo, C) product is added to the part of the image its
        # position sees (padding clipped away, not cropped afterwards); with "same" padding
        # and stride 1 the centre position sees the whole image, so its product IS dx (written
        # by the matmul itself) and the zero fill and one pass are saved.
        kh, kw, sh, sw, ph, pw = geom
        n, c, h, w = x_shape
        ho, wo = out_hw(h, w, geom)
        whole = (sh, sw, ho, wo) == (1, 1, h, w) and ph < kh and pw < kw
        dx = (np.empty if whole else np.zeros)((n, h, w, c), dtype=dy2.dtype)
        if whole:  # the centre position (ph, pw): output pixel (r, s) sees input (r, s)
            k = ph * kw + pw
            np.matmul(dy2, w2[:, k * c : (k + 1) * c], out=dx.reshape(n * h * w, c))
        buf = np.empty((n * ho * wo, c), dtype=dy2.dtype)
        for i in range(kh):
            for j in range(kw):
                oi, oj = i - ph, j - pw  # input row/column of output pixel (0, 0)
                rows, cols = _clip(oi, sh, h, ho), _clip(oj, sw, w, wo)
                if (whole and (oi, oj) == (0, 0)) or rows is None or cols is None:
                    continue
                k = i * kw + j
                np.matmul(dy2, w2[:, k * c : (k + 1) * c], out=buf)
                dx[:, rows[1], cols[1], :] += buf.reshape(n, ho, wo, c)[:, rows[0], cols[0], :]
        return dx.transpose(0, 3, 1, 2)

    def conv_bias_grad(self, dy2: Array, out: Array) -> Array:
        # ones @ dy2: BLAS sums a tall, narrow matrix's columns many times faster than np.sum
        ones = self._ones(dy2.shape[0], dy2.dtype)
        return np.matmul(ones, dy2, out=out)

    def column_sums(self, a: Array) -> Array:
        # ones @ a, as conv_bias_grad: many times faster than np.sum(axis=0) on (M, C)
        return np.matmul(self._ones(a.shape[0], a.dtype), a)

    def channel_op(self, op: str, a: Array, row: Array, out: Array | None = None) -> Array:
        # A narrow row broadcast over many rows runs NumPy's inner loop C values at a time:
        # fold k rows into one (M / k, k C) and tile the row k times (up to 2x faster at C=16)
        fn = _CHANNEL_OPS[op]
        m, c = a.shape
        k = 1
        while k * c < 512 and m % (2 * k) == 0:
            k *= 2
        if k == 1 or not a.flags.c_contiguous or (out is not None and not out.flags.c_contiguous):
            return fn(a, row, out=out)
        wide = None if out is None else out.reshape(m // k, k * c)
        return fn(a.reshape(m // k, k * c), np.tile(row, k), out=wide).reshape(m, c)

    def column_dots(self, a: Array, b: Array) -> Array:
        return np.einsum("ij,ij->j", a, b)

    def _ones(self, n: int, dtype: np.dtype) -> np.ndarray:
        """A read-only (n,) vector of ones, cached per thread."""
        cache: dict[tuple[int, str], np.ndarray] | None = getattr(self._scratch, "ones", None)
        if cache is None:
            cache = self._scratch.ones = {}
        key = (n, np.dtype(dtype).str)
        if key not in cache:
            cache.clear()  # batch sizes change rarely: keep one or two
            cache[key] = np.ones(n, dtype=dtype)
            cache[key].flags.writeable = False
        return cache[key]

    def max_pool(self, x: Array, geom: Geometry) -> tuple[Array, list[Array]]:
        kh, kw, sh, sw = geom[:4]
        ho, wo = out_hw(x.shape[2], x.shape[3], geom)
        parts = [x[:, :, r, c] for r, c in _slices(geom, ho, wo)]
        # The maximum over kernel rows first, on whole image rows (long contiguous runs in
        # NHWC memory), then over kernel columns on what is left.
        y_rows = _maximum([x[:, :, i : i + sh * (ho - 1) + 1 : sh, :] for i in range(kh)])
        y = _maximum([y_rows[:, :, :, j : j + sw * (wo - 1) + 1 : sw] for j in range(kw)])
        route = [np.equal(parts[0], y)]
        free = np.logical_not(route[0])  # windows whose maximum no earlier position took
        for s in parts[1:]:
            taken = np.equal(s, y)
            taken &= free
            free ^= taken
            route.append(taken)
        return y, route

    def max_pool_backward(
        self, dy: Array, route: list[Array], x_shape: tuple[int, ...], geom: Geometry
    ) -> Array:
        dx = self._image_zeros(x_shape, dy.dtype)
        dy = _nhwc_like(dy, route[0])  # mixed memory layouts would make every pass strided
        overlap = geom[2] < geom[0] or geom[3] < geom[1]
        for taken, (rows, cols) in zip(route, _slices(geom, dy.shape[2], dy.shape[3]),
                                       strict=True):
            if overlap:
                dx[:, :, rows, cols] += np.multiply(dy, taken, dtype=dy.dtype)
            else:
                np.multiply(dy, taken, out=dx[:, :, rows, cols], dtype=dy.dtype)
        return dx

    def avg_pool(self, x: Array, geom: Geometry) -> Array:
        parts = _slices(geom, *out_hw(x.shape[2], x.shape[3], geom))
        y = x[:, :, parts[0][0], parts[0][1]].copy(order="K")
        for rows, cols in parts[1:]:
            y += x[:, :, rows, cols]
        y *= 1.0 / len(parts)
        return y

    def avg_pool_backward(self, dy: Array, x_shape: tuple[int, ...], geom: Geometry) -> Array:
        parts = _slices(geom, dy.shape[2], dy.shape[3])
        share = np.multiply(dy, 1.0 / len(parts), dtype=dy.dtype)
        dx = self._image_zeros(x_shape, dy.dtype)
        overlap = geom[2] < geom[0] or geom[3] < geom[1]
        for rows, cols in parts:
            if overlap:
                dx[:, :, rows, cols] += share
            else:
                dx[:, :, rows, cols] = share
        return dx

    @staticmethod
    def _image_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Zeros of NCHW ``shape`` laid out NHWC in memory, like the images here."""
        n, c, h, w = shape
        return np.zeros((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)


_CHANNEL_OPS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply}


def _nhwc_like(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``a`` (N, C, H, W), copied to NHWC memory if ``ref`` is laid out so and ``a`` is not."""
    nhwc = (0, 2, 3, 1)
    if ref.transpose(nhwc).flags.c_contiguous and not a.transpose(nhwc).flags.c_contiguous:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return a


def _clip(offset: int, stride: int, size: int, n_out: int) -> tuple[slice, slice] | None:
    """Along one axis, the output pixels ``r`` whose input ``r stride + offset`` lies inside
    ``0 .. size - 1``: ``(output slice, input slice)``, None when there are none."""
    first = max(0, -(offset // stride))  # ceil(-offset / stride) for negative offsets
    last = min(n_out - 1, (size - 1 - offset) // stride)
    if last < first:
        return None
    start = first * stride + offset
    return slice(first, last + 1), slice(start, last * stride + offset + 1, stride)


def _maximum(parts: list[np.ndarray]) -> np.ndarray:
    """The elementwise maximum of ``parts`` as a new array (laid out like the first part)."""
    y = np.maximum(parts[0], parts[1]) if len(parts) > 1 else parts[0].copy(order="K")
    for s in parts[2:]:
        np.maximum(y, s, out=y)
    return y
