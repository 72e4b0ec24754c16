"""Fusion rules as data: the planner, and a user's own layers and rule added without touching
xpnet (trained, saved and loaded), on a backend of the user's own that plans fusions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnet
from xpnet.backends import NumpyBackend
from xpnet.fusion import (
    FUSION_RULES,
    FusedStep,
    FusionRule,
    plan_fusions,
    register_fusion,
    unregister_fusion,
)
from xpnet.layers import Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU, Tanh
from xpnet.losses import MSE
from xpnet.optim import SGD
from xpnet.testing import check_gradients


# ------------------------------------------------------------------- a user's own layers
class Scale(Layer):
    """``y = x * w`` per feature; ``dw = sum_n x dy``, ``dx = dy * w``. Shapes (N, F) -> (N, F)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.params["w"] = self.backend.asarray(np.ones(features))
        self.grads["w"] = self.backend.zeros((features,))
        self.x: Any = None

    def reset_parameters(self, rng: np.random.Generator) -> None:
        self.params["w"] = self.backend.asarray(rng.uniform(0.5, 1.5, self.features))

    def forward(self, x: Any, training: bool = False) -> Any:
        self.x = x
        return x * self.params["w"]

    def backward(self, dy: Any) -> Any:
        self.grads["w"][...] = self.xp.sum(self.x * dy, axis=0)
        return dy * self.params["w"]

    def config(self) -> dict[str, Any]:
        return {"features": self.features}


class Square(Layer):
    """``y = x^2``; ``dx = 2 x dy``."""

    def __init__(self) -> None:
        super().__init__()
        self.x: Any = None

    def forward(self, x: Any, training: bool = False) -> Any:
        self.x = x
        return x * x

    def backward(self, dy: Any) -> Any:
        return 2.0 * self.x * dy


CALLS = {"forward": 0, "backward": 0}


def _scale_square_forward(layers: Sequence[Any], x: Any) -> Any:
    scale, square = layers
    CALLS["forward"] += 1
    scale.x = x
    square.x = z = x * scale.params["w"]  # what each layer's own forward saves
    return z * z


def _scale_square_backward(layers: Sequence[Any], dy: Any, need_dx: bool) -> Any:
    scale, square = layers
    CALLS["backward"] += 1
    dz = 2.0 * square.x * dy
    scale.grads["w"][...] = scale.xp.sum(scale.x * dz, axis=0)
    return dz * scale.params["w"] if need_dx else None


class FusingNumpy(NumpyBackend):
    """A user's backend: NumPy that runs the registered fusion rules in training."""

    def plan(self, layers: Sequence[Any]) -> list[Any]:
        return plan_fusions(layers)


@pytest.fixture
def scale_square_rule():
    rule = register_fusion(FusionRule("scale_square", (Scale, Square),
                                      forward=_scale_square_forward,
                                      backward=_scale_square_backward))
    yield rule
    unregister_fusion("scale_square")


def _model(backend: Any) -> xpnet.Sequential:
    model = xpnet.Sequential([Dense(4, 6), Scale(6), Square(), Dense(6, 2)], backend=backend,
                             seed=3, dtype="float64")
    return model.compile(MSE(), SGD(0.01))


def _data() -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(0)
    X = r.normal(size=(64, 4))
    return X, np.stack([X[:, 0] * X[:, 1], X[:, 2] ** 2], axis=1)


def test_user_layer_and_rule_train_save_and_load(scale_square_rule, tmp_path: Path) -> None:
    X, y = _data()
    plain, fused = _model("numpy"), _model(FusingNumpy("float64"))
    assert [type(s).__name__ for s in fused.plan] == ["Dense", "FusedStep", "Dense"]
    CALLS.update(forward=0, backward=0)
    hp = plain.fit(X, y, epochs=3, batch_size=16, seed=1, verbose=False)
    hf = fused.fit(X, y, epochs=3, batch_size=16, seed=1, verbose=False)
    assert CALLS == {"forward": 12, "backward": 12}  # 4 steps x 3 epochs, all fused
    assert hp["loss"] == hf["loss"] and hp["loss"][-1] < hp["loss"][0]
    for k, v in plain.params.items():
        np.testing.assert_array_equal(fused.params[k], v, err_msg=k)
    back = xpnet.load(fused.save(tmp_path / "user.npz"))
    assert [type(lay) for lay in back.layers] == [Dense, Scale, Square, Dense]
    np.testing.assert_array_equal(back.predict_proba(X), fused.predict_proba(X))


