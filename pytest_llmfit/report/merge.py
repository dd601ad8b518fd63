"""Merge the reports of a CI runner matrix: tests x runners, and the tests that ran on no
runner; its renderers and the ``pytest-llmfit merge`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..errors import LlmfitError
from .ci import append_step_summary
from .json_report import load_report, write_json
from .markdown import md_cell, md_code, md_table
from .model import TestRecord, plain, report_records
from .schema import LOCAL_RUNNER, MERGE_KIND, SCHEMA_VERSION, fail
from .text import DASH, host_line, one_line, plan_text, speed_text


def merge_reports(
    reports: Sequence[Mapping[str, Any]], *, sources: Sequence[str] | None = None
) -> dict[str, Any]:
    """Tests x runners across a CI matrix, and the tests that ran on no runner.

    Each report is one column, named by its ``runner`` (repeated names get `` #2``, ...).
    A cell is the outcome there (the decision when there is none), or null when the test
    was not collected on that runner. ``sources`` (file names) are kept for the record.
    """
    runners: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    table: dict[str, dict[str, TestRecord]] = {}
    for index, report in enumerate(reports):
        base = str(report.get("runner") or LOCAL_RUNNER)
        seen[base] = seen.get(base, 0) + 1
        label = base if seen[base] == 1 else f"{base} #{seen[base]}"
        runner: dict[str, Any] = {
            "runner": label,
            "host": host_line(report),
            "generated_at": report.get("generated_at"),
            "pytest_llmfit_version": report.get("pytest_llmfit_version"),
            "ci": plain(report.get("ci") or {}),
        }
        if sources is not None:
            runner["source"] = sources[index]
        runners.append(runner)
        for record in report_records(report):
            table.setdefault(record.nodeid, {})[label] = record
    labels = [r["runner"] for r in runners]
    tests: list[dict[str, Any]] = []
    ran_nowhere: list[str] = []
    for nodeid in sorted(table):
        row = table[nodeid]
        ran_on = [label for label in labels if label in row and row[label].ran]
        requirement = next((row[x].requirement for x in labels if x in row), "")
        results = {
            label: {
                "cell": row[label].cell,
                "decision": row[label].decision,
                "outcome": row[label].outcome,
                "ran": row[label].ran,
                "plan": plan_text(row[label].plan),
                "predicted_tokens_per_second": row[label].predicted_tokens_per_second,
                "measured_tokens_per_second": row[label].measured_tokens_per_second,
            }
            for label in labels
            if label in row
        }
        tests.append(
            {
                "nodeid": nodeid,
                "requirement": requirement,
                "cells": {label: row[label].cell if label in row else None for label in labels},
                "results": results,
                "ran_on": ran_on,
            }
        )
        if not ran_on:
            ran_nowhere.append(nodeid)
    return {
        "kind": MERGE_KIND,
        "schema_version": SCHEMA_VERSION,
        "runners": runners,
        "tests": tests,
        "ran_nowhere": ran_nowhere,
        "summary": {
            "runners": len(runners),
            "tests": len(tests),
            "ran_nowhere": len(ran_nowhere),
        },
    }


def _merge_cell(test: Mapping[str, Any], label: str) -> str:
    result = test["results"].get(label)
    if result is None:
        return DASH
    text = str(result["cell"])
    measured = result.get("measured_tokens_per_second")
    if measured is not None:
        text += f" {speed_text(measured)} tok/s"
    return text


def _ran_nowhere_line(merged: Mapping[str, Any]) -> str:
    count = len(merged["ran_nowhere"])
    if not count:
        return "every test ran on at least one runner"
    return f"{count} test{'s' if count != 1 else ''} ran on no runner"


def render_merge_markdown(merged: Mapping[str, Any]) -> str:
    """The matrix as Markdown: runners with their hosts, tests x runners, what ran nowhere."""
    labels = [r["runner"] for r in merged["runners"]]
    n_tests, n_runners = len(merged["tests"]), len(labels)
    lines = [f"## pytest-llmfit: {n_tests} tests on {n_runners} runners", ""]
    lines.extend(f"- **{md_cell(r['runner'])}**: {md_cell(r['host'])}" for r in merged["runners"])
    lines.append("")
    if merged["tests"]:
        header = ["test", "requirement", *(md_cell(label) for label in labels)]
        align = ["---"] * len(header)
        rows = (
            [
                md_code(t["nodeid"]) + ("" if t["ran_on"] else " (ran nowhere)"),
                md_cell(t["requirement"]),
                *(md_cell(_merge_cell(t, label)) for label in labels),
            ]
            for t in merged["tests"]
        )
        lines.append(md_table(header, align, rows))
        lines.append("")
    lines.append(f"**{_ran_nowhere_line(merged).capitalize()}**")
    if merged["ran_nowhere"]:
        lines.append("")
        lines.extend(f"- {md_code(nodeid)}" for nodeid in merged["ran_nowhere"])
    return "\n".join(lines) + "\n"


def render_merge_terminal(merged: Mapping[str, Any]) -> str:
    """The matrix as a plain-text table; tests that ran nowhere are marked ``!``."""
    labels = [r["runner"] for r in merged["runners"]]
    lines = [f"{r['runner']}: {one_line(r['host'])}" for r in merged["runners"]]
    header = ["test", *labels]
    rows = [
        [("! " if not t["ran_on"] else "  ") + t["nodeid"], *(_merge_cell(t, x) for x in labels)]
        for t in merged["tests"]
    ]
    header[0] = "  test"
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    if lines:
        lines.append("")
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append("")
    lines.append(_ran_nowhere_line(merged) + (":" if merged["ran_nowhere"] else ""))
    lines.extend(f"  {nodeid}" for nodeid in merged["ran_nowhere"])
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like the rest of the CLI
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``merge`` options, for a subcommand parser (``cli.py``) or :func:`merge_main`."""
    parser.add_argument("reports", nargs="+", metavar="REPORT.json", help="one per runner")
    parser.add_argument("--md", metavar="OUT.md", help="write the matrix as Markdown")
    parser.add_argument("--json", metavar="OUT.json", help="write the merged matrix as JSON")
    parser.add_argument(
        "--step-summary",
        action="store_true",
        help="append the Markdown to $GITHUB_STEP_SUMMARY when set",
    )
    parser.add_argument(
        "--fail-on-ran-nowhere",
        action="store_true",
        help="exit 1 when some test ran on no runner",
    )


def run_merge(args: argparse.Namespace) -> int:
    """Merge ``args.reports``; raises LlmfitError (one line) for a bad file."""
    paths = [str(p) for p in args.reports]
    merged = merge_reports([load_report(p) for p in paths], sources=paths)
    markdown = render_merge_markdown(merged)
    if args.json:
        write_json(merged, args.json)
    if args.md:
        try:
            Path(args.md).write_text(markdown, encoding="utf-8")
        except OSError as error:
            fail(str(args.md), f"cannot write: {error.strerror or error}")
    if args.step_summary:
        append_step_summary(markdown, os.environ)
    sys.stdout.write(render_merge_terminal(merged))
    if args.fail_on_ran_nowhere and merged["ran_nowhere"]:
        print(
            f"pytest-llmfit merge: {_ran_nowhere_line(merged)} (--fail-on-ran-nowhere)",
            file=sys.stderr,
        )
        return 1
    return 0


def merge_main(argv: Sequence[str]) -> int:
    """``pytest-llmfit merge REPORT.json... [--md OUT.md] [--json OUT.json]
    [--step-summary] [--fail-on-ran-nowhere]``: 0 merged, 1 a test ran nowhere (with
    ``--fail-on-ran-nowhere``), 2 bad arguments or a bad report file (one line on stderr)."""
    parser = _Parser(
        prog="pytest-llmfit merge",
        description="Merge the JSON reports of a CI runner matrix: tests x runners.",
    )
    add_merge_arguments(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return stop.code if isinstance(stop.code, int) else 2
    try:
        return run_merge(args)
    except LlmfitError as error:
        print(f"pytest-llmfit merge: error: {error}", file=sys.stderr)
        return 2
