#!/usr/bin/env bash
# Lint with ruff (settings in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=()
for d in xpnet tests examples benchmarks tools scripts; do [ -d "$d" ] && dirs+=("$d"); done
ruff check "${dirs[@]}"
