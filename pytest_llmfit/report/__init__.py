"""What a test session decided and measured: records, JSON, Markdown, terminal rows, merge.

The pytest glue turns each test into a :class:`TestRecord` (a plain, JSON-ready dict crosses
to and from pytest-xdist workers) and calls :func:`build_report` once at the end. Everything
here is plain data in, plain data or text out, so a CI job can merge the reports of a runner
matrix without pytest::

    pytest-llmfit merge reports/*.json --md matrix.md --fail-on-ran-nowhere

A report file (``schema_version`` 1)::

    {"schema_version": 1, "generated_at": "2025-01-01T00:00:00Z",
     "pytest_llmfit_version": "0.1.0", "runner": "rtx-4090",
     "host": {...Host.to_dict(), "description": "1x NVIDIA GeForce RTX 4090 ..."},
     "ci": {"provider": "github-actions", "job": ..., "runner": "rtx-4090", ...},
     "tests": [TestRecord.to_dict(), ...],            # sorted by nodeid
     "summary": {"total": 3, "fits": 1, "ran": 1,
                 "decisions": {"run": 1, "skip": 1, ...},   # every decision, zeros included
                 "outcomes": {"passed": 1, ..., "none": 0}}}  # "none": no outcome recorded

A record whose model does not fit has its ways out: its ``reason`` ends with the best of
them (``...; short by 114.7 GB; fits as IQ1_S ... or on 1x b300``) and ``plan.alternatives``
holds the best five (``engine.advise.Alternative.to_dict()``: kind, fits, mode,
n_gpu_layers, total_bytes, tokens_per_second, and what re-plans it).

A test *ran* on a runner when its body executed with the model in reach: llmfit decided
``run`` or ``benchmark`` (or ``xfail`` and it xpassed) and pytest reports passed, failed,
xpassed, or xfailed (a test's own xfail marker, executed). Skips, llmfit's own ``fail`` and
``xfail`` verdicts and setup errors are not runs. :func:`merge_reports` lists the tests that
ran on no runner: the coverage a matrix silently lost.

One module per role: :mod:`.schema` (the schema's constants, :class:`ReportError`, type
checks), :mod:`.model` (:class:`TestRecord`, :func:`build_report`), :mod:`.ci` (CI metadata,
GitHub's step summary), :mod:`.json_report` (the file: write, read, check), :mod:`.text`
(what the renderers share), :mod:`.markdown`, :mod:`.terminal` (the renderers) and
:mod:`.merge` (a runner matrix, and the ``merge`` command).
"""

from __future__ import annotations

from .ci import append_step_summary, ci_metadata, runner_label
from .json_report import check_report, dumps, load_report, write_json
from .markdown import MARKDOWN_COLUMNS, render_markdown
from .merge import (
    add_merge_arguments,
    merge_main,
    merge_reports,
    render_merge_markdown,
    render_merge_terminal,
    run_merge,
)
from .model import TestRecord, build_report, report_records, summarize
from .schema import (
    DECISIONS,
    LOCAL_RUNNER,
    MERGE_KIND,
    NO_OUTCOME,
    OUTCOMES,
    PLAN_MODES,
    REPORT_KEYS,
    SCHEMA_VERSION,
    ReportError,
)
from .terminal import TERMINAL_HEADER, render_terminal
from .text import plan_text, speed_text, summary_line

__all__ = [
    "DECISIONS",
    "LOCAL_RUNNER",
    "MARKDOWN_COLUMNS",
    "MERGE_KIND",
    "NO_OUTCOME",
    "OUTCOMES",
    "PLAN_MODES",
    "REPORT_KEYS",
    "SCHEMA_VERSION",
    "TERMINAL_HEADER",
    "ReportError",
    "TestRecord",
    "add_merge_arguments",
    "append_step_summary",
    "build_report",
    "check_report",
    "ci_metadata",
    "dumps",
    "load_report",
    "merge_main",
    "merge_reports",
    "plan_text",
    "render_markdown",
    "render_merge_markdown",
    "render_merge_terminal",
    "render_terminal",
    "report_records",
    "run_merge",
    "runner_label",
    "speed_text",
    "summarize",
    "summary_line",
    "write_json",
]
