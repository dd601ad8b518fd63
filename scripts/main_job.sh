#!/usr/bin/env bash
# The main job: the example ML project's test suite with the llmfit report, on this machine.
# Its conftest generates every model it uses (header-only twins of Llama 3.1 405B and 8B,
# and a tiny real Llama that llama.cpp loads and generates from); nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest examples/llm_project --llmfit-report "$@"
