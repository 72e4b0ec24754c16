"""Lesson 1: a perceptron learns NAND, first with a step activation, then as a sigmoid neuron.

Part 1 is Rosenblatt's perceptron exactly as the classic worked example builds it, by hand on
xpnet's backend arrays: inputs carry a constant bias input ``x0 = 1``, the weights start at
zero, the output is the step ``y = 1 if w . x > 0.5 else 0`` (threshold 0.5), and after every
sample each weight moves by the perceptron rule

    w_i <- w_i + lr * (t - y) * x_i        (lr = 0.1)

until a whole pass makes no mistake. NAND is linearly separable, so it converges (to
w = [0.8, -0.2, -0.1]).

Part 2 swaps the step for a smooth sigmoid ``p = sigmoid(x @ W + b)`` so the output has a
gradient, and trains it with xpnet's layers: Dense(2, 1) -> Sigmoid, binary cross-entropy
``-mean(t log p + (1 - t) log(1 - p))``, plain gradient descent on all four rows at once.
"""

from __future__ import annotations

import argparse

import numpy as np

import xpnet
from xpnet.layers import Dense, Sigmoid
from xpnet.losses import BinaryCrossEntropy
from xpnet.optim import SGD

EPILOG = """\
examples:
  python examples/01_perceptron_nand.py
  python examples/01_perceptron_nand.py --backend cupy --epochs 2000
  python examples/01_perceptron_nand.py --lr 0.5 --quiet
"""

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
NAND = np.array([1, 1, 1, 0], dtype=np.float64)


def step_perceptron(be: xpnet.Backend, lr: float, max_epochs: int, quiet: bool) -> int:
    """Train the step perceptron; return the epochs it took (0 if it did not converge)."""
    xp = be.xp
    # Column 0 is the bias input x0 = 1, so w[0] plays the role of the bias.
    X = be.asarray(np.hstack([np.ones((4, 1)), INPUTS]))
    t = be.asarray(NAND)
    w = be.zeros((3,))
    threshold = 0.5
    for epoch in range(1, max_epochs + 1):
        mistakes = 0
        for i in range(4):
            x_i = X[i, ...]
            y = 1.0 if be.to_float(xp.sum(x_i * w)) > threshold else 0.0
            error = be.to_float(t[i, ...]) - y
            if error != 0.0:
                mistakes += 1
                w = w + (lr * error) * x_i
        if not quiet:
            shown = ", ".join(f"{v:+.2f}" for v in be.to_host(w))
            print(f"  epoch {epoch}: weights [{shown}], mistakes {mistakes}")
        if mistakes == 0:
            break
    else:
        return 0
    out = be.to_host(X @ w) > threshold
    print("  x1 x2 | NAND | perceptron")
    for (a, b), target, o in zip(INPUTS.astype(int), NAND.astype(int), out, strict=True):
        print(f"   {a}  {b} |  {target}   |  {int(o)}")
    final = ", ".join(f"{v:+.2f}" for v in be.to_host(w))
    print(f"step perceptron: converged after {epoch} epochs, weights [{final}]")
    return epoch


def sigmoid_neuron(be: xpnet.Backend, lr: float, epochs: int, seed: int) -> float:
    """Train Dense(2, 1) -> Sigmoid with binary cross-entropy; return its accuracy."""
    model = xpnet.Sequential([Dense(2, 1, init="uniform"), Sigmoid()], backend=be, seed=seed)
    model.compile(BinaryCrossEntropy(), SGD(lr))
    history = model.fit(INPUTS, NAND, epochs=epochs, batch_size=4, shuffle=False,
                        seed=seed, verbose=False)
    p = model.predict_proba(INPUTS)[:, 0]
    print("  x1 x2 | NAND | sigmoid output")
    for (a, b), target, prob in zip(INPUTS.astype(int), NAND.astype(int), p, strict=True):
        print(f"   {a}  {b} |  {target}   |  {prob:.3f}")
    W = be.to_host(model.layers[0].params["W"])[:, 0]
    b = float(be.to_host(model.layers[0].params["b"])[0])
    print(f"  weights [{W[0]:+.2f}, {W[1]:+.2f}], bias {b:+.2f}; "
          f"final loss {history['loss'][-1]:.4f}")
    acc = float(np.mean((p > 0.5) == NAND.astype(bool)))
    print(f"sigmoid neuron: accuracy {acc:.2f} after {epochs} epochs")
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy", "auto"),
                        help="array backend (default: numpy)")
    parser.add_argument("--lr", type=float, default=0.1,
                        help="perceptron learning rate (default: 0.1, as in the lesson)")
    parser.add_argument("--epochs", type=int, default=1000,
                        help="gradient-descent epochs for the sigmoid neuron (default: 1000)")
    parser.add_argument("--sigmoid-lr", type=float, default=2.0,
                        help="sigmoid neuron learning rate (default: 2.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="do not print every epoch")
    args = parser.parse_args()

    be = xpnet.get_backend(args.backend)
    print(f"backend: {be.name}")
    print("part 1: step-activation perceptron (threshold 0.5, weights start at 0)")
    if not step_perceptron(be, args.lr, 100, args.quiet):
        raise SystemExit("the perceptron did not converge in 100 epochs")
    print("part 2: sigmoid neuron, binary cross-entropy, gradient descent")
    sigmoid_neuron(be, args.sigmoid_lr, args.epochs, args.seed)


if __name__ == "__main__":
    main()
