"""Lesson 2: XOR needs a hidden layer.

XOR is not linearly separable: no single line splits {(0,1), (1,0)} from {(0,0), (1,1)}, so the
single sigmoid neuron of lesson 1 cannot learn it (it ends up right on at most 3 of 4 rows).
One hidden layer fixes that: Dense(2, 4) -> Tanh -> Dense(4, 1), trained on the four rows with
binary cross-entropy on the logit (the sigmoid fused into the loss for a stable gradient,
``dL/dz = sigmoid(z) - t``) and gradient descent with momentum. The hidden units bend the input
space until one line does separate the classes.
"""

from __future__ import annotations

import argparse

import numpy as np

import xpnet
from xpnet.layers import Dense, Tanh
from xpnet.losses import BinaryCrossEntropy
from xpnet.optim import SGD

EPILOG = """\
examples:
  python examples/02_xor_mlp.py
  python examples/02_xor_mlp.py --hidden 2 --seed 3
  python examples/02_xor_mlp.py --backend auto --epochs 500
"""

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR = np.array([0, 1, 1, 0], dtype=np.float64)


def train(layers: list, be: xpnet.Backend, args: argparse.Namespace) -> np.ndarray:
    model = xpnet.Sequential(layers, backend=be, seed=args.seed)
    model.compile(BinaryCrossEntropy(from_logits=True), SGD(args.lr, momentum=0.9))
    model.fit(INPUTS, XOR, epochs=args.epochs, batch_size=4, shuffle=False, seed=args.seed,
              verbose=False)
    return model.predict_proba(INPUTS)[:, 0]


def show(name: str, p: np.ndarray) -> float:
    print("  x1 x2 | XOR | output")
    for (a, b), t, prob in zip(INPUTS.astype(int), XOR.astype(int), p, strict=True):
        print(f"   {a}  {b} |  {t}  | {prob:.3f}")
    acc = float(np.mean((p > 0.5) == XOR.astype(bool)))
    print(f"{name}: accuracy {acc:.2f}")
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy", "auto"),
                        help="array backend (default: numpy)")
    parser.add_argument("--hidden", type=int, default=4, help="hidden units (default: 4)")
    parser.add_argument("--epochs", type=int, default=1000,
                        help="full-batch gradient steps (default: 1000)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    args = parser.parse_args()

    be = xpnet.get_backend(args.backend)
    print(f"backend: {be.name}")
    print("a single neuron, Dense(2, 1) on the logit:")
    show("single neuron", train([Dense(2, 1, init="glorot")], be, args))
    print(f"a hidden layer, Dense(2, {args.hidden}) -> Tanh -> Dense({args.hidden}, 1):")
    layers = [Dense(2, args.hidden, init="glorot"), Tanh(), Dense(args.hidden, 1, init="glorot")]
    show("mlp", train(layers, be, args))


if __name__ == "__main__":
    main()
