"""The report's file form: :func:`dumps` (stable for diffs and goldens), an atomic
:func:`write_json`, and :func:`load_report`, which reads a file and checks it against the schema."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import TestRecord
from .schema import MERGE_KIND, REPORT_KEYS, SCHEMA_VERSION, expect, fail, json_type


def dumps(report: Mapping[str, Any]) -> str:
    """The file form: sorted keys, indent 2, trailing newline (stable for diffs and goldens)."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_json(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``report`` to ``path`` atomically: a temporary file beside it, renamed over it.

    Readers never see half a report; the file gets the usual permissions (umask applied).
    """
    target = Path(path)
    text = dumps(report)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            fail(str(path), f"cannot write: {error.strerror or error}")
        raise


def _read_json(path: str | os.PathLike[str]) -> tuple[str, Any]:
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(name, "no such file")
    except IsADirectoryError:
        fail(name, "is a directory, not a report file")
    except UnicodeDecodeError:
        fail(name, "not JSON (not UTF-8 text)")
    except OSError as error:
        fail(name, f"cannot read: {error.strerror or error}")
    try:
        return name, json.loads(text)
    except json.JSONDecodeError as error:
        fail(name, f"not JSON ({error.msg} at line {error.lineno} column {error.colno})")


def check_report(data: Any, *, source: str = "report") -> dict[str, Any]:
    """``data`` if it is a pytest-llmfit report this version reads, else a ReportError."""
    if not isinstance(data, dict):
        fail(source, f"is {json_type(data)}, expected a pytest-llmfit report object")
    if data.get("kind") == MERGE_KIND:
        fail(source, "is a merged report; merge the per-runner reports instead")
    if "schema_version" not in data:
        fail(source, "missing key 'schema_version': not a pytest-llmfit report")
    found = data["schema_version"]
    if found != SCHEMA_VERSION or isinstance(found, bool):
        newer = isinstance(found, int) and not isinstance(found, bool) and found > SCHEMA_VERSION
        why = " (written by a newer pytest-llmfit; upgrade to read it)" if newer else ""
        fail(source, f"schema_version {found!r} is not supported, expected {SCHEMA_VERSION}{why}")
    missing = [key for key in REPORT_KEYS if key not in data]
    if missing:
        fail(source, f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for key, kinds in (
        ("generated_at", (str,)),
        ("pytest_llmfit_version", (str,)),
        ("runner", (str,)),
        ("host", (dict,)),
        ("ci", (dict,)),
        ("tests", (list,)),
        ("summary", (dict,)),
    ):
        expect(data, key, kinds, source)
    for i, test in enumerate(data["tests"]):
        TestRecord.from_dict(test, source=f"{source}: tests[{i}]")
    return data


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a report file; any problem is one ReportError line naming the file."""
    name, data = _read_json(path)
    return check_report(data, source=name)
