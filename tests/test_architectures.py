"""Named architectures (what ``xpnet train --arch`` builds) and their short descriptions."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import Sequential
from xpnet.architectures import ARCHITECTURES, build, register_architecture, short_description
from xpnet.layers import Dense, Dropout, LeakyReLU, ReLU, Tanh


def test_mlp_is_dense_activation_dropout_per_hidden_width() -> None:
    model = build("mlp", hidden=[20, 10], activation="tanh", dropout=0.3, seed=0)
    assert [type(lay) for lay in model.layers] == [Dense, Tanh, Dropout, Dense, Tanh, Dropout,
                                                   Dense]
    assert model.in_features == 784 and model.out_features == 10
    assert model.layers[0].init == "glorot_uniform"  # glorot for saturating activations
    relu = build("mlp", hidden=[], activation="leaky_relu", dropout=0.0)
    assert [type(lay) for lay in relu.layers] == [Dense] and relu.layers[0].init == "he_normal"
    same = build("mlp", hidden=[20, 10], activation="tanh", dropout=0.3, seed=0)
    np.testing.assert_array_equal(same.params["0.W"], model.params["0.W"])


def test_short_description_reads_the_layers_through_their_interface() -> None:
    model = Sequential([Dense(784, 400), ReLU(), Dropout(0.2), Dense(400, 100), ReLU(),
                        Dropout(0.2), Dense(100, 10)])
    assert short_description(model) == "784-400-100-10 ReLU, dropout 0.2"
    mixed = Sequential([Dense(8, 4), LeakyReLU(), Dense(4, 4), Tanh(), Dense(4, 2)])
    assert short_description(mixed) == "8-4-4-2 LeakyReLU/Tanh"


def test_unknown_architecture_and_activation_name_the_choices() -> None:
    with pytest.raises(ValueError, match="architecture must be one of.*'mlp'"):
        build("resnet")
    with pytest.raises(ValueError, match="activation must be one of"):
        build("mlp", activation="gelu")


def test_a_registered_architecture_is_built_by_name() -> None:
    @register_architecture("tiny")
    def tiny(*, in_features: int = 784, classes: int = 10, **_: object) -> Sequential:
        return Sequential([Dense(in_features, classes)])

    try:
        assert build("tiny", classes=3).out_features == 3
    finally:
        del ARCHITECTURES["tiny"]
