"""Dense: shapes, hand-computed forward/backward, initializer statistics, validation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import xpnet
from xpnet.layers import Dense

aas = pytest.importorskip("array_api_strict")


def _small(dtype="float64", bias=True):
    layer = Dense(2, 3, bias=bias, dtype=dtype)
    layer.params["W"][...] = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -3.0]])
    if bias:
        layer.params["b"][...] = np.array([0.1, 0.2, 0.3])
    return layer


def test_importable_from_the_package():
    assert xpnet.layers.Dense is Dense
    assert xpnet.Sequential is xpnet.model.Sequential


def test_forward_by_hand():
    layer = _small()
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    y = layer.forward(x)
    # row 0: [1 + 4, -1 + 0, .5 - 6] + b; row 1: [-1 + 1, 1 + 0, -.5 - 1.5] + b
    np.testing.assert_allclose(y, [[5.1, -0.8, -5.2], [0.1, 1.2, -1.7]], rtol=1e-12)
    assert y.shape == (2, 3)


def test_backward_by_hand_and_grads_written_in_place():
    layer = _small()
    gW, gb = layer.grads["W"], layer.grads["b"]
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    layer.forward(x, training=True)
    dy = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 1.0]])
    dx = layer.backward(dy)
    # dx = dy W^T
    np.testing.assert_allclose(dx, [[2.0, -4.0], [2.0, -2.0]], rtol=1e-12)
    # dW = x^T dy, db = sum over rows
    np.testing.assert_allclose(layer.grads["W"], [[0.5, 1.0, 1.0], [2.25, -0.5, 4.5]])
    np.testing.assert_allclose(layer.grads["b"], [1.5, -1.0, 3.0])
    assert layer.grads["W"] is gW and layer.grads["b"] is gb
    # a second backward overwrites rather than accumulates
    layer.backward(dy)
    np.testing.assert_allclose(layer.grads["b"], [1.5, -1.0, 3.0])


def test_backward_params_fills_grads_only():
    layer = _small()
    x = np.array([[1.0, 2.0]])
    layer.forward(x)
    assert layer.backward_params(np.array([[1.0, 1.0, 1.0]])) is None
    np.testing.assert_allclose(layer.grads["W"], [[1, 1, 1], [2, 2, 2]])


def test_without_bias():
    layer = _small(bias=False)
    assert set(layer.params) == set(layer.grads) == {"W"}
    y = layer.forward(np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(y, [[5.0, -1.0, -5.5]])
    layer.backward(np.ones((1, 3)))
    assert set(layer.grads) == {"W"}


def test_params_and_grads_have_matching_keys_shapes_and_dtypes():
    for dtype in ("float32", "float64"):
        layer = Dense(4, 5, dtype=dtype)
        assert set(layer.params) == set(layer.grads) == {"W", "b"}
        assert layer.params["W"].shape == (4, 5) and layer.params["b"].shape == (5,)
        for k in layer.params:
            assert layer.grads[k].shape == layer.params[k].shape
            assert layer.params[k].dtype == layer.grads[k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(layer.params["b"], 0.0)


def test_float32_stays_float32_through_forward_and_backward():
    layer = Dense(3, 2, rng=0)
    x = np.ones((4, 3), dtype=np.float32)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.grads["W"].dtype == np.float32


def test_runs_on_array_api_strict():
    be = xpnet.get_backend(aas, "float64")
    ref = _small()
    layer = Dense(2, 3, backend=be)
    layer.params["W"] = be.asarray(ref.params["W"])
    layer.params["b"] = be.asarray(ref.params["b"])
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    y = layer.forward(be.asarray(x))
    np.testing.assert_allclose(be.to_host(y), ref.forward(x), rtol=1e-12)


# -------------------------------------------------------------------- initializer stats
N_IN, N_OUT = 800, 500  # 400k weights: sample std within ~0.2% of the truth


@pytest.mark.parametrize(
    ("init", "std", "bound"),
    [
        ("he_normal", math.sqrt(2 / N_IN), None),
        ("normal", math.sqrt(1 / N_IN), None),
        ("glorot_uniform", math.sqrt(6 / (N_IN + N_OUT)) / math.sqrt(3),
         math.sqrt(6 / (N_IN + N_OUT))),
        ("uniform", 1 / math.sqrt(N_IN) / math.sqrt(3), 1 / math.sqrt(N_IN)),
    ],
)
def test_initializer_statistics(init, std, bound):
    w = Dense(N_IN, N_OUT, init=init, rng=3, dtype="float64").params["W"]
    assert abs(w.mean()) < 0.01 * std
    assert w.std() == pytest.approx(std, rel=0.01)
    if bound is None:  # normal: about 0.27% beyond 3 sigma, nothing absurd
        assert np.mean(np.abs(w) > 3 * std) == pytest.approx(0.0027, abs=0.001)
    else:  # uniform on (-bound, bound): fills it, never leaves it
        assert np.abs(w).max() <= bound
        assert w.max() > 0.999 * bound and w.min() < -0.999 * bound


def test_init_aliases_and_seeded_generator():
    assert Dense(3, 2, init="he").init == "he_normal"
    assert Dense(3, 2, init="xavier").init == "glorot_uniform"
    a = Dense(3, 2, rng=np.random.default_rng(4)).params["W"]
    b = Dense(3, 2, rng=4).params["W"]
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "exc", "quoted"),
    [
        (lambda: Dense(0, 3), ValueError, "in_features must be a positive integer, got 0"),
        (lambda: Dense(3, -2), ValueError, "out_features must be a positive integer, got -2"),
        (lambda: Dense(3.0, 2), TypeError, "in_features must be a positive integer, got 3.0"),
        (lambda: Dense(3, 2, init="bogus"), ValueError, "'bogus'"),
        (lambda: Dense(3, 2, bias="yes"), TypeError, "'yes'"),
        (lambda: Dense(3, 2, rng=-1), ValueError, "-1"),
        (lambda: Dense(3, 2, rng="seed"), TypeError, "'seed'"),
    ],
)
def test_constructor_errors_quote_the_value(make, exc, quoted):
    with pytest.raises(exc, match=re.escape(quoted)):
        make()


def test_wrong_width_names_the_layer_and_expected_shape():
    layer = Dense(784, 10, rng=0)
    with pytest.raises(ValueError, match=re.escape("expected input of shape (batch, 784)")) as e:
        layer.forward(np.zeros((2, 785), dtype=np.float32))
    assert "Dense" in str(e.value) and "(2, 785)" in str(e.value)


def test_wrong_dtype_is_refused_not_promoted():
    layer = Dense(3, 2, rng=0)
    with pytest.raises(TypeError, match="float32"):
        layer.forward(np.zeros((2, 3), dtype=np.float64))


def test_non_array_input_is_refused():
    with pytest.raises(TypeError, match="array"):
        Dense(3, 2, rng=0).forward([[1.0, 2.0, 3.0]])


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        Dense(3, 2).backward(np.zeros((1, 2), dtype=np.float32))
