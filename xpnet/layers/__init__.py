"""Layers: ``forward(x, training=False) -> y``, ``backward(dy) -> dx``, ``params``/``grads``."""

from .._namespace import warn_if_shadowed
from . import fusions
from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import LAYER_TYPES, Layer, Stochastic
from .batchnorm import BatchNorm, BatchNorm1d, BatchNorm2d
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .pooling import AvgPool2D, MaxPool2D
from .reshape import Flatten, Reshape
from .softmax import Softmax

warn_if_shadowed()  # imported through a clone folder named xpnet? say so

__all__ = [
    "LAYER_TYPES",
    "AvgPool2D",
    "BatchNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Stochastic",
    "Tanh",
    "fusions",
]
