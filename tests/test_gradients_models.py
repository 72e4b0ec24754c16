"""Random whole ``Sequential`` stacks, with and without a loss on top, pass gradient checks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xpnet.testing import check_gradients
from xpnet.testing.strategies import arrays, problems, sequentials


@given(data=st.data())
def test_random_stack_with_a_loss_in_training_mode(xpnet_backend, data):
    """Dense/activations/Dropout (masks held fixed) with any loss: input and every parameter."""
    prob = data.draw(problems(xpnet_backend), label="problem")
    result = check_gradients(prob.model, prob.x, prob.target, loss=prob.loss, training=True)
    assert {c.name for c in result.checks} >= set(prob.model.params)


@given(data=st.data())
def test_random_stack_jacobian_at_inference(xpnet_backend, data):
    model = data.draw(sequentials(xpnet_backend), label="model")
    n = data.draw(st.integers(1, 4), label="n")
    x = data.draw(arrays(xpnet_backend, (n, model.in_features)), label="x")
    assert check_gradients(model, x).passed


@given(data=st.data())
def test_random_stack_along_random_directions(xpnet_backend, data):
    """The u^T J v mode used for large models, forced on small ones."""
    prob = data.draw(problems(xpnet_backend, max_width=10), label="problem")
    result = check_gradients(prob.model, prob.x, prob.target, loss=prob.loss, training=True,
                             mode="directional", directions=2)
    assert result.mode == "directional" and result.passed