def test_the_user_layer_passes_the_gradient_checker() -> None:
    layer = Scale(5).to("numpy", "float64")
    layer.reset_parameters(np.random.default_rng(1))
    result = check_gradients(layer, np.random.default_rng(2).normal(size=(3, 5)))
    assert result.passed and {c.name for c in result.checks} >= {"input", "w"}


def test_a_wrong_fused_backward_shows_against_the_plain_path(scale_square_rule) -> None:
    """The contract is checkable: a rule whose backward drops a factor gives other gradients."""
    register_fusion(FusionRule("scale_square", (Scale, Square), forward=_scale_square_forward,
                               backward=lambda layers, dy, need: dy * layers[0].params["w"]))
    X, y = _data()
    grads = []
    for be in ("numpy", FusingNumpy("float64")):
        model = _model(be)
        out = model.forward(model.backend.asarray(X), training=True)
        model.loss.forward(out, y)
        model.backward(model.loss.backward(), need_dx=False)
        grads.append(np.array(model.grads["0.W"]))
    assert not np.allclose(grads[0], grads[1])


def test_longest_rule_wins_and_exact_types_only() -> None:
    class MyReLU(ReLU):
        pass

    layers = [Dense(3, 4), ReLU(), Dropout(0.5), Dense(4, 4), MyReLU(), Tanh(), ReLU(), Dropout()]
    plan = plan_fusions(layers)
    names = [s.rule.name if isinstance(s, FusedStep) else type(s).__name__ for s in plan]
    assert names == ["dense_relu_dropout", "Dense", "MyReLU", "Tanh", "relu_dropout"]
    assert plan_fusions([Dense(3, 4, bias=False), ReLU()])[0].__class__ is Dense  # no bias


def test_builtin_rules_are_registered_and_rules_are_validated() -> None:
    assert {"dense_relu_dropout", "dense_relu", "relu_dropout"} <= set(FUSION_RULES)
    with pytest.raises(TypeError, match="FusionRule"):
        register_fusion("dense_relu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pattern"):
        register_fusion(FusionRule("empty", ()))
    with pytest.raises(ValueError, match="pattern"):
        register_fusion(FusionRule("not-types", ("Dense",)))  # type: ignore[arg-type]


def test_the_plan_is_rebuilt_when_the_layers_or_the_backend_change() -> None:
    model = xpnet.Sequential([Dense(3, 4), ReLU()], backend=FusingNumpy("float32"))
    assert isinstance(model.plan[0], FusedStep)
    model.to("numpy")
    assert model.plan == model.layers


def test_numpy_runs_relu_maxpool_as_one_step_with_the_plain_layers_gradients() -> None:
    # The fused backward applies ReLU's mask to the pooled gradient before routing it; the
    # plain path routes first and masks after: the same values exactly, ties and all-negative
    # windows (where ReLU leaves a tie of zeros and no gradient) included.
    layers = [Conv2D(2, 3, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(12, 2)]
    model = xpnet.Sequential(layers, seed=0)
    steps = [s.rule.name if isinstance(s, FusedStep) else type(s).__name__ for s in model.plan]
    assert steps == ["Conv2D", "relu_maxpool", "Flatten", "Dense"]
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, size=(6, 2, 4, 4)).astype(np.float32)  # many exact ties
    dy = rng.standard_normal((6, 2)).astype(np.float32)
    model.forward(x, training=True)
    fused = np.array(model.backward(dy))
    fused_dw = np.array(model.grads["0.W"])
    d = dy
    for layer in reversed(layers):
        d = layer.backward(d)
    np.testing.assert_array_equal(fused, d)
    np.testing.assert_array_equal(fused_dw, model.grads["0.W"])
    assert (layers[1].y == 0).any() and (np.asarray(d) != 0).any()
