"""``fit(comm=...)`` in real ``mpiexec -n 2`` jobs: the same weights as one process, one model
file, a killed or stopped rank that ends the job, a signal on one rank that stops both at the
same step, and a resume from the last checkpoint. Skipped, with the reason, without MPI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _mpirun import HERE, Job, find_mpiexec, needs_mpi, run

import xpnet
from xpnet.distributed import SingleProcess
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam

CHILD = str(HERE / "_dp_child.py")


def _one_process(out: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, CHILD, str(out), *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _two_processes(out: Path, *args: str) -> str:
    rc, stdout, stderr = run(2, [CHILD, str(out), "--mpi", *args])
    assert rc == 0, stdout + stderr
    return stdout


def _weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@needs_mpi
@pytest.mark.parametrize(
    "dtype, batch, rows",
    [
        ("float64", 64, 1000),  # 15 full batches and one of 40
        ("float32", 64, 1000),
        ("float32", 63, 1001),  # shards of 31 and 32 rows: weighted means
        ("float64", 50, 1001),  # a last batch of 1 row: rank 1 computes it with weight 0
    ],
)
def test_two_processes_give_the_weights_of_one(
    tmp_path: Path, dtype: str, batch: int, rows: int
) -> None:
    """Same seeds, same global batch, dropout 0.2 on: 2 ranks end where 1 process ends, to
    within the float reduction order (float64: ~1e-15 relative; float32: ~1e-7)."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    args = ["--dtype", dtype, "--batch-size", str(batch), "--rows", str(rows)]
    _one_process(one, *args)
    _two_processes(two, *args)
    rtol = 1e-12 if dtype == "float64" else 2e-5
    single, ranks = _weights(one / "rank0.npz"), [_weights(two / f"rank{r}.npz") for r in (0, 1)]
    assert sorted(single) == sorted(ranks[0]) == sorted(ranks[1])
    for key, w in single.items():
        assert ranks[0][key].dtype == np.dtype(dtype)
        np.testing.assert_allclose(ranks[0][key], w, rtol=0, atol=rtol * np.abs(w).max())
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])  # replicas stay identical
    h1 = json.loads((one / "rank0.json").read_text())
    for r in (0, 1):
        h2 = json.loads((two / f"rank{r}.json").read_text())
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5 if dtype == "float32" else 1e-12)
    assert [p.name for p in two.glob("model*.npz")] == ["model.npz"]  # written by rank 0 only
    assert xpnet.load(two / "model.npz").history.epochs == 4


def _interrupted_run(tmp_path: Path, how: signal.Signals) -> tuple[int, str, str, Path]:
    """A 2-rank run checkpointing every 5 steps, with ``how`` sent to rank 1 mid-epoch 2."""
    ckpt = tmp_path / "run.ckpt.npz"
    job = Job(2, [CHILD, str(tmp_path), "--mpi", "--timeout", "3", "--epochs", "4",
                  "--checkpoint", str(ckpt), "--every", "5", "--slow-after", "16"])
    # Two ranks' lines can arrive interleaved on one line ("rank 0 pid 5rank 1 pid 6").
    found = re.search(r"rank 1 pid (\d+)", job.wait_for("rank 1 pid"))
    assert found is not None
    pid = int(found.group(1))
    job.wait_for("rank 1 epoch 1")  # then each step sleeps 50 ms: epoch 2 takes ~0.8 s
    os.kill(pid, how)
    rc, out, err = job.finish()
    return rc, out, err, ckpt


@needs_mpi
def test_a_killed_rank_ends_the_job_and_the_last_checkpoint_resumes(tmp_path: Path) -> None:
    rc, out, err, ckpt = _interrupted_run(tmp_path, signal.SIGKILL)
    assert rc != 0
    assert "rank 0 done" not in out and "rank 1 done" not in out
    # The launcher says that a rank was killed, and ends the others (MPICH prints this on
    # stdout, Open MPI on stderr).
    assert re.search(r"signal 9|KILLED BY SIGNAL: 9", out + err), out + err
    _resumes_to_the_uninterrupted_weights(tmp_path, ckpt)


@needs_mpi
def test_a_stopped_rank_makes_the_other_time_out_and_the_checkpoint_resumes(
    tmp_path: Path,
) -> None:
    """SIGSTOP: rank 1 stays alive but never answers; rank 0's allreduce gives up after its
    3-second timeout with an error naming itself, and the job is aborted."""
    rc, out, err, ckpt = _interrupted_run(tmp_path, signal.SIGSTOP)
    assert rc != 0
    assert "allreduce timed out on rank 0 of 2 after waiting" in err, err
    assert "rank 0 done" not in out
    _resumes_to_the_uninterrupted_weights(tmp_path, ckpt)


