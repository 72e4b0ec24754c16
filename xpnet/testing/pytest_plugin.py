"""pytest plugin: the ``xpnet_backend`` fixture runs a test once per available backend.

Enable it with ``-p xpnet.testing.pytest_plugin`` or ``pytest_plugins =
["xpnet.testing.pytest_plugin"]`` in a top-level ``conftest.py``. A test asking for
``xpnet_backend`` gets a :class:`~xpnet.backend.Backend` and runs once per case of
:func:`xpnet.testing.backends.backend_cases`: ``numpy-float64``, ``numpy-float32``,
``strict-float64``/``strict-float32`` (``array_api_strict`` on its fake ``device1``) and
``cupy-float64``/``cupy-float32``; cases that cannot run here (no CuPy or no GPU, no
array-api-strict) are reported as skipped, with the reason.

* ``@pytest.mark.xpnet_backends("numpy-float64", "strict-float64")`` restricts one test;
* ``--xpnet-backends=numpy-float64,cupy-float32`` restricts the whole run.

The fixture is session-scoped, so Hypothesis ``@given`` tests may use it.
"""

from __future__ import annotations

import pytest

from .backends import BackendCase, backend_cases


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xpnet")
    group.addoption(
        "--xpnet-backends",
        default=None,
        help="comma-separated xpnet backend cases to run tests on (e.g. "
        "numpy-float64,strict-float32,cupy-float32); default: all",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "xpnet_backends(*ids): run this test only on these xpnet backend cases"
    )


def _cases(metafunc: pytest.Metafunc) -> list[BackendCase]:
    cases = backend_cases()
    known = [c.id for c in cases]
    chosen = metafunc.config.getoption("--xpnet-backends")
    if chosen:
        wanted = [s.strip() for s in chosen.split(",") if s.strip()]
        bad = [w for w in wanted if w not in known]
        if bad:
            raise pytest.UsageError(f"--xpnet-backends: unknown case(s) {bad}; known: {known}")
        cases = [c for c in cases if c.id in wanted]
    marker = metafunc.definition.get_closest_marker("xpnet_backends")
    if marker is not None:
        bad = [m for m in marker.args if m not in known]
        if bad:
            raise pytest.UsageError(f"xpnet_backends marker: unknown case(s) {bad}; known: {known}")
        cases = [c for c in cases if c.id in marker.args]
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "xpnet_backend" not in metafunc.fixturenames:
        return
    params = [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.skip(reason=case.skip_reason)] if case.skip_reason else [],
        )
        for case in _cases(metafunc)
    ]
    metafunc.parametrize("xpnet_backend", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def xpnet_backend(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The backend of the current case (see the module docstring)."""
    case: BackendCase = request.param
    return case.make()
