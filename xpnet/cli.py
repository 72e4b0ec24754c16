"""The ``xpnet`` command: ``xpnet train``, ``xpnet evaluate MODEL``, ``xpnet predict MODEL IMAGE``.

Errors are reported as one line on stderr with exit status 2 (never a traceback; set
``XPNET_DEBUG=1`` to see one); Ctrl-C stops cleanly with exit status 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__

PROG = "xpnet"
DATASETS = ("mnist-sample", "mnist", "fashion-mnist")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
OPTIMIZERS = ("adam", "sgd", "momentum", "nesterov")
SCHEDULES = ("inverse-time", "step", "cosine", "constant")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: What ``xpnet train`` does with no arguments (the MNIST-classifier recipe; see --help).
DEFAULTS: dict[str, Any] = {
    "hidden": [400, 100],
    "activation": "relu",
    "dropout": 0.2,
    "optimizer": "adam",
    "lr": 0.005,
    "beta1": 0.8,
    "beta2": 0.999,
    "schedule": "inverse-time",
    "decay": 0.3,
    "batch_size": 256,
    "seed": 0,
}
#: Chosen on validation digits carved out of the training splits (never the test splits):
#: on the sample, dropout 0.2-0.3 and 30-40 epochs all land within noise of each other; on
#: Fashion-MNIST dropout 0.5 underfits (about 1 point lower after 30 epochs).
DEFAULT_EPOCHS = 30


class CLIError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- the parser
TOP_EPILOG = """\
examples:
  xpnet train                               # 784-400-100-10 on the shipped 5k MNIST sample
  xpnet train --dataset fashion-mnist --save fashion.npz --plot fashion.png
  xpnet evaluate fashion.npz --dataset fashion-mnist --json
  xpnet predict model.npz my_digit.png

Run 'xpnet COMMAND --help' for each command's options and more examples.
"""

TRAIN_EPILOG = """\
data sets:
  mnist-sample   5,000 real MNIST digits shipped with xpnet: 4,000 to train on and
                 1,000 held out for testing (no download, works offline)
  mnist          the full MNIST set (60,000 train / 10,000 test), downloaded on first use
  fashion-mnist  Zalando's Fashion-MNIST (60,000 / 10,000 clothing images, 10 classes)
  Files are looked for in --data-dir, $XPNET_DATA/<name>/, /usr/share/datasets/<name>/
  (Debian: apt-get install dataset-fashion-mnist) and ~/.cache/xpnet/<name>/.

defaults (the MNIST-classifier recipe):
  784-400-100-10, ReLU, He init, dropout 0.2 after each hidden layer, softmax
  cross-entropy, Adam (lr 0.005, beta1 0.8) with inverse-time decay 0.3
  (lr / (1 + 0.3 * epoch)), batch 256, 30 epochs, seed 0. Each epoch prints the loss
  and accuracy on the training batches (dropout on), the accuracy on the held-out test
  split (watched only: nothing is tuned on it), the learning rate and the time taken.

examples:
  xpnet train
      train on the shipped sample and report accuracy on its 1,000 held-out digits
  xpnet train --dataset fashion-mnist --epochs 20 --save fashion.npz
  xpnet train --dataset mnist --data-dir ~/data/mnist --backend auto
      --data-dir holds train-images-idx3-ubyte.gz and friends (or <dir>/mnist/...)
  xpnet train --hidden 200 --activation sigmoid --dropout 0 --optimizer sgd --lr 0.1 \\
              --schedule constant --init normal
  xpnet train --hidden 128 64 --optimizer momentum --lr 0.05 --schedule cosine
  xpnet train --plot run.png          # curves, confusion matrix, errors, weights
  xpnet train --epochs 100 --checkpoint run.ckpt.npz
      Ctrl-C saves the checkpoint; the same command with --resume continues
"""

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

PREDICT_EPILOG = """\
Each PNG (gray, gray+alpha, RGB, RGBA or palette; any bit depth; not interlaced) becomes
what the model was trained on: converted to gray (transparent parts count as white),
resized to 28x28 (area averaging when shrinking, bilinear when enlarging), inverted
when mostly light (MNIST digits are white on black, so dark ink on white paper is
flipped), then scaled to [0, 1] like the training images. Nothing is cropped or
centered: frame the digit like MNIST does, about 20 pixels high in a 28x28 square.
--show prints the 28x28 image the model sees.

