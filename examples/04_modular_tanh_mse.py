"""Lesson 4: a modular network: Dense and activation layers as objects, chained by hand.

Every layer is an object with ``forward(x) -> y`` and ``backward(dy) -> dx``; a network is
just a list of them. Training one sample (or batch) is three loops:

    out = x
    for layer in layers:            out = layer.forward(out)      # the prediction
    grad = loss.backward()          # dL/dout for L = mean((out - t)^2): 2 (out - t) / size
    for layer in reversed(layers):  grad = layer.backward(grad)  # chain rule, layer by layer

after which each Dense layer holds ``grads["W"] = x^T dy`` and ``grads["b"] = sum(dy)``, and
gradient descent moves every parameter ``p <- p - lr * dp``. This is what
``xpnet.Sequential.fit`` does for you; here it is written out. Activations are tanh, the loss
is mean squared error (on one-hot targets for digits), samples are fed one at a time.

Part 1 learns XOR with 2-3-1; part 2 classifies digits with 784-100-50-10.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import xpnet
from xpnet.datasets import load_dataset, preprocess
from xpnet.layers import Dense, Layer, Tanh
from xpnet.losses import MSE
from xpnet.optim import SGD

EPILOG = """\
examples:
  python examples/04_modular_tanh_mse.py
  python examples/04_modular_tanh_mse.py --epochs 5 --limit 1000
  python examples/04_modular_tanh_mse.py --dataset mnist --data-dir ~/data/mnist --epochs 3
  python examples/04_modular_tanh_mse.py --backend cupy --batch-size 32 --lr 0.5
"""


def network(sizes: list[int], be: xpnet.Backend, rng: np.random.Generator) -> list[Layer]:
    """Dense -> Tanh for each pair of widths, every layer on backend ``be``."""
    layers: list[Layer] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(Dense(n_in, n_out, init="glorot", rng=rng, backend=be))
        layers.append(Tanh().to(be))
    return layers


def forward(layers: list[Layer], x: object, training: bool = False) -> object:
    for layer in layers:
        x = layer.forward(x, training=training)
    return x


def train(layers: list[Layer], X: np.ndarray, T: np.ndarray, be: xpnet.Backend, *,
          epochs: int, lr: float, batch_size: int, rng: np.random.Generator,
          every: int, evaluate: object = None) -> None:
    loss = MSE().to(be)
    opt = SGD(lr).to(be)
    params = [(f"{i}.{k}", layer.params[k], layer.grads[k])
              for i, layer in enumerate(layers) for k in layer.params]
    Xd, Td = be.asarray(X), be.asarray(T)
    n = len(X)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        total = 0.0
        order = rng.permutation(n)
        for i in range(0, n, batch_size):
            idx = be.index_array(order[i : i + batch_size])
            out = forward(layers, be.take_rows(Xd, idx), training=True)
            total += be.to_float(loss.forward(out, be.take_rows(Td, idx))) * len(idx)
            grad = loss.backward()
            for layer in reversed(layers):
                grad = layer.backward(grad)
            opt.step(params)
        if epoch % every == 0 or epoch == epochs:
            line = f"  epoch {epoch}/{epochs}  mse {total / n:.4f}"
            if evaluate is not None:
                line += f"  test accuracy {evaluate():.4f}"  # type: ignore[operator]
            print(line + f"  {time.perf_counter() - start:.2f}s", flush=True)


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
                        help="data set for part 2 (default: the shipped mnist-sample)")
    parser.add_argument("--data-dir", help="folder holding the IDX files of --dataset")
    parser.add_argument("--epochs", type=int, default=10, help="digit epochs (default: 10)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="samples per step (default: 1)")
    parser.add_argument("--limit", type=int, help="train on N images drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    args = parser.parse_args()

    be = xpnet.get_backend(args.backend)
    rng = np.random.default_rng(args.seed)
    print(f"backend: {be.name}")

    print("part 1: XOR with 2-3-1 tanh layers, mean squared error, one sample at a time")
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    T = np.array([[0], [1], [1], [0]], dtype=np.float32)
    xor = network([2, 3, 1], be, rng)
    train(xor, X, T, be, epochs=1000, lr=0.1, batch_size=1, rng=rng, every=250)
    out = be.to_host(forward(xor, be.asarray(X)))[:, 0]
    print("  inputs  -> output: " + ", ".join(
        f"{a:.0f}{b:.0f} -> {o:+.3f}" for (a, b), o in zip(X, out, strict=True)))
    xor_acc = float(np.mean((out > 0.5) == (T[:, 0] > 0.5)))
    print(f"xor: accuracy {xor_acc:.2f}")

    print(f"part 2: digits with 784-100-50-10 tanh layers on {args.dataset}")
    Xtr, ytr = load_dataset(args.dataset, "train", data_dir=args.data_dir)
    Xte, yte = load_dataset(args.dataset, "test", data_dir=args.data_dir)
    if args.limit:  # a random subset: the sample's files are sorted by class
        Xtr, ytr = subset(Xtr, ytr, args.limit, args.seed)
    targets = np.eye(10, dtype=np.float32)[ytr]   # one-hot: tanh can reach 0 and ~1
    digits = network([784, 100, 50, 10], be, rng)
    test_inputs = be.asarray(preprocess(Xte))

    def accuracy() -> float:
        pred = np.argmax(be.to_host(forward(digits, test_inputs)), axis=1)
        return float(np.mean(pred == yte))

    start = time.perf_counter()
    train(digits, preprocess(Xtr), targets, be, epochs=args.epochs, lr=args.lr,
          batch_size=args.batch_size, rng=rng, every=1, evaluate=accuracy)
    print(f"test accuracy: {accuracy():.4f} on {len(yte)} {args.dataset} test images "
          f"({len(ytr)} training images, {args.epochs} epochs, "
          f"{time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    main()
