"""Compatibility re-export: the backends now live in :mod:`xpnet.backends`."""

from .backends import (
    Array,
    Backend,
    BackendError,
    CupyBackend,
    DeviceGenerator,
    NumpyBackend,
    cuda_available,
    get_backend,
    keep_threshold,
)

__all__ = [
    "Array",
    "Backend",
    "BackendError",
    "CupyBackend",
    "DeviceGenerator",
    "NumpyBackend",
    "cuda_available",
    "get_backend",
    "keep_threshold",
]
