"""Ctrl-C and SIGTERM during ``fit``: finish the step, save, then stop with TrainingInterrupted."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` stopped on SIGINT/SIGTERM after saving a checkpoint (when one was asked for)."""

    def __init__(self, message: str, signum: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint


class SignalGuard:
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def interrupted(
    signum: int, epoch: int, epochs: int, step: int, steps: int, ckpt: Path | None
) -> TrainingInterrupted:
    """The error for a signal that stopped training at ``epoch`` (0-based), ``step``."""
    name = signal.Signals(signum).name
    where = f"; checkpoint saved to {ckpt}" if ckpt else " (no checkpoint= was given)"
    return TrainingInterrupted(
        f"training interrupted by {name} at epoch {epoch + 1}/{epochs}, step {step}/{steps}"
        f"{where}; resume with xpnet.load(path).fit(..., resume=True)",
        signum,
        ckpt,
    )


def interrupted_at_the_end(signum: int, ckpt: Path | None) -> TrainingInterrupted:
    """The error for a signal that arrived during the last step (training finished first)."""
    name = signal.Signals(signum).name
    where = f"; the trained model is saved to {ckpt}" if ckpt else ""
    return TrainingInterrupted(
        f"{name} arrived during the last step: training finished{where}", signum, ckpt
    )
