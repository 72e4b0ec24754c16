"""Sliding windows over NCHW images, written against the array API (no ``as_strided``).

Used by :class:`~xpnet.backends.Backend`'s convolution and pooling operations; ``be`` is the
backend (its ``xp``, ``zeros`` and ``full``). A *window geometry* is ``(kh, kw, sh, sw, ph,
pw)``: kernel, stride and zero padding, each (height, width). Output sizes follow PyTorch's
floor rule, ``Ho = (H + 2 ph - kh) // sh + 1``.

Every function here loops over the ``kh * kw`` positions of the kernel window, never over
pixels: each step is one strided slice of the whole batch.
"""

from __future__ import annotations

from typing import Any

Array = Any
Geometry = tuple[int, int, int, int, int, int]


def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length along one axis: ``(size + 2 pad - kernel) // stride + 1`` (0 if none)."""
    span = size + 2 * pad - kernel
    return span // stride + 1 if span >= 0 else 0


def out_hw(h: int, w: int, geom: Geometry) -> tuple[int, int]:
    """``(Ho, Wo)`` for an ``h`` x ``w`` input."""
    kh, kw, sh, sw, ph, pw = geom
    return out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)


def _slices(geom: Geometry, ho: int, wo: int) -> list[tuple[slice, slice]]:
    """The (rows, cols) slices of the padded input seen by each kernel position, row-major."""
    kh, kw, sh, sw = geom[:4]
    return [
        (slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
        for i in range(kh)
        for j in range(kw)
    ]


def permute(xp: Any, x: Array, axes: tuple[int, ...]) -> Array:
    """``x`` with its axes in the order ``axes`` (``permute_dims``; ``transpose`` on old CuPy)."""
    fn = getattr(xp, "permute_dims", None)  # the standard's name; older CuPy: transpose
    return fn(x, axes) if fn is not None else xp.transpose(x, axes)


def pad(be: Any, x: Array, ph: int, pw: int) -> Array:
    """``x`` (N, C, H, W) with ``ph`` rows and ``pw`` columns of zeros on each side."""
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = be.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def windows(be: Any, x: Array, geom: Geometry) -> Array:
    """(N, C, Ho, Wo, kh * kw): every window of ``x``, its elements in row-major order."""
    ho, wo = out_hw(x.shape[2], x.shape[3], geom)
    xpad = pad(be, x, geom[4], geom[5])
    return be.xp.stack([xpad[:, :, r, c] for r, c in _slices(geom, ho, wo)], axis=-1)


def windows_backward(be: Any, dwin: Array, x_shape: tuple[int, ...], geom: Geometry) -> Array:
    """The transpose of :func:`windows`: each window's gradient (N, C, Ho, Wo, kh * kw) added
    back into an (N, C, H, W) gradient (overlapping windows sum), padding dropped."""
    ph, pw = geom[4], geom[5]
    n, c, h, w = x_shape
    dx = be.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dwin.dtype)
    for k, (rows, cols) in enumerate(_slices(geom, dwin.shape[2], dwin.shape[3])):
        dx[:, :, rows, cols] = dx[:, :, rows, cols] + dwin[..., k]
    return dx[:, :, ph : ph + h, pw : pw + w] if ph or pw else dx


def im2col(be: Any, x: Array, geom: Geometry) -> Array:
    """(N * Ho * Wo, C * kh * kw): one row per output pixel, columns in ``W``'s
    ``(C, kh, kw)`` order, so that a convolution is ``cols @ W.reshape(O, -1).T``."""
    win = windows(be, x, geom)  # (N, C, Ho, Wo, K)
    n, c, ho, wo, k = win.shape
    return be.xp.reshape(permute(be.xp, win, (0, 2, 3, 1, 4)), (n * ho * wo, c * k))


def col2im(be: Any, cols: Array, x_shape: tuple[int, ...], geom: Geometry) -> Array:
    """The transpose of :func:`im2col`: (N * Ho * Wo, C * kh * kw) rows back to (N, C, H, W)."""
    n, c = x_shape[0], x_shape[1]
    ho, wo = out_hw(x_shape[2], x_shape[3], geom)
    win = be.xp.reshape(cols, (n, ho, wo, c, geom[0] * geom[1]))
    return windows_backward(be, permute(be.xp, win, (0, 3, 1, 2, 4)), x_shape, geom)


