"""Optimizers: a couple of hand-computed steps each, weight decay, dtypes and where state lives.

(Property tests of the update rules against a reference are in test_optim_rules.py.)
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import xpnet
from xpnet import Sequential
from xpnet.layers import Dense, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import SGD, Adam, CosineDecay, InverseTimeDecay, Momentum, StepDecay

aas = pytest.importorskip("array_api_strict")


def _steps(opt, grads, p0=(1.0, -2.0), dtype=np.float64):
    p = np.array(p0, dtype=dtype)
    for g in grads:
        opt.step([("p", p, np.array(g, dtype=dtype))])
    return p


# --------------------------------------------------------------------------------- SGD
def test_sgd_two_steps():
    p = _steps(SGD(0.1), [[0.5, -1.0], [1.0, 0.0]])
    # 1 - .05 - .1 = .85; -2 + .1 - 0 = -1.9
    np.testing.assert_allclose(p, [0.85, -1.9], rtol=1e-15)


def test_momentum_two_steps():
    opt = Momentum(0.1, momentum=0.9)
    assert isinstance(opt, SGD) and opt.momentum == 0.9
    p = _steps(opt, [[1.0, 2.0], [1.0, -1.0]])
    # v1 = g1 = [1, 2]; p1 = [.9, -2.2]
    # v2 = .9 v1 + g2 = [1.9, .8]; p2 = p1 - .1 v2 = [.71, -2.28]
    np.testing.assert_allclose(opt.state["p"]["v"], [1.9, 0.8], rtol=1e-15)
    np.testing.assert_allclose(p, [0.71, -2.28], rtol=1e-14)


def test_nesterov_two_steps():
    opt = SGD(0.1, momentum=0.5, nesterov=True)
    p = _steps(opt, [[1.0, 2.0], [1.0, -1.0]])
    # v1 = [1, 2]; u1 = g1 + .5 v1 = [1.5, 3]; p1 = [.85, -2.3]
    # v2 = .5 v1 + g2 = [1.5, 0]; u2 = g2 + .5 v2 = [1.75, -1]; p2 = [.675, -2.2]
    np.testing.assert_allclose(opt.state["p"]["v"], [1.5, 0.0], rtol=1e-15)
    np.testing.assert_allclose(p, [0.675, -2.2], rtol=1e-14)


def test_sgd_weight_decay_is_an_l2_penalty_on_the_gradient():
    p = _steps(SGD(0.1, weight_decay=0.5), [[0.0, 1.0]])
    # g' = g + .5 p = [.5, 0]; p = [1 - .05, -2 - 0]
    np.testing.assert_allclose(p, [0.95, -2.0], rtol=1e-15)


def test_sgd_momentum_with_weight_decay():
    opt = SGD(0.1, momentum=0.9, weight_decay=0.1)
    p = _steps(opt, [[0.0, 0.0], [0.0, 0.0]], p0=(1.0, 2.0))
    # step 1: g' = .1 p = [.1, .2] = v1; p1 = [.99, 1.98]
    # step 2: g' = [.099, .198]; v2 = .9 v1 + g' = [.189, .378]; p2 = p1 - .1 v2
    np.testing.assert_allclose(p, [0.99 - 0.0189, 1.98 - 0.0378], rtol=1e-14)


# -------------------------------------------------------------------------------- Adam
def test_adam_two_steps_by_hand():
    opt = Adam(0.1, beta1=0.8, beta2=0.99, eps=1e-8)
    assert (opt.beta1, opt.beta2, opt.eps) == (0.8, 0.99, 1e-8)
    p = _steps(opt, [[0.5], [-1.0]], p0=(1.0,))
    # t=1: m = .2 * .5 = .1; v = .01 * .25 = .0025; m_hat = .5, v_hat = .25: p = 1 - .1 = .9
    # t=2: m = .8 * .1 + .2 * -1 = -.12; v = .99 * .0025 + .01 * 1 = .012475
    #      m_hat = -.12 / (1 - .64) = -1/3; v_hat = .012475 / (1 - .9801) = .012475 / .0199
    m_hat, v_hat = -0.12 / 0.36, 0.012475 / 0.0199
    p1 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8)  # .9, less eps's share
    expected = p1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    assert expected == pytest.approx(0.94210, abs=1e-5)  # the arithmetic above, evaluated
    np.testing.assert_allclose(p, [expected], rtol=1e-13)
    np.testing.assert_allclose(opt.state["p"]["m"], [-0.12], rtol=1e-13)
    np.testing.assert_allclose(opt.state["p"]["v"], [0.012475], rtol=1e-13)
    assert opt.t == 2


def test_adam_first_step_moves_lr_times_sign():
    # bias correction: m_hat = g and v_hat = g^2 at t = 1, whatever beta1 and beta2
    for beta1, beta2 in ((0.9, 0.999), (0.5, 0.6), (0.0, 0.0)):
        p = _steps(Adam(0.01, beta1=beta1, beta2=beta2), [[3.0, -0.02]])
        np.testing.assert_allclose(p, [0.99, -1.99], rtol=1e-6)


def test_adam_weight_decay_is_decoupled():
    p = _steps(Adam(0.1, weight_decay=0.5), [[1.0, 1.0]], p0=(2.0, -2.0))
    # p <- p (1 - .1 * .5) = [1.9, -1.9], then the Adam step of -lr sign(g)
    np.testing.assert_allclose(p, [1.8, -2.0], rtol=1e-7)


def test_adam_uses_the_scheduled_lr():
    opt = Adam(0.1, schedule=InverseTimeDecay(1.0))
    opt.set_epoch(1)
    assert opt.lr == 0.05
    np.testing.assert_allclose(_steps(opt, [[1.0, 1.0]]), [0.95, -2.05], rtol=1e-7)


# ------------------------------------------------------------------- dtypes and backends
OPTIMIZERS = [
    lambda: SGD(0.1),
    lambda: SGD(0.1, weight_decay=0.01, schedule=StepDecay(1, 0.5)),
    lambda: SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: Adam(0.01, beta1=0.8, weight_decay=0.01, schedule=InverseTimeDecay(0.3)),
    lambda: Adam(0.01, schedule=CosineDecay(5, min_lr=1e-4)),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_survive_steps(make, dtype):
    # NumPy 2 promotion trap: float32 * np.float64 is float64. Params and state stay put.
    opt = make()
    rng = np.random.default_rng(0)
    p = rng.normal(size=(4, 3)).astype(dtype)
    for epoch in range(3):
        opt.set_epoch(epoch)
        for _ in range(2):
            opt.step([("w", p, rng.normal(size=(4, 3)).astype(dtype))])
    assert p.dtype == dtype
    for arr in opt.state.get("w", {}).values():
        assert arr.dtype == dtype and arr.shape == (4, 3)
    assert isinstance(opt.lr, float)
    assert opt.t == 6


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_state_lives_on_the_parameters_backend(make):
    be = xpnet.get_backend(aas, "float32")
    model = Sequential([Dense(3, 4), ReLU(), Dense(4, 2)], backend=be, seed=0)
    model.compile(SoftmaxCrossEntropy(), make())
    x = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)
    model.fit(x, (x[:, 0] > 0).astype(np.int64), epochs=2, batch_size=8, seed=0)
    opt = model.optimizer
    assert opt is not None and opt.backend is be and opt.t == 4
    for name, p in model.params.items():
        assert be.is_array(p) and p.dtype == aas.float32
        for arr in opt.state.get(name, {}).values():
            assert be.is_array(arr) and arr.dtype == aas.float32
    # moving the model moves the state too
    model.to("numpy", "float64")
    for slots in opt.state.values():
        for arr in slots.values():
            assert isinstance(arr, np.ndarray) and arr.dtype == np.float64


def test_state_on_another_backend_is_a_clear_error():
    be = xpnet.get_backend(aas, "float64")
    p = be.asarray(np.ones(3))
    opt = Adam(0.1)  # not moved to be: its state would be NumPy arrays
    with pytest.raises(TypeError, match=re.escape("optimizer.to(")):
        opt.step([("p", p, be.asarray(np.ones(3)))])
    np.testing.assert_array_equal(be.to_host(p), 1.0)  # nothing was updated
    opt = Adam(0.1).to(be)
    opt.step([("p", p, be.asarray(np.ones(3)))])
    np.testing.assert_allclose(be.to_host(p), 0.9, rtol=1e-7)
    assert be.is_array(opt.state["p"]["m"])


def test_same_steps_on_numpy_and_array_api_strict():
    be = xpnet.get_backend(aas, "float64")
    grads = [[0.3, -0.7], [1.2, 0.1], [-0.4, 0.4]]
    ref = _steps(Adam(0.05, beta1=0.8, weight_decay=0.1), grads)
    opt = Adam(0.05, beta1=0.8, weight_decay=0.1).to(be)
    p = be.asarray(np.array([1.0, -2.0]))
    for g in grads:
        opt.step([("p", p, be.asarray(np.array(g)))])
    np.testing.assert_allclose(be.to_host(p), ref, rtol=1e-14)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("make", "exc", "quoted"),
    [
        (lambda: SGD(0.0), ValueError, "lr must be > 0.0, got 0.0"),
        (lambda: SGD(-0.1), ValueError, "-0.1"),
        (lambda: SGD("0.1"), TypeError, "'0.1'"),
        (lambda: SGD(0.1, momentum=1.0), ValueError, "momentum must be < 1.0, got 1.0"),
        (lambda: SGD(0.1, nesterov=True), ValueError, "momentum"),
        (lambda: SGD(0.1, momentum=0.9, nesterov=1), TypeError, "1"),
        (lambda: SGD(0.1, weight_decay=-1), ValueError, "-1"),
        (lambda: Adam(beta1=1.0), ValueError, "beta1 must be < 1.0, got 1.0"),
        (lambda: Adam(beta2=-0.5), ValueError, "-0.5"),
        (lambda: Adam(eps=0.0), ValueError, "eps"),
        (lambda: Adam(schedule=0.5), TypeError, "0.5"),
    ],
)
def test_constructor_errors_quote_the_value(make, exc, quoted):
    with pytest.raises(exc, match=re.escape(quoted)):
        make()
