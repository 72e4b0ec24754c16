"""A seeded data-parallel training run that tests/test_training_parallel.py starts, alone (one
process, no MPI) or under ``mpiexec -n 2`` (``--mpi``).

usage: python tests/_dp_child.py OUT_DIR [--mpi] [--timeout S] [--dtype D] [--dropout P]
           [--epochs E] [--batch-size B] [--rows N] [--checkpoint PATH] [--every K] [--resume]
           [--slow-after K]

Trains a 24-32-16-4 MLP (ReLU, dropout, Adam with a step-decay schedule) on synthetic, learnable
data with fixed seeds, or resumes ``--checkpoint``; validation on held-out rows. Each rank
writes its final weights to ``OUT_DIR/rank<r>.npz`` and its history to ``OUT_DIR/rank<r>.json``
(the parent checks every replica); rank 0 also saves the model to ``OUT_DIR/model.npz``.
Every rank prints ``rank R pid P`` at the start and ``rank R epoch K`` after each epoch
(flushed), so the parent knows whom to signal and when. ``--slow-after K`` makes each step
after global step K sleep 50 ms, so that a parent can signal a rank mid-epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import xpnet
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, StepDecay
from xpnet.training import Callback, TrainState

FEATURES, CLASSES, MODEL_SEED, FIT_SEED = 24, 4, 3, 7


def data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The argmax of a fixed random projection plus noise: learnable classes."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    W = rng.normal(size=(FEATURES, CLASSES))
    y = np.argmax(X @ W + 0.5 * rng.normal(size=(rows, CLASSES)), axis=1).astype(np.int64)
    return X, y


def model(dtype: str, dropout: float) -> xpnet.Sequential:
    layers = [Dense(FEATURES, 32), ReLU(), Dropout(dropout), Dense(32, 16), ReLU(),
              Dropout(dropout), Dense(16, CLASSES)]
    net = xpnet.Sequential(layers, seed=MODEL_SEED, dtype=dtype)
    return net.compile(SoftmaxCrossEntropy(), Adam(0.01, schedule=StepDecay(2, 0.5)))


class Report(Callback):
    """Prints each finished epoch; optionally slows the steps down after a given step."""

    def __init__(self, rank: int, slow_after: int | None) -> None:
        self.rank, self.slow_after = rank, slow_after

    def on_batch_end(self, state: TrainState) -> None:
        if self.slow_after is not None and state.global_step > self.slow_after:
            time.sleep(0.05)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        print(f"rank {self.rank} epoch {epoch + 1}", flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--mpi", action="store_true")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--checkpoint")
    ap.add_argument("--every", type=int)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--slow-after", type=int)
    args = ap.parse_args(argv)

    comm = None
    if args.mpi:
        from xpnet.distributed import get_communicator

        comm = get_communicator("mpi", timeout=args.timeout)
    rank = 0 if comm is None else comm.rank
    print(f"rank {rank} pid {os.getpid()}", flush=True)
    X, y = data(args.rows + 200)
    (Xtr, ytr), val = (X[: args.rows], y[: args.rows]), (X[args.rows :], y[args.rows :])
    net = xpnet.load(args.checkpoint) if args.resume else model(args.dtype, args.dropout)
    try:
        net.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, validation_data=val,
                seed=None if args.resume else FIT_SEED, checkpoint=args.checkpoint,
                every=args.every, resume=args.resume, verbose=False, comm=comm,
                callbacks=[Report(rank, args.slow_after)])
    except xpnet.TrainingInterrupted as exc:
        print(f"rank {rank} interrupted: {exc}", flush=True)
        return 0
    weights = {k.replace(".", "_"): np.asarray(v) for k, v in net.params.items()}
    np.savez(args.out / f"rank{rank}.npz", **weights)
    (args.out / f"rank{rank}.json").write_text(json.dumps(net.history.to_dict()))
    if rank == 0:
        net.save(args.out / "model.npz")
    print(f"rank {rank} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
