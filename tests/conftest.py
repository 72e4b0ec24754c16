"""Shared test configuration: Hypothesis profiles ("dev" default, "ci" for CI), and the
``xpnet_backend`` fixture (one run per available backend) from xpnet's own pytest plugin."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["xpnet.testing.pytest_plugin"]

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
