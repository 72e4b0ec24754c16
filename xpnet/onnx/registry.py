"""The converter registry and the graph converters write into; no ONNX import here.

A converter turns one layer into standard ONNX nodes: ``convert(layer, g, x) -> y`` takes the
name of the layer's input tensor ``x`` and returns the name of its output, adding nodes with
:meth:`Graph.op` and weights with :meth:`Graph.weight`. Registering one per layer type (or
per loss type, for what ``predict_proba`` applies to the outputs) is how the exporter grows:
a new layer adds a converter, never a branch in the exporter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Converter = Callable[[Any, "Graph", str], str]
#: layer or loss class (or class name) -> converter; see :func:`register_onnx_converter`
ONNX_CONVERTERS: dict[type | str, Converter] = {}

INSTALL_HINT = 'pip install "xpnet[onnx]"'
#: the opset exports use unless told otherwise (13 is the oldest they accept)
DEFAULT_OPSET = 17


class OnnxExportError(TypeError):
    """A layer (or loss) of the model has no ONNX converter."""


class OnnxUnavailableError(ImportError):
    """The ``onnx`` package (or ``onnxruntime``, where it is needed) is not installed."""


def register_onnx_converter(kind: type | str) -> Callable[[Converter], Converter]:
    """Decorator: use ``convert(layer, g, x) -> y`` for layers (or losses) of type ``kind``.

    ``kind`` is a class, or a class name for a type that may not exist yet (it matches any
    class of that name). Only the exact type matches, never a subclass: a subclass computes
    something else as often as not, and a wrong graph is worse than a clear error.
    """
    if not isinstance(kind, (type, str)):
        raise TypeError(f"kind must be a class or a class name, got {kind!r}")

    def add(convert: Converter) -> Converter:
        ONNX_CONVERTERS[kind] = convert
        return convert

    return add


def converter_for(obj: Any) -> Converter | None:
    """The converter registered for ``type(obj)`` (by class, else by class name), or None."""
    cls = type(obj)
    return ONNX_CONVERTERS.get(cls) or ONNX_CONVERTERS.get(cls.__name__)


@dataclass
class Node:
    """One ONNX node as plain data: ``op_type(inputs) -> outputs`` with attributes."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    name: str


@dataclass
class Graph:
    """What converters write into: nodes in order, and initializers (host arrays).

    ``prefix`` names what the current converter adds (``"layers.3."``) and ``shape`` is the
    per-sample shape of its input (None where unknown); the exporter sets both. Float weights
    become ``dtype`` (float32: what the exported graph computes in).
    """

    dtype: Any = np.float32
    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    prefix: str = ""
    shape: tuple[int | None, ...] | None = None
    _count: int = 0

    def fresh(self, hint: str) -> str:
        """A tensor name not used before, starting with the prefix."""
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def op(self, op_type: str, inputs: list[str], *, output: str | None = None,
           **attrs: Any) -> str:
        """Add node ``op_type(inputs)`` with ONNX attributes ``attrs``; returns its output."""
        out = output or self.fresh(op_type.lower())
        self.nodes.append(Node(op_type, list(inputs), [out], attrs, f"{self.prefix}{op_type}"))
        return out

    def weight(self, layer: Any, key: str) -> str:
        """Add ``layer.params[key]`` (or ``layer.buffers[key]``) as an initializer; its name."""
        arrays = layer.params if key in layer.params else layer.buffers
        host = np.asarray(layer.backend.to_host(arrays[key]), dtype=self.dtype)
        return self.constant(host, key)

    def constant(self, value: Any, hint: str, dtype: Any = None) -> str:
        """Add a constant tensor (``dtype`` default: the graph's float type); its name."""
        name = f"{self.prefix}{hint}"
        if name in self.initializers:
            name = self.fresh(hint)
        self.initializers[name] = np.asarray(value, dtype=dtype or self.dtype)
        return name


def no_converter_message(obj: Any, where: str) -> str:
    """Why ``obj`` cannot be exported, and how to register a converter for its type."""
    name = type(obj).__name__
    return (
        f"{where}: no ONNX converter is registered for {name}; register one with "
        f"@xpnet.onnx.register_onnx_converter({name}) on a function convert(layer, g, x) that "
        "adds standard ONNX nodes with g.op(...) (weights with g.weight(layer, key)) and "
        "returns the name of its output (see xpnet/onnx/converters.py for examples)"
    )


def _probabilities_changed(loss: Any) -> bool:
    from ..losses import Loss

    return type(loss).probabilities is not Loss.probabilities


def build_graph(
    layers: list[Any], input_shape: tuple[int | None, ...] | None, loss: Any = None, *,
    logits: bool = False,
) -> tuple[Graph, list[str]]:
    """Run the converters over ``layers`` (then ``loss``'s ``probabilities``) from tensor
    ``"input"``; returns the graph and its output names: ``"output"`` (what ``predict_proba``
    returns), then ``"logits"`` (the last layer's) when asked for."""
    g = Graph()
    x, shape = "input", input_shape
    for i, layer in enumerate(layers):
        convert = converter_for(layer)
        if convert is None:
            raise OnnxExportError(no_converter_message(layer, f"layers[{i}]"))
        g.prefix, g.shape = f"layers.{i}.", shape
        x = convert(layer, g, x)
        shape = layer.output_shape(shape)
    g.prefix, g.shape = "output.", shape
    out = x
    if loss is not None:
        convert = converter_for(loss)
        if convert is not None:
            out = convert(loss, g, x)
        elif _probabilities_changed(loss):  # predict_proba transforms, we can't: say so
            raise OnnxExportError(no_converter_message(loss, f"the loss {type(loss).__name__}"))
    # Identity nodes give the outputs fixed names whatever the last converter called them.
    g.op("Identity", [out], output="output")
    if logits:
        g.op("Identity", [x], output="logits")
    return g, ["output", "logits"] if logits else ["output"]