@needs_mpi
def test_sigterm_on_one_rank_stops_both_after_the_same_step(tmp_path: Path) -> None:
    rc, out, err, ckpt = _interrupted_run(tmp_path, signal.SIGTERM)
    assert rc == 0, out + err
    stops = sorted(re.findall(r"rank (\d) interrupted: training interrupted by SIGTERM at "
                              r"(epoch \d+/\d+, step \d+/\d+)", out))
    assert [r for r, _ in stops] == ["0", "1"], out
    assert stops[0][1] == stops[1][1]  # the same step on both ranks
    saved = xpnet.load(ckpt).progress
    assert saved is not None and f"epoch {saved['epoch'] + 1}/4, step {saved['step']}/16" == (
        stops[0][1]
    )
    _resumes_to_the_uninterrupted_weights(tmp_path, ckpt)


def _resumes_to_the_uninterrupted_weights(tmp_path: Path, ckpt: Path) -> None:
    """Resuming ``ckpt`` on 2 ranks ends bit for bit where an uninterrupted 2-rank run ends."""
    assert ckpt.exists()
    progress = xpnet.load(ckpt).progress
    assert progress is not None and not progress["finished"]
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    resumed.mkdir(), whole.mkdir()
    _two_processes(resumed, "--checkpoint", str(ckpt), "--resume", "--epochs", "4")
    _two_processes(whole, "--epochs", "4")
    for r in (0, 1):
        got, want = _weights(resumed / f"rank{r}.npz"), _weights(whole / "rank0.npz")
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


@needs_mpi
def test_ranks_given_different_data_refuse_to_start(tmp_path: Path) -> None:
    found = find_mpiexec()
    assert found is not None
    path, flavour = found
    cmd = [path] + (["-launcher", "fork"] if flavour == "hydra" else ["--oversubscribe"])
    prog = [sys.executable, CHILD, str(tmp_path), "--mpi"]
    cmd += ["-n", "1", *prog, "--rows", "1000", ":", "-n", "1", *prog, "--rows", "900"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode != 0
    assert "DistributedError: rank 1 was given n_samples=900 but rank 0 n_samples=1000" in (
        done.stderr
    ), done.stdout + done.stderr


# ------------------------------------------------------------------ one process, in process
def _net(seed: int = 0) -> xpnet.Sequential:
    layers = [Dense(6, 8), ReLU(), Dropout(0.3), Dense(8, 3)]
    return xpnet.Sequential(layers, seed=seed).compile(SoftmaxCrossEntropy(), Adam(0.01))


def test_the_single_process_communicator_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(90, 6)).astype(np.float32), rng.integers(0, 3, size=90)
    plain, single = _net(), _net()
    h1 = plain.fit(X, y, epochs=3, batch_size=16, seed=4, validation_data=(X, y))
    h2 = single.fit(X, y, epochs=3, batch_size=16, seed=4, validation_data=(X, y),
                    comm=SingleProcess())
    for key, p in plain.params.items():
        np.testing.assert_array_equal(single.params[key], p)
    assert h1.to_dict().keys() == h2.to_dict().keys()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert h1[key] == h2[key]


def test_fit_refuses_a_comm_that_is_not_a_communicator() -> None:
    X, y = np.zeros((4, 6), np.float32), np.zeros(4, np.int64)
    with pytest.raises(TypeError, match="comm must be an xpnet.distributed Communicator or None"):
        _net().fit(X, y, comm="mpi")  # type: ignore[arg-type]


@pytest.mark.parametrize("start, rows", [(0, 5), (5, 6), (10, 1)])
def test_a_window_keeps_its_rows_of_the_global_batch_mask(start: int, rows: int) -> None:
    """Rows [start, start + rows) of an 11-row global batch get the masks those rows get when
    the whole batch is drawn at once, and the generator ends in the same state."""
    whole, part = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    x = np.ones((11, 7), np.float32)
    whole.forward(x, training=True)
    part.window = (start, 11)
    part.forward(x[:rows], training=True)
    assert whole.mask is not None and part.mask is not None
    np.testing.assert_array_equal(part.mask, whole.mask[start : start + rows])
    assert part.rng_state() == whole.rng_state()
