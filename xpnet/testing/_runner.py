"""Run a layer, a loss or a model+loss on a private copy: evaluate it, backpropagate, probe kinks.

Shared by :mod:`xpnet.testing.gradcheck` and :mod:`xpnet.testing.agree`. A :class:`Runner` owns
a copy of the user's object on a chosen backend and dtype (parameters copied through the host),
so checking never touches the user's parameters, gradients or random streams. Random layers
(dropout) get a :class:`FixedDraws` generator: the same uniforms on every call and on every
copy, so their masks are held fixed between evaluations and across backends.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends import Array, Backend, DeviceGenerator, get_backend
from ..layers.activations import LeakyReLU, ReLU
from ..layers.base import Layer, Stochastic
from ..layers.pooling import MaxPool2D
from ..losses.base import Loss
from ..model import Sequential

#: layer type -> a function giving, after ``forward``, the boolean "which branch" array at its
#: kink. Two evaluations whose patterns differ straddle a non-differentiable point.
KINK_PROBES: dict[type, Callable[[Any], Array]] = {
    ReLU: lambda layer: layer.y > 0,
    LeakyReLU: lambda layer: layer.x > 0,
    # which element of each window is the (first) maximum: a step that changes it crossed a tie
    MaxPool2D: lambda layer: layer.xp.stack(layer.route),
}


def register_kink(layer_type: type, probe: Callable[[Any], Array]) -> None:
    """Declare where ``layer_type`` is non-differentiable.

    ``probe(layer)`` is called after ``layer.forward`` and returns a boolean array telling which
    side of the kink each element is on (ReLU: ``layer.y > 0``). Gradient checks skip, and
    report, elements whose finite-difference step crosses a kink.
    """
    if not isinstance(layer_type, type):
        raise TypeError(f"layer_type must be a class, got {layer_type!r}")
    KINK_PROBES[layer_type] = probe


def hide_assertions(excinfo: Any) -> bool:
    """For ``__tracebackhide__``: pytest leaves a checker's own frame out of the traceback of
    the failure it reports (the report says it all) but keeps it for any other error."""
    return bool(excinfo.errisinstance(AssertionError))


class FixedDraws(DeviceGenerator):
    """A stand-in generator that returns the same numbers for the same call, every time.

    Every drawing method (``bits16``, which dropout masks use, and any other) first rewinds the
    host generator to its initial state, so a mask of a given shape is the same on every
    evaluation, on every copy (float32 and float64) and on every backend. ``random`` returns
    multiples of 1/1024 plus 1/2048 from ``table``, exact in float32 and float64 alike, so a
    float32 and a float64 copy compare them with a keep probability identically.
    """

    _OWN = frozenset({"random", "get_state", "set_state", "backend", "table"})
    #: its draws must decide the masks on every backend, a GPU's too (no device hash)
    draws_keys = False

    def __init__(self, backend: Backend, table: dict[tuple[int, ...], np.ndarray], seed: int):
        super().__init__(backend, seed)
        self.table = table
        self._state0 = self.get_state()

    def __getattribute__(self, name: str) -> Any:
        attr = object.__getattribute__(self, name)
        if name.startswith("_") or name in FixedDraws._OWN or not callable(attr):
            return attr
        state0 = object.__getattribute__(self, "_state0")

        def rewound(*args: Any, **kwargs: Any) -> Any:
            self.set_state(state0)
            return attr(*args, **kwargs)

        return rewound

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        shape = tuple(int(s) for s in shape)
        if shape not in self.table:
            self.set_state(self._state0)
            k = self._host.integers(0, 1024, size=shape)
            self.table[shape] = (k + 0.5) / 1024.0
        dt = np.dtype(dtype or self.backend.dtype_name)
        return self.backend.asarray(self.table[shape].astype(dt), dtype=self.backend.dtype)


def flat_layers(layer: Layer) -> list[Layer]:
    """``layer`` itself, or a Sequential's layers in order (nested ones flattened)."""
    if isinstance(layer, Sequential):
        return [inner for sub in layer.layers for inner in flat_layers(sub)]
    return [layer]


