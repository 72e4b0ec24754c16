"""Every loss's gradient with respect to its predictions, against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xpnet.losses import MSE, BinaryCrossEntropy, SoftmaxCrossEntropy
from xpnet.testing import check_gradients
from xpnet.testing.strategies import (
    arrays,
    batch_sizes,
    binary_targets,
    labels,
    probabilities,
    shapes,
)


@given(data=st.data())
def test_mse(xpnet_backend, data):
    n, k = data.draw(shapes(), label="shape")
    pred = data.draw(arrays(xpnet_backend, (n, k)), label="pred")
    target = data.draw(arrays(xpnet_backend, (n, k)), label="target")
    assert check_gradients(MSE().to(xpnet_backend), pred, target).passed


@given(data=st.data())
def test_mse_single_output_with_flat_target(xpnet_backend, data):
    n = data.draw(batch_sizes(), label="n")
    pred = data.draw(arrays(xpnet_backend, (n, 1)), label="pred")
    target = data.draw(arrays(xpnet_backend, (n,)), label="target")
    assert check_gradients(MSE().to(xpnet_backend), pred, target).passed


@given(data=st.data(), soft=st.booleans())
def test_softmax_cross_entropy(xpnet_backend, data, soft):
    n = data.draw(batch_sizes(), label="n")
    c = data.draw(st.integers(2, 6), label="classes")
    logits = data.draw(arrays(xpnet_backend, (n, c), bound=8.0), label="logits")
    make = probabilities if soft else labels
    target = data.draw(make(xpnet_backend, n, c), label="target")
    assert check_gradients(SoftmaxCrossEntropy().to(xpnet_backend), logits, target).passed


@pytest.mark.parametrize("classes", [3, 7])
@pytest.mark.parametrize("tie", [0.0, -2.5, 3.0])
def test_softmax_cross_entropy_at_tied_logits_with_rounded_probabilities(
    xpnet_backend, classes, tie
):
    """Found by Hypothesis: float32 probability rows need not sum to exactly 1 (three float32
    1/3 sum to 1 + 3e-8), and the loss then moved with max(logits): at tied logits, where the
    true gradient p - t is ~1e-8, finite differences crossed that kink and disagreed."""
    logits = np.full((1, classes), tie)
    target = np.full((1, classes), 1.0 / classes)
    assert check_gradients(SoftmaxCrossEntropy().to(xpnet_backend), logits, target).passed


@given(data=st.data())
def test_binary_cross_entropy_on_probabilities(xpnet_backend, data):
    n, k = data.draw(shapes(), label="shape")
    # away from the clip at eps and 1 - eps, where the loss is flat (and not differentiable)
    p = hnp.arrays(np.float64, (n, k), elements=st.floats(0.03125, 0.96875, width=32))
    pred = xpnet_backend.asarray(data.draw(p, label="pred"), dtype=xpnet_backend.dtype)
    target = data.draw(binary_targets(xpnet_backend, (n, k)), label="target")
    assert check_gradients(BinaryCrossEntropy().to(xpnet_backend), pred, target).passed


@given(data=st.data())
def test_binary_cross_entropy_on_logits(xpnet_backend, data):
    n, k = data.draw(shapes(), label="shape")
    pred = data.draw(arrays(xpnet_backend, (n, k), bound=10.0), label="logits")
    target = data.draw(binary_targets(xpnet_backend, (n, k)), label="target")
    loss = BinaryCrossEntropy(from_logits=True).to(xpnet_backend)
    assert check_gradients(loss, pred, target).passed
