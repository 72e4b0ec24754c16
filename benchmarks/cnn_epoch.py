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
import time
from collections.abc import Callable
from typing import Any


def _threads_from_argv(argv: list[str]) -> int | None:
    """``--threads N``, read before NumPy loads: BLAS reads its thread count at import."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return None


THREADS = _threads_from_argv(sys.argv[1:])
if THREADS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(THREADS)

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

IN, CLASSES = 784, 10
MODEL = ("Reshape(1,28,28) Conv 1->16 3x3 pad 1, ReLU, MaxPool 2 | Conv 16->32 3x3 pad 1, ReLU, "
         "MaxPool 2 | Flatten, Dense 1568->128, ReLU, Dropout 0.25, Dense 128->10")


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped data: float32 pixels ``k / 255`` (k uniform in 0..255) and int64 labels."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(rows, IN), dtype=np.uint8).astype(np.float32)
    X *= np.float32(1.0 / 255.0)
    y = rng.integers(0, CLASSES, size=rows).astype(np.int64)
    return X, y


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


class TorchRunner:
    """The same CNN in PyTorch (eager), trained with a plain loop."""

    def __init__(self, torch: Any, device: str, batch: int, seed: int, X: np.ndarray,
                 y: np.ndarray) -> None:
        nn = torch.nn
        self.torch, self.device, self.batch = torch, device, batch
        torch.manual_seed(seed)
        self.model = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(128, CLASSES),
        ).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X).to(device)
        self.y = torch.from_numpy(y).to(device)
        self.last = (float("nan"), float("nan"))

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def epoch(self) -> float:
        torch, n, bs = self.torch, self.X.shape[0], self.batch
        self.model.train()
        self.sync()
        t0 = time.perf_counter()
        order = torch.randperm(n, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        hits = torch.zeros((), device=self.device)
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            xb, yb = self.X[idx], self.y[idx]
            out = self.model(xb)
            loss = self.loss(out, yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach() * xb.shape[0]
            hits += (out.detach().argmax(1) == yb).sum()
        self.last = (float(loss_sum) / n, float(hits) / n)
        self.sync()
        return time.perf_counter() - t0


def median_rounds(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """One warm-up each, then ``rounds`` rounds taking turns; the median per contender."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            times[k].append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def torch_or_none() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


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