def param_slots(layer: Layer, prefix: str = "") -> list[tuple[str, Layer, str]]:
    """``(name, owning layer, key)`` for every parameter: ``"W"`` or, in a Sequential, ``"0.W"``."""
    if isinstance(layer, Sequential):
        return [s for i, sub in enumerate(layer.layers) for s in param_slots(sub, f"{prefix}{i}.")]
    return [(prefix + key, layer, key) for key in layer.params]


def clone_layer(
    layer: Layer, backend: Backend, draws: dict[int, dict[tuple[int, ...], np.ndarray]]
) -> Layer:
    """A copy of ``layer`` on ``backend`` with its own parameter, gradient and buffer arrays.

    Parameters and buffers go through the host (cast to ``backend.dtype``); stochastic layers get a
    :class:`FixedDraws` generator whose table is ``draws[i]`` for the i-th stochastic layer.
    """
    counter = [0]

    def clone(src: Layer) -> Layer:
        if isinstance(src, Sequential):
            new_seq = copy.copy(src)
            new_seq.layers = [clone(sub) for sub in src.layers]
            new_seq.backend = backend
            new_seq.loss = None
            new_seq.optimizer = None
            new_seq._plan = None  # the plan belongs to the original layers
            return new_seq
        new = copy.copy(src)
        new.params = dict(src.params)
        new.grads = dict(src.grads)
        new.buffers = dict(src.buffers)  # the copy's own: a training forward updates them
        new.to(backend)
        if new.backend is not backend:
            raise TypeError(f"{src.name}: .to() did not move the layer to {backend!r}")
        for key, value in src.params.items():
            host = np.array(src.backend.to_host(value), dtype=np.dtype(backend.dtype_name))
            new.params[key] = backend.asarray(host, dtype=backend.dtype)
            new.grads[key] = backend.zeros(tuple(host.shape))
        for key, value in src.buffers.items():
            host = np.array(src.backend.to_host(value), dtype=np.dtype(backend.dtype_name))
            new.buffers[key] = backend.asarray(host, dtype=backend.dtype)
        if src.stochastic:
            if not isinstance(new, Stochastic) or not isinstance(new.gen, DeviceGenerator):
                raise TypeError(
                    f"{src.name}: a stochastic layer must subclass xpnet.layers.Stochastic and "
                    "draw from the DeviceGenerator in `.gen`, so that its randomness can be held "
                    "fixed"
                )
            i = counter[0]
            counter[0] += 1
            new.gen = FixedDraws(backend, draws.setdefault(i, {}), seed=1000 + i)
        return new

    return clone(layer)


