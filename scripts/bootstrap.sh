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
# Test data: llama.cpp's own vocabulary-only GGUFs, from the sdist of the llama-cpp-python
# just installed (real files written by llama.cpp's converter; tests/test_arch_vocab.py).
VOCAB=.llmfit-cache/vocab
if ! ls "$VOCAB"/ggml-vocab-*.gguf >/dev/null 2>&1; then
    version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
    tmp=$(mktemp -d)
    .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: \
        "llama-cpp-python==$version" -d "$tmp"
    tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards \
        '*/vendor/llama.cpp/models/ggml-vocab-*.gguf'
    mkdir -p "$VOCAB"
    cp "$tmp"/llama_cpp_python-*/vendor/llama.cpp/models/ggml-vocab-*.gguf "$VOCAB"/
    rm -rf "$tmp"
fi
