"""The layer interface every xpnet layer follows, the stochastic-layer mixin, and the registry
used to load saved models."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .._checks import seed as check_seed
from ..backends import Array, Backend, BackendError, DeviceGenerator, get_backend

#: class name -> class, filled in by every subclass of :class:`Layer` (loading rebuilds from it)
LAYER_TYPES: dict[str, type[Layer]] = {}

#: a per-sample shape (no batch axis); ``None`` inside it means "any size"
Shape = tuple[int | None, ...]


def format_shape(shape: Shape | None) -> str:
    """``(batch, 784)``, ``(batch, 1, any, any)``: a per-sample shape with its batch axis."""
    if shape is None:
        return "(batch, ...)"
    dims = ", ".join("any" if d is None else str(d) for d in shape)
    return f"(batch, {dims})"


def shapes_agree(required: Shape, got: Shape) -> bool:
    """Whether ``got`` fits ``required`` (same rank, equal wherever both sizes are known)."""
    return len(required) == len(got) and all(
        r is None or g is None or r == g for r, g in zip(required, got, strict=True)
    )


class Layer:
    """Base class: ``forward(x, training=False) -> y`` and ``backward(dy) -> dx``.

    ``params`` and ``grads`` are dicts with matching keys (``"W"``, ``"b"``), empty for layers
    without parameters. ``buffers`` holds state that is not trained by gradients but is part of
    the model (BatchNorm's running statistics): moved by :meth:`to` and saved with the model.
    ``backward`` reads only what ``forward`` saved, in named attributes, and writes the
    parameter gradients into ``grads`` (overwriting, not accumulating). Every array is created
    through ``self.backend``; :meth:`to` moves a layer to another backend.

    Subclasses are registered by class name when they are defined, so a saved model containing
    them loads once the module defining them is imported. Shapes in this interface are per
    sample (no batch axis).
    """

    #: True for layers that draw random numbers in ``forward`` (see :class:`Stochastic`)
    stochastic: ClassVar[bool] = False
    #: True for layers whose training output for a row depends on the other rows of the batch
    #: (BatchNorm's batch statistics): data-parallel ``fit(comm=...)`` over several processes,
    #: where each sees only its shard of the batch, refuses them
    batch_dependent: ClassVar[bool] = False

    def __init__(self) -> None:
        self.backend: Backend = get_backend("numpy")
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        self.name: str = type(self).__name__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_TYPES[cls.__name__] = cls

    @property
    def xp(self) -> Any:
        """The array module of this layer's backend."""
        return self.backend.xp

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x: Array, training: bool = False) -> Array:
        """Compute the output for a batch ``x``, saving what backward needs."""
        raise NotImplementedError

    def backward(self, dy: Array) -> Array:
        """Given ``dL/dy``, fill ``grads`` and return ``dL/dx``."""
        raise NotImplementedError

    def backward_params(self, dy: Array) -> None:
        """Fill ``grads`` only, for a first layer whose ``dx`` nobody needs.

        By default this is :meth:`backward` with ``dx`` dropped; a layer that can skip
        computing ``dx`` (Dense: one matmul fewer) overrides it.
        """
        self.backward(dy)

    def __call__(self, x: Array, training: bool = False) -> Array:
        return self.forward(x, training=training)

    # ------------------------------------------------------------------------- backends
    def to(self, backend: Any, dtype: str | None = None) -> Layer:
        """Move parameters and buffers (through the host) to ``backend``; returns ``self``."""
        new = get_backend(backend, dtype)
        if new is self.backend:
            return self
        for key in list(self.params):
            host = self.backend.to_host(self.params[key])
            self.params[key] = new.asarray(host, dtype=new.dtype)
            self.grads[key] = new.zeros(tuple(host.shape))
        for key in list(self.buffers):
            host = self.backend.to_host(self.buffers[key])
            self.buffers[key] = new.asarray(host, dtype=new.dtype)
        self.backend = new
        self._on_backend_change()
        return self

    def _on_backend_change(self) -> None:
        """Hook for layers holding backend objects other than params (e.g. a generator)."""

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Draw fresh initial parameters from the host generator ``rng`` (no-op by default)."""

    # ------------------------------------------------------------------- description
    def config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serializable data (to rebuild the layer on load)."""
        return {}

    @classmethod
    def param_shapes_for(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        """The parameter shapes a layer built from ``config`` would hold, or None if unknown.

        Lets a loader refuse a file whose arrays do not fit before the layer allocates them (a
        hostile header could declare a huge layer); raise ValueError for a nonsensical config.
        """
        return None

    @classmethod
    def buffer_shapes_for(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        """The buffer shapes a layer built from ``config`` would hold, or None if unknown; the
        loader checks them before building the layer, as :meth:`param_shapes_for`'s."""
        return None

    @property
    def input_shape(self) -> Shape | None:
        """The per-sample input shape this layer requires (Dense: ``(in_features,)``), or None
        when it takes any."""
        return None

    def accepts(self, shape: Shape) -> bool:
        """Whether an input of per-sample ``shape`` fits this layer. By default: it agrees with
        :attr:`input_shape` (a layer taking several shapes, Reshape, overrides it)."""
        required = self.input_shape
        return required is None or shapes_agree(required, shape)

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        """The per-sample output shape for ``input_shape`` (None if unknown). By default the
        shape is kept (elementwise layers)."""
        if type(self).output_features is not Layer.output_features:
            # A layer written against the older width-only interface.
            width = input_shape[0] if input_shape is not None and len(input_shape) == 1 else None
            out = self.output_features(width)
            return None if out is None else (out,)
        return input_shape

    def matmul_macs(self, input_shape: Shape | None) -> int:
        """Multiply-adds per sample of this layer's largest matmul, for a per-sample input of
        ``input_shape`` (None if unknown); the BLAS-thread policy sizes a model by it. By
        default the largest product of a parameter's axes over the parameters with 2 or more
        (a Dense ``W`` (in, out): the forward ``x @ W``); 0 without such a parameter."""
        biggest = 0
        for p in self.params.values():
            shape = tuple(int(s) for s in getattr(p, "shape", ()))
            if len(shape) >= 2:
                biggest = max(biggest, math.prod(shape))
        return biggest

    def output_features(self, in_features: int | None) -> int | None:
        """Width of the output for an input of width ``in_features`` (None if unknown)."""
        shape = self.output_shape(None if in_features is None else (in_features,))
        return shape[0] if shape is not None and len(shape) == 1 else None

    def describe(self) -> str:
        """A short description for names and summaries (``"Dense 784 -> 400"``)."""
        return type(self).__name__

    def describe_input(self) -> str:
        """What the layer requires of its input, in its own terms (``"in_features=784"``)."""
        return f"input of shape {format_shape(self.input_shape)}"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Stochastic(Layer):
    """A layer that draws random numbers in training (dropout): its generator and its state.

    ``gen`` is a :class:`~xpnet.backends.DeviceGenerator` whose state lives on the host, so it
    can be reseeded (``Sequential(seed=...)``, ``fit(seed=...)``), saved in checkpoints and
    carried over when the layer moves to another backend. :meth:`replay` re-runs the last
    training forward with the same draws (used to find where a step went non-finite).
    """

    stochastic: ClassVar[bool] = True
    #: ``(start, total)`` in data-parallel training: this forward's rows are rows
    #: ``[start, start + n)`` of a global batch of ``total`` rows (set by ``fit(comm=...)``)
    window: tuple[int, int] | None = None

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = check_seed("seed", seed)
        self.gen: DeviceGenerator = self.backend.generator(self.seed)

    def draw(self, shape: tuple[int, ...], make: Callable[[tuple[int, ...]], Array]) -> Array:
        """``make(shape)``: the random draws for a batch of ``shape``. Inside a :attr:`window`
        they are drawn for the whole global batch and this forward's rows are kept, so a
        global row gets the same draws however the batch is split between processes."""
        if self.window is None:
            return make(shape)
        start, total = self.window
        return make((total, *shape[1:]))[start : start + shape[0]]

    def reseed(self, seed: int | np.random.SeedSequence | None) -> None:
        """Restart the random stream from ``seed``."""
        self.gen = self.backend.generator(seed)

    def _on_backend_change(self) -> None:
        # Carry the stream over (Sequential(seed=...) seeded it): restarting from ``self.seed``
        # (usually None: OS entropy) would make seeded runs irreproducible.
        state = self.gen.get_state()
        self.gen = self.backend.generator(None)
        self.gen.set_state(state)

    def rng_state(self) -> dict[str, Any] | None:
        """The generator's state as JSON-serializable data (for checkpoints), or None for a
        custom generator that cannot export it (resume then restarts its stream from the seed
        and the position; see :mod:`xpnet.training.checkpoint`)."""
        try:
            return self.gen.get_state()
        except BackendError:
            return None

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`rng_state`."""
        self.gen.set_state(state)

    def replay(self, x: Array) -> Array:
        """The last training forward again, on ``x``, with the same random draws."""
        raise NotImplementedError
