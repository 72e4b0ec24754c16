"""Sequential as a layer: composition, flat params/grads, moving backends, validation."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnet
from xpnet import Sequential
from xpnet.layers import Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnet.losses import MSE, SoftmaxCrossEntropy
from xpnet.optim import SGD

aas = pytest.importorskip("array_api_strict")


def _net(**kw):
    layers = [Dense(4, 6, rng=0), Tanh(), Dense(6, 5, rng=1), LeakyReLU(0.1), Dense(5, 3, rng=2)]
    return Sequential(layers, **kw)


def test_importable_names():
    assert xpnet.Sequential is Sequential
    assert isinstance(_net(), xpnet.layers.Layer)


def test_forward_is_the_composition_of_the_layers():
    model = _net(dtype="float64")
    x = np.random.default_rng(0).normal(size=(7, 4))
    h = x
    for layer in model.layers:
        h = layer.forward(h)
    np.testing.assert_array_equal(model.forward(x), h)
    np.testing.assert_array_equal(model(x), h)


def test_flat_params_and_grads():
    model = _net()
    assert list(model.params) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert list(model.grads) == list(model.params)
    assert model.params["2.W"] is model.layers[2].params["W"]
    names = [name for name, _, _ in model.parameters()]
    assert names == list(model.params)
    for name, p, g in model.parameters():
        assert g is model.grads[name] and p.shape == g.shape


def test_backward_chains_the_layers_and_fills_grads():
    model = _net(dtype="float64")
    rng = np.random.default_rng(1)
    x, dy = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    model.forward(x, training=True)
    dx = model.backward(dy)
    # the chain rule by hand, layer by layer
    d = dy
    for layer in reversed(model.layers):
        d = layer.backward(d)
    np.testing.assert_allclose(dx, d, rtol=1e-14)
    # and against a finite difference on one weight of the first layer
    w = model.layers[0].params["W"]
    loss = MSE()
    model.forward(x, training=True)
    loss.forward(model.forward(x), np.zeros((5, 3)))
    model.backward(loss.backward())
    analytic = model.grads["0.W"][1, 2]
    h = 1e-6
    w[1, 2] += h
    up = float(loss.forward(model.forward(x), np.zeros((5, 3))))
    w[1, 2] -= 2 * h
    down = float(loss.forward(model.forward(x), np.zeros((5, 3))))
    w[1, 2] += h
    assert analytic == pytest.approx((up - down) / (2 * h), rel=1e-6)


def test_backward_without_dx_fills_the_same_grads():
    model = _net(dtype="float64")
    x, dy = np.ones((2, 4)), np.ones((2, 3))
    model.forward(x, training=True)
    model.backward(dy)
    before = {k: v.copy() for k, v in model.grads.items()}
    model.forward(x, training=True)
    assert model.backward(dy, need_dx=False) is None
    for k, v in model.grads.items():
        np.testing.assert_array_equal(v, before[k])


def test_layers_without_parameters_contribute_no_keys():
    model = Sequential([ReLU(), Sigmoid(), Softmax(), Dropout(0.1)])
    assert model.params == {} and model.grads == {}
    for layer in model.layers:
        assert layer.params == {} and layer.grads == {}


def test_backend_and_dtype():
    model = _net()
    assert model.backend.name == "numpy" and model.backend.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.params.values())
    before = {k: v.astype(np.float64) for k, v in model.params.items()}
    model.to("numpy", "float64")
    assert all(p.dtype == np.float64 for p in model.params.values())
    assert all(layer.backend.dtype_name == "float64" for layer in model.layers)
    be = xpnet.get_backend(aas, "float64")
    model.to(be)
    for k, p in model.params.items():
        assert be.is_array(p)
        np.testing.assert_array_equal(be.to_host(p), before[k])
        assert be.is_array(model.grads[k])
    out = model.forward(be.asarray(np.ones((2, 4))))
    assert be.is_array(out) and tuple(out.shape) == (2, 3)


def test_compile_moves_loss_and_optimizer_to_the_model_backend():
    be = xpnet.get_backend(aas)
    model = _net(backend=be)
    loss, opt = SoftmaxCrossEntropy(), SGD(0.1)
    assert model.compile(loss, opt) is model
    assert model.loss is loss and loss.backend is be
    assert model.optimizer is opt and opt.backend is be
    model2 = _net().compile("mse")
    assert isinstance(model2.loss, MSE) and model2.optimizer is None


def test_config_and_repr():
    model = _net()
    kinds = [spec["type"] for spec in model.config()["layers"]]
    assert kinds == ["Dense", "Tanh", "Dense", "LeakyReLU", "Dense"]
    assert model.config()["layers"][3]["config"] == {"slope": 0.1}
    assert model.in_features == 4 and model.out_features == 3
    assert "Dense(in_features=4" in repr(model) and "float32" in repr(model)


def test_layers_get_names_with_their_position():
    model = _net()
    assert model.layers[0].name == "layer 0 (Dense 4 -> 6)"
    assert model.layers[1].name == "layer 1 (Tanh)"


# ------------------------------------------------------------------------------ errors
def test_non_layers_are_refused_with_their_position():
    with pytest.raises(TypeError, match=re.escape("layers[1] must be an xpnet layer, got 'relu'")):
        Sequential([Dense(2, 3), "relu"])
    with pytest.raises(TypeError, match="list of xpnet layers"):
        Sequential(Dense(2, 3))
    with pytest.raises(TypeError, match="list of xpnet layers"):
        Sequential(42)


def test_mismatched_dense_widths():
    with pytest.raises(ValueError) as info:
        Sequential([Dense(784, 400), ReLU(), Dense(300, 10)])
    msg = str(info.value)
    assert "layer 2 (Dense 300 -> 10)" in msg and "in_features=300" in msg and "400" in msg


def test_the_same_layer_twice_is_refused():
    relu = ReLU()
    with pytest.raises(ValueError, match="same object"):
        Sequential([Dense(2, 2), relu, Dense(2, 2), relu])


@pytest.mark.parametrize(
    ("seed", "exc"), [(-1, ValueError), ("1", TypeError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match=re.escape(repr(seed))):
        Sequential([Dense(2, 2)], seed=seed)


def test_bad_compile_arguments():
    model = _net()
    with pytest.raises(ValueError, match="'hinge'"):
        model.compile("hinge")
    with pytest.raises(TypeError, match="Loss"):
        model.compile(object())
    with pytest.raises(TypeError, match="Optimizer"):
        model.compile(MSE(), "sgd")


def test_params_cannot_be_assigned_on_the_model():
    model = _net()
    with pytest.raises(AttributeError):
        model.params = {"0.W": np.zeros((4, 6))}


def test_dtype_none_keeps_the_layers_dtype_and_refuses_a_mix():
    from xpnet.layers import Tanh

    model = Sequential([Dense(6, 5, dtype="float64"), Tanh()])
    assert model.backend.dtype_name == "float64"
    assert model.layers[0].params["W"].dtype == np.float64
    with pytest.raises(ValueError, match=r"layers\[0\] is float64 and layers\[1\] is float32"):
        Sequential([Dense(6, 5, dtype="float64"), Dense(5, 2)])
    mixed = Sequential([Dense(6, 5, dtype="float64"), Dense(5, 2)], dtype="float32")
    assert all(p.dtype == np.float32 for p in mixed.params.values())


def test_summary_lists_layers_shapes_and_parameter_counts():
    model = Sequential([Dense(784, 400), ReLU(), Dense(400, 10)])
    text = model.summary()
    assert "layer 0 (Dense 784 -> 400)" in text and "(batch, 400)" in text
    assert "314,000" in text and "4,010" in text and "318,010 parameters" in text
    assert "(batch, 784)" in text.splitlines()[-1]
