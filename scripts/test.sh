#!/usr/bin/env bash
# Set everything up, lint, then run the whole test suite. Extra arguments go to pytest
# (e.g. `-m "not slow"` for the fast lane).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff check and ruff format --check"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -q "$@"
