"""Non-finite losses and gradients: detecting them cheaply, clipping, and finding the culprit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..backends import Array, Backend
from ..layers.base import Stochastic
from ..losses.base import Loss

if TYPE_CHECKING:
    from ..model import Sequential

ParamList = list[tuple[str, Array, Array]]


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite during training.

    ``step`` is the global step (1-based) where it was seen and ``layer`` the name of the first
    layer found at fault by the diagnosis pass (None when the loss itself is to blame).
    """

    def __init__(self, message: str, step: int | None = None, layer: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.layer = layer


def finite_probe(be: Backend, loss: Array, params: ParamList) -> Array:
    """A 0-d value that is NaN/inf iff the loss or any gradient is.

    ``0 * max(g) + 0 * min(g)`` is 0 for finite gradients however large (a plain ``sum(g)``
    could overflow to inf and raise a false alarm) and NaN as soon as one entry is NaN/inf.
    """
    xp = be.xp
    acc = loss
    for _, _, g in params:
        acc = acc + 0.0 * xp.max(g) + 0.0 * xp.min(g)
    return acc


def grad_norm(be: Backend, params: ParamList) -> Array:
    """Global L2 norm ``sqrt(sum_k ||g_k||^2)`` as a 0-d array, without overflow.

    Computed as ``M sqrt(sum (g / M)^2)`` with ``M = max |g|``: squaring float32 gradients
    above ~1.8e19 would overflow to inf, and clipping by an infinite norm would zero them.
    """
    xp = be.xp
    top = None
    for _, _, g in params:
        m = xp.max(xp.abs(g))
        top = m if top is None else xp.maximum(top, m)
    assert top is not None
    scale = xp.where(top > 0, top, xp.ones_like(top))
    total = None
    for _, _, g in params:
        r = g / scale
        s = xp.sum(r * r)
        total = s if total is None else total + s
    return scale * xp.sqrt(total)


def clip_gradients(be: Backend, params: ParamList, clip: float) -> None:
    """Scale every gradient in place so that their global L2 norm is at most ``clip``."""
    norm = grad_norm(be, params)
    scale = clip / be.xp.maximum(norm, be.zeros((), norm.dtype) + clip)
    for _, _, g in params:
        g *= scale


def is_finite(be: Backend, a: Array) -> bool:
    host = a if isinstance(a, (np.ndarray, np.generic)) else be.to_host(a)
    return bool(np.isfinite(host).all())


def nonfinite_params(model: Sequential) -> list[str]:
    """``"<layer name> parameter 'W'"`` for every parameter holding NaN or infinity."""
    be = model.backend
    return [
        f"{layer.name} parameter {key!r}"
        for layer in model.layers
        for key, p in layer.params.items()
        if not is_finite(be, p)
    ]


def diagnose(model: Sequential, loss_fn: Loss, xb: Array, yb: Array) -> tuple[str, str | None]:
    """Find where a failed step went non-finite: ``(explanation, layer name or None)``.

    Run only after a failure: the step is replayed layer by layer on the same batch (random
    layers replay the draws of the failed step), forward then backward, and the first layer
    whose output, parameter gradient or input gradient is NaN/inf is named.
    """
    be = model.backend
    bad = nonfinite_params(model)
    if bad:
        first = bad[0].split(" parameter ")[0]
        return f"{', '.join(bad)} already non-finite (an earlier update overflowed)", first
    x = xb
    with np.errstate(all="ignore"):
        for layer in model.layers:
            x = layer.replay(x) if isinstance(layer, Stochastic) else layer.forward(x, True)
            if not is_finite(be, x):
                return f"{layer.name} produced a non-finite output in the forward pass", layer.name
        lv = loss_fn.forward(x, yb, check=False)
        if not is_finite(be, lv):
            return f"the loss ({type(loss_fn).__name__}) is non-finite for finite outputs", None
        dy = loss_fn.backward()
        if not is_finite(be, dy):
            return f"the gradient of the loss ({type(loss_fn).__name__}) is non-finite", None
        return _diagnose_backward(model, dy)


def _diagnose_backward(model: Sequential, dy: Array) -> tuple[str, str | None]:
    be = model.backend
    for layer in reversed(model.layers):
        dy = layer.backward(dy)
        for key, g in layer.grads.items():
            if not is_finite(be, g):
                return (
                    f"{layer.name} gradient {key!r} is non-finite (the first layer, in "
                    "backward order, whose gradient is)",
                    layer.name,
                )
        if not is_finite(be, dy):
            return f"{layer.name} passed a non-finite gradient to its input", layer.name
    return "the failure did not recur when the step was replayed", None


def step_failure(
    model: Sequential, loss_fn: Loss, xb: Array, yb: Array, span: str, where: str, step: int
) -> NonFiniteError:
    """The error for a non-finite step ``span`` ("step 7"), diagnosed on its batch."""
    why, layer = diagnose(model, loss_fn, xb, yb)
    return NonFiniteError(
        f"non-finite loss or gradient at {span} ({where}): {why}. Lower the learning rate, "
        "pass clip_norm=..., or on_nonfinite='skip'",
        step=step,
        layer=layer,
    )


#: ``(layer.buffers, key, copy)`` for every buffer of a model, to put back after a bad step
BufferCopies = list[tuple[dict[str, Array], str, Array]]


def copy_buffers(model: Sequential) -> BufferCopies:
    """Copies of every layer's buffers (BatchNorm's running statistics), taken before a step
    that is checked for NaN/inf, so that a failed or skipped batch leaves them as they were
    (``x * 1.0`` copies exactly, on any backend)."""
    return [
        (layer.buffers, key, buf * 1.0)
        for layer in model.layers
        for key, buf in layer.buffers.items()
    ]


def restore_buffers(copies: BufferCopies) -> None:
    """Put back what :func:`copy_buffers` copied."""
    for buffers, key, value in copies:
        buffers[key] = value


def broken_weights(model: Sequential, step: int) -> NonFiniteError | None:
    """The error for weights that are themselves non-finite (skipping cannot help), or None."""
    bad = nonfinite_params(model)
    if not bad:
        return None
    return NonFiniteError(
        f"step {step}: {', '.join(bad)} non-finite (an earlier update overflowed); "
        "on_nonfinite='skip' cannot recover from that",
        step=step,
        layer=bad[0].split(" parameter ")[0],
    )


__all__ = [
    "NonFiniteError",
    "clip_gradients",
    "copy_buffers",
    "diagnose",
    "finite_probe",
    "grad_norm",
    "restore_buffers",
]
