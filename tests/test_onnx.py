"""xpnet.onnx: exported graphs run by onnxruntime match predict_proba; the converter registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx not installed: pip install 'xpnet[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install "
                          "'xpnet[onnx]'")

import onnx  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import xpnet  # noqa: E402
from xpnet.backends import get_backend  # noqa: E402
from xpnet.layers import Dense, Layer, ReLU, Softmax  # noqa: E402
from xpnet.losses import MSE, BinaryCrossEntropy, SoftmaxCrossEntropy  # noqa: E402
from xpnet.onnx import (  # noqa: E402
    ONNX_CONVERTERS,
    OnnxExportError,
    layers_to_onnx,
    register_onnx_converter,
    to_onnx,
)
from xpnet.testing.strategies import host_arrays, sequentials  # noqa: E402

N_MODELS = 200
HEADS = ("none", "softmax_cross_entropy", "mse", "bce_logits", "bce")


def run(proto: Any, x: np.ndarray) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # the test machines are small and shared
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.astype(np.float32)})


def compile_head(model: xpnet.Sequential, head: str) -> None:
    loss = {"softmax_cross_entropy": SoftmaxCrossEntropy, "mse": MSE,
            "bce_logits": lambda: BinaryCrossEntropy(from_logits=True),
            "bce": BinaryCrossEntropy}.get(head)
    if loss is not None:
        model.compile(loss())


def test_random_models_match_predict_proba(record_property: Any, capsys: Any) -> None:
    deviations: list[float] = []

    @settings(max_examples=N_MODELS, deadline=None, database=None)
    @given(data=st.data(), head=st.sampled_from(HEADS), n=st.integers(1, 8))
    def check(data: st.DataObject, head: str, n: int) -> None:
        model = data.draw(sequentials("numpy", max_depth=3, max_width=6))
        compile_head(model, head)
        x = data.draw(host_arrays((n, model.in_features))).astype(np.float32)
        want = model.predict_proba(x)
        (got,) = run(to_onnx(model), x)
        assert got.dtype == np.float32 and got.shape == want.shape
        deviations.append(float(np.max(np.abs(got - want))))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    check()
    worst = max(deviations)
    record_property("onnx_max_abs_deviation", worst)
    with capsys.disabled():
        print(f"\nONNX vs predict_proba: max |deviation| {worst:.3g} over {len(deviations)} "
              "random models (float32)")


def test_export_file_dynamic_batch_logits_and_float64(tmp_path: Any) -> None:
    model = xpnet.Sequential([Dense(5, 8), ReLU(), xpnet.layers.Dropout(0.3), Dense(8, 3)],
                             dtype="float64", seed=1)
    model.compile("softmax_cross_entropy")
    path = model.export_onnx(tmp_path / "m.onnx", logits=True)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 13
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 5]
    assert [o.name for o in proto.graph.output] == ["output", "logits"]
    for n in (1, 13):
        x = np.random.default_rng(n).normal(size=(n, 5))
        proba, logits = run(proto, x)
        np.testing.assert_allclose(proba, model.predict_proba(x), rtol=1e-5, atol=1e-6)
        raw = model.backend.to_host(model.forward(model.backend.asarray(x)))
        np.testing.assert_allclose(logits, raw, rtol=1e-5, atol=1e-5)


class Doubler(Layer):
    """A layer with no built-in converter: ``y = 2 x``."""

    def forward(self, x: Any, training: bool = False) -> Any:
        return 2.0 * x


def test_a_layer_without_converter_is_a_clear_error_until_registered() -> None:
    model = xpnet.Sequential([Dense(3, 2), Doubler()])
    with pytest.raises(OnnxExportError, match=r"layers\[1\]: no ONNX converter is registered "
                       r"for Doubler; register one with @xpnet.onnx.register_onnx_converter"):
        to_onnx(model)

    @register_onnx_converter(Doubler)
    def convert(layer: Any, g: Any, x: str) -> str:
        return g.op("Mul", [x, g.constant(2.0, "two")])

    try:
        x = np.ones((4, 3), np.float32)
        np.testing.assert_allclose(run(to_onnx(model), x)[0], model.predict_proba(x), rtol=1e-6)
    finally:
        del ONNX_CONVERTERS[Doubler]


def test_clear_errors_for_shape_opset_and_model() -> None:
    with pytest.raises(ValueError, match="input_shape="):
        to_onnx(xpnet.Sequential([ReLU(), Softmax()]))
    proto = to_onnx(xpnet.Sequential([ReLU(), Softmax()]), input_shape=(4,))
    x = np.arange(8, dtype=np.float32).reshape(2, 4) - 3
    np.testing.assert_allclose(run(proto, x)[0], xpnet.Sequential([ReLU(), Softmax()])
                               .predict_proba(x), rtol=1e-6)
    with pytest.raises(ValueError, match="opset must be an int from 13"):
        to_onnx(xpnet.Sequential([Dense(2, 2)]), opset=11)
    with pytest.raises(TypeError, match="model must be an xpnet Sequential, got list"):
        to_onnx([Dense(2, 2)])


# ---------------------------------------------------------------- layers landing elsewhere
# Duck-typed stand-ins following the fixed spec of Conv2D, MaxPool2D, AvgPool2D, Flatten,
# Reshape, BatchNorm1d/2d (not Layer subclasses: those would register the names for loading),
# checked against NumPy references of the spec's semantics.
class _Fake:
    def __init__(self, **attrs: Any) -> None:
        self.backend = get_backend("numpy", "float64")
        self.params: dict[str, np.ndarray] = attrs.pop("params", {})
        self.buffers: dict[str, np.ndarray] = attrs.pop("buffers", {})
        self.__dict__.update(attrs)

    def output_shape(self, shape: Any) -> None:
        return None


def fake(name: str, **attrs: Any) -> Any:
    return type(name, (_Fake,), {})(**attrs)


def conv_ref(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, s: tuple[int, int],
             p: tuple[int, int]) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    kh, kw = W.shape[2:]
    oh, ow = (xp.shape[2] - kh) // s[0] + 1, (xp.shape[3] - kw) // s[1] + 1
    out = np.zeros((x.shape[0], W.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * s[0]:i * s[0] + kh, j * s[1]:j * s[1] + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, W)
    return out if b is None else out + b[None, :, None, None]


def pool_ref(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], fn: Any) -> np.ndarray:
    oh, ow = (x.shape[2] - k[0]) // s[0] + 1, (x.shape[3] - k[1]) // s[1] + 1
    return np.stack([np.stack([fn(x[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]],
                                  axis=(2, 3)) for j in range(ow)], -1) for i in range(oh)], -2)


def bn_ref(x: np.ndarray, layer: Any) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    g, b, m, v = (np.reshape(a, shape) for a in (*layer.params.values(),
                                                  *layer.buffers.values()))
    return g * (x - m) / np.sqrt(v + layer.eps) + b


@pytest.mark.parametrize("bias", [True, False])
def test_spec_layers_conv_pool_bn_flatten_reshape(bias: bool) -> None:
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    conv = fake("Conv2D", in_channels=3, out_channels=4, kernel_size=(3, 2), stride=(2, 1),
                padding=(1, 0), bias=bias, params={"W": W, **({"b": b} if bias else {})})
    bn_stats = {k: rng.uniform(0.5, 2.0, size=4) for k in ("gamma", "running_var")}
    bn2 = fake("BatchNorm2d", eps=1e-5, momentum=0.1, num_features=4,
               params={"gamma": bn_stats["gamma"], "beta": rng.normal(size=4)},
               buffers={"running_mean": rng.normal(size=4), "running_var": bn_stats["running_var"]})
    maxp = fake("MaxPool2D", kernel_size=(2, 2), stride=(2, 2))
    avgp = fake("AvgPool2D", kernel_size=(2, 1), stride=(1, 1))
    reshape = fake("Reshape", shape=(4, -1))
    flat = fake("Flatten")
    bn1 = fake("BatchNorm1d", eps=1e-3, momentum=0.1, num_features=12,
               params={"gamma": rng.uniform(0.5, 2, 12), "beta": rng.normal(size=12)},
               buffers={"running_mean": rng.normal(size=12),
                        "running_var": rng.uniform(1, 2, 12)})
    x = rng.normal(size=(5, 3, 10, 7))
    y = conv_ref(x, W, b if bias else None, (2, 1), (1, 0))  # (5, 4, 5, 6)
    y = bn_ref(y, bn2)
    y = pool_ref(y, (2, 2), (2, 2), np.max)  # (5, 4, 2, 3)
    y = pool_ref(y, (2, 1), (1, 1), np.mean)  # (5, 4, 1, 3)
    y = bn_ref(y.reshape(5, 4, -1).reshape(5, -1), bn1)  # Reshape (4, -1), Flatten: (5, 12)
    layers = [conv, bn2, maxp, avgp, reshape, flat, bn1]
    (got,) = run(layers_to_onnx(layers, (3, 10, 7)), x)
    assert got.shape == (5, 12)
    np.testing.assert_allclose(got, y, rtol=1e-4, atol=1e-4)
