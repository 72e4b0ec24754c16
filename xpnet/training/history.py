"""History: the per-epoch metrics ``fit`` records."""

from __future__ import annotations


class History:
    """Per-epoch metrics recorded by ``fit``: ``history.history["loss"][epoch]`` and so on."""

    def __init__(self, data: dict[str, list[float]] | None = None) -> None:
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (data or {}).items()}

    def append(self, **metrics: float) -> None:
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(float(value))

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.history.items()}

    def __repr__(self) -> str:
        return f"History(epochs={self.epochs}, keys={sorted(self.history)})"