def to_host_any(obj_backend: Backend, x: Any) -> np.ndarray:
    """``x`` (host data, or an array of ``obj_backend``) as a host NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    if obj_backend.is_array(x):
        return obj_backend.to_host(x)
    try:
        return np.asarray(x)
    except Exception as exc:
        raise TypeError(
            f"expected host data or a {obj_backend.name} array, got {type(x).__name__}: {exc}"
        ) from exc


class Runner:
    """A private copy of a layer, a loss, or a model with a loss, on one backend and dtype.

    ``kind`` is ``"layer"`` (outputs ``y = f(x)``), ``"loss"`` (``x`` are predictions, output
    the scalar loss) or ``"model"`` (output the scalar ``loss(f(x), target)``). Tensors are
    named ``"input"`` and by parameter name; values are set and read as host float64 arrays.
    """

    def __init__(
        self,
        obj: Layer | Loss,
        loss: Loss | None,
        backend: Backend,
        x: np.ndarray,
        target: np.ndarray | None,
        training: bool,
        draws: dict[int, dict[tuple[int, ...], np.ndarray]],
    ) -> None:
        self.backend = backend
        self.training = training
        self.layer: Layer | None = None
        self.loss: Loss | None = None
        if isinstance(obj, Loss):
            self.kind = "loss"
            self.loss = copy.copy(obj).to(backend)
        else:
            self.kind = "model" if loss is not None else "layer"
            self.layer = clone_layer(obj, backend, draws)
            if loss is not None:
                self.loss = copy.copy(loss).to(backend)
        self.slots = param_slots(self.layer) if self.layer is not None else []
        self.float_input = x.dtype.kind == "f"
        self.x = self._device(x)
        self.target = None if target is None else self._device(target)
        self.out_shape: tuple[int, ...] = ()
        self.y: Array | None = None
        self.flat = flat_layers(self.layer) if self.layer is not None else []

    def _device(self, host: np.ndarray) -> Array:
        be = self.backend
        return be.asarray(host, dtype=be.dtype if host.dtype.kind == "f" else None)

    # ----------------------------------------------------------------------- tensors
    def tensor_names(self, check_input: bool, check_params: bool) -> list[str]:
        names = ["input"] if check_input and self.float_input else []
        return names + ([s[0] for s in self.slots] if check_params else [])

    def get(self, name: str) -> np.ndarray:
        if name == "input":
            return np.array(self.backend.to_host(self.x), dtype=np.float64)
        owner, key = self._owner(name)
        return np.array(self.backend.to_host(owner.params[key]), dtype=np.float64)

    def set(self, name: str, value: np.ndarray) -> None:
        be = self.backend
        arr = be.asarray(np.asarray(value, dtype=np.dtype(be.dtype_name)), dtype=be.dtype)
        if name == "input":
            self.x = arr
        else:
            owner, key = self._owner(name)
            owner.params[key] = arr

    def _owner(self, name: str) -> tuple[Layer, str]:
        for slot_name, owner, key in self.slots:
            if slot_name == name:
                return owner, key
        raise KeyError(name)

    # ---------------------------------------------------------------- evaluate / backprop
    def forward(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Outputs as a flat host float64 vector, and the kink patterns of this evaluation."""
        be = self.backend
        if self.kind == "loss":
            assert self.loss is not None and self.target is not None
            out = self.loss.forward(self.x, self.target)
            self.y = out
            return np.array([be.to_float(out)]), []
        assert self.layer is not None
        y = self.layer.forward(self.x, training=self.training)
        self.y = y
        patterns = self.kink_patterns()
        if self.kind == "model":
            assert self.loss is not None and self.target is not None
            return np.array([be.to_float(self.loss.forward(y, self.target))]), patterns
        self.out_shape = tuple(y.shape)
        return np.array(be.to_host(y), dtype=np.float64).reshape(-1), patterns

    def kink_patterns(self) -> list[np.ndarray]:
        out = []
        for layer in self.flat:
            probe = _probe_for(layer)
            if probe is not None:
                out.append(np.asarray(self.backend.to_host(probe(layer)), dtype=bool))
        return out

    def backward_arrays(self, u: np.ndarray) -> dict[str, Array]:
        """After :meth:`forward`: the backend's gradient arrays of ``u . outputs``, by name.

        For scalar outputs (losses) the gradients are those of the loss itself (``u`` = [1]).
        """
        be = self.backend
        grads: dict[str, Array] = {}
        if self.kind == "loss":
            assert self.loss is not None
            grads["input"] = self.loss.backward()
            return grads
        assert self.layer is not None
        if self.kind == "model":
            assert self.loss is not None
            dy = self.loss.backward()
        else:
            dy = be.asarray(np.asarray(u, dtype=np.dtype(be.dtype_name)).reshape(self.out_shape))
        dx = self.layer.backward(dy)
        if dx is not None:
            grads["input"] = dx
        for name, owner, key in self.slots:
            grads[name] = owner.grads[key]
        return grads

    def vjp(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Host float64 gradients of ``u . outputs`` with respect to every tensor."""
        scale = float(u[0]) if self.kind != "layer" else 1.0
        return {
            name: np.array(self.backend.to_host(g), dtype=np.float64) * scale
            for name, g in self.backward_arrays(u).items()
        }


def _probe_for(layer: Layer) -> Callable[[Any], Array] | None:
    own = getattr(layer, "kink_probe", None)  # one object's own (a checked function's kink=)
    if own is not None:
        return own  # type: ignore[no-any-return]
    for cls in type(layer).__mro__:
        if cls in KINK_PROBES:
            return KINK_PROBES[cls]
    return None


def same_patterns(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    if len(a) != len(b):
        return False
    return all(p.shape == q.shape and bool((p == q).all()) for p, q in zip(a, b, strict=True))


def float64_twin(backend: Backend) -> Backend:
    """The same array module (and device) as ``backend``, in float64."""
    return get_backend(backend, "float64")
