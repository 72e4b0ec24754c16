"""Launching real ``mpiexec -n N`` jobs from tests, or skipping them, with the reason, without MPI.

``mpiexec`` is looked for next to the running Python first (the ``mpich`` wheel of the
``xpnet[mpi]`` extra puts it there, matching the libmpi that mpi4py loads), then on PATH.
MPICH's Hydra is told to start local processes by fork (no ssh needed); Open MPI is allowed
to run as root and to oversubscribe (the test machine has 2 cores), through its environment.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: Generous bound on a whole job; a job still running then has hung (the test fails).
JOB_LIMIT = 180.0


@functools.cache
def find_mpiexec() -> tuple[str, str] | None:
    """``(path, flavour)`` of the mpiexec to use (flavour ``"hydra"`` or ``"openmpi"``)."""
    beside = Path(sys.executable).parent / "mpiexec"
    path = str(beside) if beside.exists() else shutil.which("mpiexec")
    if path is None:
        return None
    out = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    text = out.stdout + out.stderr
    return path, "openmpi" if "Open MPI" in text or "prte" in text.lower() else "hydra"


def skip_reason() -> str | None:
    """Why 2-process tests cannot run here, or None when they can."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install -e '.[mpi]')"
    if find_mpiexec() is None:
        return "no mpiexec next to this Python or on PATH (pip install -e '.[mpi]')"
    return None


needs_mpi = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def launch(n: int, args: list[str], **kwargs: object) -> subprocess.Popen[str]:
    """Start ``mpiexec -n n python ARGS`` in its own process group, output piped as text."""
    found = find_mpiexec()
    assert found is not None
    path, flavour = found
    env = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1")
    cmd = [path, "-n", str(n)]
    if flavour == "hydra":
        cmd += ["-launcher", "fork"]
    else:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        cmd += ["--oversubscribe"]
    return subprocess.Popen(
        [*cmd, sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        **kwargs,  # type: ignore[arg-type]
    )


def finish(proc: subprocess.Popen[str], limit: float = JOB_LIMIT) -> tuple[int, str, str]:
    """Wait for ``proc`` (at most ``limit`` s, else kill its group and fail): rc, out, err."""
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the MPI job hung: still running after {limit} s\n{out}\n{err}")
    return proc.returncode, out, err


def run(n: int, args: list[str], limit: float = JOB_LIMIT) -> tuple[int, str, str]:
    """Run ``mpiexec -n n python ARGS`` to the end: ``(returncode, stdout, stderr)``."""
    return finish(launch(n, args), limit)


class Job:
    """A running ``mpiexec`` job whose output lines are collected as they come."""

    def __init__(self, n: int, args: list[str]) -> None:
        import threading

        self.proc = launch(n, args)
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def wait_for(self, text: str, limit: float = JOB_LIMIT) -> str:
        """The first output line containing ``text`` (fail if none comes within ``limit`` s)."""
        with self._seen:
            found = self._seen.wait_for(
                lambda: any(text in ln for ln in self.lines) or self.proc.poll() is not None,
                timeout=limit,
            )
            hits = [ln for ln in self.lines if text in ln]
        if not found or not hits:
            self.kill()
            printed = "\n".join(self.lines)
            pytest.fail(f"no line with {text!r} from the job; it printed:\n{printed}")
        return hits[0]

    def finish(self, limit: float = JOB_LIMIT) -> tuple[int, str, str]:
        """Wait for the end (at most ``limit`` s, else kill and fail): rc, stdout, stderr."""
        try:
            self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.kill()
            printed = "\n".join(self.lines)
            pytest.fail(f"the MPI job hung: still running after {limit} s\n{printed}")
        self._reader.join(timeout=30)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, "\n".join(self.lines), err

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
