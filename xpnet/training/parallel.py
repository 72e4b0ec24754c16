"""Data-parallel training: what ``fit(comm=...)`` asks of a communicator, at fixed points.

``fit`` holds one :class:`DataParallel`. With the single-process communicator (the default)
every method returns at once and changes nothing, so a run without ``comm`` is what it always
was, bit for bit. With ``size`` ranks (processes, one per core, GPU or host):

* :meth:`DataParallel.start`: every rank starts from rank 0's weights, buffers, optimizer
  state and random streams (shuffle and dropout generators), after checking that all ranks
  were given the same data size, batch size and model;
* :meth:`DataParallel.rows`: each global batch ``[lo, hi)`` of the epoch's permutation (the
  same on every rank) is split into contiguous shards, rank ``r`` taking
  ``shard(lo, hi, r, size)``; a rank whose shard would be empty (a last batch with fewer rows
  than ranks) computes the batch's last row with weight 0. Stochastic layers draw for the
  whole global batch and keep the rank's rows (``Stochastic.window``), so a global row gets
  the same dropout mask whatever the number of ranks, and every rank's generators stay in step;
* :meth:`DataParallel.reduce`: after backward the gradients, the batch loss and accuracy go in
  ONE allreduce, weighted by the shards' rows: every rank gets ``sum_r n_r g_r / sum_r n_r``,
  the gradient of the mean loss over the global batch, as one process computes it up to the
  order of the float additions; the finiteness check and the metrics then see global values;
* :meth:`DataParallel.agreed_signal`: a SIGINT/SIGTERM on any rank stops every rank after the
  same step (a max-allreduce of the signal number each step, ~5 us);
* :meth:`DataParallel.evaluate`: validation is sharded and its sums reduced;
* ``writes``: only rank 0 prints, and writes checkpoints (``TrainState.writes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backends import Array, Backend
from ..distributed import Communicator, DistributedError, SingleProcess, shard
from ..layers.base import Stochastic

if TYPE_CHECKING:
    from ..model import Sequential
    from .state import TrainState


class DataParallel:
    """``fit``'s side of data-parallel training over ``comm`` (None: one process)."""

    def __init__(self, comm: Communicator | None) -> None:
        if comm is not None and not isinstance(comm, Communicator):
            raise TypeError(f"comm must be an xpnet.distributed Communicator or None, got {comm!r}")
        self.comm: Communicator = SingleProcess() if comm is None else comm
        self.active = self.comm.size > 1
        self._layers: list[Stochastic] = []
        self._weight, self._total = 0, 0

    @property
    def writes(self) -> bool:
        """Whether this process prints and writes files (rank 0)."""
        return self.comm.is_root

    # ---------------------------------------------------------------------- the start
    def start(self, state: TrainState) -> None:
        """Rank 0's weights, optimizer state, random streams and running sums on every rank."""
        self._layers = state.stochastic_layers()
        state.writes = self.writes
        if not self.active:
            return
        model, comm = state.model, self.comm
        self._agree(state)
        self._refuse_batch_dependent(model)
        be = model.backend
        arrays = [p for _, p, _ in model.parameters()]
        arrays += [b for layer in model.layers for b in layer.buffers.values()]
        comm.broadcast(arrays, backend=be)
        opt = model.optimizer
        assert opt is not None
        slots = {name: sorted(st) for name, st in sorted(opt.state.items())}
        root = comm.broadcast_json({"t": opt.t, "slots": slots})
        if root["slots"] != slots:
            raise DistributedError(
                f"rank {comm.rank}: the optimizer holds state for {sorted(slots)} but rank 0's "
                f"for {sorted(root['slots'])} (load the same checkpoint on every rank)"
            )
        opt.t = int(root["t"])
        comm.broadcast([opt.state[n][s] for n, names in slots.items() for s in names], backend=be)
        streams = comm.broadcast_json({
            "shuffle": dict(state.shuffle_rng.bit_generator.state),
            "dropout": [layer.rng_state() for layer in self._layers],
            "sums": state.metrics.sums,
        })
        state.shuffle_rng.bit_generator.state = streams["shuffle"]
        for layer, saved in zip(self._layers, streams["dropout"], strict=True):
            if saved is not None:
                layer.set_rng_state(saved)
        state.metrics.sums = dict(streams["sums"])

    def _agree(self, state: TrainState) -> None:
        """Refuse to start when the ranks were given different runs (data, batch, model)."""
        mine = {
            "n_samples": state.n_samples, "batch_size": state.batch_size,
            "epochs": state.epochs, "shuffle": state.shuffle,
            "start": [state.start_epoch, state.start_step],
            "params": [[k, list(p.shape), str(p.dtype)] for k, p, _ in state.model.parameters()],
            "layers": [type(layer).__name__ for layer in state.model.layers],
        }
        root = self.comm.broadcast_json(mine)
        bad = [k for k in mine if root[k] != mine[k]]
        if bad:
            theirs = ", ".join(f"{k}={root[k]!r}" for k in bad)
            ours = ", ".join(f"{k}={mine[k]!r}" for k in bad)
            raise DistributedError(
                f"rank {self.comm.rank} was given {ours} but rank 0 {theirs}: every rank must "
                "train the same model on the same data with the same fit arguments"
            )

    def _refuse_batch_dependent(self, model: Sequential) -> None:
        """A layer whose output depends on the whole batch (``Layer.batch_dependent``: batch
        normalization) would see only this rank's shard: the run would not be the one a single
        process trains, so it is refused (on every rank alike: the ranks agreed on the model)."""
        names = [layer.name for layer in model.layers if layer.batch_dependent]
        if names:
            raise DistributedError(
                f"fit(comm=...) over {self.comm.size} processes: {', '.join(names)} normalizes "
                "with statistics of the batch, and each process would see only its shard of it "
                "(no synchronized batch statistics in xpnet), so the run would differ from "
                "one-process training; train it in one process (comm=None), or use a model "
                "without batch-dependent layers"
            )

    def finish(self) -> None:
        """Leave the stochastic layers drawing for their own batches again."""
        for layer in self._layers:
            layer.window = None

    # ----------------------------------------------------------------------- each step
    def rows(self, lo: int, hi: int) -> tuple[int, int]:
        """This rank's rows ``[a, b)`` of the global batch ``[lo, hi)`` (set up its dropout)."""
        if not self.active:
            return lo, hi
        a, b = shard(lo, hi, self.comm.rank, self.comm.size)
        self._weight, self._total = b - a, hi - lo
        if a == b:  # fewer rows than ranks: compute one row, but let it count for nothing
            a, b = hi - 1, hi
        for layer in self._layers:
            layer.window = (a - lo, hi - lo)
        return a, b

    def reduce(
        self, be: Backend, params: list[tuple[str, Array, Array]], loss: Array,
        accuracy: Array | None, rows: int,
    ) -> tuple[Array, Array | None, int]:
        """Average the gradients (in place), loss and accuracy over the global batch.

        Returns ``(loss, accuracy, rows)`` of the global batch (this rank's when alone).
        """
        if not self.active:
            return loss, accuracy, rows
        xp = be.xp
        dtype = params[0][2].dtype if params else be.dtype
        boxes = [be.astype(xp.reshape(loss, (1,)), dtype)]
        if accuracy is not None:
            boxes.append(be.astype(xp.reshape(accuracy, (1,)), dtype))
        grads = [g for _, _, g in params]
        self.comm.allreduce_mean([*grads, *boxes], weight=float(self._weight), backend=be)
        return boxes[0][0], boxes[1][0] if accuracy is not None else None, self._total

    def agreed_signal(self, signum: int | None) -> int | None:
        """The signal that stops training after this step on every rank (the largest seen)."""
        if not self.active:
            return signum
        top = int(self.comm.allreduce([float(signum or 0)], "max")[0])
        return top or None

    def barrier(self) -> None:
        """Wait for every rank (rank 0 has written its checkpoint once all pass this)."""
        self.comm.barrier()

    # ---------------------------------------------------------------------- validation
    def evaluate(self, model: Sequential, X: Array, y: Array, has_accuracy: bool) -> dict[str, Any]:
        """``model.evaluate_prepared(X, y)`` over every rank's share of the rows, reduced."""
        if not self.active:
            return model.evaluate_prepared(X, y)
        n = int(X.shape[0])
        a, b = shard(0, n, self.comm.rank, self.comm.size)
        keys = ["loss", "accuracy"] if has_accuracy else ["loss"]
        mine = model.evaluate_prepared(X[a:b, ...], y[a:b, ...]) if b > a else {}
        sums = self.comm.allreduce([mine.get(k, 0.0) * (b - a) for k in keys])
        return {k: s / n for k, s in zip(keys, sums, strict=True)}
