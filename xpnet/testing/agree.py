"""Check that two backends compute the same outputs and gradients from the same inputs.

:func:`assert_backends_agree` copies a layer, a loss, or a model with a loss onto each backend
(parameters and buffers through the host, cast to each backend's dtype; dropout draws held
identical), runs forward and backward with the same inputs and the same cotangent, and compares
the output, the loss, the input gradient and every parameter gradient on the host in float64.

Reduction order. BLAS, cuBLAS and a plain NumPy ``sum`` add in different orders, so sums agree
only up to rounding, and the rounding error of a sum follows the size of its *terms*, not of its
result: an entry that cancels to near zero carries an absolute error set by the terms that made
it. So an entry passes when ``|a - b| <= atol * scale + rtol * |b| + floor`` where ``scale``
is the largest magnitude in that tensor on either backend (the size of the terms, a norm-wise
bound), and ``floor`` is some ulps of 1, for quantities that are themselves a cancellation of
O(1) numbers upstream (``softmax - target`` when the softmax is nearly 1 makes a whole gradient
tiny, carrying the absolute error of the O(1) terms). All three follow the less precise of the
two dtypes (:data:`AGREE_TOLERANCES`).
Bit-for-bit equality is never asked for, even between two float64 backends.

Each backend's arrays are also checked for what they are: arrays of that backend's module, in
its dtype (a float32 model leaking float64 fails), on its device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends import Array, Backend, get_backend
from ..layers.base import Layer
from ..losses.base import Loss
from ._runner import Runner, hide_assertions, same_patterns, to_host_any

__all__ = ["AGREE_TOLERANCES", "AgreementResult", "assert_backends_agree"]

#: (rtol, atol relative to the tensor's largest magnitude, absolute floor), by the less
#: precise dtype of the two backends.
AGREE_TOLERANCES: dict[str, tuple[float, float, float]] = {
    "float64": (1e-9, 1e-9, 1e-13),
    "float32": (1e-4, 1e-4, 1e-6),
}


@dataclass
class AgreementResult:
    """Per-quantity largest differences between two backends."""

    backends: tuple[str, str]
    dtype: str  #: the dtype whose tolerances applied
    errors: dict[str, float] = field(default_factory=dict)  #: max |a - b| / allowed, per quantity
    max_abs: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def report(self) -> str:
        a, b = self.backends
        lines = [f"backends {'agree' if self.passed else 'DISAGREE'}: {a} vs {b} "
                 f"({self.dtype} tolerances)"]
        for q in self.errors:
            lines.append(f"  {q:<12} max |diff| {self.max_abs[q]:.3g}  "
                         f"({self.errors[q]:.3g} of the tolerance)")
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _label(be: Backend) -> str:
    dev = f"@{be.device}" if be.device is not None else ""
    return f"{be.name}{dev} {be.dtype_name}"


def _check_array(be: Backend, arr: Array, what: str, problems: list[str]) -> None:
    if not be.is_array(arr):
        problems.append(f"{what} is a {type(arr).__module__}.{type(arr).__name__}, not a "
                        f"{be.name} array")
        return
    if arr.dtype != be.dtype:
        problems.append(f"{what} has dtype {arr.dtype} on a {be.dtype_name} backend")
    if be.device is not None and getattr(arr, "device", be.device) != be.device:
        problems.append(f"{what} is on device {arr.device}, not {be.device}")


def _run(r: Runner, dy: np.ndarray | None) -> tuple[dict[str, np.ndarray], list[np.ndarray],
                                                     list[str]]:
    """Forward and backward on one backend: host float64 quantities, kink patterns, problems."""
    be = r.backend
    problems: list[str] = []
    out, patterns = r.forward()
    assert r.y is not None
    label = _label(be)
    _check_array(be, r.y, f"{label}: the output", problems)
    values: dict[str, np.ndarray] = {}
    if r.kind == "layer":
        values["output"] = out
        u = dy if dy is not None else np.ones(out.size)
    else:
        values["loss"] = out
        u = np.ones(1)
    for name, g in r.backward_arrays(u).items():
        _check_array(be, g, f"{label}: the gradient of {name}", problems)
        values[f"d {name}"] = np.array(be.to_host(g), dtype=np.float64)
    return values, patterns, problems


def assert_backends_agree(
    obj: Layer | Loss,
    x: Any,
    backend_a: Any,
    backend_b: Any,
    *,
    target: Any = None,
    loss: Loss | None = None,
    training: bool = False,
    seed: int = 0,
    tolerances: dict[str, tuple[float, float, float]] | None = None,
    raise_on_failure: bool = True,
) -> AgreementResult:
    """Run ``obj`` on two backends with the same inputs and parameters; compare everything.

    ``obj`` is a layer (its output, and the gradients of ``<dy, output>`` for a random ``dy``
    drawn from ``seed``), a :class:`~xpnet.losses.Loss` (``x`` are predictions; the loss and
    its gradient), or a layer with ``loss=`` (the loss and all gradients). ``backend_a`` and
    ``backend_b`` are backends or specs for :func:`xpnet.get_backend`. Float inputs are cast to
    the less precise of the two dtypes first, so both backends start from the same point.

    Returns an :class:`AgreementResult`; raises ``AssertionError`` with its report when they
    disagree beyond the tolerances, or when a backend returns arrays of the wrong kind, dtype
    or device. Where a ReLU/LeakyReLU input lies within rounding of 0 on one backend and not
    the other (their branch patterns differ) gradients legitimately differ: they are then not
    compared and a note says so.
    """
    __tracebackhide__ = hide_assertions  # a failure shows the report, not this function
    if not isinstance(obj, (Layer, Loss)):
        raise TypeError(f"obj must be an xpnet Layer or Loss, got {obj!r}")
    if (isinstance(obj, Loss) or loss is not None) and target is None:
        raise ValueError("a target is needed to compare a loss")
    bea, beb = get_backend(backend_a), get_backend(backend_b)
    low = "float32" if "float32" in (bea.dtype_name, beb.dtype_name) else "float64"
    rtol, atol, floor = {**AGREE_TOLERANCES, **(tolerances or {})}[low]
    host_x = to_host_any(obj.backend, x)
    if host_x.dtype.kind == "f":
        host_x = host_x.astype(low)
    host_t = None if target is None else to_host_any(obj.backend, target)
    if host_t is not None and host_t.dtype.kind == "f":
        host_t = host_t.astype(low)
    draws: dict[int, dict[tuple[int, ...], np.ndarray]] = {}
    ra = Runner(obj, loss, bea, host_x, host_t, training, draws)
    rb = Runner(obj, loss, beb, host_x, host_t, training, draws)
    # Same parameter values on both: those the less precise dtype holds.
    for name, _owner, _key in ra.slots:
        value = ra.get(name).astype(low)
        ra.set(name, value)
        rb.set(name, value)
    for la, lb in zip(ra.flat, rb.flat, strict=True):  # buffers too (running statistics)
        for key, buf in la.buffers.items():
            host = np.array(bea.to_host(buf), dtype=low)
            la.buffers[key] = bea.asarray(host.copy(), dtype=bea.dtype)
            lb.buffers[key] = beb.asarray(host.copy(), dtype=beb.dtype)
    dy = None
    if ra.kind == "layer":
        ra.forward()
        dy = np.random.default_rng(seed).normal(size=int(np.prod(ra.out_shape))).astype(low)
    va, pa, prob_a = _run(ra, dy)
    vb, pb, prob_b = _run(rb, dy)
    result = AgreementResult((_label(bea), _label(beb)), low)
    result.problems += prob_a + prob_b
    kinked = not same_patterns(pa, pb)
    if kinked:
        result.notes.append("an activation input is within rounding of 0 on one backend only: "
                            "gradients not compared")
    _compare(result, va, vb, kinked, (rtol, atol, floor))
    if raise_on_failure and not result.passed:
        raise AssertionError(result.report())
    return result


def _compare(
    result: AgreementResult, va: dict[str, np.ndarray], vb: dict[str, np.ndarray],
    kinked: bool, tols: tuple[float, float, float],
) -> None:
    """Record in ``result`` how far each quantity of run a is from run b, relative to the
    tolerances (gradients skipped where the branch patterns differ)."""
    rtol, atol, floor = tols
    for q, a in va.items():
        if kinked and q.startswith("d "):
            continue
        b = vb[q]
        if a.shape != b.shape:
            result.problems.append(f"{q}: shape {a.shape} vs {b.shape}")
            continue
        scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
        diff = np.abs(a - b)
        allowed = atol * scale + rtol * np.abs(b) + floor
        ratio = diff / allowed
        result.errors[q] = float(ratio.max(initial=0.0))
        result.max_abs[q] = float(diff.max(initial=0.0))
        if not np.isfinite(a).all() or not np.isfinite(b).all():
            result.problems.append(f"{q}: non-finite values")
        elif result.errors[q] > 1.0:
            i = int(np.argmax(ratio))
            idx = tuple(int(k) for k in np.unravel_index(i, a.shape)) if a.ndim else ()
            result.problems.append(f"{q}{list(idx)}: {a.flat[i]:.9g} vs {b.flat[i]:.9g}")
