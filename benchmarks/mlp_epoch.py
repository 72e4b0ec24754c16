"""One training epoch of the 784-400-100-10 MLP: xpnet against PyTorch and the matmul floor.

Run ``python benchmarks/mlp_epoch.py`` (``--quick`` for a short run). The model is
Dense 784->400, ReLU, Dropout(0.5), Dense 400->100, ReLU, Dropout(0.5), Dense 100->10 with
softmax cross-entropy and Adam (lr 1e-3), batch 256, float32, one shuffled epoch of synthetic
MNIST-shaped data (pixels k/255 for random k in 0..255, 10 classes; no download).

Printed, side by side from one run (each figure the median of ``--epochs`` epochs after one
warm-up epoch; the contenders take turns epoch by epoch so that load on a shared machine hits
them alike):

* xpnet: seconds per epoch (as ``fit`` times it: the loop, not the one-off input checks),
  samples per second, peak memory (NumPy: ``tracemalloc``'s peak of the Python/NumPy
  allocations made during one extra, untimed ``fit(epochs=1)``, the data set excluded; CuPy: the
  bytes held by CuPy's memory pool after an epoch);
* PyTorch (CPU, or CUDA eager for ``--backend cupy``) with the same model, loss and optimizer,
  when torch is installed (``torch not installed`` otherwise), and the ratio xpnet / PyTorch;
* on CuPy, the same backend with its multi-layer kernels off (``fused=False``: one kernel per
  layer operation) and the ratio fused / plain (``--no-plain`` skips it);
* the matmul floor: the epoch's matmul FLOPs (forward, ``dW`` and ``dx`` except the first
  layer's) divided by the throughput of the same sgemm shapes, measured here by running exactly
  those matmuls (into preallocated outputs) for one epoch's worth of batches; and xpnet / floor.

Then a scaling table: epoch time against batch size (64..4096) and against hidden width.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

# The shared pieces (benchmarks/_common.py): imported first, since it sets the BLAS threads
# from --threads before NumPy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# isort: off
from _common import (  # noqa: E402
    CLASSES,
    IN,
    THREADS,
    TorchLoop,
    make_data,
    torch_or_none,
)
# isort: on

import numpy as np  # noqa: E402

import xpnet  # noqa: E402
from xpnet.backend import CupyBackend  # noqa: E402
from xpnet.layers import Dense, Dropout, ReLU  # noqa: E402
from xpnet.losses import SoftmaxCrossEntropy  # noqa: E402
from xpnet.optim import Adam  # noqa: E402
from xpnet.training import BlasThreads  # noqa: E402


# ----------------------------------------------------------------------------------- data
def matmul_flops(rows: int, widths: tuple[int, ...]) -> float:
    """FLOPs of an epoch's matmuls: forward and ``dW`` everywhere, ``dx`` but the first layer."""
    macs = 0
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        macs += (2 if i == 0 else 3) * rows * a * b
    return 2.0 * macs


def batches(rows: int, batch: int) -> list[int]:
    """Sizes of an epoch's minibatches (the last one may be short)."""
    return [min(batch, rows - i) for i in range(0, rows, batch)]


# ---------------------------------------------------------------------------------- xpnet
class XpnetRunner:
    """xpnet's ``Sequential.fit`` for one epoch at a time."""

    def __init__(self, backend: Any, hidden: tuple[int, int], batch: int, seed: int) -> None:
        self.backend = xpnet.get_backend(backend, verbose=False)
        h1, h2 = hidden
        layers = [Dense(IN, h1), ReLU(), Dropout(0.5), Dense(h1, h2), ReLU(), Dropout(0.5),
                  Dense(h2, CLASSES)]
        self.model = xpnet.Sequential(layers, backend=self.backend, seed=seed)
        self.model.compile(SoftmaxCrossEntropy(), Adam(1e-3))
        self.batch = batch
        self.seed = seed
        self.epochs_run = 0

    def epoch(self, X: Any, y: Any) -> float:
        """Train one epoch; seconds as ``fit`` measured them (the device synced at the end)."""
        self.epochs_run += 1
        # --threads N: exactly N BLAS threads (as torch gets); otherwise fit's default, "auto".
        pinned = [BlasThreads(THREADS)] if THREADS is not None else None
        h = self.model.fit(X, y, epochs=1, batch_size=self.batch, seed=self.seed + self.epochs_run,
                           verbose=False, callbacks=pinned)
        return float(h["time"][-1])

    def peak_memory(self, X: Any, y: Any) -> tuple[float, float, str]:
        """Peak bytes of one more ``fit(epochs=1)`` and of the bare training steps, and how."""
        if self.backend.name == "numpy":
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            self.epoch(X, y)
            fit_peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            self.steps(X, y)
            step_peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            return float(fit_peak), float(step_peak), (
                "tracemalloc peaks (Python/NumPy allocations, the data set excluded): 'fit' is "
                "fit(epochs=1) with its one-off input checks; 'steps' is the same epoch's "
                "forward/loss/backward/Adam steps alone"
            )
        self.epoch(X, y)
        pool = self.backend.xp.get_default_memory_pool()
        held = float(pool.total_bytes())
        return held, held, "CuPy memory-pool bytes held after an epoch"

    def steps(self, X: Any, y: Any) -> None:
        """One epoch of bare training steps (in order, no fit bookkeeping)."""
        model, be = self.model, self.backend
        assert model.loss is not None and model.optimizer is not None
        n = int(X.shape[0])
        for i in range(0, n, self.batch):
            idx = be.arange(min(i + self.batch, n) - i) + i
            xb, yb = be.take_rows(X, idx), be.take_rows(y, idx)
            model.loss.forward(model.forward(xb, training=True), yb, check=False)
            model.backward(model.loss.backward(), need_dx=False)
            model.optimizer.step(model.parameters())


