"""Backends: the array module a model runs on, and the operations layers call through it.

* :mod:`~xpnet.backends.base`: :class:`Backend` (any array-API module), :class:`DeviceGenerator`;
* :mod:`~xpnet.backends.numpy`: :class:`NumpyBackend`, NumPy's in-place fast paths;
* :mod:`~xpnet.backends.cupy`: :class:`CupyBackend`, the only module that imports CuPy (lazily);
* :mod:`~xpnet.backends.select`: :func:`get_backend`, which picks and caches them.
"""

from .base import (
    FLOAT_DTYPES,
    KEEP_ALL,
    Array,
    Backend,
    BackendError,
    DeviceGenerator,
    dtype_kind,
    keep_threshold,
)
from .cupy import CupyBackend, cuda_available
from .numpy import NumpyBackend
from .select import get_backend

__all__ = [
    "FLOAT_DTYPES",
    "KEEP_ALL",
    "Array",
    "Backend",
    "BackendError",
    "CupyBackend",
    "DeviceGenerator",
    "NumpyBackend",
    "cuda_available",
    "dtype_kind",
    "get_backend",
    "keep_threshold",
]
