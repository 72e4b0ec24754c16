"""Every layer's backward pass against float64 finite differences, on every backend."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xpnet.layers import Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnet.testing import check_gradients
from xpnet.testing.strategies import arrays, dense_layers, floats, layers, shapes


@given(data=st.data())
def test_dense(xpnet_backend, data):
    n, k = data.draw(shapes(), label="shape")
    layer = data.draw(dense_layers(xpnet_backend, k), label="layer")
    x = data.draw(arrays(xpnet_backend, (n, k)), label="x")
    result = check_gradients(layer, x)
    assert {c.name for c in result.checks} == {"input", *layer.params}


@given(data=st.data(), cls=st.sampled_from([ReLU, Sigmoid, Tanh, Softmax]))
def test_parameterless_activation(xpnet_backend, data, cls):
    n, k = data.draw(shapes(), label="shape")
    x = data.draw(arrays(xpnet_backend, (n, k), bound=6.0), label="x")
    result = check_gradients(cls().to(xpnet_backend), x)
    assert result.passed and result.checks[0].checked + result.checks[0].skipped > 0


@given(data=st.data(), slope=st.floats(0.0, 0.875, width=32))
def test_leaky_relu(xpnet_backend, data, slope):
    n, k = data.draw(shapes(), label="shape")
    x = data.draw(arrays(xpnet_backend, (n, k)), label="x")
    result = check_gradients(LeakyReLU(slope).to(xpnet_backend), x)
    assert result.passed


@given(data=st.data(), p=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.8]), training=st.booleans())
def test_dropout_with_its_mask_held_fixed(xpnet_backend, data, p, training):
    n, k = data.draw(shapes(), label="shape")
    x = data.draw(arrays(xpnet_backend, (n, k)), label="x")
    result = check_gradients(Dropout(p, seed=0).to(xpnet_backend), x, training=training)
    assert result.passed


@given(data=st.data())
def test_any_single_layer(xpnet_backend, data):
    n, k = data.draw(shapes(), label="shape")
    layer = data.draw(layers(xpnet_backend, k), label="layer")
    x = data.draw(arrays(xpnet_backend, (n, k)), label="x")
    assert check_gradients(layer, x, training=data.draw(st.booleans())).passed


@given(data=st.data(), x=floats(1.0))
def test_relu_kink_is_reported_not_failed(xpnet_backend, data, x):
    """Inputs at or within the step of 0 are non-differentiable points: skipped, listed."""
    import numpy as np

    host = np.array([[0.0, x, 1e-8, -1e-8]])
    layer = data.draw(st.sampled_from([ReLU(), LeakyReLU(0.2)])).to(xpnet_backend)
    result = check_gradients(layer, host)
    assert result.passed
    assert "input[0,0]" in result.kinks and "input[0,2]" in result.kinks
