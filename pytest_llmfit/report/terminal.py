"""The session report as lines for pytest's terminal summary, cut to the terminal's width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .model import report_records
from .text import DASH, host_line, one_line, plan_text, speed_text, summary_line


def _cut(text: str, room: int) -> str:
    """``text`` cut at the end to ``room`` characters, ``...`` marking the cut."""
    if len(text) <= room:
        return text
    if room <= 3:
        return text[:room]
    return text[: room - 3] + "..."


def _cut_left(text: str, room: int) -> str:
    """``text`` cut at the start (keeping a node id's test name), ``...`` marking the cut."""
    if len(text) <= room:
        return text
    if room <= 3:
        return text[-room:] if room > 0 else ""
    return "..." + text[-(room - 3) :]


def _test_and_requirement(nodeid: str, requirement: str, room: int) -> str:
    """The last column: the whole node id, then as much of the requirement as fits."""
    if not requirement:
        return _cut_left(nodeid, room)
    full = f"{nodeid}  {requirement}"
    if len(full) <= room:
        return full
    if len(nodeid) + 2 + 12 <= room:  # room for a useful piece of the requirement
        return f"{nodeid}  {_cut(requirement, room - len(nodeid) - 2)}"
    return _cut_left(nodeid, room)


def _wrap(text: str, width: int, *, lead: str = "", indent: str = "  ") -> list[str]:
    """``lead + text`` on one line, or broken at its `` | `` separators to fit ``width``."""
    lines: list[str] = []
    current = ""
    for part in text.split(" | "):
        if not current:
            current = (indent if lines else lead) + part
        elif len(f"{current} | {part}") <= width:
            current = f"{current} | {part}"
        else:
            lines.append(current)
            current = indent + part
    lines.append(current)
    return [_cut(line, width) for line in lines]


_MIN_TEST_ROOM = 24  # below this, the speed and plan columns give way to the test's name
TERMINAL_HEADER = ("decision", "plan", "predicted", "measured", "outcome", "test  requirement")


def render_terminal(report: Mapping[str, Any], width: int = 100) -> list[str]:
    """Lines for pytest's terminal summary: the host, a header, one row per test, counts.

    Columns are sized from the report's own values and every line is cut to ``width``
    (node ids lose their start, requirements their end), so output is deterministic.
    """
    width = max(width, 40)
    host = f"{one_line(host_line(report))} | runner {report['runner']}"
    lines = _wrap(host, width, lead="host: ", indent="      ")
    tests = report_records(report)
    if not tests:
        lines.append("no test used an llmfit marker")
        return lines
    header: tuple[str, ...] = TERMINAL_HEADER
    rows = [
        (
            [
                t.decision,
                plan_text(t.plan),
                speed_text(t.predicted_tokens_per_second),
                speed_text(t.measured_tokens_per_second),
                t.outcome or DASH,
            ],
            t,
        )
        for t in tests
    ]
    right = [False, False, True, True, False]  # speeds align right
    widths = [max(len(header[i]), *(len(cells[i]) for cells, _ in rows)) for i in range(5)]
    if width - (sum(widths) + 2 * 5) < _MIN_TEST_ROOM:  # narrow: decision, outcome, test
        keep = [0, 4]
        header = (header[0], header[4], header[5])
        rows = [([cells[i] for i in keep], t) for cells, t in rows]
        right = [False, False]
        widths = [widths[i] for i in keep]
    room = width - (sum(widths) + 2 * len(widths))

    def line(cells: Sequence[str], last: str) -> str:
        parts = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join([*parts, last]).rstrip()

    lines.append(line(header[:-1], _cut(header[-1], room)))
    for cells, record in rows:
        lines.append(
            line(cells, _test_and_requirement(record.nodeid, one_line(record.requirement), room))
        )
    lines.extend(_wrap(summary_line(report), width))
    return lines
