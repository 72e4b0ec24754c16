"""Test tools for xpnet and for code built on it: gradient checks and backend agreement.

* :func:`check_gradients`: analytic gradients of a layer, a loss or a whole model against
  float64 central differences (full Jacobian or random directions), kinks reported as such.
* :func:`assert_backends_agree`: same inputs and parameters on two backends give the same
  outputs and gradients, within tolerances that follow the dtype.
* :mod:`xpnet.testing.strategies`: Hypothesis strategies for arrays, layers and random
  ``Sequential`` stacks on a backend (needs ``pip install xpnet[test]``).
* :mod:`xpnet.testing.pytest_plugin`: a ``xpnet_backend`` fixture running a test once per
  available backend (enable with ``-p xpnet.testing.pytest_plugin`` or ``pytest_plugins``).

Importing this package needs only NumPy; Hypothesis and pytest are imported by the two
modules above that use them.
"""

from .._namespace import warn_if_shadowed
from ._runner import FixedDraws, register_kink
from .agree import AgreementResult, assert_backends_agree
from .backends import (
    BackendCase,
    GenericNumpy,
    available_backends,
    backend_cases,
    strict_backend,
)
from .gradcheck import TOLERANCES, GradCheckResult, TensorCheck, check_gradients

warn_if_shadowed()  # imported through a clone folder named xpnet? say so

__all__ = [
    "GenericNumpy",
    "TOLERANCES",
    "AgreementResult",
    "BackendCase",
    "FixedDraws",
    "GradCheckResult",
    "TensorCheck",
    "assert_backends_agree",
    "available_backends",
    "backend_cases",
    "check_gradients",
    "register_kink",
    "strict_backend",
]
