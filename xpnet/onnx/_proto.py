"""The one module that imports ``onnx``: a :class:`~xpnet.onnx.registry.Graph` as an ONNX model.

Float32 throughout (input, weights, outputs), a dynamic batch dimension named ``"batch"``, the
default opset domain at ``opset`` (13 or later: Softmax over one axis), and the lowest IR
version that opset allows, so older runtimes load the file too.
"""

from __future__ import annotations

from typing import Any

from .registry import DEFAULT_OPSET, INSTALL_HINT, Graph, OnnxUnavailableError, build_graph

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # pragma: no cover - exercised by hiding the package in tests
    raise OnnxUnavailableError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from exc

MIN_OPSET = 13


def check_opset(opset: Any) -> int:
    """``opset`` if it is an int this onnx package knows, 13 or more."""
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {newest}, got {opset!r}")
    return opset


def _value_info(name: str, shape: tuple[int | None, ...] | None) -> Any:
    if shape is None:  # rank unknown: shape inference fills it in
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
    dims = ["batch", *(d if d is not None else f"d{i + 1}" for i, d in enumerate(shape))]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def graph_to_model(
    g: Graph, outputs: list[str], input_shape: tuple[int | None, ...],
    output_shape: tuple[int | None, ...] | None, opset: int, doc: str,
) -> Any:
    """``g`` as a checked ``onnx.ModelProto``."""
    nodes = [helper.make_node(n.op_type, n.inputs, n.outputs, name=f"{n.name}_{i}", **n.attrs)
             for i, n in enumerate(g.nodes)]
    inits = [numpy_helper.from_array(a, name) for name, a in g.initializers.items()]
    graph = helper.make_graph(
        nodes, "xpnet", [_value_info("input", input_shape)],
        [_value_info(name, output_shape) for name in outputs], inits, doc_string=doc,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="xpnet")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    # Shape inference fills in an output shape the layers did not say (and the shapes of the
    # tensors in between, for viewers); the checker wants every output's shape.
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def layers_to_onnx(
    layers: list[Any], input_shape: tuple[int | None, ...], *, loss: Any = None,
    opset: int = DEFAULT_OPSET, logits: bool = False, doc: str = "",
) -> Any:
    """The ONNX model computing ``layers`` (then ``loss.probabilities``) on float32 input of
    per-sample shape ``input_shape``."""
    opset = check_opset(opset)
    g, outputs = build_graph(list(layers), tuple(input_shape), loss, logits=logits)
    shape: Any = tuple(input_shape)
    for layer in layers:
        shape = layer.output_shape(shape)
    return graph_to_model(g, outputs, tuple(input_shape), shape, opset, doc)
