"""The training loop behind ``Sequential.fit``: epochs of minibatch steps, and the callbacks.

The loop knows only the interfaces: the model's ``forward``/``backward``/``parameters``, the
loss, the optimizer's ``step``, and :class:`~xpnet.training.callbacks.Callback`. Everything
else (progress bar, checkpoints, early stopping, the user's ``on_epoch_end``) is a callback;
input checks live in :mod:`~xpnet.training.inputs`, resume in
:mod:`~xpnet.training.checkpoint`, non-finite handling in :mod:`~xpnet.training.nonfinite`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._checks import flag, one_of, positive_int, real
from .._checks import seed as check_seed
from ..backends import Array, Backend
from ..distributed import Communicator
from ..threads import Threads
from .blas import BlasThreads, blas_callbacks
from .callbacks import (
    Callback,
    CallbackList,
    EpochEndFunction,
    ProgressBarCallback,
    check_callbacks,
)
from .checkpoint import ModelCheckpoint, checkpoint_path, start_run
from .history import History
from .inputs import Batches, check_batch_size, prepare_inputs, prepare_targets, prepare_validation
from .nonfinite import (
    BufferCopies,
    broken_weights,
    clip_gradients,
    copy_buffers,
    finite_probe,
    restore_buffers,
    step_failure,
)
from .parallel import DataParallel
from .signals import SignalGuard, interrupted, interrupted_at_the_end
from .state import TrainState

if TYPE_CHECKING:
    from ..model import Sequential


def fit(
    model: Sequential,
    X: Any,
    y: Any,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: tuple[Any, Any] | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    verbose: bool | None = None,
    checkpoint: str | Path | None = None,
    every: int | None = None,
    resume: bool = False,
    on_nonfinite: str = "raise",
    clip_norm: float | None = None,
    sync_every: int | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    callbacks: list[Callback] | None = None,
    comm: Communicator | None = None,
    threads: Threads = "auto",
) -> History:
    """Train ``model`` on ``(X, y)`` with minibatches; return its :class:`History`.

    * ``X`` (N, *input_shape) and ``y`` (N,) labels or (N, K) targets may be host NumPy arrays
      while the model is on CuPy: the whole set goes to the device once when it fits in half
      its free memory, otherwise each batch is moved as it is used. They may also be any
      array speaking DLPack (PyTorch, JAX...), read without a copy where the model computes
      (see :mod:`xpnet.backends.dlpack`).
    * ``shuffle``/``seed``: each epoch visits the rows in a fresh permutation drawn from a host
      generator seeded by ``seed`` (which also reseeds dropout); same seed, same run.
    * ``epochs`` counts from the start of the run: with ``resume=True`` training continues from
      the progress stored in the model (``xpnet.load(checkpoint)``) up to ``epochs``, with the
      generators the checkpoint saved (``seed`` is not used); the same ``X``, ``y``,
      ``batch_size`` and ``shuffle`` are needed (a different size, batch size or shuffle is a
      ValueError). On NumPy the result is bit-identical to an uninterrupted run.
    * ``checkpoint``/``every``: write the model atomically every ``every`` steps and at the end
      of each epoch (a :class:`~xpnet.training.checkpoint.ModelCheckpoint`); a kill at any
      moment leaves the previous checkpoint whole. SIGINT/SIGTERM finish the current step,
      write the checkpoint and raise :class:`TrainingInterrupted` (also when they arrive during
      the last step: training finishes and is saved first).
    * ``on_nonfinite``: ``"raise"`` (a :class:`NonFiniteError` naming the step and the layer
      found at fault by replaying the step layer by layer) or ``"skip"`` (drop the batch,
      count it in ``history["skipped"]``; still an error if the weights themselves are
      non-finite or a whole epoch is skipped). ``clip_norm`` rescales the gradients so their
      global L2 norm, computed without overflow, is at most ``clip_norm``.
    * ``sync_every``: how often (in steps) scalars are read back from a GPU for the progress
      bar and the finiteness check; 1 on the CPU, where reading is free.
    * ``on_epoch_end(epoch, logs)`` and ``callbacks`` (a list of
      :class:`~xpnet.training.callbacks.Callback`, e.g. ``EarlyStopping``) hook into the loop.
    * ``comm``: an :mod:`xpnet.distributed` communicator for data-parallel training (every
      rank given the same arguments; see :mod:`~xpnet.training.parallel`). None: one process.
    * ``threads``: BLAS threads while it runs: ``"auto"``, ``N`` or None (the library's); see
      :mod:`xpnet.threads` (or pass a ``BlasThreads`` callback: one of the two).
    """
    if model.loss is None or model.optimizer is None:
        raise RuntimeError("fit needs a loss and an optimizer: call model.compile(loss, optimizer)")
    opts = _Options(
        epochs=positive_int("epochs", epochs), batch_size=check_batch_size(batch_size),
        on_nonfinite=one_of("on_nonfinite", on_nonfinite, ("raise", "skip")),
        clip=None if clip_norm is None else real("clip_norm", clip_norm, low=0.0, low_open=True),
        seed=check_seed("seed", seed), shuffle=flag("shuffle", shuffle),
        resume=flag("resume", resume), ckpt=checkpoint_path(checkpoint),
    )
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True, False or None, got {verbose!r}")
    extra, blas = _extra_callbacks(on_epoch_end, callbacks, threads, opts.ckpt, every)
    opts.sync_every = _sync_every(model.backend, sync_every, opts.on_nonfinite)
    Xd = prepare_inputs(model, X)
    yd = prepare_targets(model, y, int(Xd.shape[0]))
    val = prepare_validation(model, validation_data)
    parallel = DataParallel(comm)  # the other ranks of a data-parallel run, if any
    state = start_run(model, epochs=opts.epochs, n=int(Xd.shape[0]), batch_size=opts.batch_size,
                      shuffle=opts.shuffle, sync_every=opts.sync_every, seed=opts.seed,
                      resume=opts.resume)
    cbs = CallbackList([ProgressBarCallback(verbose), *extra])
    batches = Batches(model.backend, Xd, yd, opts.batch_size, rows=parallel.rows)
    with blas:  # restores the BLAS threads also when training raises
        _Run(model, state, batches, cbs, opts, val, parallel).run()
    return model.history


def _extra_callbacks(
    on_epoch_end: Callable[[int, dict[str, float]], None] | None,
    callbacks: list[Callback] | None,
    threads: Threads,
    ckpt: Path | None,
    every: int | None,
) -> tuple[list[Callback], BlasThreads]:
    """``fit``'s callbacks after the progress bar (the BLAS threads' first), and that one."""
    extra: list[Callback] = [EpochEndFunction(on_epoch_end)] if on_epoch_end is not None else []
    extra += check_callbacks(callbacks)
    blas = blas_callbacks(extra, threads)
    every = None if every is None else positive_int("every", every)
    if every is not None and ckpt is None:
        raise ValueError(f"every={every} needs checkpoint=PATH (where to write the checkpoints)")
    if ckpt is not None:
        extra.append(ModelCheckpoint(ckpt, every))
    return extra, blas


@dataclass
class _Options:
    """``fit``'s checked arguments."""

    epochs: int
    batch_size: int
    on_nonfinite: str
    clip: float | None
    seed: int | None
    shuffle: bool
    resume: bool
    ckpt: Path | None
    sync_every: int = 1


