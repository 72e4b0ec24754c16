"""Lesson 3: "make your own neural network": 784-200-10 sigmoid, squared error, gradient descent.

The classic first digit recognizer, built as the book builds it:

* three layers of nodes, 784 inputs -> 200 hidden -> 10 outputs, every node a sigmoid
  ``o = 1 / (1 + exp(-x))``, and no biases;
* weights drawn from ``N(0, 1/sqrt(incoming links))`` (xpnet's ``init="normal"``);
* pixels rescaled to ``0.01 .. 1.0`` (a zero input would stop its weights from learning) and
  targets ``0.99`` for the right label, ``0.01`` for the others (a sigmoid never reaches 0 or 1);
* squared error and plain gradient descent, one image at a time. The book updates
  ``W += lr * E * o (1 - o) . x^T`` with ``E = t - o``, the gradient of ``1/2 sum (t - o)^2``.
  xpnet's ``MSE`` is the *mean* over the 10 outputs, whose gradient is ``2 (o - t) / 10``,
  five times smaller, so the book's learning rate 0.1 is ``--lr 0.5`` here: the same steps.

On the shipped sample (4,000 training digits) it reaches about 90% on the 1,000 held-out
digits in 5 epochs; the book reports about 97.5% with all 60,000 MNIST digits
(``--dataset mnist``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import xpnet
from xpnet.datasets import load_dataset
from xpnet.layers import Dense, Sigmoid
from xpnet.losses import MSE
from xpnet.optim import SGD

EPILOG = """\
examples:
  python examples/03_make_your_own_nn.py
  python examples/03_make_your_own_nn.py --epochs 2 --hidden 100
  python examples/03_make_your_own_nn.py --dataset mnist --data-dir ~/data/mnist
  python examples/03_make_your_own_nn.py --backend cupy --batch-size 10 --lr 5
"""


def scale_inputs(X: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 -> 0.01..1.0, as in the book."""
    return (X.astype(np.float32) / 255.0) * 0.99 + 0.01


def one_hot_targets(y: np.ndarray) -> np.ndarray:
    """Labels -> rows of 0.01 with 0.99 at the label."""
    t = np.full((len(y), 10), 0.01, dtype=np.float32)
    t[np.arange(len(y)), y] = 0.99
    return t


def subset(X: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows drawn at random without replacement, kept in file order."""
    rows = np.sort(np.random.default_rng(seed).choice(len(y), min(n, len(y)), replace=False))
    return X[rows], y[rows]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy", "auto"),
                        help="array backend (default: numpy)")
    parser.add_argument("--dataset", default="mnist-sample",
                        choices=("mnist-sample", "mnist", "fashion-mnist"),
                        help="data set (default: the shipped mnist-sample)")
    parser.add_argument("--data-dir", help="folder holding the IDX files of --dataset")
    parser.add_argument("--hidden", type=int, default=200, help="hidden nodes (default: 200)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs (default: 5)")
    parser.add_argument("--lr", type=float, default=0.5,
                        help="learning rate for xpnet's mean-squared error (default: 0.5, "
                        "the book's 0.1)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images per step (default: 1, as in the book)")
    parser.add_argument("--limit", type=int, help="train on N images drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    args = parser.parse_args()

    be = xpnet.get_backend(args.backend)
    X, y = load_dataset(args.dataset, "train", data_dir=args.data_dir)
    Xt, yt = load_dataset(args.dataset, "test", data_dir=args.data_dir)
    if args.limit:  # a random subset: the sample's files are sorted by class
        X, y = subset(X, y, args.limit, args.seed)
    print(f"backend: {be.name}; {args.dataset}: {len(y)} training, {len(yt)} test images")

    model = xpnet.Sequential(
        [Dense(784, args.hidden, bias=False, init="normal"), Sigmoid(),
         Dense(args.hidden, 10, bias=False, init="normal"), Sigmoid()],
        backend=be, seed=args.seed,
    )
    model.compile(MSE(), SGD(args.lr))
    inputs, targets, test_inputs = scale_inputs(X), one_hot_targets(y), scale_inputs(Xt)

    def report(epoch: int, logs: dict[str, float]) -> None:
        acc = float(np.mean(model.predict(test_inputs) == yt))
        print(f"epoch {epoch + 1}/{args.epochs}  squared error {logs['loss']:.4f}  "
              f"test accuracy {acc:.4f}  {logs['time']:.1f}s", flush=True)

    start = time.perf_counter()
    model.fit(inputs, targets, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
              verbose=False, on_epoch_end=report)
    # "Query" the network: the output node with the largest signal is its answer.
    acc = float(np.mean(model.predict(test_inputs) == yt))
    print(f"test accuracy: {acc:.4f} on {len(yt)} {args.dataset} test images "
          f"({args.epochs} epochs, {time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    main()
