"""Check hand-written backward passes against central finite differences in float64.

:func:`check_gradients` takes a layer (any :class:`~xpnet.layers.Layer`, a whole
:class:`~xpnet.Sequential` included), a loss, or a model with a loss, and compares the analytic
gradient with respect to the input and to every parameter with central differences
``(f(t + h e) - f(t - h e)) / 2h`` computed on a float64 copy of the object, on the same
array module and device. A float32 object is checked twice: the float64 copy's analytic
gradient against the differences with float64 tolerances, and the float32 object's own
analytic gradient against the same differences with float32 tolerances.

* Small problems get the full Jacobian: every output against every input and parameter
  element (one backward per output, two forwards per element).
* Large ones get random-direction checks ``u^T J v``: for random ``u`` (output) and ``v`` (per
  tensor), the analytic ``<J^T u, v>`` against ``(u.f(t + h v) - u.f(t - h v)) / 2h``.
* Kinks: an element whose step ``t +- h`` puts a ReLU/LeakyReLU input on the other side of 0
  (the layers' branch patterns differ between the evaluations) sits at a non-differentiable
  point; it is skipped and listed in ``result.kinks``, never reported as a failure.
* Dropout in training mode draws the same mask for every evaluation (fixed uniforms).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends import Backend
from ..layers.base import Layer
from ..losses.base import Loss
from ._runner import Runner, float64_twin, hide_assertions, same_patterns, to_host_any
from .function import function_case
from .results import GradCheckResult, TensorCheck

__all__ = ["TOLERANCES", "GradCheckResult", "TensorCheck", "check_gradients"]

#: (rtol, atol) for comparing an analytic gradient in this dtype with float64 differences.
#: An entry passes when ``|a - n| <= atol + rtol * (|n| + scale)`` where ``scale`` is the
#: largest numeric entry of that tensor (full Jacobian) or ``sum |g v|`` (a direction): the
#: rounding error of a sum follows the size of its terms, not of its (maybe cancelled) result.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-5, 1e-8),
    "float32": (2e-3, 1e-5),
}


def check_gradients(
    obj: Layer | Loss | Callable[..., Any],
    x: Any,
    target: Any = None,
    *,
    vjp: Callable[..., Any] | None = None,
    kink: Callable[..., Any] | None = None,
    loss: Loss | None = None,
    training: bool = False,
    check_input: bool = True,
    check_params: bool = True,
    mode: str = "auto",
    max_full: int = 512,
    directions: int = 3,
    eps: float = 1e-6,
    tolerances: dict[str, tuple[float, float]] | None = None,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradCheckResult:
    """Compare ``obj``'s analytic gradients with float64 central differences.

    ``obj`` is a layer (checked on ``y = obj(x)`` through random cotangents), a
    :class:`~xpnet.losses.Loss` (``x`` are the predictions, ``target`` the targets), or a layer
    with ``loss=`` (the scalar ``loss(obj(x), target)``). ``x`` and ``target`` are host data
    or arrays of ``obj``'s backend; float data is cast to ``obj``'s dtype first, so every copy
    sees the same point. ``training=True`` runs layers in training mode, with dropout masks
    held fixed. ``mode`` is ``"full"`` (Jacobian), ``"directional"`` (``directions`` random
    ``u^T J v`` per tensor) or ``"auto"`` (full when outputs and checked elements are both at
    most ``max_full``). ``eps`` is the step ``h`` (scaled by ``max(1, |t|)`` per element).
    ``tolerances`` overrides :data:`TOLERANCES` per dtype.

    ``obj`` may also be a plain function with its hand-written backward: ``check_gradients(fn,
    x, vjp=vjp)`` for ``fn(x) -> y`` and ``vjp(x, dy) -> dx``, or ``check_gradients(fn, (a, b),
    vjp=vjp)`` for ``fn(a, b)`` and ``vjp(a, b, dy) -> (da, db)``; ``kink(x) -> bool array``
    says which side of a non-differentiable point each element is on (see
    :mod:`xpnet.testing.function`).

    Returns a :class:`GradCheckResult`; raises ``AssertionError`` with its report when a
    gradient disagrees (unless ``raise_on_failure=False``). Nothing of ``obj`` is modified.
    """
    __tracebackhide__ = hide_assertions  # a failure shows the report, not this function
    if vjp is not None or kink is not None:
        obj, x = function_case(obj, x, vjp, kink, with_target=target is not None or bool(loss))
    obj = _check_arguments(obj, target, loss, mode, eps, directions)
    tols = {**TOLERANCES, **(tolerances or {})}

    be: Backend = obj.backend
    host_x = to_host_any(be, x)
    if host_x.dtype.kind == "f":
        host_x = host_x.astype(np.dtype(be.dtype_name))  # the point the user's dtype can hold
    host_t = None if target is None else to_host_any(be, target)
    if host_t is not None and host_t.dtype.kind == "f":
        host_t = host_t.astype(np.dtype(be.dtype_name))
    draws: dict[int, dict[tuple[int, ...], np.ndarray]] = {}
    r64 = Runner(obj, loss, float64_twin(be), host_x, host_t, training, draws)
    r_own = None
    if be.dtype_name != "float64":
        r_own = Runner(obj, loss, be, host_x, host_t, training, draws)

    names = r64.tensor_names(check_input, check_params)
    base = {n: r64.get(n) for n in names}
    out0, _ = r64.forward()
    size = sum(v.size for v in base.values())
    if mode == "auto":
        mode = "full" if out0.size <= max_full and size <= max_full else "directional"
    what = _describe(obj, loss)
    result = GradCheckResult(what, be.name, be.dtype_name, mode, eps)
    if not names:
        return result
    checker = _full if mode == "full" else _directional
    checker(r64, r_own, base, result, tols, eps, directions, seed)
    if raise_on_failure and not result.passed:
        raise AssertionError(result.report())
    return result


def _check_arguments(
    obj: Any, target: Any, loss: Any, mode: Any, eps: Any, directions: Any
) -> Layer | Loss:
    """``obj`` once check_gradients' arguments are checked (else a TypeError/ValueError
    naming the bad one)."""
    if not isinstance(obj, (Layer, Loss)):
        raise TypeError(
            f"obj must be an xpnet Layer or Loss, or a function given with vjp=... (its "
            f"hand-written backward, vjp(x, dy) -> dx), got {obj!r}"
        )
    if loss is not None and not isinstance(loss, Loss):
        raise TypeError(f"loss must be an xpnet Loss, got {loss!r}")
    if isinstance(obj, Loss) and loss is not None:
        raise ValueError("loss= goes with a layer or model; got a Loss as obj as well")
    if (isinstance(obj, Loss) or loss is not None) and target is None:
        raise ValueError("a target is needed to check a loss")
    if mode not in ("auto", "full", "directional"):
        raise ValueError(f"mode must be 'auto', 'full' or 'directional', got {mode!r}")
    if not (isinstance(eps, float) and 0.0 < eps < 1.0):
        raise ValueError(f"eps must be a float in (0, 1), got {eps!r}")
    if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
        raise ValueError(f"directions must be a positive int, got {directions!r}")
    return obj


def _describe(obj: Layer | Loss, loss: Loss | None) -> str:
    text = repr(obj).replace("\n", " ").replace("  ", " ")
    if len(text) > 160:
        text = text[:157] + "..."
    return text if loss is None else f"{text} with {loss!r}"


def _step(eps: float, value: float) -> float:
    return eps * max(1.0, abs(value))


def _differences(
    r64: Runner, name: str, base: np.ndarray, delta: np.ndarray, ref: list[np.ndarray]
) -> tuple[np.ndarray, bool]:
    """``(f(t + delta) - f(t - delta))`` as host float64, and whether no kink was crossed."""
    r64.set(name, base + delta)
    f_plus, pat_plus = r64.forward()
    r64.set(name, base - delta)
    f_minus, pat_minus = r64.forward()
    r64.set(name, base)
    smooth = same_patterns(pat_plus, ref) and same_patterns(pat_minus, ref)
    return f_plus - f_minus, smooth


def _compare(
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    mode: str,
    analytic: np.ndarray,
    numeric: np.ndarray,
    scale: np.ndarray,
    valid: np.ndarray,
    tol: tuple[float, float],
    where: Any,
) -> TensorCheck:
    """Entrywise ``|a - n| <= atol + rtol (|n| + scale)`` over the ``valid`` entries."""
    rtol, atol = tol
    err = np.abs(analytic - numeric)
    allowed = atol + rtol * (np.abs(numeric) + scale)
    ratio = np.where(valid, err / allowed, -1.0)
    checked = int(valid.sum())
    if checked == 0:
        return TensorCheck(name, shape, dtype, mode, 0, int(valid.size), 0.0, 0.0, "-", 0.0, 0.0,
                           True)
    i = int(np.argmax(ratio))
    denom = np.maximum(np.maximum(np.abs(numeric), np.abs(analytic)), 1e-300)
    rel = np.where(valid, err / denom, 0.0)
    return TensorCheck(
        name=name,
        shape=shape,
        dtype=dtype,
        mode=mode,
        checked=checked,
        skipped=int(valid.size) - checked,
        max_abs_error=float(np.where(valid, err, 0.0).max()),
        max_rel_error=float(rel.max()),
        worst=where(i),
        analytic=float(analytic.flat[i]),
        numeric=float(numeric.flat[i]),
        passed=bool(ratio.flat[i] <= 1.0),
    )


def _jacobian_rows(r: Runner, n_out: int, names: list[str]) -> dict[str, np.ndarray]:
    """Analytic Jacobian (n_out, size) per tensor: one backward per output (at the last forward)."""
    rows = {n: np.empty((n_out, 0)) for n in names}
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(n_out):
        u = np.zeros(n_out)
        u[i] = 1.0
        g = r.vjp(u) if n_out > 1 or r.kind == "layer" else r.vjp(np.ones(1))
        for n in names:
            out[n].append(g[n].reshape(-1))
    for n in names:
        rows[n] = np.stack(out[n]) if out[n] else rows[n]
    return rows


def _full(
    r64: Runner,
    r_own: Runner | None,
    base: dict[str, np.ndarray],
    result: GradCheckResult,
    tols: dict[str, tuple[float, float]],
    eps: float,
    directions: int,
    seed: int,
) -> None:
    names = list(base)
    out0, ref = r64.forward()
    n_out = out0.size
    j64 = _jacobian_rows(r64, n_out, names)
    j_own = None
    if r_own is not None:
        _, own_pat = r_own.forward()
        if same_patterns(own_pat, ref):
            j_own = _jacobian_rows(r_own, n_out, names)
        else:
            result.kinks.append(
                f"{r_own.backend.dtype_name} forward is on the other side of a kink from "
                "float64's (an activation input within rounding of 0): its own check skipped"
            )
    noise = 8.0 * np.finfo(np.float64).eps * max(1.0, float(np.abs(out0).max(initial=0.0)))
    out_index = _index_namer(r64.out_shape if r64.kind == "layer" else ())
    for name in names:
        t = base[name]
        num = np.empty((n_out, t.size))
        valid = np.ones((n_out, t.size), dtype=bool)
        for j in range(t.size):
            h = _step(eps, float(t.flat[j]))
            delta = np.zeros_like(t)
            delta.flat[j] = h
            h2 = float((t.flat[j] + h) - (t.flat[j] - h))  # the step actually taken
            diff, smooth = _differences(r64, name, t, delta, ref)
            num[:, j] = diff / h2
            if not smooth:
                valid[:, j] = False
                result.kinks.append(f"{name}{_index(t.shape, j)}")
        scale = np.full_like(num, float(np.abs(np.where(valid, num, 0.0)).max(initial=0.0)))
        tol64 = (tols["float64"][0], tols["float64"][1] + noise / (2 * eps))

        def where(k: int, _n: str = name, _t: np.ndarray = t) -> str:
            i, j = divmod(k, _t.size)
            return f"d out{out_index(i)} / d {_n}{_index(_t.shape, j)}"

        result.checks.append(
            _compare(name, t.shape, "float64", "full", j64[name], num, scale, valid, tol64, where)
        )
        if r_own is not None and j_own is not None:
            dt = r_own.backend.dtype_name
            result.checks.append(
                _compare(name, t.shape, dt, "full", j_own[name], num, scale, valid, tols[dt], where)
            )


def _directional(
    r64: Runner,
    r_own: Runner | None,
    base: dict[str, np.ndarray],
    result: GradCheckResult,
    tols: dict[str, tuple[float, float]],
    eps: float,
    directions: int,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    names = list(base)
    own_ok = r_own is not None
    rec: dict[str, dict[str, list[float]]] = {
        n: {k: [] for k in ("a", "a_own", "n", "scale", "valid")} for n in names
    }
    for d in range(directions):
        out0, ref = r64.forward()
        u = rng.normal(size=out0.size) if r64.kind == "layer" else np.ones(1)
        g64 = r64.vjp(u)
        g_own = None
        if r_own is not None and own_ok:
            _, own_pat = r_own.forward()
            if same_patterns(own_pat, ref):
                g_own = r_own.vjp(u)
            else:
                own_ok = False
                result.kinks.append(
                    f"{r_own.backend.dtype_name} forward is on the other side of a kink from "
                    "float64's: its own check skipped"
                )
        noise = 8.0 * np.finfo(np.float64).eps * float(np.abs(u).sum() * np.abs(out0).max())
        for name in names:
            t = base[name]
            v = rng.normal(size=t.shape)
            h = eps * max(1.0, float(np.abs(t).max(initial=0.0)))
            smooth = False
            numeric = 0.0
            for _attempt in range(3):  # a kink along v: retry with a smaller step
                diff, smooth = _differences(r64, name, t, h * v, ref)
                numeric = float(u @ diff) / (2 * h)
                if smooth:
                    break
                h /= 16.0
            r = rec[name]
            r["a"].append(float((g64[name] * v).sum()))
            r["a_own"].append(float((g_own[name] * v).sum()) if g_own is not None else np.nan)
            r["n"].append(numeric)
            r["scale"].append(float(np.abs(g64[name] * v).sum()) + noise / h)
            r["valid"].append(float(smooth))
            if not smooth:
                result.kinks.append(f"{name} along random direction {d}")
    for name in names:
        t = base[name]
        r = rec[name]
        valid = np.asarray(r["valid"]) > 0
        scale = np.asarray(r["scale"])
        num = np.asarray(r["n"])

        def where(k: int, _n: str = name) -> str:
            return f"u^T J v for {_n}, direction {k}"

        result.checks.append(
            _compare(name, t.shape, "float64", "directional", np.asarray(r["a"]), num, scale,
                     valid, tols["float64"], where)
        )
        if r_own is not None and own_ok:
            dt = r_own.backend.dtype_name
            result.checks.append(
                _compare(name, t.shape, dt, "directional", np.asarray(r["a_own"]), num, scale,
                         valid, tols[dt], where)
            )


def _index(shape: tuple[int, ...], flat: int) -> str:
    if not shape:
        return ""
    return "[" + ",".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]"


def _index_namer(shape: tuple[int, ...]) -> Any:
    return lambda i: _index(shape, i) if shape else ""
