"""Softmax layer: values, stability for large logits, JVP backward against the Jacobian."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.layers import Softmax

aas = pytest.importorskip("array_api_strict")


def test_values_by_hand():
    y = Softmax().forward(np.array([[0.0, math.log(2.0), math.log(5.0)]]))
    # exp: 1, 2, 5 over 8
    np.testing.assert_allclose(y, [[1 / 8, 2 / 8, 5 / 8]], rtol=1e-14)
    assert Softmax().params == {} and Softmax().grads == {}


def test_rows_sum_to_one_and_shift_invariance():
    x = np.random.default_rng(0).normal(size=(6, 5))
    y = Softmax().forward(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(Softmax().forward(x + 100.0), y, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_for_huge_logits(dtype):
    x = np.array([[1e4, 0.0, -1e4], [1000.0, 1000.0, 999.0], [-1e4, -1e4, -1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = Softmax().forward(x)
    assert y.dtype == dtype and np.isfinite(y).all()
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0])
    e = math.exp(-1.0)
    np.testing.assert_allclose(y[1], [1 / (2 + e), 1 / (2 + e), e / (2 + e)], rtol=1e-6)
    np.testing.assert_allclose(y[2], [1 / 3] * 3, rtol=1e-6)


def test_backward_is_the_jacobian_vector_product():
    x = np.array([[0.3, -1.2, 2.0, 0.5], [1.0, 1.0, -3.0, 0.0]])
    dy = np.array([[1.0, -2.0, 0.5, 0.25], [0.0, 3.0, -1.0, 2.0]])
    layer = Softmax()
    y = layer.forward(x)
    dx = layer.backward(dy)
    for n in range(x.shape[0]):
        # explicit Jacobian J_ij = y_i (delta_ij - y_j); dx = J^T dy (J is symmetric)
        jac = np.diag(y[n]) - np.outer(y[n], y[n])
        np.testing.assert_allclose(dx[n], jac.T @ dy[n], rtol=1e-12, atol=1e-15)
    # the output lies on the simplex: the gradient never moves the row sum
    np.testing.assert_allclose(dx.sum(axis=1), 0.0, atol=1e-15)


def test_backward_matches_central_differences():
    rng = np.random.default_rng(1)
    x, dy = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    layer = Softmax()
    layer.forward(x)
    dx = layer.backward(dy)
    h, num = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        num[idx] = np.sum(dy * (Softmax().forward(xp) - Softmax().forward(xm))) / (2 * h)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-9)


def test_float32_stays_float32():
    layer = Softmax()
    x = np.ones((2, 3), dtype=np.float32)
    assert layer.forward(x).dtype == np.float32
    assert layer.backward(np.ones_like(x)).dtype == np.float32


def test_same_on_array_api_strict():
    be = xpnet.get_backend(aas, "float64")
    x = np.array([[0.3, -1.2, 2.0], [5.0, 1.0, 0.0]])
    dy = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    ref, layer = Softmax(), Softmax().to(be)
    y = layer.forward(be.asarray(x))
    np.testing.assert_allclose(be.to_host(y), ref.forward(x), rtol=1e-14)
    dx = layer.backward(be.asarray(dy))
    np.testing.assert_allclose(be.to_host(dx), ref.backward(dy), rtol=1e-14)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        Softmax().backward(np.ones((1, 3)))
