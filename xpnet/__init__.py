"""xpnet: a from-scratch neural-network library with hand-written backward passes.

The same layers, losses and optimizers run on NumPy (CPU) or CuPy (NVIDIA GPU), chosen at
runtime with :func:`xpnet.get_backend`.
"""

from . import layers, losses, optim
from .backends import Backend, BackendError, cuda_available, get_backend
from .model import History, Sequential
from .serialization import ModelFileError, load, save
from .training import NonFiniteError, TrainingInterrupted

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "History",
    "ModelFileError",
    "NonFiniteError",
    "Sequential",
    "TrainingInterrupted",
    "cuda_available",
    "get_backend",
    "layers",
    "load",
    "losses",
    "optim",
    "save",
]
