"""A dependency-free progress bar for long work (training epochs, downloads)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """``[#####.....] 2560/5000 loss 0.31 acc 0.91 12,345 samples/s`` redrawn in place.

    ``enabled=None`` shows the bar only when ``file`` is a terminal, so logs and pipes stay
    quiet. ``update(n, **metrics)`` advances by ``n`` units; ``close(**metrics)`` draws the final
    state and ends the line.
    """

    def __init__(
        self,
        total: int,
        desc: str = "",
        *,
        unit: str = "samples",
        file: TextIO | None = None,
        enabled: bool | None = None,
        width: int = 24,
        min_interval: float = 0.1,
    ) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.file = file if file is not None else sys.stderr
        self.enabled = _is_tty(self.file) if enabled is None else bool(enabled)
        self.width = width
        self.min_interval = min_interval
        self.count = 0
        self.metrics: dict[str, float] = {}
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, n: int = 1, **metrics: float) -> None:
        self.count += n
        self.metrics.update(metrics)
        now = time.perf_counter()
        due = now - self._last_draw >= self.min_interval or self.count >= self.total
        if self.enabled and due:
            self._draw(now)

    def rate(self) -> float:
        """Units per second since the bar started."""
        elapsed = time.perf_counter() - self.start
        return self.count / elapsed if elapsed > 0 else 0.0

    def format(self, now: float | None = None) -> str:
        frac = min(self.count / self.total, 1.0) if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        parts = [f"{self.desc} [{bar}] {self.count}/{self.total}".strip()]
        parts += [f"{k} {v:.4g}" for k, v in self.metrics.items()]
        parts.append(f"{self.rate():,.0f} {self.unit}/s")
        return " ".join(parts)

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self.file.write("\r" + self.format(now) + "\x1b[K")
        self.file.flush()

    def close(self, **metrics: float) -> None:
        self.metrics.update(metrics)
        if self.enabled:
            self._draw(time.perf_counter())
            self.file.write("\n")
            self.file.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