# ---------------------------------------------------------------------------------- torch
class TorchRunner(TorchLoop):
    """The same MLP in PyTorch (eager), trained with a plain loop."""

    def __init__(self, torch: Any, device: str, hidden: tuple[int, int], batch: int,
                 seed: int, X: np.ndarray, y: np.ndarray) -> None:
        nn = torch.nn
        torch.manual_seed(seed)
        h1, h2 = hidden
        model = nn.Sequential(
            nn.Linear(IN, h1), nn.ReLU(), nn.Dropout(0.5), nn.Linear(h1, h2), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(h2, CLASSES),
        )
        super().__init__(torch, device, model, batch, X, y)


# ----------------------------------------------------------------------------- the floor
class MatmulFloor:
    """Times exactly the epoch's matmuls, with the shapes and layouts xpnet's Dense uses."""

    def __init__(self, backend: xpnet.Backend, widths: tuple[int, ...], rows: int,
                 batch: int) -> None:
        self.be = backend
        rng = np.random.default_rng(0)
        self.sizes = batches(rows, batch)

        def arr(*shape: int) -> Any:
            return backend.asarray(rng.standard_normal(shape).astype(np.float32))

        mm = backend.matmul
        self.plans: dict[int, list[Callable[[], Any]]] = {}
        for m in sorted(set(self.sizes)):
            ops: list[Callable[[], Any]] = []
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
                x, w, dy = arr(m, a), arr(a, b), arr(m, b)
                y, dw, dx = arr(m, b), arr(a, b), arr(m, a)
                ops.append(lambda x=x, w=w, y=y: mm(x, w, out=y))  # forward
                ops.append(lambda x=x, dy=dy, dw=dw: mm(x.T, dy, out=dw))  # dW = x^T dy
                if i > 0:
                    ops.append(lambda dy=dy, w=w, dx=dx: mm(dy, w.T, out=dx))  # dx = dy W^T
            self.plans[m] = ops

    def epoch(self) -> float:
        self.be.synchronize()
        t0 = time.perf_counter()
        for m in self.sizes:
            for op in self.plans[m]:
                op()
        self.be.synchronize()
        return time.perf_counter() - t0


