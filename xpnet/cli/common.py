"""What the ``xpnet`` commands share: argument types, data and device options, loading."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

PROG = "xpnet"
DATASETS = ("mnist-sample", "mnist", "fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FORMATTER = argparse.RawDescriptionHelpFormatter


class CLIError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def data_options(p: argparse.ArgumentParser, limit_help: str | None = None) -> None:
    g = p.add_argument_group("data and device")
    g.add_argument("--dataset", choices=DATASETS, default="mnist-sample",
                   help="mnist-sample (shipped, default), mnist or fashion-mnist")
    g.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="folder holding the IDX files (searched before the standard places)")
    g.add_argument("--no-download", action="store_true",
                   help="use local files only; never download")
    g.add_argument("--limit", type=positive_int, metavar="N",
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


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
nonnegative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
unit_float = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
probability = _number(float, lambda v: 0 <= v < 1, "a probability in [0, 1)")



def backend_for(name: str, dtype: str | None) -> Any:
    from ..backends import cuda_available, get_backend

    if name == "auto":
        chosen = "cupy" if cuda_available() else "numpy"
        why = "a CUDA device is usable" if chosen == "cupy" else "no usable CUDA device/CuPy"
        print(f"backend: --backend auto chose {chosen} ({why})", flush=True)
        name = chosen
    return get_backend(name, dtype, verbose=False)


def load_split(args: argparse.Namespace, split: str) -> tuple[np.ndarray, np.ndarray]:
    from ..datasets import load_dataset

    X, y = load_dataset(args.dataset, split, data_dir=args.data_dir,
                        download=not args.no_download)
    if args.limit is not None and args.limit < len(y):
        # A random subset, not the first N rows: files may be sorted by class (the sample is).
        rows = np.random.default_rng(0).choice(len(y), args.limit, replace=False)
        X, y = X[np.sort(rows)], y[np.sort(rows)]
    return X, y


def class_names(dataset: str) -> list[str] | None:
    return list(FASHION_CLASSES) if dataset == "fashion-mnist" else None


def noun(dataset: str) -> str:
    return "images" if dataset == "fashion-mnist" else "digits"


def check_plot_available(path: Path | None) -> None:
    """Fail before a long training run, not after it, when plotting can't work."""
    if path is not None:
        from ..plot import _matplotlib

        _matplotlib()


def load_model(path: Path, backend: Any) -> Any:
    from ..serialization import load

    if not path.exists():
        raise CLIError(f"model file not found: {path}")
    model = load(path, backend=backend)
    if model.in_features != 784 or model.out_features != 10:
        raise CLIError(
            f"{path}: the model maps {model.in_features} inputs to {model.out_features} "
            "outputs; this command needs a 28x28-image classifier (784 inputs, 10 classes)"
        )
    return model
