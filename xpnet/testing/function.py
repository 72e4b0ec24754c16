"""A plain function with a hand-written vjp, seen by the gradient checker as a layer.

``check_gradients(fn, x, vjp=vjp)`` checks ``vjp`` against finite differences of ``fn``:

* one input: ``fn(x) -> y`` and ``vjp(x, dy) -> dx``;
* several: ``check_gradients(fn, (a, b), vjp=vjp)`` with ``fn(a, b) -> y`` and
  ``vjp(a, b, dy) -> (da, db)``.

``dy`` has the shape of ``y`` (any shape, a scalar included) and each gradient the shape of
its input. The first input is checked as ``"input"``, the others as ``"input1"``,
``"input2"``...; ``kink(a, b, ...) -> bool array`` marks which side of a non-differentiable
point each element is on (``abs``: ``a > 0``), so that steps crossing it are skipped. The
functions are called with arrays of the inputs' backend (NumPy for host data), float32
inputs as float32 and float64 as float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backends import Array, Backend, get_backend
from ..layers.base import Layer
from ..losses.base import Loss


class FunctionUnderCheck(Layer):
    """``fn(x, *extra)`` as a layer: ``x`` its input, the other inputs held as parameters
    (so they are perturbed and their gradients compared too); ``backward`` calls ``vjp``."""

    def __init__(
        self,
        fn: Callable[..., Any],
        vjp: Callable[..., Any],
        extra: Sequence[np.ndarray],
        backend: Backend,
        kink: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.fn, self.vjp, self.kink = fn, vjp, kink
        self.keys = [f"input{i}" for i in range(1, len(extra) + 1)]
        for key, host in zip(self.keys, extra, strict=True):
            self.params[key] = backend.asarray(host, dtype=backend.dtype)
            self.grads[key] = backend.zeros(tuple(host.shape))
        self.x: Array | None = None
        if kink is not None:
            self.kink_probe = lambda layer: kink(layer.x, *layer.inputs())

    def inputs(self) -> list[Array]:
        """The inputs after the first, as the checker currently sets them."""
        return [self.params[k] for k in self.keys]

    def forward(self, x: Array, training: bool = False) -> Array:
        self.x = x
        return self.backend.asarray(self.fn(x, *self.inputs()), dtype=self.backend.dtype)

    def backward(self, dy: Array) -> Array:
        if self.x is None:
            raise RuntimeError("backward called before forward")
        out = self.vjp(self.x, *self.inputs(), dy)
        grads = (out,) if not self.keys and not isinstance(out, (tuple, list)) else tuple(out)
        n = 1 + len(self.keys)
        if len(grads) != n:
            raise TypeError(
                f"vjp returned {len(grads)} gradient(s) for {n} input(s) of "
                f"{_name(self.fn)}: it must return " + ("dx" if n == 1 else f"a tuple of {n}")
            )
        arrays = [self.backend.asarray(g, dtype=self.backend.dtype) for g in grads]
        for i, (g, x) in enumerate(zip(arrays, [self.x, *self.inputs()], strict=True)):
            if tuple(g.shape) != tuple(x.shape):
                which = "input" if i == 0 else f"input{i}"
                raise ValueError(
                    f"vjp's gradient for {which} has shape {tuple(g.shape)}, but that input "
                    f"has shape {tuple(x.shape)}"
                )
        for key, g in zip(self.keys, arrays[1:], strict=True):
            self.grads[key] = g
        return arrays[0]

    def __repr__(self) -> str:
        return f"function {_name(self.fn)} with vjp {_name(self.vjp)}"


def _name(f: Any) -> str:
    return str(getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f))


def function_case(
    fn: Any, x: Any, vjp: Any, kink: Any = None, with_target: bool = False
) -> tuple[FunctionUnderCheck, Any]:
    """The layer standing for ``fn`` and the first input to check it at (``with_target``:
    a target or loss was passed too, which a function check has no use for)."""
    if isinstance(fn, (Layer, Loss)):
        raise TypeError("vjp= and kink= go with a plain function; a Layer or Loss has its own "
                        "backward (and register_kink for its kinks)")
    if not callable(fn):
        raise TypeError(f"vjp= goes with a function to check, got {fn!r}")
    if vjp is None:
        raise TypeError("kink= goes with vjp=: a function is checked against its vjp")
    if with_target:
        raise ValueError("a function is checked on its own output: no target or loss=")
    if not callable(vjp):
        raise TypeError(f"vjp must be a function vjp(x, dy) -> dx, got {vjp!r}")
    if kink is not None and not callable(kink):
        raise TypeError(f"kink must be a function kink(x) -> bool array, got {kink!r}")
    inputs = list(x) if isinstance(x, tuple) else [x]
    if not inputs:
        raise ValueError("check_gradients: a function needs at least one input, got ()")
    be = _backend_of(inputs[0])
    hosts = []
    for i, a in enumerate(inputs):
        host = np.asarray(be.to_host(a) if be.is_array(a) else a)
        if host.dtype.kind != "f":
            which = "x" if len(inputs) == 1 else f"input {i}"
            raise TypeError(f"{which} must hold floating-point numbers, got dtype {host.dtype}")
        hosts.append(host)
    return FunctionUnderCheck(fn, vjp, hosts[1:], be, kink), inputs[0]


def _backend_of(x: Any) -> Backend:
    """The backend of an array (NumPy for host data), in float32 for float32 data, else in
    float64."""
    namespace = getattr(x, "__array_namespace__", None)
    module = namespace() if namespace is not None and not isinstance(x, np.ndarray) else np
    dtype = getattr(x, "dtype", None) if module is not np else np.asarray(x).dtype
    name = "float32" if str(dtype) == "float32" else "float64"
    return get_backend("numpy" if module is np else module, name)


__all__ = ["FunctionUnderCheck", "function_case"]
