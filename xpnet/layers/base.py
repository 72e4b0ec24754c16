"""The layer interface every xpnet layer follows, and the registry used to load saved models."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..backend import Array, Backend, get_backend

LAYER_TYPES: dict[str, type[Layer]] = {}


class Layer:
    """Base class: ``forward(x, training=False) -> y`` and ``backward(dy) -> dx``.

    ``params`` and ``grads`` are dicts with matching keys (``"W"``, ``"b"``), empty for layers
    without parameters. ``buffers`` holds state that is not trained by gradients but is part of
    the model (BatchNorm's running statistics): moved by :meth:`to` and saved with the model.
    ``backward`` reads only what ``forward`` saved, in named attributes, and
    writes the parameter gradients into ``grads`` (overwriting, not accumulating). Every array
    is created through ``self.backend``; :meth:`to` moves a layer to another backend.
    """

    #: set by subclasses that draw random numbers in ``forward`` (dropout)
    stochastic: ClassVar[bool] = False

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

    def forward(self, x: Array, training: bool = False) -> Array:
        """Compute the output for a batch ``x``, saving what backward needs."""
        raise NotImplementedError

    def backward(self, dy: Array) -> Array:
        """Given ``dL/dy``, fill ``grads`` and return ``dL/dx``."""
        raise NotImplementedError

    def __call__(self, x: Array, training: bool = False) -> Array:
        return self.forward(x, training=training)

    def to(self, backend: Any, dtype: str | None = None) -> Layer:
        """Move parameters (through the host) to ``backend``; returns ``self``."""
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

    def config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serializable data (to rebuild the layer on load)."""
        return {}

    def output_features(self, in_features: int | None) -> int | None:
        """Width of the output for an input of width ``in_features`` (None if unknown)."""
        return in_features

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
