"""The built-in fusion rules (see :mod:`xpnet.fusion`): what the CuPy backend runs as one kernel.

* ``Dense -> ReLU -> Dropout``: the bias, the ReLU and the dropout mask in one pass after the
  matmul (``Backend.bias_relu_dropout``); backward: Dropout's and ReLU's in one pass
  (``Backend.dropout_relu_backward``), then Dense's.
* ``Dense -> ReLU``: the bias and the ReLU in one pass after the matmul.
* ``ReLU -> Dropout`` (after anything else): backward in one pass.
* ``ReLU -> MaxPool2D`` (every backend, NumPy included): backward takes ReLU's mask on the
  pooled output (a quarter of the values for 2x2 windows) before routing, instead of on the
  routed gradient: each window's gradient goes to its maximum, where ReLU's output IS the
  window's maximum, so ``y_pool > 0`` is ReLU's mask there (a NaN window routes nothing).

Each leaves Dense its input, ReLU its output and Dropout its mask (drawn from the same generator
state as Dropout's own forward would), so the layers' own backward passes still apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends import Array
from ..fusion import FusionRule, register_fusion
from .activations import ReLU
from .dense import Dense
from .dropout import Dropout
from .pooling import MaxPool2D


def _has_bias(layers: Sequence[Any]) -> bool:
    return bool(layers[0].bias)


def _dense_relu_dropout_forward(layers: Sequence[Any], x: Array) -> Array:
    dense, relu, drop = layers
    be = dense.backend
    z = dense.linear(x)
    if drop.p == 0.0 or drop.window is not None:
        # No mask to fuse (p == 0), or a data-parallel share of a global batch's mask: Dropout's
        # own forward draws it.
        relu.y = be.bias_relu(z, dense.params["b"])
        return drop.forward(relu.y, training=True)
    relu.y, drop.mask, y = be.bias_relu_dropout(z, dense.params["b"], drop.gen, 1.0 - drop.p)
    return y


def _relu_dropout_backward(relu: ReLU, drop: Dropout, dy: Array) -> Array:
    if relu.y is None or drop.mask is None:
        return relu.backward(drop.backward(dy))
    return relu.backend.dropout_relu_backward(dy, drop.mask, relu.y)


def _dense_relu_dropout_backward(layers: Sequence[Any], dy: Array, need_dx: bool) -> Array | None:
    dense, relu, drop = layers
    dy = _relu_dropout_backward(relu, drop, dy)
    if need_dx:
        return dense.backward(dy)
    dense.backward_params(dy)
    return None


def _dense_relu_forward(layers: Sequence[Any], x: Array) -> Array:
    dense, relu = layers
    relu.y = dense.backend.bias_relu(dense.linear(x), dense.params["b"])
    return relu.y


def _relu_dropout_pair_backward(layers: Sequence[Any], dy: Array, need_dx: bool) -> Array | None:
    relu, drop = layers
    return _relu_dropout_backward(relu, drop, dy)  # no parameters: dx is all there is


DENSE_RELU_DROPOUT = register_fusion(FusionRule(
    "dense_relu_dropout", (Dense, ReLU, Dropout),
    forward=_dense_relu_dropout_forward, backward=_dense_relu_dropout_backward, applies=_has_bias,
))
DENSE_RELU = register_fusion(FusionRule(
    "dense_relu", (Dense, ReLU), forward=_dense_relu_forward, applies=_has_bias,
))
RELU_DROPOUT = register_fusion(FusionRule(
    "relu_dropout", (ReLU, Dropout), backward=_relu_dropout_pair_backward,
))


def _relu_maxpool_backward(layers: Sequence[Any], dy: Array, need_dx: bool) -> Array | None:
    relu, pool = layers
    if pool.y is None:
        return relu.backward(pool.backward(dy))
    return pool.backward(relu.backend.relu_backward(dy, pool.y))


RELU_MAXPOOL = register_fusion(FusionRule(
    "relu_maxpool", (ReLU, MaxPool2D), backward=_relu_maxpool_backward,
))
