"""The session report as GitHub-flavoured Markdown, and Markdown's table and cell escaping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .model import report_records
from .schema import LOCAL_RUNNER
from .text import DASH, host_line, one_line, plan_text, speed_text, summary_line


def md_cell(text: str) -> str:
    """A Markdown table cell: one line, pipes escaped, no HTML."""
    text = one_line(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def md_code(text: str) -> str:
    """A Markdown table cell in code style (a node id), or plain when it holds a backtick."""
    text = one_line(text)
    if "`" in text or not text:
        return md_cell(text)
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


MARKDOWN_COLUMNS = (
    "test",
    "requirement",
    "decision",
    "plan",
    "predicted tok/s",
    "measured tok/s",
    "prompt predicted tok/s",
    "prompt measured tok/s",
    "outcome",
    "reason",
)


def md_table(header: Sequence[str], align: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown: heading, host, one table row per test."""
    runner = report.get("runner", LOCAL_RUNNER)
    ci = report.get("ci") or {}
    lines = [f"## pytest-llmfit: {md_cell(str(runner))}", ""]
    lines.append(f"**Host:** {md_cell(host_line(report))}  ")
    where = f"**Generated:** {md_cell(str(report.get('generated_at', '')))}"
    where += f" by pytest-llmfit {md_cell(str(report.get('pytest_llmfit_version', '')))}"
    if ci.get("url"):
        where += f" in [{md_cell(str(ci.get('job') or 'CI job'))}]({ci['url']})"
    elif ci.get("job"):
        where += f" in {md_cell(str(ci['job']))}"
    lines.append(where)
    lines.append("")
    tests = report_records(report)
    if not tests:
        lines.append("No test used an llmfit marker.")
        return "\n".join(lines) + "\n"
    rows = (
        (
            md_code(t.nodeid),
            md_cell(t.requirement),
            t.decision,
            plan_text(t.plan),
            speed_text(t.predicted_tokens_per_second),
            speed_text(t.measured_tokens_per_second),
            speed_text(t.predicted_prompt_tokens_per_second),
            speed_text(t.measured_prompt_tokens_per_second),
            t.outcome or DASH,
            md_cell(t.reason),
        )
        for t in tests
    )
    align = ("---", "---", "---", "---", "---:", "---:", "---:", "---:", "---", "---")
    lines.append(md_table(MARKDOWN_COLUMNS, align, rows))
    lines.append("")
    lines.append(md_cell(summary_line(report)))
    return "\n".join(lines) + "\n"
