"""Predicted against published llama-bench speeds: decode and prompt tokens/s.

    .venv/bin/python benchmarks/bench_published.py            the table and the summary
    .venv/bin/python benchmarks/bench_published.py --markdown the table as Markdown

Every row of tests/data/llama_bench/rows.jsonl (published llama-bench tables, each line kept
verbatim with its source and build) is predicted by planning a header-only shape twin of its
model on its hardware with its layers, backend and build (pytest_llmfit.twins.published).
Rows marked ``left_out`` are printed with their reason and not counted. The script prints
one RESULT line per claim: decode median and worst error, prompt median error.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

from pytest_llmfit.twins.published import Prediction, load_rows, predict_all, summarize

DECODE_MEDIAN = 0.15
DECODE_MAX = 0.35
PROMPT_MEDIAN = 0.30


def _row_text(p: Prediction, markdown: bool) -> str:
    raw = p.row.raw
    device = raw["device_id"]
    predicted = f"{p.predicted:.2f}" if p.predicted is not None else "-"
    error = f"{p.error:+.0%}" if p.error is not None else "-"
    note = p.row.left_out or ""
    if markdown:
        counted = "" if not note else " (not counted)"
        return (
            f"| {device} | {raw['backend']} | {raw['model_raw']} | {raw['test']} | "
            f"{p.row.predict.get('build')} | {p.row.measured:.2f} | {predicted} | "
            f"{error}{counted} |"
        )
    flag = "-" if note else " "
    return (
        f"{flag} {device:28} {raw['backend']:10} {raw['model_raw']:31} {raw['test']:6} "
        f"b{p.row.predict.get('build')!s:5} {p.row.measured:10.2f} {predicted:>10} {error:>6}"
        + (f"  [{note}]" if note else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--rows", type=pathlib.Path, help="another rows.jsonl")
    args = parser.parse_args(argv)

    rows = load_rows(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        predictions = predict_all(rows, pathlib.Path(tmp))
    if args.markdown:
        print("| device | backend | model | test | build | published t/s | predicted | error |")
        print("|---|---|---|---|---:|---:|---:|---:|")
    else:
        print(
            f"  {'device':28} {'backend':10} {'model':31} {'test':6} {'build':6} "
            f"{'published':>10} {'predicted':>10} {'error':>6}"
        )
    for kind in ("decode", "prompt"):
        for p in predictions:
            if p.row.kind == kind:
                print(_row_text(p, args.markdown))
    decode = summarize(predictions, "decode")
    prompt = summarize(predictions, "prompt")
    left = sum(1 for r in rows if r.left_out)
    print()
    print(f"rows: {len(rows)}, counted {len(rows) - left}, left out {left}")
    for s in (decode, prompt):
        worst = f"{s.worst.row.label} {s.worst.error:+.1%}" if s.worst and s.worst.error else "-"
        print(
            f"{s.kind}: {s.n} rows, median |error| {s.median_abs:.1%}, worst {s.max_abs:.1%} "
            f"({worst})"
        )
    print(
        f"RESULT decode_median={decode.median_abs * 100:.1f} unit=%"
        f" target=<={DECODE_MEDIAN * 100:g}"
        f" 'claim=decode tokens/s vs published llama-bench, median |error| ({decode.n} rows)'"
    )
    print(
        f"RESULT decode_max={decode.max_abs * 100:.1f} unit=% target=<={DECODE_MAX * 100:g}"
        f" 'claim=decode tokens/s vs published llama-bench, worst |error|'"
    )
    print(
        f"RESULT prompt_median={prompt.median_abs * 100:.1f} unit=%"
        f" target=<={PROMPT_MEDIAN * 100:g}"
        f" 'claim=prompt tokens/s vs published llama-bench, median |error| ({prompt.n} rows)'"
    )
    ok = (
        decode.median_abs <= DECODE_MEDIAN
        and decode.max_abs <= DECODE_MAX
        and prompt.median_abs <= PROMPT_MEDIAN
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
