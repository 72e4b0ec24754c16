"""Data-parallel training steps: steps/s with 1 and with 2 processes, and the allreduce's share.

Run ``python benchmarks/distributed_step.py`` (needs the ``mpi`` extra for the 2-process row;
``--quick`` for a short run). The model is the 784-400-100-10 MLP of ``mlp_epoch.py`` (ReLU,
Dropout 0.5, softmax cross-entropy, Adam, float32) on synthetic MNIST-shaped rows; the global
batch (``--batch-size``, 256) is split between the ranks (``comm.shard``), so each of 2 ranks
computes on 128 rows and then averages the 355,110 gradients with ONE allreduce of a 1.4 MB
buffer (``MPICommunicator.allreduce_mean``).

Each configuration runs in its own job: 1 process without MPI at all (the single-process
communicator, what every user gets by default), then ``mpiexec -n P`` for each P of
``--procs``. Printed per configuration: steps/s and ms per step (rank 0's wall clock over
``--steps`` steps after ``--warmup``; the ranks run in lockstep; the median of ``--rounds``
runs, the configurations taking turns), the ms per step spent in
``allreduce_mean`` (the largest over the ranks: it includes waiting for the slower rank) and
its share of a step, and the speed-up over 1 process. Then the bare allreduce: the same buffer
reduced back to back after a barrier (median ms), the cost of communication alone.

Each rank uses one BLAS thread; ``--single-threads 2`` gives the 1-process job two, i.e. one
process using both cores, the fair baseline on a 2-core machine. Two processes on two cores
shared with other work are not expected to be faster than that: each still pays Python's
per-step overhead in full, half a batch uses BLAS less well, and every step adds a pack, the
allreduce, an unpack and a wait for the slower rank. The point is a measured, bounded overhead
per step; a speed-up comes with more cores or hosts per process than BLAS threads can use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # workers get theirs from run_job

import numpy as np  # noqa: E402

import xpnet  # noqa: E402
from xpnet.distributed import Communicator, get_communicator  # noqa: E402
from xpnet.layers import Dense, Dropout, ReLU  # noqa: E402
from xpnet.losses import SoftmaxCrossEntropy  # noqa: E402
from xpnet.optim import Adam  # noqa: E402

IN, CLASSES, ROWS = 784, 10, 8192


def make_model(seed: int) -> xpnet.Sequential:
    layers = [Dense(IN, 400), ReLU(), Dropout(0.5), Dense(400, 100), ReLU(), Dropout(0.5),
              Dense(100, CLASSES)]
    return xpnet.Sequential(layers, seed=seed).compile(SoftmaxCrossEntropy(), Adam(1e-3))


def worker(steps: int, warmup: int, batch: int, reps: int) -> dict[str, Any]:
    """Train ``warmup + steps`` steps on this rank's shards; timings as rank 0 reports them."""
    comm: Communicator = get_communicator("auto")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(ROWS, IN)).astype(np.float32)
    X *= 1.0 / 255.0
    y = rng.integers(0, CLASSES, size=ROWS)
    model = make_model(seed=0)
    assert model.loss is not None and model.optimizer is not None
    loss, opt = model.loss, model.optimizer
    comm.broadcast([p for _, p, _ in model.parameters()])  # same start on every rank
    wall = reduce_s = 0.0
    comm.barrier()
    for k in range(warmup + steps):
        if k == warmup:
            comm.barrier()
            wall = reduce_s = 0.0
            t_start = time.perf_counter()
        lo = (k * batch) % (ROWS - batch)
        a, b = comm.shard(lo, lo + batch)
        loss.forward(model.forward(X[a:b], training=True), y[a:b], check=False)
        model.backward(loss.backward(), need_dx=False)
        params = model.parameters()
        t0 = time.perf_counter()
        comm.allreduce_mean([g for _, _, g in params], weight=float(b - a))
        reduce_s += time.perf_counter() - t0
        opt.step(params)
    wall = time.perf_counter() - t_start
    grads = [g for _, _, g in model.parameters()]
    bare = []
    for _ in range(reps):
        comm.barrier()
        t0 = time.perf_counter()
        comm.allreduce_mean(grads)
        bare.append(time.perf_counter() - t0)
    worst = comm.allreduce([reduce_s, statistics.median(bare)], "max")
    return {
        "procs": comm.size,
        "kind": comm.name,
        "rows_per_rank": comm.shard(0, batch)[1] - comm.shard(0, batch)[0],
        "steps": steps,
        "wall_s": wall,
        "allreduce_s": worst[0],
        "bare_ms": 1e3 * worst[1],
        "elements": sum(int(g.size) for g in grads),
        "rank": comm.rank,
    }


