"""Fully connected layer with He, Glorot or plain uniform initialization."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import flag, one_of, positive_int
from ..backends import Array, get_backend
from .base import Layer, Shape

INITS = ("he_normal", "glorot_uniform", "uniform", "normal")
_ALIASES = {"he": "he_normal", "glorot": "glorot_uniform", "xavier": "glorot_uniform"}


def initial_weights(
    init: str, in_features: int, out_features: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw a host float64 weight matrix of shape ``(in_features, out_features)``.

    * ``he_normal``: ``N(0, 2 / in_features)`` (He et al. 2015, for ReLU);
    * ``glorot_uniform``: ``U(-a, a)``, ``a = sqrt(6 / (in_features + out_features))``;
    * ``uniform``: ``U(-a, a)``, ``a = 1 / sqrt(in_features)``;
    * ``normal``: ``N(0, 1 / in_features)`` (the "make your own neural network" recipe).
    """
    shape = (in_features, out_features)
    if init == "he_normal":
        return rng.normal(0.0, math.sqrt(2.0 / in_features), size=shape)
    if init == "glorot_uniform":
        a = math.sqrt(6.0 / (in_features + out_features))
        return rng.uniform(-a, a, size=shape)
    if init == "uniform":
        a = 1.0 / math.sqrt(in_features)
        return rng.uniform(-a, a, size=shape)
    if init == "normal":
        return rng.normal(0.0, 1.0 / math.sqrt(in_features), size=shape)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def as_generator(rng: int | np.random.Generator | None, name: str = "rng") -> np.random.Generator:
    """A host generator from a seed, a Generator, or None (fresh OS entropy, no global state)."""
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng is not None and rng < 0:
            raise ValueError(f"{name} must be a non-negative int seed, got {rng!r}")
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"{name} must be an int seed, a numpy.random.Generator or None, got {rng!r}")


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    Shapes: ``x`` (N, in_features) -> ``y`` (N, out_features); ``W`` (in_features,
    out_features); ``b`` (out_features,). Backward: ``dW = x^T dy``, ``db = sum_n dy``,
    ``dx = dy W^T`` (``grads`` are overwritten in place on every backward). Initial weights are
    drawn on the host from ``rng`` (an int seed or a
    ``numpy.random.Generator``), so the same seed gives the same layer on every backend;
    biases start at zero.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        init: str = "he_normal",
        rng: int | np.random.Generator | None = None,
        backend: Any = "numpy",
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.bias = flag("bias", bias)
        if not isinstance(init, str):
            raise TypeError(f"init must be one of {INITS}, got {init!r}")
        self.init = one_of("init", _ALIASES.get(init, init), INITS)
        self.backend = get_backend(backend, dtype)
        self.x: Array | None = None
        self.reset_parameters(as_generator(rng))

    def reset_parameters(self, rng: np.random.Generator) -> None:
        be = self.backend
        w = initial_weights(self.init, self.in_features, self.out_features, rng)
        self.params["W"] = be.asarray(w, dtype=be.dtype)
        self.grads["W"] = be.zeros((self.in_features, self.out_features))
        if self.bias:
            self.params["b"] = be.zeros((self.out_features,))
            self.grads["b"] = be.zeros((self.out_features,))

    def _check_input(self, x: Array) -> None:
        be = self.backend
        if not be.is_array(x):
            raise TypeError(
                f"{self.name}: expected a {be.name} array of shape (batch, {self.in_features}), "
                f"got {type(x).__module__}.{type(x).__name__}; convert it with backend.asarray(x)"
            )
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"{self.name}: expected input of shape (batch, {self.in_features}), "
                f"got {tuple(x.shape)}"
            )
        if x.dtype != be.dtype:
            raise TypeError(
                f"{self.name}: expected input dtype {be.dtype_name}, got {x.dtype}; "
                f"cast it first (backend.asarray(x)) so that no silent promotion happens"
            )

    def forward(self, x: Array, training: bool = False) -> Array:
        y = self.linear(x)
        if self.bias:
            y += self.params["b"]
        return y

    def linear(self, x: Array) -> Array:
        """``x @ W`` without the bias (saving ``x`` as forward does), for a caller that adds
        the bias fused with what follows (``Sequential`` on a fused backend)."""
        self._check_input(x)
        self.x = x
        return x @ self.params["W"]

    def backward(self, dy: Array) -> Array:
        self.backward_params(dy)
        return dy @ self.params["W"].T

    def backward_params(self, dy: Array) -> None:
        """Fill ``grads`` only (no ``dx``: one matmul fewer), for a first layer."""
        if self.x is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        # Written in place: optimizers and tools may hold references to the grad arrays.
        be = self.backend
        be.matmul(self.x.T, dy, out=self.grads["W"])
        if self.bias:
            be.sum_rows(dy, out=self.grads["b"])

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "init": self.init,
        }

    @classmethod
    def param_shapes_for(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        n_in = positive_int("in_features", config.get("in_features"))
        n_out = positive_int("out_features", config.get("out_features"))
        shapes: dict[str, tuple[int, ...]] = {"W": (n_in, n_out)}
        if config.get("bias", True):
            shapes["b"] = (n_out,)
        return shapes

    @property
    def input_shape(self) -> Shape:
        return (self.in_features,)

    def output_shape(self, input_shape: Shape | None) -> Shape:
        return (self.out_features,)

    def describe(self) -> str:
        return f"Dense {self.in_features} -> {self.out_features}"

    def describe_input(self) -> str:
        return f"in_features={self.in_features}"
