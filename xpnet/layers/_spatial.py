"""Shared by the NCHW layers (Conv2D, MaxPool2D, AvgPool2D): argument pairs, input checks,
output shapes."""

from __future__ import annotations

import numbers
from typing import Any

from ..backends import Array, Backend
from ..backends.conv_ops import Geometry, out_size
from .base import Shape


def pair(name: str, value: Any, minimum: int = 1) -> tuple[int, int]:
    """``value`` (an int, or a pair of ints for height and width) as a pair of ints >=
    ``minimum``; a TypeError/ValueError naming ``name`` and quoting the value otherwise."""
    what = "a positive" if minimum >= 1 else "a non-negative"
    msg = f"{name} must be {what} int or a pair (height, width) of them, got {value!r}"
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2 or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in items
    ):
        raise TypeError(msg)
    if any(v < minimum for v in items):
        raise ValueError(msg)
    return int(items[0]), int(items[1])


def output_hw(layer: Any, geom: Geometry, input_shape: Shape | None) -> tuple[int | None, ...]:
    """``(Ho, Wo)`` for a per-sample ``(C, H, W)`` shape (None where unknown); a ValueError
    naming ``layer`` when the (padded) image is smaller than the kernel."""
    if input_shape is None or len(input_shape) != 3:
        return (None, None)
    out: list[int | None] = []
    for axis, size in enumerate(input_shape[1:]):
        if size is None:
            out.append(None)
            continue
        k, s, p = geom[axis], geom[2 + axis], geom[4 + axis]
        n = out_size(size, k, s, p)
        if n < 1:
            raise ValueError(
                f"{layer.name}: an input of shape {tuple(input_shape)} is too small for kernel "
                f"{geom[:2]} with padding {geom[4:]}: {'height' if axis == 0 else 'width'} "
                f"{size} + 2*{p} < {k}"
            )
        out.append(n)
    return tuple(out)


def check_image(layer: Any, be: Backend, x: Array, channels: int | None, geom: Geometry) -> None:
    """``x`` must be a (N, C, H, W) array of ``be`` in its dtype, large enough for the kernel."""
    want = f"(batch, {channels if channels is not None else 'channels'}, height, width)"
    if not be.is_array(x):
        raise TypeError(
            f"{layer.name}: expected a {be.name} array of shape {want}, got "
            f"{type(x).__module__}.{type(x).__name__}; convert it with backend.asarray(x)"
        )
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"{layer.name}: expected input of shape {want}, got {tuple(x.shape)}")
    if x.dtype != be.dtype:
        raise TypeError(
            f"{layer.name}: expected input dtype {be.dtype_name}, got {x.dtype}; "
            f"cast it first (backend.asarray(x)) so that no silent promotion happens"
        )
    output_hw(layer, geom, tuple(int(d) for d in x.shape[1:]))
