"""Which CI job and runner produced a report (:func:`ci_metadata`), and GitHub Actions' step
summary (:func:`append_step_summary`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schema import LOCAL_RUNNER, fail


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _pick(env: Mapping[str, str], keys: Mapping[str, str]) -> dict[str, str]:
    return {ours: env[theirs] for ours, theirs in keys.items() if env.get(theirs)}


_GITHUB = {
    "job": "GITHUB_JOB",
    "workflow": "GITHUB_WORKFLOW",
    "runner_name": "RUNNER_NAME",
    "runner_os": "RUNNER_OS",
    "run_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT",
    "repository": "GITHUB_REPOSITORY",
    "sha": "GITHUB_SHA",
}
_GITLAB = {
    "job": "CI_JOB_NAME",
    "runner_name": "CI_RUNNER_DESCRIPTION",
    "job_id": "CI_JOB_ID",
    "pipeline_id": "CI_PIPELINE_ID",
    "repository": "CI_PROJECT_PATH",
    "sha": "CI_COMMIT_SHA",
    "url": "CI_JOB_URL",
}


def ci_metadata(env: Mapping[str, str]) -> dict[str, str]:
    """Which CI job and runner produced a report, from the environment; ``{}`` outside CI.

    Knows GitHub Actions and GitLab CI by name, any other CI by ``CI=true``. ``runner`` is
    the column a merge puts this report in: ``LLMFIT_RUNNER_LABEL`` (set it to the matrix
    entry, e.g. ``LLMFIT_RUNNER_LABEL: ${{ matrix.gpu }}``), else the job and runner names.
    Only variables that are set appear; the host name never does.
    """
    label = env.get("LLMFIT_RUNNER_LABEL", "").strip()
    data: dict[str, str]
    if _truthy(env.get("GITHUB_ACTIONS")):
        data = {"provider": "github-actions", **_pick(env, _GITHUB)}
        if "repository" in data and "run_id" in data:
            server = env.get("GITHUB_SERVER_URL") or "https://github.com"
            data["url"] = f"{server}/{data['repository']}/actions/runs/{data['run_id']}"
    elif _truthy(env.get("GITLAB_CI")):
        data = {"provider": "gitlab-ci", **_pick(env, _GITLAB)}
    elif _truthy(env.get("CI")):
        data = {"provider": "ci"}
    elif label:
        data = {}
    else:
        return {}
    if label:
        data["label"] = label
    job, name = data.get("job"), data.get("runner_name")
    data["runner"] = label or (f"{job} @ {name}" if job and name else job or name or "ci")
    return data


def runner_label(ci: Mapping[str, Any]) -> str:
    """The merge column of a report with this ``ci`` block: its runner, else ``local``."""
    value = ci.get("runner")
    return value if isinstance(value, str) and value else LOCAL_RUNNER


def append_step_summary(markdown: str, env: Mapping[str, str]) -> bool:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY``; False when that is not set.

    A write failure is a ReportError: the glue warns with it rather than failing the session.
    """
    path = env.get("GITHUB_STEP_SUMMARY", "").strip()
    if not path:
        return False
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as error:
        fail(path, f"cannot append the step summary: {error.strerror or error}")
    return True
