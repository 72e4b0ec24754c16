"""A small, seeded training run that tests/test_checkpoint_resume.py starts as a child process.

usage: python tests/_train_child.py OUT [--checkpoint PATH] [--every N] [--resume]
                                        [--epochs E] [--batch-size B]

Trains a 32-64-4 MLP with dropout and Adam under a step-decay schedule on synthetic data
(fixed seeds), or resumes the run saved in ``--checkpoint``, and writes the final model to
``OUT``. After each epoch it prints ``epoch K`` (flushed): by then ``fit`` has installed its
SIGINT/SIGTERM handlers, so the parent knows a signal will be handled. An interrupted run
prints ``interrupted: <message>`` and exits with status 0.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import xpnet
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, StepDecay

N, FEATURES, CLASSES = 1200, 32, 4
MODEL_SEED, FIT_SEED = 5, 11


def data() -> tuple[np.ndarray, np.ndarray]:
    """Synthetic, learnable classes: the argmax of a fixed random projection plus noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, FEATURES)).astype(np.float32)
    W = rng.normal(size=(FEATURES, CLASSES))
    y = np.argmax(X @ W + 0.5 * rng.normal(size=(N, CLASSES)), axis=1).astype(np.int64)
    return X, y


def model() -> xpnet.Sequential:
    net = xpnet.Sequential(
        [Dense(FEATURES, 64), ReLU(), Dropout(0.2), Dense(64, CLASSES)], seed=MODEL_SEED
    )
    return net.compile(SoftmaxCrossEntropy(), Adam(0.005, schedule=StepDecay(2, 0.5)))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--checkpoint")
    ap.add_argument("--every", type=int)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)

    X, y = data()
    net = xpnet.load(args.checkpoint) if args.resume else model()

    def report(epoch: int, logs: dict[str, float]) -> None:
        print(f"epoch {epoch + 1}", flush=True)

    try:
        net.fit(
            X,
            y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=None if args.resume else FIT_SEED,
            checkpoint=args.checkpoint,
            every=args.every,
            resume=args.resume,
            verbose=False,
            on_epoch_end=report,
        )
    except xpnet.TrainingInterrupted as exc:
        print(f"interrupted: {exc}", flush=True)
        return 0
    net.save(args.out)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
