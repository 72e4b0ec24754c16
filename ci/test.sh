#!/usr/bin/env bash
# The README's test command, verbatim: a fresh virtual environment, the test extra, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && python -m pytest
