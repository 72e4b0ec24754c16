"""Callbacks: how extras hook into the training loop (progress bar, checkpoints, early stopping,
the user's own code), in the spirit of Keras' callbacks.

A :class:`Callback` gets the run's :class:`~xpnet.training.state.TrainState` at each event:

* ``on_train_begin(state)`` / ``on_train_end(state)``;
* ``on_epoch_begin(epoch, state)`` / ``on_epoch_end(epoch, logs, state)``, where ``logs`` holds
  the epoch's metrics (``loss``, ``accuracy``, ``val_*``, ``lr``, ``time``...), already in
  ``model.history``; setting ``state.stop_training = True`` ends training after this epoch;
* ``on_batch_end(state)`` after each step (``state.step``, ``state.global_step``;
  ``state.synced`` says whether the metrics were just read back from the device);
* ``on_interrupt(state)`` instead, when a signal stops training after ``state.step``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..progress import ProgressBar
from .state import TrainState


class Callback:
    """Base class: every event does nothing; override the ones you need."""

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first epoch of the run (also when it resumes)."""

    def on_epoch_begin(self, epoch: int, state: TrainState) -> None:
        """At the start of ``epoch`` (0-based)."""

    def on_batch_end(self, state: TrainState) -> None:
        """After each training step."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        """After ``epoch``, with its metrics."""

    def on_interrupt(self, state: TrainState) -> None:
        """A signal stopped training after ``state.step``; the run can be resumed from here."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last epoch (``model.progress`` says where the run ended)."""


class CallbackList(Callback):
    """Several callbacks called in order."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_train_begin(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(state)

    def on_epoch_begin(self, epoch: int, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, state)

    def on_batch_end(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(state)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs, state)

    def on_interrupt(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_interrupt(state)

    def on_train_end(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_train_end(state)


def check_callbacks(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list of :class:`Callback`, or a TypeError naming the bad one."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of xpnet Callbacks, got {callbacks!r}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] must be an xpnet Callback, got {cb!r}")
    return list(callbacks)


class EpochEndFunction(Callback):
    """Calls ``fn(epoch, logs)`` after each epoch (``fit(on_epoch_end=fn)``)."""

    def __init__(self, fn: Callable[[int, dict[str, float]], None]) -> None:
        if not callable(fn):
            raise TypeError(f"on_epoch_end must be a callable or None, got {fn!r}")
        self.fn = fn

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        self.fn(epoch, dict(logs))


class ProgressBarCallback(Callback):
    """A progress bar per epoch on stderr, with the running loss and accuracy (``verbose``)."""

    def __init__(self, enabled: bool | None) -> None:
        self.enabled = enabled
        self.bar: ProgressBar | None = None

    def on_epoch_begin(self, epoch: int, state: TrainState) -> None:
        n = state.n_samples
        enabled = self.enabled if state.writes else False
        self.bar = ProgressBar(n, f"epoch {epoch + 1}/{state.epochs}", enabled=enabled)
        self.bar.count = min(state.first_step * state.batch_size, n)

    def on_batch_end(self, state: TrainState) -> None:
        if not state.synced or self.bar is None:
            return
        means = state.metrics.means(state.has_accuracy)
        shown = {"loss": means["loss"]}
        if "accuracy" in means:
            shown["acc"] = means["accuracy"]
        done = min((state.step + 1) * state.batch_size, state.n_samples)
        self.bar.update(done - self.bar.count, **shown)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close(**{k: v for k, v in logs.items() if k.startswith("val_")})

    def on_interrupt(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Improvement means a change of more than ``min_delta`` in the right direction (``mode``:
    ``"min"`` for losses, ``"max"`` for accuracies, ``"auto"`` from the name). With
    ``restore_best_weights`` the weights of the best epoch are put back at the end. Monitoring
    a ``val_*`` metric needs ``validation_data``; a metric that is missing is a KeyError naming
    the metrics there are.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        from .._checks import flag, one_of, real

        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of a metric, got {monitor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {patience!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = real("min_delta", min_delta, low=0.0)
        mode = one_of("mode", mode, ("auto", "min", "max"))
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.restore_best_weights = flag("restore_best_weights", restore_best_weights)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self._wait = 0
        self._best_weights: dict[str, np.ndarray] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.best = self.best_epoch = self.stopped_epoch = None
        self._wait = 0
        self._best_weights = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: no metric {self.monitor!r} this epoch (there are "
                f"{sorted(logs)}; val_* metrics need validation_data)"
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights:
                be = state.model.backend
                self._best_weights = {
                    k: np.array(be.to_host(v)) for k, v in state.model.params.items()
                }
            return
        self._wait += 1
        if self._wait >= self.patience:
            state.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, state: TrainState) -> None:
        if self.stopped_epoch is None or self._best_weights is None:
            return
        model = state.model
        for key, value in model.params.items():
            value[...] = model.backend.asarray(self._best_weights[key], dtype=value.dtype)
