"""The state of a training run: where it is, its random streams, its running metrics.

One :class:`TrainState` lives for one ``fit`` call; callbacks receive it. Everything a
checkpoint needs to resume a run exactly comes from :meth:`TrainState.progress`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import Array, Backend
from ..layers.base import Stochastic

if TYPE_CHECKING:
    from ..model import Sequential


def fresh_sums() -> dict[str, Any]:
    return {"loss": 0.0, "acc": 0.0, "seen": 0}


class RunningMetrics:
    """Row-weighted sums of the loss and accuracy over the steps of an epoch.

    Each step's values stay on the device in ``pending`` and are summed in one go when
    :meth:`flush` reads them (a GPU pays a few launches per sync, not per step). The totals are
    float64 (host floats, or float64 on the device): float32 ``loss * rows`` would overflow for
    losses near 1e38 that are themselves representable.
    """

    def __init__(self, be: Backend, sums: dict[str, Any] | None = None) -> None:
        self.be = be
        self.sums: dict[str, Any] = dict(sums) if sums is not None else fresh_sums()
        self.pending: list[tuple[Array, Array | None, int]] = []

    def add(self, loss: Array, accuracy: Array | None, rows: int) -> None:
        self.pending.append((loss, accuracy, rows))

    def reset(self) -> None:
        self.sums = fresh_sums()
        self.pending.clear()

    def flush(self) -> None:
        """Add the pending steps to the host totals (one device sync) and empty ``pending``."""
        be, pending, sums = self.be, self.pending, self.sums
        if not pending:
            return
        if be.is_host or len(pending) == 1:
            for lv, acc, m in pending:
                sums["loss"] += be.to_float(lv) * m
                if acc is not None:
                    sums["acc"] += be.to_float(acc) * m
                sums["seen"] += m
        else:
            xp = be.xp
            rows = [m for _, _, m in pending]
            w = be.asarray(np.asarray(rows, dtype=np.float64), dtype=xp.float64)

            def total(values: list[Any]) -> float:
                return be.to_float(xp.sum(xp.astype(xp.stack(values), xp.float64) * w))

            sums["loss"] += total([lv for lv, _, _ in pending])
            if pending[0][1] is not None:
                sums["acc"] += total([a for _, a, _ in pending])
            sums["seen"] += sum(rows)
        pending.clear()

    def means(self, with_accuracy: bool) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over the rows summed so far (flushed)."""
        seen = max(self.sums["seen"], 1)
        out = {"loss": self.sums["loss"] / seen}
        if with_accuracy:
            out["accuracy"] = self.sums["acc"] / seen
        return out


@dataclass
class TrainState:
    """Where a ``fit`` run is. ``epoch`` (0-based) and ``step`` (0-based, within the epoch) are
    the ones being run; ``global_step`` counts steps finished since the start of the run."""

    model: Sequential
    epochs: int
    n_samples: int
    batch_size: int
    shuffle: bool
    sync_every: int
    seed: int | None
    shuffle_rng: np.random.Generator
    metrics: RunningMetrics
    #: whether the loss defines an accuracy (shown and recorded when it does)
    has_accuracy: bool = False
    start_epoch: int = 0
    start_step: int = 0
    start_skipped: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    skipped: int = 0
    last_sync: int = 0
    synced: bool = False
    #: set by a callback (EarlyStopping) to end training after the current epoch
    stop_training: bool = False
    #: whether this process prints and writes files: False on all but rank 0 of a
    #: data-parallel run (``fit(comm=...)``), where every rank runs the same callbacks
    writes: bool = True
    #: the shuffle generator's state at the start of the epoch (to redraw its order)
    epoch_state: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_samples / self.batch_size)

    @property
    def first_step(self) -> int:
        """The step this epoch starts at (past 0 only in the epoch a resumed run starts in)."""
        return self.start_step if self.epoch == self.start_epoch else 0

    def begin_epoch(self, epoch: int) -> np.ndarray:
        """Start ``epoch``: draw its order (from the state saved for it), reset its counters."""
        self.epoch = epoch
        self.epoch_state = dict(self.shuffle_rng.bit_generator.state)
        order = self.shuffle_rng.permutation(self.n_samples) if self.shuffle else np.arange(
            self.n_samples
        )
        if self.first_step == 0:
            self.metrics.reset()
        self.skipped = self.start_skipped if epoch == self.start_epoch and self.first_step else 0
        self.last_sync = self.first_step
        return order

    def due_sync(self, step: int) -> bool:
        """Whether scalars are read back after ``step`` (every ``sync_every``, and at the end)."""
        return step + 1 - self.last_sync >= self.sync_every or step == self.steps_per_epoch - 1

    def sync(self, step: int) -> None:
        """Read back the pending metrics after ``step``; the next check window starts here."""
        self.last_sync = step + 1
        self.metrics.flush()

    def stochastic_layers(self) -> list[Stochastic]:
        return [layer for layer in self.model.layers if isinstance(layer, Stochastic)]

    def progress(
        self, epoch: int, step: int, shuffle_state: dict[str, Any], skipped: int = 0,
        finished: bool = False,
    ) -> dict[str, Any]:
        """What a checkpoint stores to resume at ``epoch``, ``step`` (JSON-serializable)."""
        return {
            "epoch": epoch,
            "step": step,
            "epochs": self.epochs,
            "n_samples": self.n_samples,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "shuffle_state": shuffle_state,
            "dropout_states": [layer.rng_state() for layer in self.stochastic_layers()],
            "sums": dict(self.metrics.sums),
            "skipped": skipped,
            "finished": finished,
        }

    def progress_here(self) -> dict[str, Any]:
        """Progress to resume right after the current step."""
        return self.progress(self.epoch, self.step + 1, self.epoch_state, self.skipped)
