"""Checkpoints, signals and exact resume, with real child processes and real signals.

Each child runs tests/_train_child.py (a seeded MLP with dropout, Adam and a step-decay
schedule on synthetic data). SIGINT and SIGTERM are sent once the child reports a finished
epoch (so ``fit``'s handlers are installed); the child must save a checkpoint and exit with
status 0. SIGKILL is sent at varied moments while the child writes a checkpoint every step;
the last checkpoint must still load. Every interrupted run is then resumed to the end in a new
process and must end with bit-identical weights, optimizer state and history to an
uninterrupted run with the same seeds.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, StepDecay

CHILD = Path(__file__).with_name("_train_child.py")
ROOT = CHILD.parent.parent
EPOCHS = 8

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _start(*args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )


def _wait_for_line(proc: subprocess.Popen[bytes], prefix: bytes, timeout: float = 60) -> bytes:
    """Read the child's stdout until a line starting with ``prefix``; return all read so far."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            if any(line.startswith(prefix) for line in seen.splitlines()):
                return seen
    finally:
        sel.close()
    proc.kill()
    raise AssertionError(f"child never printed {prefix!r}; stdout so far: {seen!r}")


def _wait_for_progress(proc: subprocess.Popen[bytes], ckpt: Path, epoch: int, step: int) -> None:
    """Poll the checkpoint (replaced atomically, so always whole) until the run is past
    ``step`` of 0-based ``epoch``: a signal sent then lands in the middle of an epoch."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        prog = xpnet.load(ckpt).progress if ckpt.exists() else None
        if prog is not None and (prog["epoch"], prog["step"]) >= (epoch, step):
            return
        time.sleep(0.005)
    proc.kill()
    raise AssertionError(f"the child never got past epoch {epoch} step {step}")


def _finish(proc: subprocess.Popen[bytes], before: bytes = b"") -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, (before + out).decode(), err.decode()


def _run(*args: str | Path) -> tuple[int, str, str]:
    return _finish(_start(*args))


def assert_same_model(a: xpnet.Sequential, b: xpnet.Sequential) -> None:
    """Bit-identical weights, optimizer state (step, epoch, every slot) and loss history."""
    assert a.params.keys() == b.params.keys()
    for key in a.params:
        assert np.array_equal(a.params[key], b.params[key]), key
    oa, ob = a.optimizer, b.optimizer
    assert oa is not None and ob is not None
    assert (oa.t, oa.epoch, oa.lr) == (ob.t, ob.epoch, ob.lr)
    assert oa.state.keys() == ob.state.keys()
    for name, slots in oa.state.items():
        for slot, value in slots.items():
            assert np.array_equal(value, ob.state[name][slot]), (name, slot)
    assert a.history["loss"] == b.history["loss"]
    assert a.history["accuracy"] == b.history["accuracy"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> xpnet.Sequential:
    """The uninterrupted run (no checkpoints), in its own process."""
    out = tmp_path_factory.mktemp("reference") / "final.npz"
    rc, stdout, err = _run(out, "--epochs", EPOCHS)
    assert rc == 0, err
    assert "done" in stdout
    return xpnet.load(out)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_checkpoint_and_resume_is_bit_identical(
    signum: int, tmp_path: Path, reference: xpnet.Sequential
) -> None:
    ckpt, out = tmp_path / "run.npz", tmp_path / "final.npz"
    proc = _start(out, "--checkpoint", ckpt, "--every", 1, "--epochs", EPOCHS)
    seen = _wait_for_line(proc, b"epoch 1")  # fit's handlers are installed
    _wait_for_progress(proc, ckpt, 1, 5)  # and it is 5+ steps into the second epoch
    proc.send_signal(signum)
    rc, stdout, err = _finish(proc, seen)
    name = signal.Signals(signum).name
    assert rc == 0, err
    assert "Traceback" not in err
    assert f"interrupted: training interrupted by {name}" in stdout
    assert f"checkpoint saved to {ckpt}" in stdout
    assert not out.exists()  # it really stopped before the end

    saved = xpnet.load(ckpt)
    prog = saved.progress
    assert prog is not None and not prog["finished"]
    assert prog["epoch"] == 1 and 5 < prog["step"] < 75  # mid-epoch (75 steps per epoch)
    assert f"at epoch 2/{EPOCHS}, step {prog['step']}/75" in stdout

    rc, stdout, err = _run(out, "--checkpoint", ckpt, "--resume", "--epochs", EPOCHS)
    assert rc == 0, err
    assert stdout.strip().endswith("done")
    assert_same_model(xpnet.load(out), reference)


def test_sigkill_leaves_last_checkpoint_loadable_and_resume_is_bit_identical(
    tmp_path: Path, reference: xpnet.Sequential
) -> None:
    """Kill -9 three times while a checkpoint is written every step, resuming in between."""
    ckpt, out = tmp_path / "run.npz", tmp_path / "final.npz"
    positions = []
    for delay in (0.0, 0.05, 0.13):
        args: list[str | Path] = [out, "--checkpoint", ckpt, "--every", 1, "--epochs", EPOCHS]
        proc = _start(*args, *(["--resume"] if positions else []))
        _wait_for_line(proc, b"epoch")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        saved = xpnet.load(ckpt)  # whole and verified, whatever the kill interrupted
        prog = saved.progress
        assert prog is not None and not prog["finished"]
        positions.append((prog["epoch"], prog["step"]))
    assert positions == sorted(positions) and len(set(positions)) == 3, positions
    assert not out.exists()

    rc, stdout, err = _run(out, "--checkpoint", ckpt, "--resume", "--epochs", EPOCHS)
    assert rc == 0, err
    assert_same_model(xpnet.load(out), reference)


def test_resume_with_another_batch_size_is_refused(tmp_path: Path) -> None:
    ckpt, out = tmp_path / "run.npz", tmp_path / "final.npz"
    rc, _, err = _run(out, "--checkpoint", ckpt, "--epochs", 2)
    assert rc == 0, err
    saved = xpnet.load(ckpt)
    saved.progress = dict(saved.progress or {}, finished=False, epoch=1)
    before = {k: v.copy() for k, v in saved.params.items()}
    sys.path.insert(0, str(CHILD.parent))
    try:
        from _train_child import data
    finally:
        sys.path.remove(str(CHILD.parent))
    X, y = data()
    with pytest.raises(ValueError, match=r"batch_size=16, got 32"):
        saved.fit(X, y, epochs=4, batch_size=32, resume=True)
    with pytest.raises(ValueError, match=r"n_samples=1200, got 1000"):
        saved.fit(X[:1000], y[:1000], epochs=4, batch_size=16, resume=True)
    with pytest.raises(ValueError, match=r"shuffle=True, got False"):
        saved.fit(X, y, epochs=4, batch_size=16, resume=True, shuffle=False)
    assert all(np.array_equal(before[k], saved.params[k]) for k in before)


def test_resume_without_progress_is_refused() -> None:
    net = xpnet.Sequential([Dense(3, 2)], seed=0).compile(SoftmaxCrossEntropy(), Adam())
    X, y = np.ones((4, 3), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="no unfinished training progress"):
        net.fit(X, y, resume=True)


# ------------------------------------------------------------- in-process, same guarantees
def _small(seed: int = 3) -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(6, 12), ReLU(), Dropout(0.3), Dense(12, 3)], seed=seed)
    return net.compile(SoftmaxCrossEntropy(), Adam(0.01, schedule=StepDecay(1, 0.7)))


def _xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(90, 6)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


def test_interrupt_at_each_epoch_end_resumes_exactly(tmp_path: Path) -> None:
    """SIGINT sent to this process at the end of each epoch in turn, then resume, compare."""
    X, y = _xy()
    ref = _small()
    ref.fit(X, y, epochs=3, batch_size=32, seed=1)  # 3 steps per epoch, 9 in all
    for stop_epoch in range(2):
        ckpt = tmp_path / f"stop{stop_epoch}.npz"
        net = _small()

        def stop(epoch: int, logs: dict[str, float], at: int = stop_epoch) -> None:
            if epoch == at:
                os.kill(os.getpid(), signal.SIGINT)

        with pytest.raises(xpnet.TrainingInterrupted) as info:
            net.fit(X, y, epochs=3, batch_size=32, seed=1, checkpoint=ckpt, on_epoch_end=stop)
        assert info.value.signum == signal.SIGINT and info.value.checkpoint == ckpt
        resumed = xpnet.load(ckpt)
        assert resumed.progress is not None
        assert (resumed.progress["epoch"], resumed.progress["step"]) == (stop_epoch + 1, 0)
        resumed.fit(X, y, epochs=3, batch_size=32, resume=True)
        assert_same_model(resumed, ref)


def test_mid_epoch_checkpoints_resume_exactly(tmp_path: Path) -> None:
    X, y = _xy()
    ref = _small()
    ref.fit(X, y, epochs=3, batch_size=16, seed=2)  # 6 steps per epoch
    ckpt = tmp_path / "c.npz"

    class Stop(Exception):
        pass

    def stop(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 1:
            raise Stop  # a crash after the step-11 checkpoint, before the epoch-end one

    with pytest.raises(Stop):
        _small().fit(X, y, epochs=3, batch_size=16, seed=2, checkpoint=ckpt, every=5,
                     on_epoch_end=stop)
    resumed = xpnet.load(ckpt)
    assert resumed.progress is not None
    assert (resumed.progress["epoch"], resumed.progress["step"]) == (1, 4)  # global step 10
    resumed.fit(X, y, epochs=3, batch_size=16, resume=True)
    assert_same_model(resumed, ref)


def test_signal_in_the_last_step_still_stops_after_saving(tmp_path: Path) -> None:
    X, y = _xy()
    ckpt = tmp_path / "c.npz"

    def stop(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(xpnet.TrainingInterrupted, match="SIGTERM arrived during the last step"):
        _small().fit(X, y, epochs=2, batch_size=32, seed=1, checkpoint=ckpt, on_epoch_end=stop)
    saved = xpnet.load(ckpt)
    assert saved.progress is not None and saved.progress["finished"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_checkpoint_arguments_are_checked(tmp_path: Path) -> None:
    X, y = _xy()
    net = _small()
    with pytest.raises(ValueError, match="every=3 needs checkpoint="):
        net.fit(X, y, every=3)
    with pytest.raises(ValueError, match="checkpoint must be a file path"):
        net.fit(X, y, checkpoint=tmp_path)
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        net.fit(X, y, checkpoint=3)  # type: ignore[arg-type]
