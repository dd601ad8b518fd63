#!/usr/bin/env bash
# Make ./.venv with pytest-llmfit installed for development (idempotent).
# llama-cpp-python compiles from source the first time (about 9 minutes on 2 cores);
# pip caches the wheel, so later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,llama]'
