"""Refit the speed model's constants to the published llama-bench rows.

    .venv/bin/python scripts/fit_speed.py decode     streaming efficiencies, fixed costs
    .venv/bin/python scripts/fit_speed.py prompt     prompt efficiencies, activation passes

Every counted row of tests/data/llama_bench/rows.jsonl is planned once; the fit then
re-prices the same placements with trial constants (pytest_llmfit.engine.speed.constants,
read at call time) by Levenberg-Marquardt on the log error: plain least squares for decode,
soft-L1 for prompt processing (a few backends are far off and would drag the rest). It
prints the fitted values and each row's error; copy the values, rounded, into constants.py
with the rows that set them. numpy is the only extra dependency (the dev extras have it).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from pytest_llmfit.engine.speed import constants as C
from pytest_llmfit.engine.speed import predict_inputs
from pytest_llmfit.twins.published import PublishedRow, load_rows, predict_all

# name: (start, low, high, setter)
Param = tuple[float, float, float, Callable[[float], None]]


def _set(table: dict[str, float], key: str, scale: float = 1.0) -> Callable[[float], None]:
    def setter(value: float) -> None:
        table[key] = value * scale

    return setter


def _set_attr(name: str, scale: float = 1.0) -> Callable[[float], None]:
    def setter(value: float) -> None:
        setattr(C, name, value * scale)

    return setter


def decode_params() -> dict[str, Param]:
    return {
        "gddr": (C.STREAM_EFFICIENCY["gddr"], 0.3, 1.0, _set(C.STREAM_EFFICIENCY, "gddr")),
        "hbm": (C.STREAM_EFFICIENCY["hbm"], 0.3, 1.0, _set(C.STREAM_EFFICIENCY, "hbm")),
        "unified": (C.STREAM_EFFICIENCY["unified"], 0.3, 1.0, _set(C.STREAM_EFFICIENCY, "unified")),
        **{
            f"{b}_us": (C.LAYER_SECONDS[b] * 1e6, 1.0, 500.0, _set(C.LAYER_SECONDS, b, 1e-6))
            for b in ("cuda", "rocm", "metal", "vulkan")
        },
        "legacy": (C.LEGACY_LAYER_FACTOR, 1.0, 3.0, _set_attr("LEGACY_LAYER_FACTOR")),
        "moe": (C.MOE_LAYER_FACTOR, 1.0, 3.0, _set_attr("MOE_LAYER_FACTOR")),
        "metal_k": (C.DEQUANT_FLOPS["metal"]["K"], 5.0, 80.0, _set(C.DEQUANT_FLOPS["metal"], "K")),
    }


def prompt_params() -> dict[str, Param]:
    return {
        **{
            b: (C.PROMPT_EFFICIENCY[b], 0.01, 1.5, _set(C.PROMPT_EFFICIENCY, b))
            for b in ("cuda", "rocm", "metal", "vulkan")
        },
        "passes": (C.ACTIVATION_PASSES, 0.0, 500.0, _set_attr("ACTIVATION_PASSES")),
        "cpu_gflops": (C.CPU_THREAD_FLOPS / 1e9, 1.0, 500.0, _set_attr("CPU_THREAD_FLOPS", 1e9)),
    }


def least_squares(
    fun: Callable[[np.ndarray], np.ndarray], x0: Sequence[float], low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Levenberg-Marquardt with a forward-difference Jacobian, clipped to the bounds."""
    x = np.clip(np.asarray(x0, float), low, high)
    r = fun(x)
    cost = float(r @ r)
    lam = 1e-2
    for _ in range(200):
        jac = np.empty((len(r), len(x)))
        for j in range(len(x)):
            step = 2e-3 * max(abs(x[j]), 1e-2)  # predictions are rounded: not too small
            xp = x.copy()
            xp[j] += step
            jac[:, j] = (fun(xp) - r) / step
        a, g = jac.T @ jac, jac.T @ r
        for _ in range(20):
            trial = np.clip(
                x - np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), g), low, high
            )
            rt = fun(trial)
            if float(rt @ rt) < cost:
                x, r, cost, lam = trial, rt, float(rt @ rt), max(lam / 3, 1e-7)
                break
            lam *= 4
        else:
            return x
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("decode", "prompt"))
    args = parser.parse_args(argv)
    rows = [r for r in load_rows() if not r.left_out and r.kind == args.kind]
    with tempfile.TemporaryDirectory() as tmp:
        planned = [
            (p.row, p.plan.speed.inputs)
            for p in predict_all(rows, pathlib.Path(tmp))
            if p.plan is not None and p.plan.speed is not None and p.plan.speed.inputs
        ]
    params = decode_params() if args.kind == "decode" else prompt_params()
    names = list(params)

    def predicted(x: np.ndarray) -> list[tuple[PublishedRow, float | None]]:
        for name, value in zip(names, x, strict=True):
            params[name][3](float(value))
        out = []
        for row, inputs in planned:
            speed = predict_inputs(inputs, prompt_tokens=row.tokens)
            value = (
                speed.decode_tokens_per_second
                if args.kind == "decode"
                else speed.prompt_tokens_per_second
            )
            out.append((row, value))
        return out

    def residuals(x: np.ndarray) -> np.ndarray:
        r = np.array([math.log(v / row.measured) if v else 3.0 for row, v in predicted(x)])
        if args.kind == "prompt":  # soft L1 in log space, scale 0.3
            r = np.sign(r) * np.sqrt(2 * (np.sqrt(1 + (r / 0.3) ** 2) - 1)) * 0.3
        return r

    start = [params[n][0] for n in names]
    low = np.array([params[n][1] for n in names])
    high = np.array([params[n][2] for n in names])
    x = least_squares(residuals, start, low, high)
    errors = []
    for row, value in predicted(x):
        error = value / row.measured - 1 if value else float("nan")
        errors.append(abs(error))
        print(f"{row.label:90} {row.measured:10.2f} {value or 0:10.2f} {error:+7.1%}")
    print()
    for name, value in zip(names, x, strict=True):
        print(f"{name:12} {value:10.4f}")
    errors.sort()
    print(
        f"rows {len(errors)}, median |error| {errors[len(errors) // 2]:.1%}, worst {errors[-1]:.1%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
