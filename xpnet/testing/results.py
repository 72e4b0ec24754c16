"""What a gradient check found: a :class:`TensorCheck` per tensor, in a GradCheckResult."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TensorCheck:
    """The comparison for one tensor (``"input"``, ``"W"``, ``"0.b"``...) in one dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str  #: dtype of the analytic gradient compared
    mode: str  #: "full" (Jacobian entries) or "directional" (u^T J v)
    checked: int  #: Jacobian entries or directions compared
    skipped: int  #: entries or directions skipped at non-differentiable points
    max_abs_error: float
    max_rel_error: float
    worst: str  #: where the error relative to its tolerance is largest
    analytic: float  #: analytic value at ``worst``
    numeric: float  #: finite-difference value at ``worst``
    passed: bool


@dataclass
class GradCheckResult:
    """What :func:`check_gradients` compared and found."""

    target: str
    backend: str
    dtype: str
    mode: str
    eps: float
    checks: list[TensorCheck] = field(default_factory=list)
    kinks: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    @property
    def checked(self) -> int:
        """Total entries/directions compared, over all tensors and dtypes."""
        return sum(c.checked for c in self.checks)

    @property
    def failures(self) -> list[TensorCheck]:
        return [c for c in self.checks if not c.passed]

    @property
    def worst(self) -> TensorCheck | None:
        """The failing check with the largest error, else the check with the largest error."""
        pool = self.failures or self.checks
        return max(pool, key=lambda c: c.max_abs_error, default=None)

    def report(self) -> str:
        status = "passed" if self.passed else "FAILED"
        lines = [
            f"gradient check {status}: {self.target} on {self.backend} {self.dtype} "
            f"({self.mode}, central differences in float64, h={self.eps:g})",
            f"  {'tensor':<10} {'shape':<12} {'dtype':<8} {'checked':>7} {'skipped':>7} "
            f"{'max abs err':>11} {'max rel err':>11}  status",
        ]
        for c in self.checks:
            lines.append(
                f"  {c.name:<10} {str(c.shape):<12} {c.dtype:<8} {c.checked:>7} {c.skipped:>7} "
                f"{c.max_abs_error:>11.3g} {c.max_rel_error:>11.3g}  "
                + ("ok" if c.passed else f"FAIL at {c.worst}: analytic {c.analytic:.6g}, "
                   f"numeric {c.numeric:.6g}")
            )
        if self.kinks:
            shown = "; ".join(self.kinks[:8]) + (" ..." if len(self.kinks) > 8 else "")
            lines.append(f"  non-differentiable points skipped ({len(self.kinks)}): {shown}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()
