"""Predicted vs measured decode speed on this machine, for generated models.

    .venv/bin/python benchmarks/bench_speed.py [--sizes 100,300] [--dtypes f16,q8_0,q4_0]

Writes real models of each size and weight type (pytest_llmfit.twins.tiny, cached under
.llmfit-cache/speed), loads each with llama-cpp-python's defaults on the CPU, measures
decode tokens/s (median of repeats) and prints it beside the planner's prediction for the
detected host (RAM bandwidth measured). Target: within 30% for every model of 100 MB and
more. Decode speed on a shared machine is noisy: run it when the machine is otherwise idle.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.engine.plan import plan
from pytest_llmfit.hardware.probes import detect_host
from pytest_llmfit.loading import close_and_check, load_model, measure_speed
from pytest_llmfit.twins.tiny import dims_for_size, tiny_model_cached

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = 0.30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300", help="model sizes in MB")
    parser.add_argument("--dtypes", default="f16,q8_0,q4_0")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=64, help="decoded tokens per repeat")
    parser.add_argument("--cache", default=str(ROOT / ".llmfit-cache" / "speed"))
    args = parser.parse_args()
    host = detect_host(ram_bandwidth="measure", warn=False)
    print(f"host: {host.describe()}; CPU {host.cpu.model}, {host.cpu.cores_logical} threads")
    cache = pathlib.Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for dtype in args.dtypes.split(","):
            path = tiny_model_cached(cache, dtype=dtype, **dims_for_size(size * 10**6, dtype))
            settings = Settings(n_ctx=512)
            predicted = plan(read_gguf(path), host, settings).tokens_per_second or 0.0
            loaded = load_model(path, n_ctx=512)
            try:
                speed = measure_speed(
                    loaded.llm, prompt_tokens=32, gen_tokens=args.tokens, repeats=args.repeats
                )
            finally:
                close_and_check(loaded)
            error = (predicted - speed.decode_tps) / speed.decode_tps
            rows.append((size, dtype, predicted, speed.decode_tps, speed.decode_tps_range, error))
            print(
                f"  {size:4d} MB {dtype:5}  predicted {predicted:7.1f}  measured "
                f"{speed.decode_tps:7.1f} tok/s  ({error:+.0%})",
                flush=True,
            )
    print("\n| model | predicted tok/s | measured tok/s (min-max) | error |")
    print("|---|---:|---:|---:|")
    for size, dtype, predicted, measured, (lo, hi), error in rows:
        print(
            f"| {size} MB {dtype} | {predicted:.1f} | {measured:.1f} ({lo:.1f}-{hi:.1f}) | "
            f"{error:+.0%} |"
        )
    worst = max(abs(r[-1]) for r in rows)
    verdict = "ok" if worst <= TARGET else "over"
    print(f"\nRESULT speed_worst_error={worst:.3f} target={TARGET} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
