"""Learning-rate schedules: values at a few epochs, through the optimizer, validation, configs."""

from __future__ import annotations

import math
import re

import pytest

from xpnet.optim import (
    SGD,
    Adam,
    Constant,
    CosineDecay,
    InverseTimeDecay,
    StepDecay,
    schedule_from_config,
)


def test_constant():
    assert [Constant()(0.1, e) for e in (0, 1, 50)] == [0.1, 0.1, 0.1]


def test_inverse_time_decay_values():
    s = InverseTimeDecay(0.5)
    # lr / (1 + decay * epoch)
    assert s(0.1, 0) == 0.1
    assert s(0.1, 1) == pytest.approx(0.1 / 1.5, rel=1e-15)
    assert s(0.1, 2) == pytest.approx(0.05, rel=1e-15)
    assert s(0.1, 6) == pytest.approx(0.025, rel=1e-15)
    assert InverseTimeDecay(0.0)(0.3, 100) == 0.3


def test_step_decay_values():
    s = StepDecay(step_size=2, gamma=0.5)
    assert [s(0.1, e) for e in range(6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert StepDecay(3)(1.0, 3) == pytest.approx(0.1)  # default gamma 0.1


def test_cosine_decay_values():
    s = CosineDecay(epochs=10, min_lr=0.01)
    assert s(0.1, 0) == pytest.approx(0.1, rel=1e-15)
    assert s(0.1, 5) == pytest.approx(0.055, rel=1e-14)  # halfway: the mean of the two
    assert s(0.1, 10) == pytest.approx(0.01, rel=1e-14)
    assert s(0.1, 25) == pytest.approx(0.01, rel=1e-14)  # held at min_lr afterwards
    quarter = 0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi / 4))
    assert s(0.1, 2.5) == pytest.approx(quarter, rel=1e-14)
    assert CosineDecay(4)(1.0, 2) == pytest.approx(0.5, rel=1e-15)


def test_monotone_non_increasing():
    for s in (InverseTimeDecay(0.2), StepDecay(3, 0.7), CosineDecay(8, 0.001)):
        values = [s(0.05, e) for e in range(20)]
        assert all(a >= b for a, b in zip(values, values[1:], strict=False))
        assert values[-1] < values[0]


def test_optimizer_lr_follows_its_epoch():
    opt = SGD(0.2, schedule=StepDecay(1, 0.5))
    assert opt.lr == 0.2
    opt.set_epoch(3)
    assert opt.lr == pytest.approx(0.025)
    adam = Adam(0.005, schedule=InverseTimeDecay(1.0))
    adam.set_epoch(4)
    assert adam.lr == pytest.approx(0.001)
    assert isinstance(adam.lr, float)


@pytest.mark.parametrize(
    "sched", [Constant(), InverseTimeDecay(0.25), StepDecay(4, 0.3), CosineDecay(7, 0.002)]
)
def test_config_round_trip(sched):
    data = {"type": type(sched).__name__, "config": sched.config()}
    again = schedule_from_config(data)
    assert type(again) is type(sched) and again.config() == sched.config()
    assert [again(0.1, e) for e in range(10)] == [sched(0.1, e) for e in range(10)]
    assert isinstance(schedule_from_config(None), Constant)


def test_unknown_schedule_in_config():
    with pytest.raises(ValueError, match="'Exponential'"):
        schedule_from_config({"type": "Exponential"})


@pytest.mark.parametrize(
    ("make", "exc", "quoted"),
    [
        (lambda: InverseTimeDecay(-0.1), ValueError, "decay must be >= 0.0, got -0.1"),
        (lambda: InverseTimeDecay("fast"), TypeError, "'fast'"),
        (lambda: StepDecay(0), ValueError, "step_size must be a positive integer, got 0"),
        (lambda: StepDecay(2, gamma=0.0), ValueError, "gamma must be > 0.0, got 0.0"),
        (lambda: StepDecay(2, gamma=1.5), ValueError, "1.5"),
        (lambda: CosineDecay(0), ValueError, "epochs must be a positive integer, got 0"),
        (lambda: CosineDecay(5, min_lr=-1.0), ValueError, "min_lr must be >= 0.0, got -1.0"),
    ],
)
def test_bad_arguments_quote_the_value(make, exc, quoted):
    with pytest.raises(exc, match=re.escape(quoted)):
        make()
