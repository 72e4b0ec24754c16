"""BLAS threads against machine load: ``xpnet train`` and ``fit`` with each thread setting.

Run ``python benchmarks/threads.py`` (``--quick`` for a short run). For each load level
(``--busy 0 1 2``: that many CPU-burning processes, a ``while`` loop each, started here and
stopped at the end or when this script is killed), every thread setting runs ``--repeats``
times, the settings taking turns (the order rotates each round) so that the machine's other
work hits them alike:

* ``xpnet train`` (the default main job: the shipped MNIST sample, 784-400-100-10, batch 256,
  ``--epochs`` epochs), in a fresh process as a user runs it, timed by its own
  ``trained N epochs in X s`` line (the training loop, validation included);
* ``fit`` of the same MLP (no validation, ``--fit-epochs`` epochs) in a fresh process, timed
  around the call.

Settings: ``none`` (the BLAS library's default, one thread per core: what xpnet did before
``threads=``), ``1``, ``2`` (any fixed counts given), and ``auto`` (the default now; see
:mod:`xpnet.threads`). Printed: the median seconds of each, the count ``auto`` ended up using,
and the ratios ``auto / best fixed setting`` and ``none / auto``. Nothing here is asserted:
tests/test_benchmark_threads.py only checks that a short run prints every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

#: Environment variables that would pin the library default; dropped for the child runs so
#: that ``none`` really is the library's own choice.
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

TRAIN = "import sys; from xpnet.cli import main; sys.exit(main(sys.argv[1:]))"

FIT = """
import json, sys, time
import xpnet
from xpnet.datasets import load_dataset, preprocess
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, InverseTimeDecay
from xpnet.threads import parse_threads
from xpnet.training import fit

threads, epochs = parse_threads(sys.argv[1]), int(sys.argv[2])
X, y = load_dataset("mnist-sample", "train")
X = preprocess(X)
model = xpnet.Sequential(
    [Dense(784, 400), ReLU(), Dropout(0.2), Dense(400, 100), ReLU(), Dropout(0.2),
     Dense(100, 10)], seed=0)
model.compile(SoftmaxCrossEntropy(), Adam(0.005, beta1=0.8, schedule=InverseTimeDecay(0.3)))
t0 = time.perf_counter()
hist = fit(model, X, y, epochs=epochs, batch_size=256, seed=0, verbose=False, threads=threads)
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "threads": hist.history.get("threads", [])}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for var in BLAS_VARS:
        env.pop(var, None)
    return env


def run_train(threads: str, epochs: int) -> tuple[float, list[float]]:
    """Seconds of ``xpnet train --threads T --epochs E`` and the thread counts it reports."""
    out = subprocess.run(
        [sys.executable, "-c", TRAIN, "train", "--threads", threads, "--epochs", str(epochs)],
        env=_env(), capture_output=True, text=True, check=True, timeout=1800,
    ).stdout
    m = re.search(r"^trained \d+ epochs in ([0-9.]+)s(.*)$", out, re.MULTILINE)
    if m is None:
        raise RuntimeError(f"xpnet train printed no 'trained ... in ...s' line:\n{out}")
    used = [float(n) for n in re.findall(r"(\d+) in \d+ epoch", m.group(2))]
    one = re.search(r"BLAS threads: (\d+)", m.group(2))
    return float(m.group(1)), used or ([float(one.group(1))] if one else [])


def run_fit(threads: str, epochs: int) -> tuple[float, list[float]]:
    """Seconds of ``fit`` of the MLP on the sample, in a fresh process, and the counts used."""
    out = subprocess.run(
        [sys.executable, "-c", FIT, threads, str(epochs)],
        env=_env(), capture_output=True, text=True, check=True, timeout=1800,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["seconds"]), [float(t) for t in result["threads"]]


#: A CPU burner: spins until its parent is gone, so that none outlives a killed benchmark.
BURN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"


