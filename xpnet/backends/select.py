"""Choosing a backend: :func:`get_backend` from a name, an array module or a Backend, cached."""

from __future__ import annotations

import sys
from collections.abc import Hashable
from types import ModuleType
from typing import Any

import numpy as np

from .base import FLOAT_DTYPES, Backend
from .cupy import CupyBackend, cuda_available, import_cupy
from .numpy import NumpyBackend

#: every backend handed out, by :meth:`Backend.cache_key` (class, module, device, dtype, options)
_CACHE: dict[Hashable, Backend] = {}
#: ``("numpy" | "cupy", dtype)`` -> the backend those names give
_BY_NAME: dict[tuple[str, str], Backend] = {}


def _cached(backend: Backend) -> Backend:
    """The cached backend equal to ``backend`` (so one spec gives one object), adding it."""
    return _CACHE.setdefault(backend.cache_key(), backend)


def _dtype_name(dtype: Any) -> str:
    if dtype is None:
        return "float32"
    try:
        name = str(np.dtype(dtype))
    except TypeError:
        name = str(dtype)
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


def _named(name: str, dt: str, verbose: bool, spec: Any) -> Backend:
    if name == "auto":
        name = "cupy" if cuda_available() else "numpy"
        if verbose:
            print(f"xpnet: backend='auto' chose {name!r}", file=sys.stderr)
    got = _BY_NAME.get((name, dt))
    if got is None:
        if name == "numpy":
            got = _cached(NumpyBackend(dt))
        elif name == "cupy":
            got = _cached(CupyBackend(import_cupy(), dt))
        else:
            raise ValueError(f"backend must be 'numpy', 'cupy' or 'auto', got {spec!r}")
        _BY_NAME[(name, dt)] = got
    return got


def get_backend(spec: Any = "numpy", dtype: Any = None, *, verbose: bool = True) -> Backend:
    """Return the backend for ``spec``: ``"numpy"``, ``"cupy"``, ``"auto"``, a module or a Backend.

    ``"auto"`` picks CuPy when a CUDA device is usable and NumPy otherwise, and says which it
    chose on stderr (``verbose=False`` silences it). A module passed in directly (``numpy``,
    ``cupy``, ``array_api_strict``...) is wrapped. ``dtype`` is ``"float32"`` (default) or
    ``"float64"``; for a Backend passed in, a different ``dtype`` gives the same backend (same
    module, device and options, e.g. ``fused``) in that dtype.
    """
    if isinstance(spec, Backend):
        if dtype is None or _dtype_name(dtype) == spec.dtype_name:
            return spec
        return _cached(spec.with_dtype(_dtype_name(dtype)))
    dt = _dtype_name(dtype)
    if isinstance(spec, ModuleType):
        if spec.__name__ in ("numpy", "cupy"):
            return _named(spec.__name__, dt, verbose, spec)
        return _cached(Backend(spec, dt))
    if not isinstance(spec, str):
        raise TypeError(
            f"backend must be 'numpy', 'cupy', 'auto', an array module or a Backend, got {spec!r}"
        )
    return _named(spec.lower(), dt, verbose, spec)