def max_pool(be: Any, x: Array, geom: Geometry) -> tuple[Array, list[Array]]:
    """``(y, route)``: each window's maximum, and for each kernel position ``k = i kw + j`` a
    boolean array (N, C, Ho, Wo) telling where that position holds its window's FIRST maximum
    in row-major order (exactly one True per window, unless the window holds a NaN)."""
    xp = be.xp
    ho, wo = out_hw(x.shape[2], x.shape[3], geom)
    parts = [x[:, :, rows, cols] for rows, cols in _slices(geom, ho, wo)]
    y = parts[0]
    for s in parts[1:]:
        y = xp.maximum(y, s)
    route = []
    free = None  # windows whose maximum no earlier position took
    for s in parts:
        hit = s == y
        taken = hit if free is None else xp.logical_and(hit, free)
        free = xp.logical_not(taken) if free is None else xp.logical_and(free, xp.logical_not(hit))
        route.append(taken)
    return y, route


def max_pool_backward(
    be: Any, dy: Array, route: list[Array], x_shape: tuple[int, ...], geom: Geometry
) -> Array:
    """``dx``: each window's ``dy`` routed to the element ``route`` chose (overlaps sum)."""
    xp = be.xp
    dx = be.zeros(tuple(x_shape), dtype=dy.dtype)
    zero = xp.zeros_like(dy)
    for taken, (rows, cols) in zip(route, _slices(geom, dy.shape[2], dy.shape[3]), strict=True):
        dx[:, :, rows, cols] = dx[:, :, rows, cols] + xp.where(taken, dy, zero)
    return dx


def avg_pool(be: Any, x: Array, geom: Geometry) -> Array:
    """Each window's mean (``sum * (1 / (kh kw))``, a Python float: float32 stays float32)."""
    ho, wo = out_hw(x.shape[2], x.shape[3], geom)
    parts = _slices(geom, ho, wo)
    y = x[:, :, parts[0][0], parts[0][1]]
    for rows, cols in parts[1:]:
        y = y + x[:, :, rows, cols]
    return y * (1.0 / len(parts))


def avg_pool_backward(be: Any, dy: Array, x_shape: tuple[int, ...], geom: Geometry) -> Array:
    """``dx``: each window's ``dy / (kh kw)`` spread over its elements (overlaps sum)."""
    parts = _slices(geom, dy.shape[2], dy.shape[3])
    share = dy * (1.0 / len(parts))
    dx = be.zeros(tuple(x_shape), dtype=dy.dtype)
    for rows, cols in parts:
        dx[:, :, rows, cols] = dx[:, :, rows, cols] + share
    return dx


class WindowOps:
    """The convolution and pooling operations of :class:`~xpnet.backends.Backend` (which
    inherits them): the generic functions above; a backend overrides the hot ones (NumPy)."""

    #: column order of :meth:`im2col`: ``"chw"`` (C, kh, kw), W's own; ``"hwc"`` (kh, kw, C)
    im2col_order: str = "chw"

    def im2col(self, x: Array, geom: Geometry) -> Array:
        """(N Ho Wo, C kh kw) patches of ``x`` (N, C, H, W), columns in :attr:`im2col_order`;
        ``geom`` = (kh, kw, sh, sw, ph, pw)."""
        return im2col(self, x, geom)

    def col2im(self, cols: Array, x_shape: tuple[int, ...], geom: Geometry) -> Array:
        """The transpose of :meth:`im2col`: patch gradients summed back into (N, C, H, W)."""
        return col2im(self, cols, x_shape, geom)

    def conv_input_grad(
        self, dy2: Array, w2: Array, x_shape: tuple[int, ...], geom: Geometry
    ) -> Array:
        """A convolution's ``dx``: ``col2im(dy2 @ w2)`` for ``dy2`` (N Ho Wo, O) and ``w2``
        (O, C kh kw) in :attr:`im2col_order` (NumPy: one product per kernel position)."""
        return self.col2im(dy2 @ w2, x_shape, geom)

    def conv_bias_grad(self, dy2: Array, out: Array) -> Array:
        """A convolution's ``db``: the column sums of ``dy2`` (N Ho Wo, O), into ``out``."""
        return self.sum_rows(dy2, out=out)  # type: ignore[attr-defined,no-any-return]

    def max_pool(self, x: Array, geom: Geometry) -> tuple[Array, list[Array]]:
        """``(y, route)``: window maxima, and per kernel position a boolean array marking the
        windows whose FIRST maximum (row-major) it holds (see max_pool)."""
        return max_pool(self, x, geom)

    def max_pool_backward(
        self, dy: Array, route: list[Array], x_shape: tuple[int, ...], geom: Geometry
    ) -> Array:
        return max_pool_backward(self, dy, route, x_shape, geom)

    def avg_pool(self, x: Array, geom: Geometry) -> Array:
        return avg_pool(self, x, geom)

    def avg_pool_backward(self, dy: Array, x_shape: tuple[int, ...], geom: Geometry) -> Array:
        return avg_pool_backward(self, dy, x_shape, geom)
