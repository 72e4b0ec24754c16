"""The training loop behind ``Sequential.fit``: batches, checks, checkpoints and resume.

What is reproducible, exactly:

* NumPy: the same seeds (``Sequential(seed=...)`` and ``fit(seed=...)``) give bit-identical
  weights, optimizer state and history on the same machine and NumPy/BLAS build. A run
  interrupted (signal, crash, kill -9) and resumed from its last checkpoint ends bit-identical
  to the uninterrupted run: the checkpoint holds the weights, the optimizer state (slots, step
  count, epoch, hence the schedule), the shuffle generator's state at the start of the epoch
  and the position in it, the dropout generators' states and the running metric sums.
* CuPy: initial weights, the data order and the dropout generators' states come from host
  generators and match NumPy's; a dropout mask is a hash of a 64-bit key drawn from that
  generator, computed on the GPU (see :mod:`xpnet.cuda_kernels`), so masks differ from
  NumPy's but one seed gives the same masks on every GPU. cuBLAS and CuPy's reductions are
  run-to-run reproducible on one GPU model and library version (cuBLAS documents this; it is
  not tested here) but give different bits from NumPy. Checkpoints hold every generator
  state, so resume on CuPy continues the same run. The finiteness check runs every
  ``sync_every`` steps there (default 50), so a NaN is located within that window.
* A generator whose state cannot be saved (a custom one) is stored as None; resuming then
  restarts its stream from the run's seed and the position, so resuming the same checkpoint
  twice gives the same run.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import one_of, positive_int, real
from .backend import Array, BackendError
from .losses.base import Loss
from .model import History
from .progress import ProgressBar

if TYPE_CHECKING:
    from .model import Sequential


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite during training.

    ``step`` is the global step (1-based) where it was seen and ``layer`` the name of the first
    layer found at fault by the diagnosis pass (None when the loss itself is to blame).
    """

    def __init__(self, message: str, step: int | None = None, layer: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.layer = layer


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` stopped on SIGINT/SIGTERM after saving a checkpoint (when one was asked for)."""

    def __init__(self, message: str, signum: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint


# ------------------------------------------------------------------------ input checking
def check_batch_size(batch_size: Any) -> int:
    return positive_int("batch_size", batch_size)


def _host_view(data: Any, name: str) -> np.ndarray | None:
    """``data`` as a host array if it is host data, None if it is already a device array."""
    if isinstance(data, np.ndarray):
        return data
    if hasattr(data, "__cuda_array_interface__") or hasattr(data, "device") and not isinstance(
        data, (list, tuple)
    ):
        return None
    try:
        return np.asarray(data)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array, got {type(data).__name__}: {exc}") from exc


def prepare_inputs(model: Sequential, X: Any, name: str = "X") -> Array:
    """Validate ``X`` (N, in_features) of real numbers and move it to the model's backend."""
    be = model.backend
    host = _host_view(X, name)
    if host is not None:
        if host.dtype.kind not in "fiu":
            first = model.layers[0].name if model.layers else "the model"
            width = model.in_features if model.in_features is not None else "features"
            raise TypeError(
                f"{name} must hold real numbers: {first} expects input of shape (batch, {width}), "
                f"got dtype {host.dtype}"
            )
        _check_shape(model, tuple(host.shape), name)
        if host.dtype.kind == "f":
            _check_finite(host, name, be.dtype_name)
        return be.asarray(host, dtype=be.dtype)
    if not be.is_array(X):
        raise TypeError(f"{name} is a {type(X).__name__}, not a host array or a {be.name} array")
    _check_shape(model, tuple(X.shape), name)
    Xd = be.asarray(X, dtype=be.dtype)
    if not be.to_float(be.xp.all(be.xp.isfinite(Xd))):
        raise ValueError(f"{name} contains NaN or infinity")
    return Xd


def _check_finite(host: np.ndarray, name: str, dtype: str) -> None:
    """Raise a ValueError naming ``name`` and the first bad index if ``host`` holds NaN/inf,
    or values that would overflow to infinity when cast to ``dtype`` (float64 -> float32)."""
    ok = np.isfinite(host)
    if not ok.all():
        bad = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(f"{name} contains NaN or infinity (first at index {bad})")
    limit = np.finfo(dtype).max
    if host.dtype.itemsize > np.dtype(dtype).itemsize and host.size:
        big = np.abs(host) > limit
        if big.any():
            bad = tuple(int(i) for i in np.argwhere(big)[0])
            raise ValueError(
                f"{name} holds {float(host[bad])!r} (index {bad}), beyond the largest {dtype} "
                f"({float(limit):.4g}); it would become infinity"
            )


def _check_shape(model: Sequential, shape: tuple[int, ...], name: str) -> None:
    width = model.in_features
    expected = f"(batch, {width})" if width is not None else "(batch, features)"
    if len(shape) != 2:
        first = model.layers[0].name if model.layers else "the model"
        raise ValueError(f"{name}: {first} expects input of shape {expected}, got {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {shape}")
    if width is not None and shape[1] != width:
        raise ValueError(
            f"{name}: {model.layers[0].name} expects input of shape {expected}, got {shape}"
        )


def prepare_targets(model: Sequential, y: Any, n: int, name: str = "y") -> Array:
    """Validate targets against the loss (labels in range, shapes) and move them to the device."""
    assert model.loss is not None
    be = model.backend
    host = _host_view(y, name)
    if host is None:
        host = be.to_host(y)
    if host.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {host.dtype}")
    if host.ndim == 0 or host.shape[0] != n:
        raise ValueError(f"{name} has {host.shape[0] if host.ndim else 0} rows but X has {n}")
    if host.dtype.kind == "f":
        _check_finite(host, name, be.dtype_name)
    out = model.out_features
    pred_shape = (n, out if out is not None else (host.shape[1] if host.ndim == 2 else 1))
    try:
        model.loss.check_target(pred_shape, host)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    kind = host.dtype.kind
    return be.asarray(host, dtype=None if kind in "iu" else be.dtype)


# ------------------------------------------------------------------------ the main loop
def _finite_probe(be: Any, loss: Array, params: list[tuple[str, Array, Array]]) -> Array:
    """A 0-d value that is NaN/inf iff the loss or any gradient is.

    ``0 * max(g) + 0 * min(g)`` is 0 for finite gradients however large (a plain ``sum(g)``
    could overflow to inf and raise a false alarm) and NaN as soon as one entry is NaN/inf.
    """
    xp = be.xp
    acc = loss
    for _, _, g in params:
        acc = acc + 0.0 * xp.max(g) + 0.0 * xp.min(g)
    return acc


def _grad_norm(be: Any, params: list[tuple[str, Array, Array]]) -> Array:
    """Global L2 norm ``sqrt(sum_k ||g_k||^2)`` as a 0-d array, without overflow.

    Computed as ``M sqrt(sum (g / M)^2)`` with ``M = max |g|``: squaring float32 gradients
    above ~1.8e19 would overflow to inf, and clipping by an infinite norm would zero them.
    """
    xp = be.xp
    top = None
    for _, _, g in params:
        m = xp.max(xp.abs(g))
        top = m if top is None else xp.maximum(top, m)
    assert top is not None
    scale = xp.where(top > 0, top, xp.ones_like(top))
    total = None
    for _, _, g in params:
        r = g / scale
        s = xp.sum(r * r)
        total = s if total is None else total + s
    return scale * xp.sqrt(total)


def _is_finite(be: Any, a: Array) -> bool:
    host = a if isinstance(a, (np.ndarray, np.generic)) else be.to_host(a)
    return bool(np.isfinite(host).all())


def _nonfinite_params(model: Sequential) -> list[str]:
    be = model.backend
    return [
        f"{layer.name} parameter {key!r}"
        for layer in model.layers
        for key, p in layer.params.items()
        if not _is_finite(be, p)
    ]


def _diagnose(model: Sequential, loss_fn: Loss, xb: Array, yb: Array) -> tuple[str, str | None]:
    """Find where a failed step went non-finite: ``(explanation, layer name or None)``.

    Run only after a failure: the step is replayed layer by layer on the same batch (dropout
    reuses the masks of the failed step), forward then backward, and the first layer whose
    output, parameter gradient or input gradient is NaN/inf is named.
    """
    be = model.backend
    bad = _nonfinite_params(model)
    if bad:
        first = bad[0].split(" parameter ")[0]
        return (
            f"{', '.join(bad)} already non-finite (an earlier update overflowed)",
            first,
        )
    x = xb
    with np.errstate(all="ignore"):
        for layer in model.layers:
            mask = getattr(layer, "mask", None) if layer.stochastic else None
            x = x * mask if mask is not None else layer.forward(x, training=True)
            if not _is_finite(be, x):
                return f"{layer.name} produced a non-finite output in the forward pass", layer.name
        lv = loss_fn.forward(x, yb, check=False)
        if not _is_finite(be, lv):
            return f"the loss ({type(loss_fn).__name__}) is non-finite for finite outputs", None
        dy = loss_fn.backward()
        if not _is_finite(be, dy):
            return f"the gradient of the loss ({type(loss_fn).__name__}) is non-finite", None
        for layer in reversed(model.layers):
            dy = layer.backward(dy)
            for key, g in layer.grads.items():
                if not _is_finite(be, g):
                    return (
                        f"{layer.name} gradient {key!r} is non-finite (the first layer, in "
                        "backward order, whose gradient is)",
                        layer.name,
                    )
            if not _is_finite(be, dy):
                return f"{layer.name} passed a non-finite gradient to its input", layer.name
    return "the failure did not recur when the step was replayed", None


class _SignalGuard:
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


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
) -> History:
    """Train ``model`` on ``(X, y)`` with minibatches; return its :class:`History`.

    * ``X`` (N, in_features) and ``y`` (N,) labels or (N, K) targets may be host NumPy arrays
      while the model is on CuPy: the whole set goes to the device once when it fits in half
      its free memory, otherwise each batch is moved as it is used.
    * ``shuffle``/``seed``: each epoch visits the rows in a fresh permutation drawn from a host
      generator seeded by ``seed`` (which also reseeds dropout); same seed, same run.
    * ``epochs`` counts from the start of the run: with ``resume=True`` training continues from
      the progress stored in the model (``xpnet.load(checkpoint)``) up to ``epochs``, with the
      generators the checkpoint saved (``seed`` is not used); the same ``X``, ``y``,
      ``batch_size`` and ``shuffle`` are needed (a different size, batch size or shuffle is a
      ValueError). On NumPy the result is bit-identical to an uninterrupted run.
    * ``checkpoint``/``every``: write the model atomically every ``every`` steps and at the end
      of each epoch; a kill at any moment leaves the previous checkpoint whole. SIGINT/SIGTERM
      finish the current step, write the checkpoint and raise :class:`TrainingInterrupted`
      (also when they arrive during the last step: training finishes and is saved first).
    * ``on_nonfinite``: ``"raise"`` (a :class:`NonFiniteError` naming the step and the layer
      found at fault by replaying the step layer by layer) or ``"skip"`` (drop the batch,
      count it in ``history["skipped"]``; still an error if the weights themselves are
      non-finite or a whole epoch is skipped). ``clip_norm`` rescales the gradients so their
      global L2 norm, computed without overflow, is at most ``clip_norm``.
    * ``sync_every``: how often (in steps) scalars are read back from a GPU for the progress
      bar and the finiteness check; 1 on the CPU, where reading is free.
    """
    if model.loss is None or model.optimizer is None:
        raise RuntimeError("fit needs a loss and an optimizer: call model.compile(loss, optimizer)")
    epochs = positive_int("epochs", epochs)
    batch_size = check_batch_size(batch_size)
    on_nonfinite = one_of("on_nonfinite", on_nonfinite, ("raise", "skip"))
    clip = None if clip_norm is None else real("clip_norm", clip_norm, low=0.0, low_open=True)
    every = None if every is None else positive_int("every", every)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be a non-negative int or None, got {seed!r}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    for flag, flag_value in (("shuffle", shuffle), ("resume", resume)):
        if not isinstance(flag_value, bool):
            raise TypeError(f"{flag} must be True or False, got {flag_value!r}")
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True, False or None, got {verbose!r}")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError(f"on_epoch_end must be a callable or None, got {on_epoch_end!r}")
    ckpt = _checkpoint_path(checkpoint)
    if every is not None and ckpt is None:
        raise ValueError(f"every={every} needs checkpoint=PATH (where to write the checkpoints)")
    be = model.backend
    if sync_every is None:
        sync_every = 1 if be.is_host or on_nonfinite == "skip" else 50
    sync_every = positive_int("sync_every", sync_every)
    if on_nonfinite == "skip":
        sync_every = 1  # skipping a batch needs the verdict before the update

    Xd = prepare_inputs(model, X)
    n = int(Xd.shape[0])
    yd = prepare_targets(model, y, n)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, tuple) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (X_val, y_val)")
        Xv = prepare_inputs(model, validation_data[0], "validation X")
        val = (Xv, prepare_targets(model, validation_data[1], int(Xv.shape[0]), "validation y"))

    loss_fn, opt = model.loss, model.optimizer
    dropouts = [layer for layer in model.layers if layer.stochastic]
    steps_per_epoch = math.ceil(n / batch_size)

    # Where the run starts: fresh, or from the progress a checkpoint stored.
    if resume:
        prog = model.progress
        if not prog or prog.get("finished", False) and prog.get("epoch", 0) >= epochs:
            raise ValueError(
                "resume=True but the model holds no unfinished training progress "
                "(load a checkpoint written by fit(checkpoint=...) first)"
            )
        for key, value in (("n_samples", n), ("batch_size", batch_size), ("shuffle", shuffle)):
            if prog[key] != value:
                raise ValueError(
                    f"resume: the checkpoint was trained with {key}={prog[key]!r}, got {value!r}"
                )
        start_epoch, start_step = int(prog["epoch"]), int(prog["step"])
        if start_step >= steps_per_epoch:
            raise ValueError(
                f"resume: the checkpoint is at step {start_step} of an epoch of "
                f"{steps_per_epoch} steps (does the data match the checkpoint?)"
            )
        shuffle_rng = np.random.default_rng()
        shuffle_rng.bit_generator.state = prog["shuffle_state"]
        states = prog["dropout_states"]
        if len(states) != len(dropouts):
            raise ValueError(
                f"resume: the checkpoint holds {len(states)} dropout generator state(s) for a "
                f"model with {len(dropouts)} dropout layer(s)"
            )
        run_seed: int | None = prog.get("seed")
        for i, (layer, state) in enumerate(zip(dropouts, states, strict=True)):
            if state is not None:
                layer.gen.set_state(state)  # type: ignore[attr-defined]
            else:
                # The stream could not be saved (a custom generator): restart it from the
                # seed and the position, so resuming the same checkpoint twice gives the same
                # run.
                layer.reseed(  # type: ignore[attr-defined]
                    np.random.SeedSequence([int(run_seed or 0), start_epoch, start_step, i])
                )
        sums = dict(prog["sums"])
        start_skipped = int(prog.get("skipped", 0))
    else:
        if seed is not None:
            shuffle_ss, dropout_ss = np.random.SeedSequence(seed).spawn(2)
            model.reseed_dropout(dropout_ss)
            shuffle_rng = np.random.default_rng(shuffle_ss)
        else:
            shuffle_rng = np.random.default_rng(
                None if model.seed is None else np.random.SeedSequence(model.seed).spawn(3)[2]
            )
        start_epoch, start_step = 0, 0
        sums = {"loss": 0.0, "acc": 0.0, "seen": 0}
        start_skipped = 0
        model.history = History()
        run_seed = int(seed) if seed is not None else model.seed

    # Keep the data on the device when it fits; otherwise gather batches on the host.
    on_device = be.is_host or be.fits_on_device(be.nbytes(Xd) + be.nbytes(yd))
    if not on_device:
        Xd, yd = be.to_host(Xd), be.to_host(yd)

    def batch(idx: np.ndarray, dev_idx: Array | None = None) -> tuple[Array, Array]:
        if on_device:
            di = be.index_array(idx) if dev_idx is None else dev_idx
            return be.take_rows(Xd, di), be.take_rows(yd, di)
        return be.asarray(np.take(Xd, idx, axis=0)), be.asarray(np.take(yd, idx, axis=0))

    def progress_state(
        epoch: int, step: int, epoch_state: dict[str, Any], skipped: int = 0
    ) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step": step,
            "epochs": epochs,
            "n_samples": n,
            "batch_size": batch_size,
            "shuffle": shuffle,
            "seed": run_seed,
            "shuffle_state": epoch_state,
            "dropout_states": [_generator_state(layer) for layer in dropouts],
            "sums": dict(sums),
            "skipped": skipped,
            "finished": False,
        }

    def write_checkpoint(
        epoch: int, step: int, epoch_state: dict[str, Any], skipped: int = 0
    ) -> None:
        if ckpt is None:
            return
        model.progress = progress_state(epoch, step, epoch_state, skipped)
        model.save(ckpt)

    params = model.parameters()
    history = model.history
    has_acc = type(loss_fn).accuracy is not Loss.accuracy  # does the loss define accuracy?
    global_step = start_epoch * steps_per_epoch + start_step
    with _SignalGuard() as guard:
        for epoch in range(start_epoch, epochs):
            opt.set_epoch(epoch)
            epoch_state = dict(shuffle_rng.bit_generator.state)  # to redraw this epoch's order
            order = shuffle_rng.permutation(n) if shuffle else np.arange(n)
            # A GPU gets the epoch's order once: a host->device copy per step would sync.
            dev_order = be.index_array(order) if on_device and not be.is_host else None
            first_step = start_step if epoch == start_epoch else 0
            if first_step == 0:
                sums = {"loss": 0.0, "acc": 0.0, "seen": 0}
            bar = ProgressBar(n, f"epoch {epoch + 1}/{epochs}", enabled=verbose)
            bar.count = min(first_step * batch_size, n)
            t0 = time.perf_counter()
            # (loss, accuracy, rows) of each step since the last sync, still on the device:
            # summed in one go when read (a GPU pays a few launches per sync, not per step).
            pending: list[tuple[Array, Array | None, int]] = []
            skipped = start_skipped if epoch == start_epoch and first_step else 0
            last_sync = first_step
            for step in range(first_step, steps_per_epoch):
                lo, hi = step * batch_size, min((step + 1) * batch_size, n)
                idx = order[lo:hi]
                xb, yb = batch(idx, None if dev_order is None else dev_order[lo:hi])
                out = model.forward(xb, training=True)
                lv = loss_fn.forward(out, yb, check=False)
                model.backward(loss_fn.backward(), need_dx=False)
                params = model.parameters()  # cheap; robust to layers that replace grad arrays
                global_step += 1
                m = int(idx.shape[0])
                sync = step + 1 - last_sync >= sync_every or step == steps_per_epoch - 1
                if sync and not math.isfinite(be.to_float(_finite_probe(be, lv, params))):
                    if on_nonfinite == "raise":
                        span = (
                            f"step {global_step}"
                            if sync_every == 1
                            else f"one of steps {global_step - (step - last_sync)}..{global_step}"
                            f" (checked every {sync_every} steps)"
                        )
                        why, where = _diagnose(model, loss_fn, xb, yb)
                        raise NonFiniteError(
                            f"non-finite loss or gradient at {span} (epoch {epoch + 1}, batch "
                            f"{step + 1}/{steps_per_epoch}): {why}. Lower the learning rate, "
                            "pass clip_norm=..., or on_nonfinite='skip'",
                            step=global_step,
                            layer=where,
                        )
                    bad = _nonfinite_params(model)
                    if bad:  # skipping batches cannot repair the weights themselves
                        raise NonFiniteError(
                            f"step {global_step}: {', '.join(bad)} non-finite (an earlier "
                            "update overflowed); on_nonfinite='skip' cannot recover from that",
                            step=global_step,
                            layer=bad[0].split(" parameter ")[0],
                        )
                    skipped += 1
                else:
                    if clip is not None:
                        norm = _grad_norm(be, params)
                        scale = clip / be.xp.maximum(norm, be.zeros((), norm.dtype) + clip)
                        for _, _, g in params:
                            g *= scale
                    opt.step(params)
                    pending.append((lv, loss_fn.accuracy(out, yb) if has_acc else None, m))
                if sync:
                    last_sync = step + 1
                    _flush(be, sums, pending)
                    shown = {"loss": sums["loss"] / max(sums["seen"], 1)}
                    if has_acc:
                        shown["acc"] = sums["acc"] / max(sums["seen"], 1)
                    bar.update(min((step + 1) * batch_size, n) - bar.count, **shown)
                last = step == steps_per_epoch - 1
                if guard.signum is not None and not last:
                    _flush(be, sums, pending)
                    bar.close()
                    write_checkpoint(epoch, step + 1, epoch_state, skipped)
                    raise _interrupted(guard.signum, epoch, epochs, step + 1, steps_per_epoch, ckpt)
                if every is not None and global_step % every == 0 and not last:
                    _flush(be, sums, pending)
                    last_sync = step + 1
                    write_checkpoint(epoch, step + 1, epoch_state, skipped)
            if on_nonfinite == "skip" and skipped and skipped == steps_per_epoch - first_step:
                raise NonFiniteError(
                    f"every batch of epoch {epoch + 1} was non-finite and skipped: training is "
                    "not progressing (lower the learning rate or pass clip_norm=...)",
                    step=global_step,
                )
            elapsed = time.perf_counter() - t0
            seen = max(sums["seen"], 1)
            logs = {"loss": sums["loss"] / seen}
            if has_acc:
                logs["accuracy"] = sums["acc"] / seen
            if val is not None:
                vm = model.evaluate(val[0], val[1])
                logs.update({f"val_{k}": v for k, v in vm.items()})
            logs["lr"] = opt.lr
            logs["time"] = elapsed
            logs["samples_per_s"] = (n - first_step * batch_size) / elapsed if elapsed > 0 else 0.0
            if on_nonfinite == "skip":
                logs["skipped"] = float(skipped)
            bar.close(**{k: v for k, v in logs.items() if k.startswith("val_")})
            history.append(**logs)
            if on_epoch_end is not None:
                on_epoch_end(epoch, dict(logs))
            sums = {"loss": 0.0, "acc": 0.0, "seen": 0}
            next_state = dict(shuffle_rng.bit_generator.state)
            if epoch + 1 < epochs:
                write_checkpoint(epoch + 1, 0, next_state)
            if guard.signum is not None and epoch + 1 < epochs:
                raise _interrupted(guard.signum, epoch + 1, epochs, 0, steps_per_epoch, ckpt)
        model.progress = progress_state(epochs, 0, dict(shuffle_rng.bit_generator.state))
        model.progress["finished"] = True
        if ckpt is not None:
            model.save(ckpt)
        if guard.signum is not None:  # it came during the last step: finish, then still stop
            name = signal.Signals(guard.signum).name
            where = f"; the trained model is saved to {ckpt}" if ckpt else ""
            raise TrainingInterrupted(
                f"{name} arrived during the last step: training finished{where}",
                guard.signum,
                ckpt,
            )
    return history


def _checkpoint_path(checkpoint: Any) -> Path | None:
    """``checkpoint`` as a Path to a file (not a folder), or None."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path (str or os.PathLike), got {checkpoint!r}")
    path = Path(checkpoint)
    if str(checkpoint) == "" or path.is_dir():
        raise ValueError(f"checkpoint must be a file path, got the folder {str(path)!r}")
    return path


def _generator_state(layer: Any) -> dict[str, Any] | None:
    """A stochastic layer's generator state, or None where it cannot be saved."""
    try:
        return dict(layer.gen.get_state())
    except BackendError:
        return None


def _interrupted(
    signum: int, epoch: int, epochs: int, step: int, steps: int, ckpt: Path | None
) -> TrainingInterrupted:
    name = signal.Signals(signum).name
    where = f"; checkpoint saved to {ckpt}" if ckpt else " (no checkpoint= was given)"
    return TrainingInterrupted(
        f"training interrupted by {name} at epoch {epoch + 1}/{epochs}, step {step}/{steps}"
        f"{where}; resume with xpnet.load(path).fit(..., resume=True)",
        signum,
        ckpt,
    )


def _flush(be: Any, sums: dict[str, Any], pending: list[tuple[Any, Any, int]]) -> None:
    """Add the pending steps' ``loss * rows`` and ``accuracy * rows`` to the host totals (one
    device sync) and empty ``pending``."""
    if not pending:
        return
    # The totals are float64 (host floats, or float64 on the device): float32 ``loss * rows``
    # would overflow for losses near 1e38 that are themselves representable.
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


__all__ = ["NonFiniteError", "TrainingInterrupted", "fit", "prepare_inputs", "prepare_targets"]
