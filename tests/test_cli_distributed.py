"""``mpiexec -n 2 xpnet train --distributed`` on the shipped sample: one report, one model file,
the same result as one process. Skipped, with the reason, without MPI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from _mpirun import find_mpiexec, needs_mpi, run

import xpnet

TRAIN = ["-m", "xpnet.cli", "train", "--epochs", "2", "--limit", "600", "--hidden", "64"]


@needs_mpi
def test_two_processes_report_once_and_write_one_model(tmp_path: Path) -> None:
    out_dir = tmp_path / "two"
    out_dir.mkdir()
    rc, out, err = run(2, [*TRAIN, "--distributed", "--save", str(out_dir / "model.npz"),
                           "--checkpoint", str(out_dir / "run.ckpt.npz")])
    assert rc == 0, out + err
    assert out.count("distributed: 2 processes (MPI); batch 256 split between them") == 1
    assert len(re.findall(r"^epoch 1/2 ", out, re.MULTILINE)) == 1  # rank 0 alone prints
    assert len(re.findall(r"^epoch 2/2 ", out, re.MULTILINE)) == 1
    assert out.count("model saved to") == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.npz", "run.ckpt.npz"]
    two = xpnet.load(out_dir / "model.npz")

    one_path = tmp_path / "one.npz"
    done = subprocess.run([sys.executable, *TRAIN, "--save", str(one_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    one = xpnet.load(one_path)
    for key, w in one.params.items():
        np.testing.assert_allclose(two.params[key], w, rtol=0, atol=2e-5 * np.abs(w).max())
    acc = re.search(r"held-out accuracy: ([0-9.]+)", out)
    acc_one = re.search(r"held-out accuracy: ([0-9.]+)", done.stdout)
    assert acc and acc_one and abs(float(acc.group(1)) - float(acc_one.group(1))) <= 0.002


@needs_mpi
def test_distributed_without_a_launcher_is_one_process(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, *TRAIN, "--distributed", "--epochs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "distributed:" not in done.stdout and "held-out accuracy" in done.stdout


def test_the_help_describes_the_distributed_options() -> None:
    done = subprocess.run([sys.executable, "-m", "xpnet.cli", "train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "mpiexec -n 2 xpnet train --distributed" in " ".join(done.stdout.split())
    assert "--comm-timeout S" in done.stdout


@needs_mpi
def test_a_rank_that_fails_ends_the_job_at_once() -> None:
    """Rank 1 is given other data (``--limit 500``): it says so and exits, and the job ends
    then, not after rank 0 has waited out its 120-second timeout (the run is bounded at 60)."""
    found = find_mpiexec()
    assert found is not None
    path, flavour = found
    cmd = [path] + (["-launcher", "fork"] if flavour == "hydra" else ["--oversubscribe"])
    prog = [sys.executable, *TRAIN, "--distributed", "--comm-timeout", "120", "--limit"]
    cmd += ["-n", "1", *prog, "600", ":", "-n", "1", *prog, "500"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0
    assert ("xpnet train: error: rank 1 was given n_samples=500 but rank 0 n_samples=600"
            in done.stderr), done.stdout + done.stderr
    assert "held-out accuracy" not in done.stdout
