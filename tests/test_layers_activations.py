"""Elementwise activations: values and derivatives by hand, stability, validation."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.layers import LeakyReLU, ReLU, Sigmoid, Tanh

aas = pytest.importorskip("array_api_strict")

X = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])


def test_importable_from_the_package():
    assert xpnet.layers.ReLU is ReLU and xpnet.layers.Tanh is Tanh
    assert xpnet.layers.Sigmoid is Sigmoid and xpnet.layers.LeakyReLU is LeakyReLU


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh()])
def test_no_parameters(layer):
    assert layer.params == {} and layer.grads == {}


def test_relu():
    layer = ReLU()
    y = layer.forward(X)
    np.testing.assert_array_equal(y, [[0, 0, 0, 0.5, 3.0]])
    dx = layer.backward(np.full_like(X, 2.0))
    # subgradient 0 at x = 0
    np.testing.assert_array_equal(dx, [[0, 0, 0, 2.0, 2.0]])


def test_leaky_relu():
    layer = LeakyReLU(0.1)
    y = layer.forward(X)
    np.testing.assert_allclose(y, [[-0.2, -0.05, 0, 0.5, 3.0]], rtol=1e-12)
    dx = layer.backward(np.full_like(X, 2.0))
    np.testing.assert_allclose(dx, [[0.2, 0.2, 0.2, 2.0, 2.0]], rtol=1e-12)
    assert layer.config() == {"slope": 0.1}


def test_leaky_relu_slope_zero_is_relu():
    np.testing.assert_array_equal(LeakyReLU(0.0).forward(X), ReLU().forward(X))


@pytest.mark.parametrize(
    ("slope", "exc", "quoted"),
    [(-1, ValueError, "-1"), (1.0, ValueError, "1.0"), ("0.1", TypeError, "'0.1'"),
     (float("nan"), ValueError, "nan")],
)
def test_leaky_relu_bad_slope_quotes_the_value(slope, exc, quoted):
    with pytest.raises(exc, match=re.escape(quoted)) as info:
        LeakyReLU(slope)
    assert "slope" in str(info.value)


def test_sigmoid_values_and_derivative():
    layer = Sigmoid()
    y = layer.forward(X)
    expected = [1 / (1 + math.exp(-v)) for v in X[0]]
    np.testing.assert_allclose(y[0], expected, rtol=1e-14)
    assert y[0, 2] == 0.5
    dx = layer.backward(np.ones_like(X))
    np.testing.assert_allclose(dx[0], [s * (1 - s) for s in expected], rtol=1e-14)


def test_sigmoid_is_stable_in_float32_for_huge_inputs():
    x = np.array([[-1e4, -1e3, -100.0, -20.0, 0.0, 20.0, 100.0, 1e3, 1e4]], dtype=np.float32)
    layer = Sigmoid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning (overflow, invalid) fails the test
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = layer.forward(x)
            dx = layer.backward(np.ones_like(x))
    assert y.dtype == dx.dtype == np.float32
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert y[0, 0] == 0.0 and y[0, -1] == 1.0 and y[0, 4] == 0.5
    assert (np.diff(y[0]) >= 0).all()
    assert y[0, 3] == pytest.approx(1 - 1 / (1 + math.exp(-20.0)), rel=1e-6)
    assert y[0, 3] > 0  # exp(-20) is representable: not flushed to 0


def test_tanh():
    layer = Tanh()
    y = layer.forward(X)
    np.testing.assert_allclose(y[0], [math.tanh(v) for v in X[0]], rtol=1e-14)
    dx = layer.backward(np.full_like(X, 3.0))
    np.testing.assert_allclose(dx[0], [3 * (1 - math.tanh(v) ** 2) for v in X[0]], rtol=1e-14)


@pytest.mark.parametrize("make", [ReLU, lambda: LeakyReLU(0.2), Sigmoid, Tanh])
def test_float32_in_float32_out(make):
    layer = make()
    x = X.astype(np.float32)
    assert layer.forward(x).dtype == np.float32
    assert layer.backward(np.ones_like(x)).dtype == np.float32


@pytest.mark.parametrize("make", [ReLU, lambda: LeakyReLU(0.2), Sigmoid, Tanh])
def test_same_result_on_array_api_strict(make):
    be = xpnet.get_backend(aas, "float64")
    ref, layer = make(), make().to(be)
    y = layer.forward(be.asarray(X))
    dx = layer.backward(be.asarray(np.full_like(X, 1.5)))
    np.testing.assert_allclose(be.to_host(y), ref.forward(X), rtol=1e-14)
    np.testing.assert_allclose(be.to_host(dx), ref.backward(np.full_like(X, 1.5)), rtol=1e-14)


@pytest.mark.parametrize("make", [ReLU, LeakyReLU, Sigmoid, Tanh])
def test_backward_before_forward(make):
    with pytest.raises(RuntimeError, match="before forward"):
        make().backward(np.ones((1, 2)))
