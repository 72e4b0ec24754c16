"""One training epoch of a small LeNet-like CNN: xpnet against PyTorch, side by side.

Run ``python benchmarks/cnn_epoch.py`` (``--rows 6000`` for a quick look). The model, in both:

    Reshape((1, 28, 28)), Conv2D(1, 16, 3, padding=1), ReLU, MaxPool2D(2),
    Conv2D(16, 32, 3, padding=1), ReLU, MaxPool2D(2), Flatten,
    Dense(32*7*7, 128), ReLU, Dropout(0.25), Dense(128, 10)

with softmax cross-entropy and Adam (lr 1e-3), float32, one shuffled epoch of synthetic
MNIST-shaped rows (pixels k/255 for random k in 0..255, 10 classes; no download). xpnet runs on
NumPy (or ``--backend cupy``: CuPy against torch on CUDA), PyTorch on the CPU, eager.

Printed from one run (each figure the median of ``--epochs`` epochs after one warm-up epoch;
the contenders take turns epoch by epoch so that load on a shared machine hits them alike):
seconds per epoch and samples per second of xpnet (as ``fit`` times the epoch) and of PyTorch
(a plain training loop), and the ratio xpnet / PyTorch. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

# The shared pieces (benchmarks/_common.py): imported first, since it sets the BLAS threads
# from --threads before NumPy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# isort: off
from _common import (  # noqa: E402
    CLASSES,
    THREADS,
    TorchLoop,
    make_data,
    torch_or_none,
)
# isort: on

import numpy as np  # noqa: E402

import xpnet  # noqa: E402
from xpnet.layers import (  # noqa: E402
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Reshape,
)
from xpnet.losses import SoftmaxCrossEntropy  # noqa: E402
from xpnet.optim import Adam  # noqa: E402
from xpnet.training import BlasThreads  # noqa: E402

MODEL = ("Reshape(1,28,28) Conv 1->16 3x3 pad 1, ReLU, MaxPool 2 | Conv 16->32 3x3 pad 1, ReLU, "
         "MaxPool 2 | Flatten, Dense 1568->128, ReLU, Dropout 0.25, Dense 128->10")


def xpnet_layers() -> list[Layer]:
    return [Reshape((1, 28, 28)), Conv2D(1, 16, 3, padding=1), ReLU(), MaxPool2D(2),
            Conv2D(16, 32, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(),
            Dense(32 * 7 * 7, 128), ReLU(), Dropout(0.25), Dense(128, CLASSES)]


class XpnetRunner:
    """xpnet's ``Sequential.fit`` for one epoch at a time."""

    def __init__(self, backend: Any, batch: int, seed: int) -> None:
        self.backend = xpnet.get_backend(backend, verbose=False)
        self.model = xpnet.Sequential(xpnet_layers(), backend=self.backend, seed=seed)
        self.model.compile(SoftmaxCrossEntropy(), Adam(1e-3))
        self.batch, self.seed, self.epochs_run = batch, seed, 0
        self.last = (float("nan"), float("nan"))

    def epoch(self, X: Any, y: Any) -> float:
        self.epochs_run += 1
        pinned = [BlasThreads(THREADS)] if THREADS is not None else None
        h = self.model.fit(X, y, epochs=1, batch_size=self.batch, seed=self.seed + self.epochs_run,
                           verbose=False, callbacks=pinned)
        self.last = (float(h["loss"][-1]), float(h["accuracy"][-1]))
        return float(h["time"][-1])


class TorchRunner(TorchLoop):
    """The same CNN in PyTorch (eager), trained with a plain loop."""

    def __init__(self, torch: Any, device: str, batch: int, seed: int, X: np.ndarray,
                 y: np.ndarray) -> None:
        nn = torch.nn
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(128, CLASSES),
        )
        super().__init__(torch, device, model, batch, X, y)


def median_rounds(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """One warm-up each, then ``rounds`` rounds taking turns; the median per contender."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            times[k].append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="numpy", help="numpy (default), cupy or auto")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (default 3)")
    ap.add_argument("--rows", type=int, default=60_000, help="rows per epoch (default 60000)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS/OpenMP threads for NumPy and torch alike (default: theirs)")
    args = ap.parse_args(argv)
    if args.rows < 1 or args.epochs < 1 or args.batch_size < 1:
        ap.error("--rows, --epochs and --batch-size must be positive")
    torch = None if args.no_torch else torch_or_none()
    try:
        be = xpnet.get_backend(args.backend, verbose=False)
    except (xpnet.BackendError, ValueError) as exc:
        print(f"cnn_epoch: {exc}", file=sys.stderr)
        return 2
    if torch is not None:
        if be.name == "cupy" and not torch.cuda.is_available():
            torch = None
        elif args.threads is not None:
            torch.set_num_threads(args.threads)

    X, y = make_data(args.rows, args.seed)
    tver = "torch not installed" if torch is None else f"torch {torch.__version__}"
    if torch is not None:
        tver += f" ({'cuda' if be.name == 'cupy' else 'cpu'}, {torch.get_num_threads()} threads)"
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"xpnet {xpnet.__version__} on {be.name} (numpy {np.__version__}, BLAS threads "
          f"{blas}); {tver}; {os.cpu_count()} CPUs; load avg {load:.2f}")
    print(f"CNN {MODEL}")
    print(f"softmax CE, Adam, float32, batch {args.batch_size}, {args.rows} rows/epoch; median of "
          f"{args.epochs} epochs after 1 warm-up")
    print()

    xr = XpnetRunner(args.backend, args.batch_size, args.seed)
    Xd, yd = xr.backend.asarray(X), xr.backend.asarray(y)
    contenders: dict[str, Callable[[], float]] = {"xpnet": lambda: xr.epoch(Xd, yd)}
    tr = None
    if torch is not None:
        tr = TorchRunner(torch, "cuda" if be.name == "cupy" else "cpu", args.batch_size,
                         args.seed, X, y)
        contenders["torch"] = tr.epoch
    res = median_rounds(contenders, args.epochs)
    w = 22
    print(f"{'':{w}}{'s/epoch':>10}{'samples/s':>12}{'last loss':>11}{'acc':>7}")
    xs = res["xpnet"]
    print(f"{'xpnet (' + be.name + ')':{w}}{xs:>10.3f}{args.rows / xs:>12,.0f}"
          f"{xr.last[0]:>11.4f}{xr.last[1]:>7.3f}")
    if tr is None:
        print(f"{'PyTorch':{w}}{'torch not installed':>22}")
        print("xpnet / PyTorch = -")
    else:
        ts = res["torch"]
        dev = "CUDA eager" if be.name == "cupy" else "CPU"
        print(f"{'PyTorch ' + dev:{w}}{ts:>10.3f}{args.rows / ts:>12,.0f}"
              f"{tr.last[0]:>11.4f}{tr.last[1]:>7.3f}")
        print(f"xpnet / PyTorch = {xs / ts:.3f}   (goal <= 1: xpnet no slower)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
