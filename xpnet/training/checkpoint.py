"""Checkpoints and resume: where a run starts (fresh or from saved progress), and the callback
that writes its checkpoints.

What is reproducible, exactly:

* NumPy: the same seeds (``Sequential(seed=...)`` and ``fit(seed=...)``) give bit-identical
  weights, optimizer state and history on the same machine and NumPy/BLAS build. A run
  interrupted (signal, crash, kill -9) and resumed from its last checkpoint ends bit-identical
  to the uninterrupted run: the checkpoint holds the weights, the optimizer state (slots, step
  count, epoch, hence the schedule), the shuffle generator's state at the start of the epoch
  and the position in it, the dropout generators' states and the running metric sums.
* CuPy: initial weights, the data order and the dropout generators' states come from host
  generators and match NumPy's; a dropout mask is a hash of a 64-bit key drawn from that
  generator, computed on the GPU (see :mod:`xpnet.backends.cuda_kernels`), so masks differ
  from NumPy's but one seed gives the same masks on every GPU. cuBLAS and CuPy's reductions are
  run-to-run reproducible on one GPU model and library version (cuBLAS documents this; it is
  not tested here) but give different bits from NumPy. Checkpoints hold every generator
  state, so resume on CuPy continues the same run. The finiteness check runs every
  ``sync_every`` steps there (default 50), so a NaN is located within that window.
* A generator whose state cannot be saved (a custom one) is stored as None; resuming then
  restarts its stream from the run's seed and the position, so resuming the same checkpoint
  twice gives the same run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..losses.base import Loss
from .callbacks import Callback
from .history import History
from .state import RunningMetrics, TrainState, fresh_sums

if TYPE_CHECKING:
    from ..model import Sequential


def checkpoint_path(checkpoint: Any) -> Path | None:
    """``checkpoint`` as a Path to a file (not a folder), or None."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path (str or os.PathLike), got {checkpoint!r}")
    path = Path(checkpoint)
    if str(checkpoint) == "" or path.is_dir():
        raise ValueError(f"checkpoint must be a file path, got the folder {str(path)!r}")
    return path


def start_run(
    model: Sequential, *, epochs: int, n: int, batch_size: int, shuffle: bool,
    sync_every: int, seed: int | None, resume: bool,
) -> TrainState:
    """The state a run starts from: fresh (seeding shuffling and dropout from ``seed``, or from
    the model's seed) or, with ``resume``, the progress stored in the model by a checkpoint."""
    assert model.loss is not None
    common: dict[str, Any] = {
        "model": model, "epochs": epochs, "n_samples": n, "batch_size": batch_size,
        "shuffle": shuffle, "sync_every": sync_every,
        "has_accuracy": type(model.loss).accuracy is not Loss.accuracy,
    }
    if resume:
        return _resumed(model, common)
    if seed is not None:
        shuffle_ss, dropout_ss = np.random.SeedSequence(seed).spawn(2)
        model.reseed_dropout(dropout_ss)
        shuffle_rng = np.random.default_rng(shuffle_ss)
    else:
        shuffle_rng = np.random.default_rng(
            None if model.seed is None else np.random.SeedSequence(model.seed).spawn(3)[2]
        )
    model.history = History()
    return TrainState(
        **common, seed=int(seed) if seed is not None else model.seed, shuffle_rng=shuffle_rng,
        metrics=RunningMetrics(model.backend, fresh_sums()),
    )


def _resumed(model: Sequential, common: dict[str, Any]) -> TrainState:
    prog = model.progress
    epochs = common["epochs"]
    if not prog or prog.get("finished", False) and prog.get("epoch", 0) >= epochs:
        raise ValueError(
            "resume=True but the model holds no unfinished training progress "
            "(load a checkpoint written by fit(checkpoint=...) first)"
        )
    for key in ("n_samples", "batch_size", "shuffle"):
        if prog[key] != common[key]:
            raise ValueError(
                f"resume: the checkpoint was trained with {key}={prog[key]!r}, got "
                f"{common[key]!r}"
            )
    state = TrainState(
        **common, seed=prog.get("seed"), shuffle_rng=np.random.default_rng(),
        metrics=RunningMetrics(model.backend, prog["sums"]),
        start_epoch=int(prog["epoch"]), start_step=int(prog["step"]),
        start_skipped=int(prog.get("skipped", 0)),
    )
    if state.start_step >= state.steps_per_epoch:
        raise ValueError(
            f"resume: the checkpoint is at step {state.start_step} of an epoch of "
            f"{state.steps_per_epoch} steps (does the data match the checkpoint?)"
        )
    state.shuffle_rng.bit_generator.state = prog["shuffle_state"]
    _restore_generators(state, prog["dropout_states"])
    state.global_step = state.start_epoch * state.steps_per_epoch + state.start_step
    return state


def _restore_generators(state: TrainState, states: list[Any]) -> None:
    layers = state.stochastic_layers()
    if len(states) != len(layers):
        raise ValueError(
            f"resume: the checkpoint holds {len(states)} dropout generator state(s) for a "
            f"model with {len(layers)} dropout layer(s)"
        )
    for i, (layer, saved) in enumerate(zip(layers, states, strict=True)):
        if saved is not None:
            layer.set_rng_state(saved)
        else:  # see the module docstring: restart from the seed and the position
            entropy = [int(state.seed or 0), state.start_epoch, state.start_step, i]
            layer.reseed(np.random.SeedSequence(entropy))


class ModelCheckpoint(Callback):
    """Write the model with its training progress to ``path``, atomically: every ``every``
    steps, at the end of each epoch, on a signal, and at the end (marked finished).

    A kill at any moment leaves the previous checkpoint whole; ``xpnet.load(path).fit(...,
    resume=True)`` continues the run.
    """

    def __init__(self, path: str | os.PathLike[str], every: int | None = None) -> None:
        from .._checks import positive_int

        checked = checkpoint_path(path)
        if checked is None:
            raise TypeError("ModelCheckpoint needs a path")
        self.path = checked
        self.every = None if every is None else positive_int("every", every)

    def _write(self, state: TrainState, progress: dict[str, Any]) -> None:
        state.model.progress = progress
        if state.writes:  # rank 0 of a data-parallel run; the others hold the same model
            state.model.save(self.path)

    def on_batch_end(self, state: TrainState) -> None:
        last = state.step == state.steps_per_epoch - 1
        if self.every is not None and state.global_step % self.every == 0 and not last:
            state.sync(state.step)
            self._write(state, state.progress_here())

    def on_interrupt(self, state: TrainState) -> None:
        self._write(state, state.progress_here())

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        if epoch + 1 < state.epochs and not state.stop_training:
            next_state = dict(state.shuffle_rng.bit_generator.state)
            self._write(state, state.progress(epoch + 1, 0, next_state))

    def on_train_end(self, state: TrainState) -> None:
        assert state.model.progress is not None
        self._write(state, state.model.progress)