def _sync_every(be: Backend, sync_every: Any, on_nonfinite: str) -> int:
    """Steps between reading scalars back: 1 on the CPU (free) or when skipping non-finite
    batches (the verdict is needed before the update), else 50 by default."""
    if sync_every is None:
        sync_every = 1 if be.is_host or on_nonfinite == "skip" else 50
    sync_every = positive_int("sync_every", sync_every)
    return 1 if on_nonfinite == "skip" else sync_every


class _Run:
    """One ``fit`` call's epochs and steps (the pieces of the loop, kept small)."""

    def __init__(
        self, model: Sequential, state: TrainState, batches: Batches, cbs: CallbackList,
        opts: _Options, val: tuple[Array, Array] | None, parallel: DataParallel,
    ) -> None:
        self.model, self.state, self.batches, self.cbs = model, state, batches, cbs
        self.on_nonfinite, self.clip, self.ckpt = opts.on_nonfinite, opts.clip, opts.ckpt
        self.val = val
        self.guard = SignalGuard()
        #: the other ranks of a data-parallel run (a no-op for one process)
        self.parallel = parallel

    def run(self) -> None:
        """Every epoch left, then the end of training; signals stop it between steps."""
        model, state, cbs = self.model, self.state, self.cbs
        with SignalGuard() as guard:
            self.guard = guard
            self.parallel.start(state)
            try:
                cbs.on_train_begin(state)
                for epoch in range(state.start_epoch, state.epochs):
                    self.epoch(epoch)
                    if state.stop_training:
                        break
            finally:
                self.parallel.finish()
            end = state.epoch + 1 if state.stop_training else state.epochs
            model.progress = state.progress(
                end, 0, dict(state.shuffle_rng.bit_generator.state), finished=True
            )
            cbs.on_train_end(state)
            signum = self.parallel.agreed_signal(guard.signum)
            if signum is not None:  # it came during the last step: finish, then stop
                raise interrupted_at_the_end(signum, self.ckpt)

    def epoch(self, epoch: int) -> None:
        model, state = self.model, self.state
        assert model.optimizer is not None
        model.optimizer.set_epoch(epoch)
        self.batches.start_epoch(state.begin_epoch(epoch))
        self.cbs.on_epoch_begin(epoch, state)
        t0 = time.perf_counter()
        first, steps = state.first_step, state.steps_per_epoch
        for step in range(first, steps):
            state.step = step
            self.train_step()
            signum = self.parallel.agreed_signal(self.guard.signum)
            if signum is not None and step != steps - 1:  # the step is done: save and stop
                state.metrics.flush()
                self.cbs.on_interrupt(state)
                self.parallel.barrier()  # rank 0 has saved before any rank stops
                raise interrupted(signum, epoch, state.epochs, step + 1, steps, self.ckpt)
            self.cbs.on_batch_end(state)
        if self.on_nonfinite == "skip" and state.skipped and state.skipped == steps - first:
            from .nonfinite import NonFiniteError

            raise NonFiniteError(
                f"every batch of epoch {epoch + 1} was non-finite and skipped: training is "
                "not progressing (lower the learning rate or pass clip_norm=...)",
                step=state.global_step,
            )
        logs = self.epoch_logs(time.perf_counter() - t0, first)
        model.history.append(**logs)
        state.metrics.reset()
        state.logs = logs
        self.cbs.on_epoch_end(epoch, logs, state)
        signum = self.parallel.agreed_signal(self.guard.signum)
        if signum is not None and epoch + 1 < state.epochs:
            self.parallel.barrier()
            raise interrupted(signum, epoch + 1, state.epochs, 0, steps, self.ckpt)

    def train_step(self) -> None:
        """Forward, loss, backward on batch ``state.step``; the update unless it is non-finite."""
        model, state = self.model, self.state
        loss, opt, be = model.loss, model.optimizer, model.backend
        assert loss is not None and opt is not None
        idx, xb, yb = self.batches.get(state.step)
        # Checked every step: a bad batch will leave the buffers (running statistics) as they were.
        kept = copy_buffers(model) if state.sync_every == 1 else []
        out = model.forward(xb, training=True)
        lv = loss.forward(out, yb, check=False)
        model.backward(loss.backward(), need_dx=False)
        params = model.parameters()  # cheap; robust to layers that replace grad arrays
        acc = loss.accuracy(out, yb) if state.has_accuracy else None
        # Data-parallel: the global batch's mean gradients, loss and accuracy (else as they are).
        lv, acc, rows = self.parallel.reduce(be, params, lv, acc, int(idx.shape[0]))
        state.global_step += 1
        state.synced = state.due_sync(state.step)
        if state.synced and not math.isfinite(be.to_float(finite_probe(be, lv, params))):
            self.nonfinite(xb, yb, kept)
        else:
            if self.clip is not None:
                clip_gradients(be, params, self.clip)
            opt.step(params)
            state.metrics.add(lv, acc, rows)
        if state.synced:
            state.sync(state.step)

    def nonfinite(self, xb: Array, yb: Array, kept: BufferCopies) -> None:
        """The step's loss or a gradient is NaN/inf: raise, or skip the batch (either way the
        buffers are put back as they were before it, when it was checked on its own)."""
        model, state = self.model, self.state
        assert model.loss is not None
        if self.on_nonfinite == "raise":
            step, gs = state.step, state.global_step
            span = f"step {gs}" if state.sync_every == 1 else (
                f"one of steps {gs - (step - state.last_sync)}..{gs} "
                f"(checked every {state.sync_every} steps)"
            )
            where = f"epoch {state.epoch + 1}, batch {step + 1}/{state.steps_per_epoch}"
            failure = step_failure(model, model.loss, xb, yb, span, where, gs)
            restore_buffers(kept)  # after the diagnosis, which replays the step
            raise failure
        restore_buffers(kept)
        error = broken_weights(model, state.global_step)
        if error is not None:  # skipping batches cannot repair the weights themselves
            raise error
        state.skipped += 1

    def epoch_logs(self, elapsed: float, first_step: int) -> dict[str, float]:
        """The epoch's metrics: training loss/accuracy, validation ones, lr, time, speed."""
        model, state = self.model, self.state
        assert model.optimizer is not None
        logs = state.metrics.means(state.has_accuracy)
        if self.val is not None:
            vm = self.parallel.evaluate(model, *self.val, state.has_accuracy)
            logs.update({f"val_{k}": v for k, v in vm.items()})
        logs["lr"] = model.optimizer.lr
        logs["time"] = elapsed
        done = state.n_samples - first_step * state.batch_size
        logs["samples_per_s"] = done / elapsed if elapsed > 0 else 0.0
        if self.on_nonfinite == "skip":
            logs["skipped"] = float(state.skipped)
        return logs


__all__ = ["fit"]
