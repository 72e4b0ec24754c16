"""Max and average pooling over NCHW images (no padding; windows that do not fit are dropped,
PyTorch's floor rule)."""

from __future__ import annotations

from typing import Any

from ..backends import Array
from ..backends.conv_ops import Geometry
from ._spatial import check_image, output_hw, pair
from .base import Layer, Shape


class _Pool2D(Layer):
    """Shared by the pooling layers: window arguments, checks, shapes, config."""

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else pair("stride", stride)
        self.x_shape: tuple[int, ...] = ()

    @property
    def geometry(self) -> Geometry:
        return (*self.kernel_size, *self.stride, 0, 0)

    def _check(self, x: Array) -> None:
        check_image(self, self.backend, x, None, self.geometry)
        self.x_shape = tuple(int(d) for d in x.shape)

    def _saved_shape(self) -> tuple[int, ...]:
        if not self.x_shape:
            raise RuntimeError(f"{self.name}: backward called before forward")
        return self.x_shape

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride)}

    @property
    def input_shape(self) -> Shape:
        return (None, None, None)

    def output_shape(self, input_shape: Shape | None) -> Shape:
        channels = input_shape[0] if input_shape is not None and len(input_shape) == 3 else None
        return (channels, *output_hw(self, self.geometry, input_shape))

    def describe(self) -> str:
        kh, kw = self.kernel_size
        text = f"{type(self).__name__} {kh}x{kw}"
        if self.stride != self.kernel_size:
            text += f" stride {self.stride[0]}x{self.stride[1]}"
        return text

    def describe_input(self) -> str:
        return "input of shape (batch, channels, height, width)"


class MaxPool2D(_Pool2D):
    """Each window's maximum. ``stride`` defaults to ``kernel_size``.

    Ties: the gradient of a window goes to ONE element, the FIRST maximum in row-major order
    within the window (as NumPy's ``argmax``; PyTorch's CPU kernel picks the same). The
    gradient checker treats a window whose maximum changes under a finite-difference step as
    a kink (skipped and reported, see :func:`xpnet.testing.register_kink`).
    """

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__(kernel_size, stride)
        #: per kernel position, where it holds its window's first maximum (see Backend.max_pool)
        self.route: list[Array] = []
        #: the last output (the ReLU -> MaxPool2D fusion takes ReLU's mask on it)
        self.y: Array | None = None

    def forward(self, x: Array, training: bool = False) -> Array:
        self._check(x)
        self.y, self.route = self.backend.max_pool(x, self.geometry)
        return self.y

    def backward(self, dy: Array) -> Array:
        shape = self._saved_shape()
        return self.backend.max_pool_backward(dy, self.route, shape, self.geometry)


class AvgPool2D(_Pool2D):
    """Each window's mean; ``dx`` spreads ``dy / (kh kw)`` over the window. ``stride``
    defaults to ``kernel_size``."""

    def forward(self, x: Array, training: bool = False) -> Array:
        self._check(x)
        return self.backend.avg_pool(x, self.geometry)

    def backward(self, dy: Array) -> Array:
        return self.backend.avg_pool_backward(dy, self._saved_shape(), self.geometry)