# ---------------------------------------------------------------------------------- runs
def median_rounds(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """One warm-up each, then ``rounds`` rounds taking turns; the median per contender."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            times[k].append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def measure(backend: str, torch: Any, X: np.ndarray, y: np.ndarray, hidden: tuple[int, int],
            batch: int, rounds: int, seed: int, plain: bool = False) -> dict[str, float]:
    xr = XpnetRunner(backend, hidden, batch, seed)
    Xd, yd = xr.backend.asarray(X), xr.backend.asarray(y)  # on the device once, like torch's
    contenders: dict[str, Callable[[], float]] = {"xpnet": lambda: xr.epoch(Xd, yd)}
    if plain and getattr(xr.backend, "fused", False):
        # The same backend with its multi-layer kernels off: what the fusion buys.
        pr = XpnetRunner(CupyBackend(xr.backend.xp, fused=False), hidden, batch, seed)
        contenders["plain"] = lambda: pr.epoch(Xd, yd)
    if torch is not None:
        device = "cuda" if xr.backend.name == "cupy" else "cpu"
        tr = TorchRunner(torch, device, hidden, batch, seed, X, y)
        contenders["torch"] = tr.epoch
    fl = MatmulFloor(xr.backend, (IN, *hidden, CLASSES), X.shape[0], batch)
    contenders["floor"] = fl.epoch
    return median_rounds(contenders, rounds)


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="numpy", help="numpy (default), cupy or auto")
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs (default 5; quick 3)")
    ap.add_argument("--rows", type=int, default=None, help="rows per epoch (default 60000)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="short run: fewer rows, epochs, sizes")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    ap.add_argument("--no-plain", action="store_true",
                    help="on CuPy, skip the run with the fused kernels off (fused=False)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS/OpenMP threads for NumPy and torch alike (default: theirs); "
                    "on a loaded machine 1 thread gives steadier figures")
    args = ap.parse_args(argv)
    rows = args.rows if args.rows is not None else (10_000 if args.quick else 60_000)
    rounds = args.epochs if args.epochs is not None else (3 if args.quick else 5)
    if rows < 1 or rounds < 1 or args.batch_size < 1:
        ap.error("--rows, --epochs and --batch-size must be positive")
    hidden = (400, 100)
    torch = None if args.no_torch else torch_or_none()
    try:
        be = xpnet.get_backend(args.backend, verbose=False)
    except (xpnet.BackendError, ValueError) as exc:
        print(f"mlp_epoch: {exc}", file=sys.stderr)
        return 2
    if torch is not None:
        if be.name == "cupy" and not torch.cuda.is_available():
            torch = None
        elif args.threads is not None:
            torch.set_num_threads(args.threads)

    X, y = make_data(rows, args.seed)
    flops = matmul_flops(rows, (IN, *hidden, CLASSES))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    tver = "torch not installed" if torch is None else f"torch {torch.__version__}"
    if torch is not None:
        tver += f" ({'cuda' if be.name == 'cupy' else 'cpu'}, {torch.get_num_threads()} threads)"
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"xpnet {xpnet.__version__} on {be.name} (numpy {np.__version__}, BLAS threads "
          f"{blas}); {tver}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
          f"load avg {load:.2f}")
    if be.name == "cupy":
        xp = be.xp
        props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"GPU: {name}; CuPy {xp.__version__}; fused kernels "
              f"{'on' if getattr(be, 'fused', False) else 'off'}")
    print(f"MLP 784-400-100-10, ReLU, dropout 0.5, softmax CE, Adam, float32, batch "
          f"{args.batch_size}, {rows} rows/epoch; median of {rounds} epochs after 1 warm-up")
    print()

    res = measure(args.backend, torch, X, y, hidden, args.batch_size, rounds, args.seed,
                  plain=not args.no_plain)
    xr = XpnetRunner(args.backend, hidden, args.batch_size, args.seed)
    peak, step_peak, how = xr.peak_memory(xr.backend.asarray(X), xr.backend.asarray(y))
    xs, fs, ts = res["xpnet"], res["floor"], res.get("torch")
    w = 26
    mib = f"{peak / 2**20:.1f}/{step_peak / 2**20:.1f}"
    print(f"{'':{w}}{'s/epoch':>10}{'samples/s':>12}{'peak MiB fit/steps':>20}")
    print(f"{'xpnet (' + be.name + ')':{w}}{xs:>10.3f}{rows / xs:>12,.0f}{mib:>20}")
    if "plain" in res:
        ps = res["plain"]
        print(f"{'xpnet (cupy, fused=False)':{w}}{ps:>10.3f}{rows / ps:>12,.0f}{'-':>20}")
    if ts is None:
        print(f"{'PyTorch':{w}}{'torch not installed':>32}")
    else:
        dev = "CUDA eager" if be.name == "cupy" else "CPU"
        print(f"{'PyTorch ' + dev:{w}}{ts:>10.3f}{rows / ts:>12,.0f}{'-':>20}")
    print(f"{'matmul floor':{w}}{fs:>10.3f}{rows / fs:>12,.0f}{'-':>20}"
          f"   ({flops / 1e9:.1f} GFLOP at {flops / fs / 1e9:.1f} GFLOP/s)")
    print()
    print(f"xpnet / PyTorch      = {fmt(xs / ts if ts else None)}   (goal <= 0.5 on the CPU, "
          "< 1 on a GPU)")
    print(f"xpnet / matmul floor = {xs / fs:.3f}   (goal <= 1.5 on the CPU)")
    print(f"PyTorch / floor      = {fmt(ts / fs if ts else None)}")
    if "plain" in res:
        print(f"fused / fused=False  = {xs / res['plain']:.3f}   (what the fused kernels buy)")
    print(f"peak memory: {how}")
    if hasattr(os, "getloadavg"):
        print(f"load avg at the end: {os.getloadavg()[0]:.2f} (shared machines: compare ratios, "
              "which come from one run taking turns)")

    if not args.no_scaling:
        srows = min(rows, 20_000) if args.quick else rows
        srounds = 1 if args.quick else 3
        sizes = [64, 256, 1024, 4096]
        widths = [(200, 50), (400, 100), (800, 200), (1600, 400)]
        print()
        print(f"Scaling ({srows} rows/epoch, median of {srounds} after 1 warm-up; seconds/epoch)")
        print(f"{'batch':>6} {'hidden':>10} {'xpnet':>8} {'torch':>8} {'floor':>8} "
              f"{'x/torch':>8} {'x/floor':>8}")
        Xs, ys = X[:srows], y[:srows]
        configs = [(b, (400, 100)) for b in sizes] + [(256, h) for h in widths if h != (400, 100)]
        for b, h in configs:
            r = measure(args.backend, torch, Xs, ys, h, b, srounds, args.seed)
            t = r.get("torch")
            print(f"{b:>6} {f'{h[0]}-{h[1]}':>10} {r['xpnet']:>8.3f} {fmt(t):>8} "
                  f"{r['floor']:>8.3f} {fmt(r['xpnet'] / t if t else None, '.2f'):>8} "
                  f"{r['xpnet'] / r['floor']:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
