#!/usr/bin/env bash
# The test command: lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check pytest_llmfit tests scripts benchmarks examples fuzz
.venv/bin/mypy
.venv/bin/python scripts/import_cycles.py  # layering: no cycles, no module over 600 lines
.venv/bin/python -m pytest "$@"
