"""Conv2D, pooling and reshape layers: backward passes against float64 finite differences on
every backend (random shapes, strides, paddings), and NumPy against array-api-strict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet import Sequential
from xpnet.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Reshape, Tanh
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.testing import GenericNumpy, assert_backends_agree, backend_cases, check_gradients
from xpnet.testing.strategies import arrays, conv_layers, image_shapes, labels, pool_layers


@settings(max_examples=15)
@given(data=st.data())
def test_conv2d(xpnet_backend, data):
    layer = data.draw(conv_layers(xpnet_backend), label="layer")
    shape = data.draw(image_shapes(layer.in_channels, layer.kernel_size, layer.padding),
                      label="shape")
    x = data.draw(arrays(xpnet_backend, shape), label="x")
    result = check_gradients(layer, x)
    assert {c.name for c in result.checks} == {"input", *layer.params}


@pytest.mark.parametrize(
    ("shape", "out_c", "kernel", "stride", "padding"),
    [
        ((1, 2, 4, 5), 3, 1, 1, 0),  # 1x1 kernel, batch 1
        ((2, 1, 7, 7), 2, 2, 3, 0),  # stride beyond the kernel: some pixels unused
        ((1, 3, 3, 4), 2, (3, 2), (1, 2), (1, 2)),  # odd, uneven padding
        ((2, 1, 1, 1), 1, 3, 1, 1),  # a 1x1 image all padding around
    ],
)
def test_conv2d_corner_geometries(xpnet_backend, shape, out_c, kernel, stride, padding):
    rng = np.random.default_rng(0)
    layer = Conv2D(shape[1], out_c, kernel, stride, padding, rng=1).to(xpnet_backend)
    layer.params["b"] = xpnet_backend.asarray(rng.normal(size=out_c))
    result = check_gradients(layer, rng.normal(size=shape))
    assert {c.name for c in result.checks} == {"input", "W", "b"}


@settings(max_examples=15)
@given(data=st.data())
def test_pooling(xpnet_backend, data):
    layer = data.draw(pool_layers(xpnet_backend), label="layer")
    shape = data.draw(image_shapes(data.draw(st.integers(1, 2)), layer.kernel_size),
                      label="shape")
    x = data.draw(arrays(xpnet_backend, shape), label="x")
    assert check_gradients(layer, x).passed


def test_max_pool_ties_are_kinks_and_the_first_maximum_takes_the_gradient(xpnet_backend):
    be = xpnet_backend
    x = np.array([[[[1.0, 1.0, 0.0], [1.0, 1.0, 2.0], [0.5, 0.5, 2.0]]]])  # (1, 1, 3, 3)
    layer = MaxPool2D(2, stride=1).to(be)
    result = check_gradients(layer, x)
    assert result.passed and "input[0,0,0,0]" in result.kinks  # a tie of four 1.0s
    y = layer.forward(be.asarray(x))
    dx = be.to_host(layer.backward(be.asarray(np.ones(tuple(y.shape)))))
    # windows: top-left {1,1,1,1} -> (0,0); top-right {1,0,1,2} -> (1,2);
    # bottom-left {1,1,.5,.5} -> (1,0); bottom-right {1,2,.5,2} -> (1,2), the first 2.
    expected = np.zeros((3, 3))
    expected[0, 0] = 1.0
    expected[1, 0] = 1.0
    expected[1, 2] = 2.0
    np.testing.assert_array_equal(np.asarray(dx)[0, 0], expected)


@settings(max_examples=10)
@given(data=st.data())
def test_reshape_and_flatten(xpnet_backend, data):
    n = data.draw(st.integers(1, 3))
    x = data.draw(arrays(xpnet_backend, (n, 2, 3, 2)), label="x")
    for layer in (Flatten(), Reshape((3, 4)), Reshape((-1, 2))):
        assert check_gradients(layer.to(xpnet_backend), x).passed


@settings(max_examples=5)
@given(data=st.data())
def test_a_small_cnn_with_a_loss(xpnet_backend, data):
    be = xpnet_backend
    pool = data.draw(st.sampled_from(["max", "avg"]))
    layers = [Reshape((1, 6, 6)), Conv2D(1, 2, 3, padding=1), ReLU(),
              MaxPool2D(2) if pool == "max" else AvgPool2D(2),  # -> (2, 3, 3)
              Conv2D(2, 2, 2, stride=1), Tanh(), Flatten(), Dense(8, 3)]
    model = Sequential(layers, backend=be, seed=data.draw(st.integers(0, 99)))
    n = data.draw(st.integers(1, 3))
    x = data.draw(arrays(be, (n, 36)), label="x")
    y = data.draw(labels(be, n, 3), label="y")
    result = check_gradients(model, x, y, loss=SoftmaxCrossEntropy().to(be))
    assert result.passed


# ------------------------------------------------------------------- backends agree
_CASES = {c.id: c for c in backend_cases()}
_PAIRS = [("numpy-float64", "strict-float64"), ("numpy-float32", "strict-float32"),
          ("numpy-float64", "numpy-float32")]


def _pairs():
    out = []
    for a, b in _PAIRS:
        reason = _CASES[a].skip_reason or _CASES[b].skip_reason
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param((a, b), id=f"{a}-vs-{b}", marks=marks))
    out.append(pytest.param(("numpy-float64", "generic-numpy"), id="numpy-vs-generic-numpy"))
    return out


@pytest.fixture(scope="module", params=_pairs())
def pair(request):
    a, b = request.param
    make = {**{k: c.make for k, c in _CASES.items()}, "generic-numpy": lambda: GenericNumpy(
        "float64")}
    return make[a](), make[b]()


@settings(max_examples=10)
@given(data=st.data())
def test_conv_and_pooling_agree_across_backends(pair, data):
    a, b = pair
    conv = data.draw(conv_layers("numpy"), label="conv")
    shape = data.draw(image_shapes(conv.in_channels, conv.kernel_size, conv.padding,
                                   max_size=7), label="shape")
    out = conv.output_shape(shape[1:])
    assert out[1] is not None and out[2] is not None
    pool = data.draw(pool_layers("numpy", max_kernel=min(out[1], out[2], 3)), label="pool")
    model = Sequential([conv, ReLU(), pool, Flatten()], backend="numpy", dtype="float64")
    x = data.draw(arrays("numpy", shape), label="x")
    result = assert_backends_agree(model, x, a, b)
    assert "output" in result.errors