class Burners:
    """``n`` processes spinning on a CPU each, for the lifetime of the ``with`` block."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Burners:
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", BURN]))
        time.sleep(0.5 if self.n else 0.0)  # let the scheduler see them
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def measure(
    busy: int, settings: Sequence[str], repeats: int, jobs: dict[str, Any]
) -> dict[str, dict[str, list[tuple[float, list[float]]]]]:
    """``{job: {setting: [(seconds, threads used), ...]}}`` with ``busy`` burners running."""
    results: dict[str, dict[str, list[tuple[float, list[float]]]]] = {
        job: {s: [] for s in settings} for job in jobs
    }
    with Burners(busy):
        for r in range(repeats):
            order = list(settings[r % len(settings):]) + list(settings[: r % len(settings)])
            for job, run in jobs.items():
                for s in order:
                    results[job][s].append(run(s))
    return results


def _used(runs: list[tuple[float, list[float]]]) -> str:
    counts: dict[int, int] = {}
    for _, used in runs:
        for t in used:
            counts[int(t)] = counts.get(int(t), 0) + 1
    total = sum(counts.values())
    if not total:
        return "-"
    return "/".join(f"{n}:{100 * k // total}%" for n, k in sorted(counts.items()))


def report(
    job: str, busy: int, runs: dict[str, list[tuple[float, list[float]]]]
) -> list[str]:
    """One table row: medians, what auto used, auto / best fixed, none / auto."""
    med = {s: statistics.median(t for t, _ in v) for s, v in runs.items()}
    fixed = [s for s in med if s != "auto"]
    best = min(fixed, key=lambda s: med[s]) if fixed else None
    cells = [f"{med[s]:7.3f}" for s in runs]
    row = f"{job:<12} {busy:>4}  " + " ".join(cells)
    if "auto" in med:
        row += f"   {_used(runs['auto']):<14}"
        if best is not None:
            row += f" {med['auto'] / med[best]:8.2f} ({best})"
        if "none" in med:
            row += f" {med['none'] / med['auto']:11.2f}"
    return [row]


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through Burners.__exit__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], metavar="N",
                        help="load levels: CPU burners running alongside (default: 0 1 2)")
    parser.add_argument("--settings", nargs="+", default=["none", "1", "2", "auto"],
                        metavar="S", help="thread settings (default: none 1 2 auto)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default: 3)")
    parser.add_argument("--epochs", type=int, default=30, help="xpnet train epochs (30)")
    parser.add_argument("--fit-epochs", type=int, default=10, help="fit epochs (10)")
    parser.add_argument("--jobs", nargs="+", choices=("train", "fit"), default=["train", "fit"])
    parser.add_argument("--quick", action="store_true",
                        help="--repeats 1 --epochs 2 --fit-epochs 1 --busy 0 1")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs, args.fit_epochs, args.busy = 1, 2, 1, [0, 1]
    for name, value in (("--repeats", args.repeats), ("--epochs", args.epochs),
                        ("--fit-epochs", args.fit_epochs)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    if any(b < 0 for b in args.busy):
        parser.error(f"--busy takes counts >= 0, got {args.busy}")
    from xpnet.threads import parse_threads

    for s in args.settings:
        try:
            parse_threads(s)
        except ValueError as exc:
            parser.error(f"--settings: {exc}")

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _stop)  # kill PID: stop the burners too
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """Measure and print (main's work, once its arguments are checked)."""
    import numpy  # noqa: F401  (loads the BLAS library so that threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    from xpnet.threads import usable_cpus

    blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
            for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"CPUs usable: {usable_cpus()}; BLAS: {', '.join(blas) or 'none found'}; "
          f"load average now: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    pinned = [v for v in BLAS_VARS if v in os.environ]
    if pinned:
        print(f"note: {', '.join(pinned)} dropped for the runs ('none' = library default)")
    print(f"medians of {args.repeats} interleaved runs, seconds; xpnet train: {args.epochs} "
          f"epochs, fit: {args.fit_epochs} epochs; busy = CPU burners running alongside")
    jobs: dict[str, Any] = {}
    if "train" in args.jobs:
        jobs["xpnet train"] = lambda s: run_train(s, args.epochs)
    if "fit" in args.jobs:
        jobs["fit"] = lambda s: run_fit(s, args.fit_epochs)
    head = f"{'job':<12} {'busy':>4}  " + " ".join(f"{s:>7}" for s in args.settings)
    if "auto" in args.settings:
        head += f"   {'auto used':<14} {'auto/best fixed':>15} {'none/auto':>10}"
    print(head)
    for busy in args.busy:
        results = measure(busy, args.settings, args.repeats, jobs)
        for job, runs in results.items():
            for line in report(job, busy, runs):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
