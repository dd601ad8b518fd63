#!/usr/bin/env bash
# The main job: size models the project generates against this machine and simulated ones.
# (Until the pytest plugin lands, the "suite" is the engine's command line.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=${LLMFIT_OUT:-.llmfit-cache/models}
mkdir -p "$out"
run() { echo "\$ pytest-llmfit $*"; .venv/bin/pytest-llmfit "$@"; echo; }
run probe
# Header-only shape twins: the true tensor tables of published models, no weights.
run twin llama-3.1-405b "$out/llama-3.1-405b-q3_k_m.gguf" --quant q3_k_m
run twin llama-3.1-8b "$out/llama-3.1-8b-q4_k_m.gguf" --quant q4_k_m
run plan "$out/llama-3.1-8b-q4_k_m.gguf" --ctx 8192
run plan "$out/llama-3.1-405b-q3_k_m.gguf" --ctx 8192
run plan "$out/llama-3.1-405b-q3_k_m.gguf" --ctx 8192 --hardware "rtx-4090, ram=64GB"
run plan "$out/llama-3.1-405b-q3_k_m.gguf" --ctx 8192 --hardware "rtx-4090, ram=256GB"
run plan "$out/llama-3.1-405b-q3_k_m.gguf" --ctx 8192 --hardware "3x h200"