examples:
  xpnet predict model.npz seven.png
  xpnet predict model.npz digits/*.png --json
  xpnet predict fashion.npz shoe.png --classes fashion-mnist --show
"""


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description="xpnet: train, evaluate and use from-scratch neural networks on MNIST-like "
        "data (NumPy on the CPU, CuPy on an NVIDIA GPU).",
        epilog=TOP_EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # ----------------------------------------------------------------------------- train
    t = sub.add_parser(
        "train", help="train a classifier (default: the shipped MNIST sample)",
        description="Train a fully connected classifier and report its accuracy on the "
        "held-out test split.", epilog=TRAIN_EPILOG, formatter_class=fmt,
    )
    _data_options(t)
    g = t.add_argument_group("model")
    g.add_argument("--hidden", type=_positive_int, nargs="*", metavar="N",
                   default=DEFAULTS["hidden"],
                   help="hidden layer widths (default: 400 100; none: softmax regression)")
    g.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULTS["activation"],
                   help="hidden activation (default: relu)")
    g.add_argument("--dropout", type=_probability, default=DEFAULTS["dropout"], metavar="P",
                   help="dropout after each hidden layer, 0 for none (default: 0.2)")
    g.add_argument("--init", choices=("he", "glorot", "uniform", "normal"), default=None,
                   help="weight init (default: he for relu/leaky_relu, glorot otherwise)")
    g = t.add_argument_group("optimization")
    g.add_argument("--epochs", type=_positive_int, metavar="N", default=DEFAULT_EPOCHS,
                   help="passes over the training set (default: 30)")
    g.add_argument("--batch-size", type=_positive_int, metavar="N", default=DEFAULTS["batch_size"],
                   help="minibatch size (default: 256)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS["optimizer"],
                   help="adam, plain sgd, sgd with momentum, or nesterov (default: adam)")
    g.add_argument("--lr", type=_positive_float, metavar="X", default=DEFAULTS["lr"],
                   help="learning rate (default: 0.005)")
    g.add_argument("--beta1", type=_unit_float, metavar="X", default=DEFAULTS["beta1"],
                   help="Adam's first-moment decay (default: 0.8)")
    g.add_argument("--beta2", type=_unit_float, metavar="X", default=DEFAULTS["beta2"],
                   help="Adam's second-moment decay (default: 0.999)")
    g.add_argument("--momentum", type=_unit_float, metavar="X", default=0.9,
                   help="momentum for --optimizer momentum/nesterov (default: 0.9)")
    g.add_argument("--weight-decay", type=_nonnegative_float, metavar="X", default=0.0,
                   help="L2 weight decay (decoupled for Adam) (default: 0)")
    g.add_argument("--schedule", choices=SCHEDULES, default=DEFAULTS["schedule"],
                   help="learning-rate schedule per epoch (default: inverse-time)")
    g.add_argument("--decay", type=_nonnegative_float, metavar="X", default=DEFAULTS["decay"],
                   help="inverse-time: lr / (1 + decay * epoch) (default: 0.3)")
    g.add_argument("--step-size", type=_positive_int, metavar="N", default=5,
                   help="step: multiply lr by --gamma every this many epochs (default: 5)")
    g.add_argument("--gamma", type=_unit_float, metavar="X", default=0.5,
                   help="step: the factor (default: 0.5)")
    g.add_argument("--seed", type=int, metavar="N", default=DEFAULTS["seed"],
                   help="seed for initial weights, shuffling and dropout (default: 0)")
    g = t.add_argument_group("output")
    g.add_argument("--save", type=Path, metavar="PATH",
                   help="save the trained model (.npz) for 'xpnet evaluate'/'xpnet predict'")
    g.add_argument("--plot", type=Path, metavar="PATH",
                   help="write one PNG with loss/accuracy curves, the confusion matrix, "
                   "misclassified test images and first-layer weights (needs xpnet[plot])")
    g.add_argument("--checkpoint", type=Path, metavar="PATH",
                   help="write a resumable checkpoint at each epoch end and on Ctrl-C")
    g.add_argument("--resume", action="store_true",
                   help="continue the run saved in --checkpoint (same data and batch size)")
    t.set_defaults(func=cmd_train)

    # -------------------------------------------------------------------------- evaluate
    e = sub.add_parser(
        "evaluate", help="accuracy, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a saved model on a data set's test split.",
        epilog=EVALUATE_EPILOG, formatter_class=fmt,
    )
    e.add_argument("model", type=Path, metavar="MODEL", help="a model saved by xpnet (.npz)")
    _data_options(e, limit_help="evaluate only N images, drawn at random (the same ones "
                  "every run)")
    e.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split to evaluate on (default: test)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    e.add_argument("--plot", type=Path, metavar="PATH",
                   help="write one PNG: training curves stored in the model, confusion "
                   "matrix, misclassified images, first-layer weights (needs xpnet[plot])")
    e.set_defaults(func=cmd_evaluate)

    # --------------------------------------------------------------------------- predict
    p = sub.add_parser(
        "predict", help="classify PNG images with a saved model",
        description="Classify PNG images of digits (or clothes) with a saved model.",
        epilog=PREDICT_EPILOG, formatter_class=fmt,
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="a model saved by xpnet (.npz)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="PNG files")
    p.add_argument("--classes", choices=("digits", "fashion-mnist"), default="digits",
                   help="how to name the 10 classes (default: digits)")
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default="numpy",
                   help="where to compute (default: numpy)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--show", action="store_true",
                   help="also print the 28x28 image the model sees, as text")
    p.set_defaults(func=cmd_predict)
    return parser


def _data_options(p: argparse.ArgumentParser, limit_help: str | None = None) -> None:
    g = p.add_argument_group("data and device")
    g.add_argument("--dataset", choices=DATASETS, default="mnist-sample",
                   help="mnist-sample (shipped, default), mnist or fashion-mnist")
    g.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="folder holding the IDX files (searched before the standard places)")
    g.add_argument("--no-download", action="store_true",
                   help="use local files only; never download")
    g.add_argument("--limit", type=_positive_int, metavar="N",
                   help=limit_help or "use only N training and N test images, drawn at "
                   "random (the same ones every run) (quick trials)")
    g.add_argument("--backend", choices=("numpy", "cupy", "auto"), default="numpy",
                   help="numpy (CPU), cupy (NVIDIA GPU) or auto: cupy when a GPU is usable "
                   "(default: numpy)")
    g.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="floating-point precision (default: float32; evaluate: as saved)")


def _number(kind: Any, test: Any, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
_nonnegative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
_unit_float = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
_probability = _number(float, lambda v: 0 <= v < 1, "a probability in [0, 1)")


# ---------------------------------------------------------------------------- shared bits
def _backend(name: str, dtype: str | None) -> Any:
    from .backend import cuda_available, get_backend

    if name == "auto":
        chosen = "cupy" if cuda_available() else "numpy"
        why = "a CUDA device is usable" if chosen == "cupy" else "no usable CUDA device/CuPy"
        print(f"backend: --backend auto chose {chosen} ({why})", flush=True)
        name = chosen
    return get_backend(name, dtype, verbose=False)


def _load_split(args: argparse.Namespace, split: str) -> tuple[np.ndarray, np.ndarray]:
    from .datasets import load_dataset

    X, y = load_dataset(args.dataset, split, data_dir=args.data_dir,
                        download=not args.no_download)
    if args.limit is not None and args.limit < len(y):
        # A random subset, not the first N rows: files may be sorted by class (the sample is).
        rows = np.random.default_rng(0).choice(len(y), args.limit, replace=False)
        X, y = X[np.sort(rows)], y[np.sort(rows)]
    return X, y


def _class_names(dataset: str) -> list[str] | None:
    return list(FASHION_CLASSES) if dataset == "fashion-mnist" else None


def _noun(dataset: str) -> str:
    return "images" if dataset == "fashion-mnist" else "digits"


def _check_plot_available(path: Path | None) -> None:
    """Fail before a long training run, not after it, when plotting can't work."""
    if path is not None:
        from .plot import _matplotlib

        _matplotlib()


def _load_model(path: Path, backend: Any) -> Any:
    from .serialization import load

    if not path.exists():
        raise CLIError(f"model file not found: {path}")
    model = load(path, backend=backend)
    if model.in_features != 784 or model.out_features != 10:
        raise CLIError(
            f"{path}: the model maps {model.in_features} inputs to {model.out_features} "
            "outputs; this command needs a 28x28-image classifier (784 inputs, 10 classes)"
        )
    return model


def _describe(model: Any) -> str:
    from .layers import Dense, Dropout

    widths = [str(model.in_features)]
    acts: list[str] = []
    drop = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            widths.append(str(layer.out_features))
        elif isinstance(layer, Dropout):
            drop.append(layer.p)
        elif type(layer).__name__ not in acts:
            acts.append(type(layer).__name__)
    text = "-".join(widths)
    if acts:
        text += " " + "/".join(acts)
    if drop:
        text += f", dropout {drop[0]:g}"
    return text


# ---------------------------------------------------------------------------------- train
def build_model(args: argparse.Namespace, backend: Any) -> Any:
    """The Sequential ``args`` describe: Dense, activation, dropout per hidden layer."""
    from .layers import Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
    from .model import Sequential

    act = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid}
    init = args.init or ("he" if args.activation in ("relu", "leaky_relu") else "glorot")
    widths = [784, *args.hidden]
    layers: list[Any] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [Dense(a, b, init=init), act[args.activation]()]
        if args.dropout > 0:
            layers.append(Dropout(args.dropout))
    layers.append(Dense(widths[-1], 10, init=init))
    return Sequential(layers, backend=backend, seed=args.seed)


def build_optimizer(args: argparse.Namespace, epochs: int) -> Any:
    from .optim import SGD, Adam, Constant, CosineDecay, InverseTimeDecay, StepDecay

    schedule = {
        "inverse-time": lambda: InverseTimeDecay(args.decay),
        "step": lambda: StepDecay(args.step_size, args.gamma),
        "cosine": lambda: CosineDecay(epochs),
        "constant": lambda: Constant(),
    }[args.schedule]()
    if args.optimizer == "adam":
        return Adam(args.lr, beta1=args.beta1, beta2=args.beta2,
                    weight_decay=args.weight_decay, schedule=schedule)
    momentum = 0.0 if args.optimizer == "sgd" else args.momentum
    return SGD(args.lr, momentum=momentum, nesterov=args.optimizer == "nesterov",
               weight_decay=args.weight_decay, schedule=schedule)


def _describe_optimizer(args: argparse.Namespace) -> str:
    text = f"{args.optimizer} lr {args.lr:g}"
    if args.optimizer == "adam":
        text += f" beta1 {args.beta1:g}"
    elif args.optimizer != "sgd":
        text += f" momentum {args.momentum:g}"
    if args.weight_decay:
        text += f" weight decay {args.weight_decay:g}"
    text += {
        "inverse-time": f", inverse-time decay {args.decay:g}",
        "step": f", x{args.gamma:g} every {args.step_size} epochs",
        "cosine": ", cosine decay",
        "constant": ", constant lr",
    }[args.schedule]
    return text


def cmd_train(args: argparse.Namespace) -> int:
    from .datasets import preprocess
    from .losses import SoftmaxCrossEntropy
    from .serialization import load

    if args.resume and args.checkpoint is None:
        raise CLIError("--resume needs --checkpoint PATH (the checkpoint to continue from)")
    _check_plot_available(args.plot)
    epochs = args.epochs
    backend = _backend(args.backend, args.dtype)

    Xtr_raw, ytr = _load_split(args, "train")
    Xte_raw, yte = _load_split(args, "test")
    Xtr, Xte = preprocess(Xtr_raw), preprocess(Xte_raw)
    noun = _noun(args.dataset)
    print(f"data: {args.dataset}: {len(ytr)} training / {len(yte)} held-out test {noun}")

    if args.resume:
        if not args.checkpoint.exists():
            raise CLIError(f"--resume: checkpoint not found: {args.checkpoint}")
        model = load(args.checkpoint, backend=backend)
        done = (model.progress or {}).get("epoch", 0)
        print(f"resuming {args.checkpoint} at epoch {done + 1}/{epochs}")
    else:
        model = build_model(args, backend)
        model.compile(SoftmaxCrossEntropy(), build_optimizer(args, epochs))
    optimizer = repr(model.optimizer) if args.resume else _describe_optimizer(args)
    print(f"model: {_describe(model)}; {optimizer}; batch {args.batch_size}, "
          f"{epochs} epochs, seed {args.seed}; backend {backend.name} {backend.dtype_name}",
          flush=True)

    progress = {"epoch": 0}

    def report(epoch: int, logs: dict[str, float]) -> None:
        progress["epoch"] = epoch + 1
        print(
            f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  loss {logs['loss']:.4f}  "
            f"acc {logs.get('accuracy', float('nan')):.4f}  "
            f"val acc {logs.get('val_accuracy', float('nan')):.4f}  "
            f"lr {logs['lr']:.2e}  {logs['time']:.2f}s",
            flush=True,
        )

    start = time.perf_counter()
    try:
        model.fit(Xtr, ytr, epochs=epochs, batch_size=args.batch_size,
                  validation_data=(Xte, yte), seed=args.seed, verbose=False,
                  checkpoint=args.checkpoint, resume=args.resume, on_epoch_end=report)
    except KeyboardInterrupt:
        where = f"during epoch {progress['epoch'] + 1}/{epochs}"
        if args.checkpoint is not None and args.checkpoint.exists():
            tail = (f"; checkpoint saved to {args.checkpoint}: run the same command with "
                    "--resume to continue")
        else:
            tail = "; nothing was saved (use --checkpoint PATH to be able to resume)"
        raise KeyboardInterrupt(f"training interrupted {where}{tail}") from None
    elapsed = time.perf_counter() - start

    pred = model.predict(Xte)
    acc = float(np.mean(pred == yte))
    print(f"trained {epochs} epochs in {elapsed:.1f}s")
    print(f"held-out accuracy: {acc:.4f} on {len(yte)} {noun} ({args.dataset} test split)")
    if args.save is not None:
        print(f"model saved to {model.save(args.save)}")
    if args.plot is not None:
        from .metrics import confusion_matrix
        from .plot import first_layer_weights, plot_report

        title = (f"xpnet train --dataset {args.dataset}: {_describe(model)}, {epochs} epochs; "
                 f"held-out accuracy {acc:.4f}")
        plot_report(args.plot, history=model.history, cm=confusion_matrix(yte, pred, 10),
                    X=Xte_raw, y_true=yte, y_pred=pred, weights=first_layer_weights(model),
                    class_names=_class_names(args.dataset), title=title)
        print(f"plot written to {args.plot}")
    return 0


# ------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from .datasets import preprocess
    from .losses import MSE, SoftmaxCrossEntropy
    from .metrics import confusion_matrix, per_class_accuracy

    _check_plot_available(args.plot)
    backend = _backend(args.backend, args.dtype)
    model = _load_model(args.model, backend)
    X_raw, y = _load_split(args, args.split)
    X = preprocess(X_raw)
    pred = model.predict(X)
    cm = confusion_matrix(y, pred, 10)
    per_class = per_class_accuracy(cm)
    acc = float(np.mean(pred == y))
    loss = None
    if isinstance(model.loss, SoftmaxCrossEntropy):
        loss = model.evaluate(X, y)["loss"]
    elif isinstance(model.loss, MSE):
        loss = model.evaluate(X, np.eye(10, dtype=np.float32)[y])["loss"]
    names = _class_names(args.dataset) or [str(i) for i in range(10)]
    if args.json:
        out = {
            "model": str(args.model),
            "dataset": args.dataset,
            "split": args.split,
            "n": int(len(y)),
            "accuracy": acc,
            "loss": loss,
            "per_class_accuracy": {
                n: (None if np.isnan(v) else float(v)) for n, v in zip(names, per_class,
                                                                        strict=True)
            },
            "class_names": names,
            "confusion_matrix": cm.tolist(),
        }
        print(json.dumps(out))
    else:
        print(f"model: {args.model} ({_describe(model)})")
        print(f"data: {args.dataset} {args.split} split, {len(y)} {_noun(args.dataset)}")
        print(f"accuracy: {acc:.4f} ({int(np.trace(cm))}/{len(y)} correct)")
        if loss is not None:
            print(f"loss: {loss:.4f} ({type(model.loss).__name__})")
        print("per-class accuracy:")
        width = max(map(len, names))
        for i, (n, v) in enumerate(zip(names, per_class, strict=True)):
            shown = "   n/a" if np.isnan(v) else f"{v:.4f}"
            label = f"{i}" if n == str(i) else f"{i} {n:<{width}}"
            print(f"  {label}  {shown}  ({cm[i, i]}/{cm[i].sum()})")
        print("confusion matrix (rows: true class, columns: predicted):")
        cell = max(4, len(str(int(cm.max()))) + 1)
        print("     " + "".join(f"{j:>{cell}}" for j in range(10)))
        for i in range(10):
            print(f"  {i}: " + "".join(f"{int(v):>{cell}}" for v in cm[i]))
    if args.plot is not None:
        from .plot import first_layer_weights, plot_report

        title = f"xpnet evaluate {args.model.name} on {args.dataset} {args.split}: " \
                f"accuracy {acc:.4f}"
        plot_report(args.plot, history=model.history or None, cm=cm, X=X_raw, y_true=y,
                    y_pred=pred, weights=first_layer_weights(model),
                    class_names=_class_names(args.dataset), title=title)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


# -------------------------------------------------------------------------------- predict
def _ascii(digit: np.ndarray) -> str:
    ramp = " .:-=+*#%@"
    img = digit.reshape(28, 28)
    return "\n".join("".join(ramp[int(v) * (len(ramp) - 1) // 255] * 2 for v in row)
                     for row in img)


def cmd_predict(args: argparse.Namespace) -> int:
    from .datasets import preprocess
    from .png import digit_from_png

    backend = _backend(args.backend, None)
    model = _load_model(args.model, backend)
    digits = np.stack([digit_from_png(path) for path in args.images])
    proba = model.predict_proba(preprocess(digits)).astype(np.float64)
    is_proba = bool(np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-3))
    kind = "probabilities" if is_proba else "outputs"
    names = list(FASHION_CLASSES) if args.classes == "fashion-mnist" else [
        str(i) for i in range(10)
    ]
    results = []
    for path, p, digit in zip(args.images, proba, digits, strict=True):
        k = int(np.argmax(p))
        results.append({"image": str(path), "class": k, "label": names[k],
                        kind: [float(v) for v in p]})
        if args.json:
            continue
        label = f"{k} ({names[k]})" if args.classes != "digits" else str(k)
        print(f"{path}: {label}  {'p' if is_proba else 'output'} {p[k]:.4f}")
        print("  " + kind + ": " + "  ".join(f"{i}:{v:.3f}" for i, v in enumerate(p)))
        if args.show:
            print(_ascii(digit))
    if args.json:
        print(json.dumps({"model": str(args.model), "predictions": results}))
    return 0


# ----------------------------------------------------------------------------------- main
def _expected_errors() -> tuple[type[BaseException], ...]:
    from .backend import BackendError
    from .plot import PlotUnavailableError
    from .png import PNGError
    from .serialization import ModelFileError

    errors: list[type[BaseException]] = [
        CLIError, BackendError, ModelFileError, PNGError, PlotUnavailableError, OSError,
        ValueError, TypeError, FloatingPointError,
    ]
    try:
        from .datasets import DatasetError

        errors.append(DatasetError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnet`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = bool(os.environ.get("XPNET_DEBUG"))
    try:
        return int(args.func(args))
    except KeyboardInterrupt as exc:
        msg = str(exc) or "interrupted"
        print(f"{PROG} {args.command}: {msg}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `xpnet evaluate ... | head`: the reader left; say nothing more.
        sys.stderr.close()
        return 0
    except _expected_errors() as exc:
        if debug:
            traceback.print_exc()
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        if _is_dataset_error(exc) and len(lines) > 1:
            # The data loader explains where it looked and how to get the files: keep its
            # layout, under a one-line headline.
            details = "".join(f"\n  {line}" for line in lines[1:])
            print(f"{PROG} {args.command}: error: {lines[0]}{details}", file=sys.stderr)
        else:
            print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with a way to see the traceback
        if debug:
            traceback.print_exc()
        print(f"{PROG} {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set XPNET_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


def _is_dataset_error(exc: BaseException) -> bool:
    try:
        from .datasets import DatasetError
    except ImportError:
        return False
    return isinstance(exc, DatasetError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
