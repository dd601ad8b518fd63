"""What a report file is: its schema version and keys, the values a record may take,
:class:`ReportError`, and the JSON type checks that name the offending field."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from ..errors import LlmfitError

SCHEMA_VERSION = 1
MERGE_KIND = "pytest-llmfit merge"

# "error": a marker with bad arguments (the test errors at setup with the one-line reason).
DECISIONS = ("run", "skip", "xfail", "fail", "benchmark", "error")
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
PLAN_MODES = ("gpu", "partial", "cpu", "none")
NO_OUTCOME = "none"  # the summary's key for records without an outcome
LOCAL_RUNNER = "local"

REPORT_KEYS = (
    "schema_version",
    "generated_at",
    "pytest_llmfit_version",
    "runner",
    "host",
    "ci",
    "tests",
    "summary",
)


class ReportError(LlmfitError):
    """A report file is missing, unreadable, not JSON, or not a pytest-llmfit report.

    >>> str(ReportError("reports/a.json", "schema_version 2 is not supported"))
    'reports/a.json: schema_version 2 is not supported'
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def fail(source: str, reason: str) -> NoReturn:
    raise ReportError(source, reason)


def expect(data: Mapping[str, Any], key: str, kinds: tuple[type, ...], source: str) -> Any:
    if key not in data:
        fail(source, f"missing key {key!r}")
    value = data[key]
    allow_none = type(None) in kinds
    if value is None and allow_none:
        return None
    # bool is an int to Python, never to a report
    if isinstance(value, bool) and bool not in kinds:
        value_ok = False
    else:
        value_ok = isinstance(value, tuple(k for k in kinds if k is not type(None)))
    if not value_ok:
        names = " or ".join(
            dict.fromkeys("null" if k is type(None) else _JSON_NAMES[k] for k in kinds)
        )
        fail(source, f"{key} is {json_type(value)}, expected {names}")
    return value


_JSON_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "a list",
    tuple: "a list",
    dict: "an object",
}


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    for kind, name in _JSON_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def choice(value: Any, choices: Sequence[str], key: str, source: str) -> str:
    if value not in choices:
        fail(source, f"{key} {value!r} is not one of {', '.join(choices)}")
    return str(value)


def number(data: Mapping[str, Any], key: str, source: str) -> float | None:
    value = expect(data, key, (int, float, type(None)), source)
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        fail(source, f"{key} is {value!r}, expected a finite number")
    return number
