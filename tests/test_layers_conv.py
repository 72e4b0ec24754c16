"""Conv2D: forward/backward against a naive loop reference, shapes, initialization, validation,
save/load, moving between backends, summaries."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import xpnet
from xpnet import ModelFileError, Sequential
from xpnet.architectures import short_description
from xpnet.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Reshape
from xpnet.serialization import HEADER_KEY, _digest

aas = pytest.importorskip("array_api_strict")


def naive_conv(x, W, b, stride, padding):
    """The definition, one output pixel at a time."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            y[:, :, i, j] = np.einsum("nckl,ockl->no", patch, W) + b
    return y


def naive_conv_backward(x, W, dy, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    o, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            dW += np.einsum("nckl,no->ockl", xp[:, :, rows, cols], dy[:, :, i, j])
            dxp[:, :, rows, cols] += np.einsum("ockl,no->nckl", W, dy[:, :, i, j])
    h, w = x.shape[2:]
    return dxp[:, :, ph : ph + h, pw : pw + w], dW, dy.sum(axis=(0, 2, 3))


GEOMETRIES = [
    ((2, 3, 7, 6), 4, (3, 2), (2, 1), (1, 2)),
    ((1, 1, 5, 5), 2, 1, 1, 0),
    ((3, 2, 6, 6), 3, 3, 3, 1),
    ((2, 2, 4, 5), 1, 2, 4, 0),  # stride beyond the kernel
]


@pytest.mark.parametrize("backend", ["numpy", "strict"])
@pytest.mark.parametrize(("shape", "out_c", "kernel", "stride", "padding"), GEOMETRIES)
def test_forward_and_backward_match_the_naive_loops(backend, shape, out_c, kernel, stride,
                                                    padding):
    be = xpnet.testing.strict_backend("float64") if backend == "strict" else \
        xpnet.get_backend("numpy", "float64")
    rng = np.random.default_rng(1)
    layer = Conv2D(shape[1], out_c, kernel, stride, padding, rng=0, backend=be)
    b = rng.normal(size=out_c)
    layer.params["b"] = be.asarray(b)
    W = be.to_host(layer.params["W"])
    x = rng.normal(size=shape)
    y = layer.forward(be.asarray(x))
    ref = naive_conv(x, W, b, layer.stride, layer.padding)
    assert tuple(y.shape) == ref.shape == (shape[0], *layer.output_shape(shape[1:]))
    np.testing.assert_allclose(be.to_host(y), ref, rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=ref.shape)
    gW = layer.grads["W"]
    dx = layer.backward(be.asarray(dy))
    rdx, rdW, rdb = naive_conv_backward(x, W, dy, layer.stride, layer.padding)
    np.testing.assert_allclose(be.to_host(dx), rdx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(be.to_host(layer.grads["W"]), rdW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(be.to_host(layer.grads["b"]), rdb, rtol=1e-12, atol=1e-12)
    assert layer.grads["W"] is gW  # written in place


def test_float32_stays_float32_and_backward_params_skips_dx():
    layer = Conv2D(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 5)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (2, 3, 5, 5)
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    assert layer.grads["W"].dtype == np.float32
    before = layer.grads["W"].copy()
    layer.grads["W"][...] = 0
    assert layer.backward_params(np.ones_like(y)) is None
    np.testing.assert_array_equal(layer.grads["W"], before)


def test_parameter_layout_and_he_init():
    layer = Conv2D(8, 16, (3, 5), rng=0, dtype="float64")
    assert layer.params["W"].shape == (16, 8, 3, 5) and layer.params["b"].shape == (16,)
    assert set(layer.grads) == {"W", "b"} and not layer.params["b"].any()
    std = float(np.std(layer.params["W"]))
    assert abs(std - np.sqrt(2.0 / (8 * 3 * 5))) < 0.1 * std
    same = Conv2D(8, 16, (3, 5), rng=0, backend=xpnet.testing.strict_backend("float64"))
    np.testing.assert_array_equal(same.backend.to_host(same.params["W"]), layer.params["W"])
    assert Conv2D(1, 2, 1, bias=False).params.keys() == {"W"}
    for init in ("glorot", "uniform", "normal"):
        assert np.isfinite(Conv2D(2, 2, 2, init=init, rng=1).params["W"]).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "quoted"),
    [
        ({"kernel_size": 0}, ValueError, "kernel_size must be a positive int or a pair"),
        ({"kernel_size": (3, 0)}, ValueError, "got (3, 0)"),
        ({"kernel_size": (3, 3, 3)}, TypeError, "got (3, 3, 3)"),
        ({"kernel_size": 2.5}, TypeError, "got 2.5"),
        ({"kernel_size": True}, TypeError, "got True"),
        ({"stride": 0}, ValueError, "stride must be a positive int"),
        ({"padding": -1}, ValueError, "padding must be a non-negative int or a pair"),
        ({"padding": "same"}, TypeError, "got 'same'"),
        ({"in_channels": 0}, ValueError, "in_channels must be a positive integer, got 0"),
        ({"init": "zeros"}, ValueError, "got 'zeros'"),
        ({"bias": 1}, TypeError, "bias must be True or False, got 1"),
    ],
)
def test_bad_arguments_are_refused_quoting_the_value(kwargs, error, quoted):
    args = {"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(error) as exc:
        Conv2D(**args)
    assert quoted in str(exc.value)


def test_bad_inputs_are_refused():
    layer = Conv2D(3, 2, 3)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3, height, width\)"):
        layer.forward(np.zeros((2, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="too small for kernel"):
        layer.forward(np.zeros((2, 3, 2, 5), np.float32))
    with pytest.raises(TypeError, match="expected input dtype float32, got float64"):
        layer.forward(np.zeros((2, 3, 5, 5)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Conv2D(1, 1, 1).backward(np.zeros((1, 1, 1, 1), np.float32))


def _cnn(seed=0):
    return Sequential(
        [Reshape((1, 8, 8)), Conv2D(1, 4, 3, padding=1), ReLU(), MaxPool2D(2),
         Conv2D(4, 6, 2, stride=2), ReLU(), Flatten(), Dense(24, 3)], seed=seed)


def test_sequential_shapes_summary_and_description():
    model = _cnn()
    assert model.input_shape == (64,) and model.in_features == 64 and model.out_features == 3
    text = model.summary()
    assert "Conv2D 1 -> 4, 3x3 pad 1x1" in text and "(batch, 4, 4, 4)" in text
    assert "(batch, 6, 2, 2)" in text and "(batch, 24)" in text
    assert f"{40 + 102 + 75:,} parameters" in text
    assert short_description(model) == "64-1x8x8-4x8x8-4x4x4-6x2x2-24-3 ReLU"
    with pytest.raises(ValueError, match=r"in_channels=2 .* does not match the shape"):
        Sequential([Conv2D(1, 4, 3), Conv2D(2, 4, 3)])
    with pytest.raises(ValueError, match="too small for kernel"):
        Sequential([Reshape((1, 4, 4)), Conv2D(1, 1, 5)])
    with pytest.raises(ValueError, match="Dense 25 -> 3"):
        Sequential([Reshape((1, 8, 8)), Conv2D(1, 1, 3), Flatten(), Dense(25, 3)])


def test_save_load_round_trip_and_to(tmp_path):
    model = _cnn(seed=3)
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    again = xpnet.load(model.save(tmp_path / "cnn.npz"))
    assert again.config() == model.config()
    assert again.layers[4].stride == (2, 2) and again.layers[1].padding == (1, 1)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    strict = xpnet.testing.strict_backend("float32")
    moved = xpnet.load(tmp_path / "cnn.npz").to(strict)
    out = strict.to_host(moved.forward(strict.asarray(x)))
    np.testing.assert_allclose(out, model.forward(x), rtol=1e-5, atol=1e-6)
    assert moved.layers[1].params["W"].shape == (4, 1, 3, 3)


def test_param_shapes_for_and_a_hostile_header(tmp_path):
    config = Conv2D(3, 5, (2, 4)).config()
    assert Conv2D.param_shapes_for(config) == {"W": (5, 3, 2, 4), "b": (5,)}
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D.param_shapes_for({**config, "kernel_size": [0, 1]})
    path = Sequential([Conv2D(1, 2, 3)], seed=0).save(tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop(HEADER_KEY).tobytes())
    header["layers"][0]["config"]["out_channels"] = 10_000_000  # would allocate 360 MB
    header["arrays"] = {k: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _digest(a)}
                        for k, a in arrays.items()}
    members = {HEADER_KEY: np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays}
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as zf:
        for name, arr in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(name + ".npy", buf.getvalue())
    with pytest.raises(ModelFileError, match=r"layer 0 \(Conv2D\) declares \(10000000, 1, 3, 3\)"):
        xpnet.load(tmp_path / "bad.npz")


def test_training_backward_skips_layers_before_the_first_trained_one(monkeypatch):
    model = _cnn(seed=1)
    x = np.random.default_rng(0).random((4, 64)).astype(np.float32)
    dy = np.ones((4, 3), np.float32)
    model.forward(x, training=True)
    model.backward(dy, need_dx=True)
    full = {k: v.copy() for k, v in model.grads.items()}

    def refuse(*args):
        raise AssertionError("called")

    monkeypatch.setattr(model.layers[1], "backward", refuse)  # no dx for the first conv
    monkeypatch.setattr(model.layers[0], "backward", refuse)  # nor for Reshape
    model.forward(x, training=True)
    assert model.backward(dy, need_dx=False) is None
    for k, v in model.grads.items():
        np.testing.assert_array_equal(v, full[k])
