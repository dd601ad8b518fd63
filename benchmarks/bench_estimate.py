"""Estimator accuracy against llama.cpp's own allocations, per model of the recorded zoo.

    .venv/bin/python benchmarks/bench_estimate.py

For every case in tests/data/llamacpp/*.json (llama.cpp's logged buffers for a shape twin
on the CPU backend) it prints the worst and mean error of the estimated total, the worst
compute-buffer error, and whether the KV cache matched to llama.cpp's printed precision.
Beside it, a common shortcut (file size + a KV cache without GQA, no compute buffer) shows
what the estimator is worth.
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import tempfile
from collections import defaultdict

from pytest_llmfit.engine.arch import model_params
from pytest_llmfit.engine.estimate import estimate
from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.twins import write_twin
from pytest_llmfit.twins.zoo import iter_cases

ZOO = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "llamacpp"
MIB = 2**20


def naive_total(model: object, case: object) -> int:
    """File size + f16 KV for every head (no GQA, no SWA), no compute buffer."""
    params = model_params(model)  # type: ignore[arg-type]
    n_ctx = case.settings.n_ctx  # type: ignore[attr-defined]
    kv = 2 * params.n_layer * params.n_embd * n_ctx * 2
    return model.weights_bytes + kv  # type: ignore[attr-defined,no-any-return]


def main() -> int:
    rows: dict[str, list[tuple[float, float, bool, float]]] = defaultdict(list)
    archs: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        headers = {}
        for case in iter_cases(ZOO):
            key = (case.model, case.quant)
            if key not in headers:
                path = pathlib.Path(tmp) / f"{case.model}.gguf"
                write_twin(case.model, path, quant=case.quant, header_only=True)
                headers[key] = read_gguf(path)
            model = headers[key]
            fp = estimate(model, case.settings)
            total_err = (fp.allocated_bytes - case.measured_total) / case.measured_total
            compute = case.measured["compute"]
            comp_err = (fp.compute_bytes - compute) / compute if compute else 0.0
            kv_ok = abs(fp.kv_cache_bytes + fp.recurrent_bytes - case.measured["kv"]) <= 0.011 * MIB
            naive_err = (naive_total(model, case) - case.measured_total) / case.measured_total
            rows[case.model].append((total_err, comp_err, kv_ok, naive_err))
            archs[case.model] = case.arch
    print(
        f"{'model':24} {'arch':14} {'cases':>5} {'worst total':>11} {'mean |total|':>12} "
        f"{'worst compute':>13} {'KV exact':>8} {'shortcut worst':>14}"
    )
    all_errors = []
    for model, values in sorted(rows.items()):
        totals = [abs(v[0]) for v in values]
        all_errors.extend(totals)
        worst = max(values, key=lambda v: abs(v[0]))[0]
        worst_comp = max(values, key=lambda v: abs(v[1]))[1]
        kv = sum(v[2] for v in values)
        naive = max(values, key=lambda v: abs(v[3]))[3]
        print(
            f"{model:24} {archs[model]:14} {len(values):5d} {worst:+11.2%} "
            f"{statistics.mean(totals):12.2%} {worst_comp:+13.1%} {kv:4d}/{len(values):<3d} "
            f"{naive:+14.1%}"
        )
    print(
        f"\n{len(all_errors)} cases, {len(rows)} models: worst |total error| "
        f"{max(all_errors):.2%}, mean {statistics.mean(all_errors):.2%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
