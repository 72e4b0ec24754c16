"""ONNX export of the real convolution, pooling, reshape and BatchNorm layers: onnxruntime
against ``predict_proba`` over random convolutional networks (tests/test_onnx.py covers the
dense stacks and checks the converters against references of the layers' semantics)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx not installed: pip install 'xpnet[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install "
                          "'xpnet[onnx]'")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import xpnet  # noqa: E402
from xpnet.layers import (  # noqa: E402
    AvgPool2D,
    BatchNorm1d,
    BatchNorm2d,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Reshape,
)
from xpnet.losses import SoftmaxCrossEntropy  # noqa: E402
from xpnet.onnx import to_onnx  # noqa: E402


def run(proto: Any, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # the test machines are small and shared
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": x.astype(np.float32)})
    return out  # type: ignore[no-any-return]


def _randomize_statistics(model: xpnet.Sequential, rng: np.random.Generator) -> None:
    """Give every BatchNorm non-trivial parameters and running statistics (a fresh one would
    hide a swapped mean/var or gamma/beta)."""
    for layer in model.layers:
        if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
            c = layer.num_features
            layer.buffers["running_mean"][...] = rng.normal(size=c)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, size=c)
            if layer.affine:
                layer.params["gamma"][...] = rng.uniform(0.5, 2.0, size=c)
                layer.params["beta"][...] = rng.normal(size=c)


@st.composite
def conv_nets(draw: st.DrawFn) -> tuple[xpnet.Sequential, int]:
    """A flat-input conv net: Reshape -> [Conv2D (-> BatchNorm2d) -> ReLU (-> pool)] x 1-2
    -> Flatten (-> BatchNorm1d) -> Dense, with random geometry; and its input width."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(4, 9)), draw(st.integers(4, 9))
    layers: list[Layer] = [Reshape((c, h, w))]
    shape: tuple[int | None, ...] = (c, h, w)
    for _ in range(draw(st.integers(1, 2))):
        pad = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
        room = (int(shape[1] or 1) + 2 * pad[0], int(shape[2] or 1) + 2 * pad[1])
        k = (draw(st.integers(1, min(3, room[0]))), draw(st.integers(1, min(3, room[1]))))
        conv = Conv2D(int(shape[0] or 1), draw(st.integers(1, 4)), k,
                      stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                      padding=pad, bias=draw(st.booleans()))
        block: list[Layer] = [conv]
        if draw(st.booleans()):
            block.append(BatchNorm2d(conv.out_channels, affine=draw(st.booleans())))
        block.append(ReLU())
        out = conv.output_shape(shape)
        if draw(st.booleans()) and out is not None and min(out[1:]) >= 2:  # type: ignore[type-var]
            block.append(draw(st.sampled_from([MaxPool2D(2), AvgPool2D(2, 1)])))
        for layer in block:
            shape = layer.output_shape(shape)  # type: ignore[assignment]
        layers += block
    layers.append(Flatten())
    width = int(np.prod([d for d in Flatten().output_shape(shape) or ()]))
    if draw(st.booleans()):
        layers += [BatchNorm1d(width), Dropout(0.3)]
    layers.append(Dense(width, 3))
    model = xpnet.Sequential(layers, seed=draw(st.integers(0, 2**16)))
    model.compile(SoftmaxCrossEntropy())
    return model, c * h * w


@settings(max_examples=40, deadline=None, database=None)
@given(net=conv_nets(), n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_random_conv_nets_match_predict_proba(net: tuple[xpnet.Sequential, int], n: int,
                                              seed: int) -> None:
    model, width = net
    rng = np.random.default_rng(seed)
    _randomize_statistics(model, rng)
    x = rng.normal(size=(n, width)).astype(np.float32)
    want = model.predict_proba(x)
    got = run(to_onnx(model), x)
    assert got.dtype == np.float32 and got.shape == want.shape == (n, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_cnn_architecture_exports_after_training() -> None:
    """A LeNet-like net trained a little (so BatchNorm's running statistics moved): the
    exported graph gives predict_proba's probabilities for a batch it never saw."""
    rng = np.random.default_rng(0)
    model = xpnet.Sequential(
        [Reshape((1, 12, 12)), Conv2D(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(),
         MaxPool2D(2), Conv2D(4, 6, 3), ReLU(), AvgPool2D(2), Flatten(), Dense(24, 5)], seed=1)
    model.compile(SoftmaxCrossEntropy(), xpnet.optim.Adam(0.01))
    X, y = rng.normal(size=(64, 144)).astype(np.float32), rng.integers(0, 5, size=64)
    model.fit(X, y, epochs=2, batch_size=16, verbose=False)
    assert float(np.abs(model.layers[2].buffers["running_mean"]).max()) > 0.0
    x = rng.normal(size=(7, 144)).astype(np.float32)
    np.testing.assert_allclose(run(to_onnx(model), x), model.predict_proba(x),
                               rtol=1e-5, atol=1e-5)
