"""The backends a test suite can run on here: NumPy, ``array_api_strict`` on a fake device, CuPy.

Each :class:`BackendCase` names one backend and dtype ("numpy-float64", "strict-float32",
"cupy-float32", ...) and builds it on demand, so listing the cases never imports CuPy or needs
a GPU. ``array_api_strict`` runs on its fake ``device1``: it refuses silent conversion to NumPy
and mixing arrays from two devices, so on the CPU it catches the mistakes CuPy would.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends import Backend, cuda_available, get_backend
from ..fusion import plan_fusions

STRICT_DEVICE = "device1"


class GenericNumpy(Backend):
    """The generic array-API :class:`~xpnet.backends.Backend` run by NumPy itself (not the
    :class:`~xpnet.backends.NumpyBackend` that ``get_backend("numpy")`` gives), to test fast
    paths against. With ``fused=True`` its training plan runs the fusion rules, as CuPy's does,
    through the generic operations: a CPU stand-in for the fused GPU path."""

    def __init__(self, dtype: str = "float32", fused: bool = False) -> None:
        super().__init__(np, dtype)
        self.fused = fused

    def options(self) -> tuple[bool]:
        return (self.fused,)

    def plan(self, layers: Sequence[Any]) -> list[Any]:
        return plan_fusions(layers) if self.fused else list(layers)

    def to_host(self, x: object) -> np.ndarray:
        return np.asarray(x)  # NumPy reductions return scalars, which have no __dlpack__


@dataclass(frozen=True)
class BackendCase:
    """One backend to run tests on: ``id`` names it, ``make()`` builds it.

    ``skip_reason`` is None when the backend can be used on this machine, else why not.
    """

    id: str
    make: Callable[[], Backend]
    skip_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.skip_reason is None


def strict_backend(dtype: str = "float64", device: str = STRICT_DEVICE) -> Backend:
    """A generic :class:`~xpnet.backend.Backend` on ``array_api_strict``'s fake ``device``.

    Raises ImportError naming the fix when ``array_api_strict`` is not installed.
    """
    try:
        aas = importlib.import_module("array_api_strict")
    except ImportError as exc:
        raise ImportError(
            "the 'strict' backend needs array-api-strict: pip install xpnet[test]"
        ) from exc
    return get_backend(Backend(aas, "float64", device=aas.Device(device)), dtype)


def _strict_skip() -> str | None:
    try:
        importlib.import_module("array_api_strict")
    except ImportError:
        return "array-api-strict is not installed (pip install xpnet[test])"
    return None


def _cupy_skip() -> str | None:
    return None if cuda_available() else "CuPy with a usable CUDA device is not available"


def backend_cases(
    names: Sequence[str] = ("numpy", "strict", "cupy"),
    dtypes: Sequence[str] = ("float64", "float32"),
) -> list[BackendCase]:
    """Every ``name-dtype`` case, available or not (``skip_reason`` says why not).

    ``names``: ``"numpy"``, ``"strict"`` (array_api_strict on device1) and ``"cupy"``.
    """
    cases: list[BackendCase] = []
    strict_reason: str | None = _strict_skip() if "strict" in names else None
    cupy_reason: str | None = _cupy_skip() if "cupy" in names else None
    for name in names:
        for dt in dtypes:
            if name == "numpy":
                cases.append(BackendCase(f"numpy-{dt}", _numpy_maker(dt)))
            elif name == "strict":
                cases.append(BackendCase(f"strict-{dt}", _strict_maker(dt), strict_reason))
            elif name == "cupy":
                cases.append(BackendCase(f"cupy-{dt}", _cupy_maker(dt), cupy_reason))
            else:
                raise ValueError(f"backend name must be 'numpy', 'strict' or 'cupy', got {name!r}")
    return cases


def _numpy_maker(dt: str) -> Callable[[], Backend]:
    return lambda: get_backend("numpy", dt)


def _strict_maker(dt: str) -> Callable[[], Backend]:
    return lambda: strict_backend(dt)


def _cupy_maker(dt: str) -> Callable[[], Backend]:
    return lambda: get_backend("cupy", dt)


def available_backends(
    names: Sequence[str] = ("numpy", "strict", "cupy"),
    dtypes: Sequence[str] = ("float64", "float32"),
) -> list[Backend]:
    """The backends of :func:`backend_cases` that work on this machine, built."""
    return [case.make() for case in backend_cases(names, dtypes) if case.available]