def run_job(procs: int, args: argparse.Namespace) -> dict[str, Any]:
    """One configuration in its own processes: the worker's JSON line from rank 0."""
    cmd = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--warmup",
           str(args.warmup), "--batch-size", str(args.batch_size), "--reps", str(args.reps)]
    if procs > 1:
        cmd = [*mpiexec(), "-n", str(procs), *cmd]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["OPENBLAS_NUM_THREADS"] = str(args.single_threads if procs == 1 else 1)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the {procs}-process job failed ({out.returncode}):\n{out.stderr}")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(lines[0][len("RESULT "):])


def mpiexec() -> list[str]:
    """The mpiexec beside this Python (the extra's MPICH), else on PATH, with local flags."""
    beside = Path(sys.executable).parent / "mpiexec"
    path = str(beside) if beside.exists() else shutil.which("mpiexec")
    if path is None:
        raise SystemExit("no mpiexec found: pip install -e '.[mpi]' (or pass --procs 1)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return [path, "--oversubscribe"] if "Open MPI" in version else [path, "-launcher", "fork"]


def report(results: list[dict[str, Any]], batch: int, rounds: int, threads: int) -> None:
    base = results[0]["steps"] / results[0]["wall_s"]
    elements = results[0]["elements"]
    print(f"MLP 784-400-100-10, Adam, float32, global batch {batch}, {elements:,} gradients "
          f"({4 * elements / 1e6:.1f} MB) per allreduce; {os.cpu_count()} CPU cores, "
          f"BLAS threads: {threads} for 1 process, 1 per rank; load average "
          f"{os.getloadavg()[0]:.2f}; median of {rounds} round(s) of {results[0]['steps']} steps")
    print(f"{'processes':<12}{'rows/rank':>10}{'steps/s':>10}{'ms/step':>10}"
          f"{'allreduce ms/step':>19}{'allreduce share':>17}{'speed-up':>10}")
    for r in results:
        per_s = r["steps"] / r["wall_s"]
        ms = 1e3 * r["wall_s"] / r["steps"]
        red = 1e3 * r["allreduce_s"] / r["steps"]
        label = f"{r['procs']} ({r['kind']})"
        print(f"{label:<12}{r['rows_per_rank']:>10}{per_s:>10.1f}{ms:>10.2f}{red:>19.3f}"
              f"{red / ms:>16.1%}{per_s / base:>10.2f}")
    for r in results[1:]:
        print(f"bare allreduce, {r['procs']} processes = {r['bare_ms']:.3f} ms "
              "(median, after a barrier)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=50, help="bare allreduces timed")
    ap.add_argument("--procs", default="2", help="comma-separated process counts beside 1")
    ap.add_argument("--single-threads", type=int, default=1, metavar="N",
                    help="BLAS threads of the 1-process job (2: one process on both cores)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each configuration, in turn")
    ap.add_argument("--quick", action="store_true", help="60 steps, one round")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.reps, args.rounds = 60, 5, 20, 1
    if args.worker:
        result = worker(args.steps, args.warmup, args.batch_size, args.reps)
        if result["rank"] == 0:
            print("RESULT " + json.dumps(result), flush=True)
        return 0
    procs = [1] + [int(p) for p in args.procs.split(",") if p.strip() and int(p) > 1]
    runs: dict[int, list[dict[str, Any]]] = {p: [] for p in procs}
    for _ in range(args.rounds):  # configurations take turns, so the machine's load hits all
        for p in procs:
            runs[p].append(run_job(p, args))
    # Each configuration's median run (by wall time) of the rounds.
    results = [sorted(runs[p], key=lambda r: r["wall_s"])[(args.rounds - 1) // 2] for p in procs]
    report(results, args.batch_size, args.rounds, args.single_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
