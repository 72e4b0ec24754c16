"""Fusion rules: several layers run as one step in training, as data rather than special cases.

A :class:`FusionRule` names a run of layer types (``Dense, ReLU, Dropout``), when it applies,
a fused training forward and (optionally) a fused backward. A backend with fused kernels builds
a *plan* once per model and backend with :func:`plan_fusions` (see ``Backend.plan``); the model
walks the plan and knows nothing of the rules. The contract of a rule:

* its ``forward`` leaves every layer of the run holding exactly what that layer's own
  ``forward(x, training=True)`` would have saved (Dense its input, ReLU its output, Dropout
  its mask, drawn from the same generator state), so each layer's ``backward`` and the
  non-finite diagnosis still work, and the fused path can be tested against the plain one;
* its ``backward`` gives what the layers' own backward passes give, in reverse order.

Built-in rules live in :mod:`xpnet.layers.fusions`; users register rules for their own layers
with :func:`register_fusion`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import Array

#: ``forward(layers, x) -> y`` of a fused run in training
FusedForward = Callable[[Sequence[Any], Array], Array]
#: ``backward(layers, dy, need_dx) -> dx`` (None when ``need_dx`` is False)
FusedBackward = Callable[[Sequence[Any], Array, bool], "Array | None"]


def _always(layers: Sequence[Any]) -> bool:
    return True


@dataclass(frozen=True)
class FusionRule:
    """Run ``pattern`` (exact layer types, in order) as one step when ``applies(layers)``.

    ``forward``/``backward`` default to the layers' own passes, so a rule may fuse only one
    direction (e.g. ``ReLU -> Dropout`` backward as one kernel).
    """

    name: str
    pattern: tuple[type, ...]
    forward: FusedForward | None = None
    backward: FusedBackward | None = None
    applies: Callable[[Sequence[Any]], bool] = _always

    def matches(self, layers: Sequence[Any]) -> bool:
        """Whether ``layers`` are exactly this rule's types (subclasses may differ) and it
        applies to them."""
        if len(layers) != len(self.pattern):
            return False
        if any(type(lay) is not cls for lay, cls in zip(layers, self.pattern, strict=True)):
            return False
        return bool(self.applies(layers))


#: rule name -> rule; tried longest pattern first, then in the order registered
FUSION_RULES: dict[str, FusionRule] = {}


def register_fusion(rule: FusionRule) -> FusionRule:
    """Add ``rule`` (or replace the rule of the same name); returns it."""
    if not isinstance(rule, FusionRule):
        raise TypeError(f"rule must be a FusionRule, got {rule!r}")
    if not rule.pattern or not all(isinstance(t, type) for t in rule.pattern):
        raise ValueError(f"{rule.name}: pattern must be a non-empty tuple of layer classes, "
                         f"got {rule.pattern!r}")
    FUSION_RULES[rule.name] = rule
    return rule


def unregister_fusion(name: str) -> None:
    """Remove the rule called ``name`` (a KeyError if there is none)."""
    del FUSION_RULES[name]


class FusedStep:
    """A run of layers executed by one rule: the ``forward``/``backward``/``backward_params``
    of a layer, so a plan is a list of layers and fused steps alike."""

    def __init__(self, rule: FusionRule, layers: Sequence[Any]) -> None:
        self.rule = rule
        self.layers = tuple(layers)
        self.name = f"{rule.name}({', '.join(lay.name for lay in self.layers)})"

    def forward(self, x: Array, training: bool = False) -> Array:
        if training and self.rule.forward is not None:
            return self.rule.forward(self.layers, x)
        for layer in self.layers:  # inference never fuses: it is what the rules are held to
            x = layer.forward(x, training=training)
        return x

    def _backward(self, dy: Array, need_dx: bool) -> Array | None:
        if self.rule.backward is not None:
            return self.rule.backward(self.layers, dy, need_dx)
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        first = self.layers[0]
        if need_dx:
            return first.backward(dy)
        first.backward_params(dy)
        return None

    def backward(self, dy: Array) -> Array:
        dx = self._backward(dy, True)
        assert dx is not None
        return dx

    def backward_params(self, dy: Array) -> None:
        self._backward(dy, False)

    def __repr__(self) -> str:
        return f"FusedStep({self.name})"


def plan_fusions(layers: Sequence[Any], names: Collection[str] | None = None) -> list[Any]:
    """The layers, with every run that a rule matches replaced by a :class:`FusedStep`.

    Scans left to right; at each position the longest matching rule wins. ``names``: only the
    rules of these names (all registered rules when None).
    """
    chosen = [r for r in FUSION_RULES.values() if names is None or r.name in names]
    rules = sorted(chosen, key=lambda r: -len(r.pattern))
    plan: list[Any] = []
    i, n = 0, len(layers)
    while i < n:
        for rule in rules:
            run = layers[i : i + len(rule.pattern)]
            if rule.matches(run):
                plan.append(FusedStep(rule, run))
                i += len(run)
                break
        else:
            plan.append(layers[i])
            i += 1
    return plan


__all__ = [
    "FUSION_RULES",
    "FusedStep",
    "FusionRule",
    "plan_fusions",
    "register_fusion",
    "unregister_fusion",
]
