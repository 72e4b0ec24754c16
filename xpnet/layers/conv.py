"""2-D convolution over NCHW images (batch, channels, height, width), as im2col plus one matmul."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import flag, one_of, positive_int
from ..backends import Array, get_backend
from ..backends.conv_ops import Geometry, out_hw, permute
from ._spatial import check_image, output_hw, pair
from .base import Layer, Shape
from .dense import _ALIASES, INITS, as_generator, initial_weights


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in PyTorch): ``x`` (N, C, H, W) -> ``y`` (N, O,
    Ho, Wo) with ``Ho = (H + 2 ph - kh) // sh + 1`` (likewise ``Wo``).

    Parameters: ``W`` (out_channels, in_channels, kh, kw) and ``b`` (out_channels,), the
    PyTorch/ONNX layout. ``kernel_size``, ``stride`` and ``padding`` (zeros) are an int or a
    pair ``(height, width)``.

    Forward: the input's windows as rows of a matrix (``Backend.im2col``, (N Ho Wo, C kh kw))
    times ``W`` reshaped to (O, C kh kw), in ONE matmul. Backward: ``dW = dy^T cols``,
    ``db = sum dy``, and ``dx = col2im(dy W)`` (each window's gradient added back, a loop over
    the kh kw kernel positions, no scatter-add). Initial weights are drawn on the host from
    ``rng`` with ``fan_in = in_channels kh kw`` (He: ``N(0, 2 / fan_in)``; Glorot uses
    ``fan_out = out_channels kh kw``), so one seed gives one model on every backend.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        *,
        bias: bool = True,
        init: str = "he_normal",
        rng: int | np.random.Generator | None = None,
        backend: Any = "numpy",
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = pair("stride", stride)
        self.padding = pair("padding", padding, minimum=0)
        self.bias = flag("bias", bias)
        if not isinstance(init, str):
            raise TypeError(f"init must be one of {INITS}, got {init!r}")
        self.init = one_of("init", _ALIASES.get(init, init), INITS)
        self.backend = get_backend(backend, dtype)
        self.cols: Array | None = None
        self.x_shape: tuple[int, ...] = ()
        self.reset_parameters(as_generator(rng))

    @property
    def geometry(self) -> Geometry:
        """``(kh, kw, sh, sw, ph, pw)``, as the backend's window operations take it."""
        return (*self.kernel_size, *self.stride, *self.padding)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels, *self.kernel_size)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        be = self.backend
        o, c, kh, kw = shape = self.weight_shape
        fan_in = c * kh * kw
        if self.init == "glorot_uniform":
            a = math.sqrt(6.0 / (fan_in + o * kh * kw))
            w = rng.uniform(-a, a, size=shape)
        else:  # drawn as Dense's (fan_in, O) matrix, then laid out as (O, C, kh, kw)
            w = initial_weights(self.init, fan_in, o, rng).T.reshape(shape)
        self.params["W"] = be.asarray(np.ascontiguousarray(w), dtype=be.dtype)
        self.grads["W"] = be.zeros(shape)
        if self.bias:
            self.params["b"] = be.zeros((o,))
            self.grads["b"] = be.zeros((o,))

    def _w2(self) -> Array:
        """``W`` as the (O, C kh kw) matrix the matmuls use, its columns in the order of the
        backend's im2col (``"hwc"``: W permuted to (O, kh, kw, C), a small copy)."""
        w = self.params["W"]
        if self.backend.im2col_order == "hwc":
            w = permute(self.xp, w, (0, 2, 3, 1))
        return self.xp.reshape(w, (self.out_channels, -1))

    def forward(self, x: Array, training: bool = False) -> Array:
        check_image(self, self.backend, x, self.in_channels, self.geometry)
        n, _, h, w = (int(d) for d in x.shape)
        ho, wo = out_hw(h, w, self.geometry)
        self.x_shape = (n, self.in_channels, h, w)
        self.cols = self.backend.im2col(x, self.geometry)
        y = self.cols @ self._w2().T  # (N Ho Wo, O)
        if self.bias:
            self.backend.channel_op("add", y, self.params["b"], out=y)
        return permute(self.xp, self.xp.reshape(y, (n, ho, wo, self.out_channels)), (0, 3, 1, 2))

    def _dy_rows(self, dy: Array) -> Array:
        """``dy`` (N, O, Ho, Wo) as (N Ho Wo, O), the rows of the forward matmul."""
        if self.cols is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        return self.xp.reshape(permute(self.xp, dy, (0, 2, 3, 1)), (-1, self.out_channels))

    def backward(self, dy: Array) -> Array:
        dy2 = self._dy_rows(dy)
        self._param_grads(dy2)
        return self.backend.conv_input_grad(dy2, self._w2(), self.x_shape, self.geometry)

    def backward_params(self, dy: Array) -> None:
        """Fill ``grads`` only (no col2im), for a first layer."""
        self._param_grads(self._dy_rows(dy))

    def _param_grads(self, dy2: Array) -> None:
        xp = self.xp
        # Written in place: optimizers and tools may hold references to the grad arrays.
        dw = dy2.T @ self.cols  # (O, C kh kw) in the im2col column order
        if self.backend.im2col_order == "hwc":
            o, c, kh, kw = self.weight_shape
            dw = permute(xp, xp.reshape(dw, (o, kh, kw, c)), (0, 3, 1, 2))
        self.grads["W"][...] = xp.reshape(dw, self.weight_shape)
        if self.bias:
            self.backend.conv_bias_grad(dy2, out=self.grads["b"])

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "bias": self.bias,
            "init": self.init,
        }

    @classmethod
    def param_shapes_for(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        c = positive_int("in_channels", config.get("in_channels"))
        o = positive_int("out_channels", config.get("out_channels"))
        kh, kw = pair("kernel_size", config.get("kernel_size"))
        shapes: dict[str, tuple[int, ...]] = {"W": (o, c, kh, kw)}
        if config.get("bias", True):
            shapes["b"] = (o,)
        return shapes

    @property
    def input_shape(self) -> Shape:
        return (self.in_channels, None, None)

    def output_shape(self, input_shape: Shape | None) -> Shape:
        return (self.out_channels, *output_hw(self, self.geometry, input_shape))

    def matmul_macs(self, input_shape: Shape | None) -> int:
        """``O C kh kw`` per output pixel, times ``Ho Wo`` when the input's size is known (the
        forward matmul is (N Ho Wo, C kh kw) @ (C kh kw, O))."""
        pixels = 1
        for size in self.output_shape(input_shape)[1:]:
            pixels *= size if size is not None else 1
        return math.prod(self.weight_shape) * pixels

    def describe(self) -> str:
        kh, kw = self.kernel_size
        text = f"Conv2D {self.in_channels} -> {self.out_channels}, {kh}x{kw}"
        if self.stride != (1, 1):
            text += f" stride {self.stride[0]}x{self.stride[1]}"
        if self.padding != (0, 0):
            text += f" pad {self.padding[0]}x{self.padding[1]}"
        return text

    def describe_input(self) -> str:
        return f"in_channels={self.in_channels} (input (batch, {self.in_channels}, H, W))"
