"""``xpnet evaluate MODEL``: accuracy, per-class accuracy and confusion matrix of a saved model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..architectures import short_description
from .common import (
    FORMATTER,
    backend_for,
    check_plot_available,
    class_names,
    data_options,
    load_model,
    load_split,
    noun,
)

EVALUATE_EPILOG = """\
Prints the accuracy, each class's accuracy and the confusion matrix (rows: true class,
columns: predicted class). Only the files of the split asked for are needed, so a folder
holding just t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz is enough.

examples:
  xpnet evaluate model.npz
      the model on the shipped sample's 1,000 held-out digits
  xpnet evaluate model.npz --dataset mnist --data-dir ~/data/mnist
  xpnet evaluate fashion.npz --dataset fashion-mnist --json | python -m json.tool
  xpnet evaluate model.npz --plot eval.png      # confusion matrix, errors, weights
"""


def add_parser(sub: Any) -> None:
    """The ``evaluate`` subcommand and its options."""
    e = sub.add_parser(
        "evaluate", help="accuracy, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a saved model on a data set's test split.",
        epilog=EVALUATE_EPILOG, formatter_class=FORMATTER,
    )
    e.add_argument("model", type=Path, metavar="MODEL", help="a model saved by xpnet (.npz)")
    data_options(e, limit_help="evaluate only N images, drawn at random (the same ones "
                  "every run)")
    e.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split to evaluate on (default: test)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    e.add_argument("--plot", type=Path, metavar="PATH",
                   help="write one PNG: training curves stored in the model, confusion "
                   "matrix, misclassified images, first-layer weights (needs xpnet[plot])")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``xpnet evaluate``: predictions on a split, printed as text or one JSON object."""
    from ..datasets import preprocess
    from ..metrics import confusion_matrix, per_class_accuracy

    check_plot_available(args.plot)
    backend = backend_for(args.backend, args.dtype)
    model = load_model(args.model, backend)
    X_raw, y = load_split(args, args.split)
    X = preprocess(X_raw)
    pred = model.predict(X)
    cm = confusion_matrix(y, pred, 10)
    acc = float(np.mean(pred == y))
    report = {
        "model": str(args.model), "dataset": args.dataset, "split": args.split,
        "n": int(len(y)), "accuracy": acc, "loss": _loss(model, X, y),
        "class_names": class_names(args.dataset) or [str(i) for i in range(10)],
    }
    if args.json:
        names = report["class_names"]
        report["per_class_accuracy"] = {
            n: (None if np.isnan(v) else float(v))
            for n, v in zip(names, per_class_accuracy(cm), strict=True)
        }
        report["confusion_matrix"] = cm.tolist()
        print(json.dumps(report))
    else:
        _print_text(model, args, report, cm)
    if args.plot is not None:
        from ..plot import first_layer_weights, plot_report

        title = f"xpnet evaluate {args.model.name} on {args.dataset} {args.split}: " \
                f"accuracy {acc:.4f}"
        plot_report(args.plot, history=model.history or None, cm=cm, X=X_raw, y_true=y,
                    y_pred=pred, weights=first_layer_weights(model),
                    class_names=class_names(args.dataset), title=title)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _loss(model: Any, X: np.ndarray, y: np.ndarray) -> float | None:
    """The model's own loss on the split: on the labels, or on one-hot rows for a loss that
    takes targets of the outputs' shape (MSE); None when it takes neither."""
    if model.loss is None:
        return None
    for targets in (y, np.eye(10, dtype=np.float32)[y]):
        try:
            return float(model.evaluate(X, targets)["loss"])
        except (TypeError, ValueError):
            continue
    return None


def _print_text(model: Any, args: argparse.Namespace, report: dict[str, Any], cm: Any) -> None:
    from ..metrics import per_class_accuracy

    y_n, acc, loss, names = report["n"], report["accuracy"], report["loss"], report["class_names"]
    print(f"model: {args.model} ({short_description(model)})")
    print(f"data: {args.dataset} {args.split} split, {y_n} {noun(args.dataset)}")
    print(f"accuracy: {acc:.4f} ({int(np.trace(cm))}/{y_n} correct)")
    if loss is not None:
        print(f"loss: {loss:.4f} ({type(model.loss).__name__})")
    print("per-class accuracy:")
    width = max(map(len, names))
    for i, (n, v) in enumerate(zip(names, per_class_accuracy(cm), strict=True)):
        shown = "   n/a" if np.isnan(v) else f"{v:.4f}"
        label = f"{i}" if n == str(i) else f"{i} {n:<{width}}"
        print(f"  {label}  {shown}  ({cm[i, i]}/{cm[i].sum()})")
    print("confusion matrix (rows: true class, columns: predicted):")
    cell = max(4, len(str(int(cm.max()))) + 1)
    print("     " + "".join(f"{j:>{cell}}" for j in range(10)))
    for i in range(10):
        print(f"  {i}: " + "".join(f"{int(v):>{cell}}" for v in cm[i]))
