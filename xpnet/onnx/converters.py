"""The built-in ONNX converters: one small function per layer type, in standard ONNX ops.

Layers that land in other modules (convolution, pooling, reshaping, batch normalization) are
registered by class name, so these converters apply as soon as the classes exist. Losses are
converted for what ``predict_proba`` applies to the outputs (``Loss.probabilities``).
"""

from __future__ import annotations

from typing import Any

from ..layers import Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from ..losses import BinaryCrossEntropy, SoftmaxCrossEntropy
from .registry import Converter, Graph, register_onnx_converter


def _pair(value: Any) -> list[int]:
    """``(a, b)`` from a pair or one int (both sides)."""
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value), int(value)]


def _unary(op_type: str, **attrs: Any) -> Converter:
    def convert(layer: Any, g: Graph, x: str) -> str:
        return g.op(op_type, [x], **attrs)

    return convert


for _layer, _op in ((ReLU, "Relu"), (Sigmoid, "Sigmoid"), (Tanh, "Tanh"),
                    (Dropout, "Identity")):  # dropout is the identity at inference
    register_onnx_converter(_layer)(_unary(_op))
register_onnx_converter(Softmax)(_unary("Softmax", axis=-1))
register_onnx_converter("Flatten")(_unary("Flatten", axis=1))


@register_onnx_converter(LeakyReLU)
def _leaky_relu(layer: Any, g: Graph, x: str) -> str:
    return g.op("LeakyRelu", [x], alpha=float(layer.slope))


@register_onnx_converter(Dense)
def _dense(layer: Any, g: Graph, x: str) -> str:
    """``x @ W + b``: one Gemm (W is (in, out), so no transpose), or MatMul without a bias."""
    if layer.bias:
        return g.op("Gemm", [x, g.weight(layer, "W"), g.weight(layer, "b")])
    return g.op("MatMul", [x, g.weight(layer, "W")])


@register_onnx_converter("Conv2D")
def _conv2d(layer: Any, g: Graph, x: str) -> str:
    """NCHW cross-correlation; W (out, in, kh, kw) is ONNX's layout already."""
    inputs = [x, g.weight(layer, "W")] + ([g.weight(layer, "b")] if layer.bias else [])
    ph, pw = _pair(layer.padding)
    return g.op("Conv", inputs, kernel_shape=_pair(layer.kernel_size),
                strides=_pair(layer.stride), pads=[ph, pw, ph, pw])


def _pool(op_type: str) -> Converter:
    def convert(layer: Any, g: Graph, x: str) -> str:
        ph, pw = _pair(getattr(layer, "padding", 0))
        return g.op(op_type, [x], kernel_shape=_pair(layer.kernel_size),
                    strides=_pair(layer.stride), pads=[ph, pw, ph, pw])

    return convert


register_onnx_converter("MaxPool2D")(_pool("MaxPool"))
register_onnx_converter("AvgPool2D")(_pool("AveragePool"))


@register_onnx_converter("Reshape")
def _reshape(layer: Any, g: Graph, x: str) -> str:
    # 0 copies the input's batch size, so a per-sample shape holding -1 still works.
    shape = g.constant([0, *(int(d) for d in layer.shape)], "shape", dtype="int64")
    return g.op("Reshape", [x, shape])


def _batch_norm(layer: Any, g: Graph, x: str) -> str:
    """Inference mode: the running statistics (ONNX accepts (N, C) input as well as NCHW)."""
    if "gamma" in layer.params:
        scale, bias = g.weight(layer, "gamma"), g.weight(layer, "beta")
    else:  # affine=False: ONNX's BatchNormalization still wants a scale and a bias
        scale = g.constant([1.0] * layer.num_features, "gamma")
        bias = g.constant([0.0] * layer.num_features, "beta")
    stats = (g.weight(layer, "running_mean"), g.weight(layer, "running_var"))
    return g.op("BatchNormalization", [x, scale, bias, *stats], epsilon=float(layer.eps))


register_onnx_converter("BatchNorm1d")(_batch_norm)
register_onnx_converter("BatchNorm2d")(_batch_norm)

# What predict_proba applies to the outputs; a loss that keeps them (MSE) needs no converter.
register_onnx_converter(SoftmaxCrossEntropy)(_unary("Softmax", axis=-1))


@register_onnx_converter(BinaryCrossEntropy)
def _bce(loss: Any, g: Graph, x: str) -> str:
    return g.op("Sigmoid", [x]) if loss.from_logits else x
