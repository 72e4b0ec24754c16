"""Callbacks: the events the loop sends, EarlyStopping, and how bad callbacks are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.layers import Dense, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import SGD
from xpnet.training import Callback, EarlyStopping, TrainState


def _blobs(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, n)
    return (r.normal(size=(n, 4)) + 2.0 * y[:, None]).astype(np.float32), y


def _model(lr: float = 0.05) -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(4, 8), ReLU(), Dense(8, 3)], seed=0)
    return net.compile(SoftmaxCrossEntropy(), SGD(lr))


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_begin(self, state: TrainState) -> None:
        self.events.append(("train_begin", state.epochs))

    def on_epoch_begin(self, epoch: int, state: TrainState) -> None:
        self.events.append(("epoch_begin", epoch))

    def on_batch_end(self, state: TrainState) -> None:
        self.events.append(("batch_end", state.epoch, state.step, state.global_step))

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        self.events.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, state: TrainState) -> None:
        self.events.append(("train_end", state.model.progress["finished"]))


def test_events_come_in_order_with_the_state() -> None:
    X, y = _blobs(50)
    rec = Recorder()
    _model().fit(X, y, epochs=2, batch_size=20, callbacks=[rec], validation_data=(X, y))
    batches = [e for e in rec.events if e[0] == "batch_end"]
    assert batches == [("batch_end", e, s, 3 * e + s + 1) for e in (0, 1) for s in range(3)]
    kinds = [e[0] for e in rec.events if e[0] != "batch_end"]
    assert kinds == ["train_begin", "epoch_begin", "epoch_end", "epoch_begin", "epoch_end",
                     "train_end"]
    assert rec.events[-1] == ("train_end", True)
    logs = [e for e in rec.events if e[0] == "epoch_end"][0][2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"} <= set(logs)


def test_early_stopping_stops_after_patience_and_records_where() -> None:
    X, y = _blobs()
    stop = EarlyStopping("loss", patience=2, min_delta=10.0)  # nothing improves by 10
    model = _model()
    history = model.fit(X, y, epochs=20, batch_size=30, callbacks=[stop])
    assert history.epochs == 3 and stop.best_epoch == 0 and stop.stopped_epoch == 2
    assert model.progress is not None and model.progress["finished"]
    assert model.progress["epoch"] == 3


def test_early_stopping_restores_the_best_weights(tmp_path: Path) -> None:
    X, y = _blobs()
    model = _model(lr=5.0)  # a learning rate that makes the validation loss worse and worse
    seen: list[dict[str, np.ndarray]] = []

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs, state):
            seen.append({k: np.array(v) for k, v in state.model.params.items()})

    stop = EarlyStopping("val_loss", patience=1, restore_best_weights=True)
    history = model.fit(X, y, epochs=30, batch_size=30, validation_data=(X, y),
                        callbacks=[Snap(), stop])
    assert stop.stopped_epoch is not None and history.epochs < 30
    best = int(np.argmin(history["val_loss"]))
    assert best == stop.best_epoch
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, seen[best][k], err_msg=k)
    # The checkpoint written at the end holds the restored weights too.
    ckpt = tmp_path / "c.npz"
    model2 = _model(lr=5.0)
    model2.fit(X, y, epochs=30, batch_size=30, validation_data=(X, y), checkpoint=ckpt,
               callbacks=[EarlyStopping("val_loss", patience=1, restore_best_weights=True)])
    np.testing.assert_array_equal(xpnet.load(ckpt).params["0.W"], model2.params["0.W"])


def test_early_stopping_on_a_missing_metric_says_which_there_are() -> None:
    X, y = _blobs()
    with pytest.raises(KeyError, match="val_loss.*validation_data"):
        _model().fit(X, y, epochs=2, callbacks=[EarlyStopping()])


@pytest.mark.parametrize("bad, error", [
    (lambda: EarlyStopping(patience=-1), "patience"),
    (lambda: EarlyStopping(mode="up"), "mode"),
    (lambda: EarlyStopping(monitor=""), "monitor"),
    (lambda: EarlyStopping(min_delta=-1.0), "min_delta"),
])
def test_early_stopping_arguments_are_checked(bad, error) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        bad()


@pytest.mark.parametrize("callbacks", [Recorder(), [Recorder(), "progress"], "x"])
def test_bad_callbacks_are_refused_before_training(callbacks) -> None:
    X, y = _blobs()
    model = _model()
    before = np.array(model.params["0.W"])
    with pytest.raises(TypeError, match="callbacks"):
        model.fit(X, y, callbacks=callbacks)
    np.testing.assert_array_equal(model.params["0.W"], before)
