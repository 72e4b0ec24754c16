"""Optimizer steps follow their update rules: hand-computed golden values, and an independent
textbook reference (plain Python floats, Adam's bias corrections applied explicitly rather
than folded into the step size as xpnet does) under Hypothesis, on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xpnet.optim import SGD, Adam, Constant, CosineDecay, InverseTimeDecay, StepDecay

P0 = [1.0, -2.0]
G = [0.5, 0.25]


def _run(opt, backend, grads, p0=P0):
    opt.to(backend)
    p = backend.asarray(np.array(p0, dtype=backend.dtype_name), dtype=backend.dtype)
    for g in grads:
        opt.step([("p", p, backend.asarray(np.array(g, dtype=backend.dtype_name)))])
    assert p.dtype == backend.dtype
    return backend.to_host(p).astype(np.float64)


def _tol(backend):
    return 1e-12 if backend.dtype_name == "float64" else 1e-6


# ---------------------------------------------------------------- golden values, by hand
@pytest.mark.parametrize(
    ("make", "steps", "expected"),
    [
        # p - lr g = [1 - .05, -2 - .025]
        (lambda: SGD(0.1), 1, [0.95, -2.025]),
        # v1 = g, v2 = .9 g + g = 1.9 g: p = p0 - .1 (g + 1.9 g) = p0 - .29 g
        (lambda: SGD(0.1, momentum=0.9), 2, [0.855, -2.0725]),
        # Nesterov step 1: v = g, u = g + .9 v = 1.9 g: p0 - .19 g
        (lambda: SGD(0.1, momentum=0.9, nesterov=True), 1, [0.905, -2.0475]),
        # g' = g + .1 p0 = [.6, .05]: p0 - .1 g'
        (lambda: SGD(0.1, weight_decay=0.1), 1, [0.94, -2.005]),
        # a constant gradient: m_hat = g, v_hat = g^2 each step: p moves lr * sign(g) per step
        (lambda: Adam(0.1), 1, [0.9, -2.1]),
        (lambda: Adam(0.1), 2, [0.8, -2.2]),
        (lambda: Adam(0.1, beta1=0.5, beta2=0.75), 3, [0.7, -2.3]),
        # decoupled decay first: p0 (1 - .1 * .5) = [.95, -1.9], then - .1 sign(g)
        (lambda: Adam(0.1, weight_decay=0.5), 1, [0.85, -2.0]),
    ],
    ids=["sgd", "momentum-2-steps", "nesterov", "sgd-l2", "adam-1", "adam-2", "adam-betas",
         "adamw"],
)
def test_golden_values(xpnet_backend, make, steps, expected):
    got = _run(make(), xpnet_backend, [G] * steps)
    # Adam's eps (1e-8 against |g| >= .25) shortens each step by lr eps / |g| <= 4e-9
    np.testing.assert_allclose(got, expected, rtol=0, atol=max(_tol(xpnet_backend) * 4, 2e-8))


@pytest.mark.parametrize(
    ("schedule", "lrs"),
    [
        (Constant(), [0.1, 0.1, 0.1, 0.1, 0.1]),
        (InverseTimeDecay(0.5), [0.1, 0.1 / 1.5, 0.05, 0.1 / 2.5, 1 / 30]),
        (StepDecay(2, 0.1), [0.1, 0.1, 0.01, 0.01, 0.001]),
        (CosineDecay(4, min_lr=0.02), [0.1, 0.02 + 0.04 * (1 + math.sqrt(0.5)), 0.06,
                                       0.02 + 0.04 * (1 - math.sqrt(0.5)), 0.02]),
    ],
)
def test_schedules(schedule, lrs):
    opt = SGD(0.1, schedule=schedule)
    got = []
    for epoch in range(5):
        opt.set_epoch(epoch)
        got.append(opt.lr)
    np.testing.assert_allclose(got, lrs, rtol=1e-12)


# ---------------------------------------------------- an independent reference implementation
def ref_sgd(p, grads, lr, momentum, nesterov, wd):
    p, v = list(p), [0.0] * len(p)
    for g in grads:
        for i in range(len(p)):
            gi = g[i] + wd * p[i]
            if momentum == 0.0:
                p[i] -= lr * gi
                continue
            v[i] = momentum * v[i] + gi
            p[i] -= lr * (gi + momentum * v[i] if nesterov else v[i])
    return p


def ref_adam(p, grads, lr, b1, b2, eps, wd):
    p, m, v = list(p), [0.0] * len(p), [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        for i in range(len(p)):
            p[i] -= lr * wd * p[i]
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            p[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return p


_vals = st.floats(-2.0, 2.0, width=32, allow_subnormal=False)
_vec = st.lists(_vals, min_size=1, max_size=6)


@st.composite
def _trajectories(draw):
    p0 = draw(_vec)
    steps = draw(st.integers(1, 5))
    grads = [draw(st.lists(_vals, min_size=len(p0), max_size=len(p0))) for _ in range(steps)]
    return p0, grads


@given(traj=_trajectories(), lr=st.sampled_from([0.001, 0.01, 0.1]),
       momentum=st.sampled_from([0.0, 0.5, 0.9]), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 0.01, 0.1]))
def test_sgd_matches_reference(xpnet_backend, traj, lr, momentum, nesterov, wd):
    p0, grads = traj
    nesterov = nesterov and momentum > 0
    got = _run(SGD(lr, momentum=momentum, nesterov=nesterov, weight_decay=wd), xpnet_backend,
               grads, p0)
    want = ref_sgd(p0, grads, lr, momentum, nesterov, wd)
    np.testing.assert_allclose(got, want, rtol=_tol(xpnet_backend), atol=_tol(xpnet_backend))


@given(traj=_trajectories(), lr=st.sampled_from([0.001, 0.01, 0.1]),
       b1=st.sampled_from([0.0, 0.5, 0.9]), b2=st.sampled_from([0.9, 0.99, 0.999]),
       eps=st.sampled_from([1e-8, 1e-3]), wd=st.sampled_from([0.0, 0.01]))
def test_adam_matches_reference(xpnet_backend, traj, lr, b1, b2, eps, wd):
    p0, grads = traj
    got = _run(Adam(lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd), xpnet_backend, grads, p0)
    want = ref_adam(p0, grads, lr, b1, b2, eps, wd)
    # m / (sqrt(v) + eps) is ill-conditioned where g is 0 or tiny: the tolerance is in units of
    # lr (one step moves p by about lr), times the steps taken.
    tol = (1e-10 if xpnet_backend.dtype_name == "float64" else 1e-4) * lr * len(grads)
    np.testing.assert_allclose(got, want, rtol=_tol(xpnet_backend), atol=tol)
