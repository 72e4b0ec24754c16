"""BatchNorm1d / BatchNorm2d backward passes against float64 finite differences on every
backend (training: the full backward through the batch statistics; inference: the affine one),
and NumPy against array-api-strict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from xpnet import Sequential, get_backend
from xpnet.layers import BatchNorm1d, BatchNorm2d, Dense
from xpnet.losses import MSE
from xpnet.testing import assert_backends_agree, backend_cases, check_gradients
from xpnet.testing.strategies import host_arrays

_CASES = {c.id: c for c in backend_cases()}


def _shape(data: st.DataObject, two_d: bool, training: bool) -> tuple[int, ...]:
    if two_d:
        shape = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
                                    st.integers(1, 3)), label="shape")
        m = shape[0] * shape[2] * shape[3]
    else:
        shape = data.draw(st.tuples(st.integers(2, 6), st.integers(1, 4)), label="shape")
        m = shape[0]
    assume(not training or m >= 2)
    return shape


def _layer(data: st.DataObject, be, two_d: bool, channels: int, affine: bool = True):
    cls, be = (BatchNorm2d if two_d else BatchNorm1d), get_backend(be)
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.1]), label="eps")
    layer = cls(channels, eps=eps, affine=affine).to(be)
    if affine:
        for key in ("gamma", "beta"):
            value = data.draw(host_arrays((channels,), 2.0), label=key)
            layer.params[key] = be.asarray(value, dtype=be.dtype)
    mean = data.draw(host_arrays((channels,), 2.0), label="running_mean")
    var = data.draw(st.lists(st.floats(0.25, 4.0, width=32), min_size=channels,
                             max_size=channels), label="running_var")
    layer.buffers["running_mean"] = be.asarray(mean, dtype=be.dtype)
    layer.buffers["running_var"] = be.asarray(np.array(var), dtype=be.dtype)
    return layer


def _input(data: st.DataObject, shape: tuple[int, ...], training: bool) -> np.ndarray:
    x = data.draw(host_arrays(shape), label="x")
    if training:  # a channel of (nearly) equal values is ill-conditioned: 1/sqrt(var + eps)
        axes = (0, *range(2, len(shape)))
        assume(float(x.var(axis=axes).min()) > 0.05)
    return x


@given(data=st.data(), two_d=st.booleans(), training=st.booleans(), affine=st.booleans())
def test_batchnorm(xpnet_backend, data, two_d, training, affine):
    shape = _shape(data, two_d, training)
    layer = _layer(data, xpnet_backend, two_d, shape[1], affine)
    x = _input(data, shape, training)
    result = check_gradients(layer, x, training=training)
    assert {c.name for c in result.checks} == {"input", *layer.params}


@given(data=st.data(), training=st.booleans())
def test_batchnorm_inside_a_model_with_a_loss(xpnet_backend, data, training):
    """Dense -> BatchNorm1d -> Dense under MSE: the gradients reaching the first Dense pass
    through the batch statistics."""
    n = data.draw(st.integers(2, 5), label="n")
    bn = _layer(data, xpnet_backend, False, 4)
    model = Sequential([Dense(3, 4, rng=0), bn, Dense(4, 2, rng=1)], backend=xpnet_backend)
    x = data.draw(host_arrays((n, 3)), label="x")
    h = x @ np.asarray(xpnet_backend.to_host(model.layers[0].params["W"]), dtype=np.float64)
    assume(not training or float(h.var(axis=0).min()) > 0.05)
    target = data.draw(host_arrays((n, 2)), label="target")
    assert check_gradients(model, x, target, loss=MSE(), training=training).passed


@pytest.mark.parametrize(
    "a, b",
    [("numpy-float64", "strict-float64"), ("numpy-float32", "strict-float32"),
     ("numpy-float64", "numpy-float32")],
)
@given(data=st.data(), two_d=st.booleans(), training=st.booleans())
def test_numpy_and_array_api_strict_agree(a, b, data, two_d, training):
    reason = _CASES[a].skip_reason or _CASES[b].skip_reason
    if reason:
        pytest.skip(reason)
    bea, beb = _CASES[a].make(), _CASES[b].make()
    shape = _shape(data, two_d, training)
    layer = _layer(data, "numpy", two_d, shape[1])
    x = _input(data, shape, training)
    result = assert_backends_agree(layer, x, bea, beb, training=training)
    assert {"output", "d input", "d gamma", "d beta"} <= set(result.errors)
