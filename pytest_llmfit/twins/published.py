"""Published llama-bench rows, and what the planner predicts for each.

``tests/data/llama_bench/rows.jsonl`` holds rows of public llama-bench tables, each kept
verbatim (the table line, its header, the source URL, the build, the settings; the source
excerpts are in ``tests/data/llama_bench/sources/``) with a ``predict`` object saying how to
reproduce it here: the shape twin and quantization mix of the row's model, the hardware as
a spec string, the backend, the llama.cpp build, n_gpu_layers and n_cpu_moe, threads. A row
with ``left_out`` is shown but not counted (the reason is in the field).

:func:`predict_row` writes a header-only twin of the model, plans it on the simulated host
with exactly the row's layers (``plan(..., n_gpu_layers=N)``) and a context of llama-bench's
size, and returns the predicted decode or prompt tokens/s. ``benchmarks/bench_published.py``
prints the table; ``tests/test_speed_published.py`` bounds its errors.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.context import Settings
from ..engine.gguf import GGUFFile, read_gguf
from ..engine.plan import Plan, plan
from ..engine.speed import SpeedModel
from ..hardware.specs import resolve_hardware

DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "llama_bench"


@dataclass(frozen=True)
class PublishedRow:
    """One published llama-bench measurement and how to predict it."""

    raw: dict[str, Any]

    @property
    def predict(self) -> dict[str, Any]:
        value: dict[str, Any] = self.raw["predict"]
        return value

    @property
    def kind(self) -> str:
        """``"decode"`` (tgN) or ``"prompt"`` (ppN)."""
        return str(self.predict["test"])

    @property
    def tokens(self) -> int:
        return int(self.predict["tokens"])

    @property
    def measured(self) -> float:
        return float(self.raw["tokens_per_second"])

    @property
    def left_out(self) -> str | None:
        reason = self.raw.get("left_out")
        return str(reason) if reason else None

    @property
    def label(self) -> str:
        return (
            f"{self.raw['device_id']} {self.raw['backend']} {self.raw['model_raw']} "
            f"{self.raw['test']} (build {self.predict.get('build')})"
        )


@dataclass(frozen=True)
class Prediction:
    row: PublishedRow
    predicted: float | None
    plan: Plan | None

    @property
    def error(self) -> float | None:
        """(predicted - measured) / measured."""
        if self.predicted is None:
            return None
        return (self.predicted - self.row.measured) / self.row.measured


def load_rows(path: str | os.PathLike[str] | None = None) -> list[PublishedRow]:
    """Every row of ``rows.jsonl`` (in ``tests/data/llama_bench/`` by default)."""
    file = pathlib.Path(path) if path is not None else DATA / "rows.jsonl"
    rows = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(PublishedRow(json.loads(line)))
    return rows


def speed_model(row: PublishedRow) -> SpeedModel:
    p = row.predict
    return SpeedModel(backend=p.get("backend"), build=p.get("build"), threads=p.get("threads"))


def _twin(cache: pathlib.Path, twin: str, quant: str, models: dict[str, GGUFFile]) -> GGUFFile:
    from . import write_twin  # needs the gguf package

    key = f"{twin}-{quant}"
    if key not in models:
        path = cache / f"{key}.gguf"
        if not path.exists():
            write_twin(twin, path, quant=quant, header_only=True)
        models[key] = read_gguf(path)
    return models[key]


def predict_row(
    row: PublishedRow,
    cache: pathlib.Path,
    *,
    models: dict[str, GGUFFile] | None = None,
    model: SpeedModel | None = None,
) -> Prediction:
    """The planner's prediction for ``row`` (twins are written to ``cache`` once)."""
    p = row.predict
    if "twin" not in p or "hardware" not in p:
        return Prediction(row, None, None)
    gguf = _twin(cache, p["twin"], p["quant"], models if models is not None else {})
    host = resolve_hardware(p["hardware"])
    # llama-bench's context is the test's own length: n_prompt + n_gen tokens.
    settings = Settings(n_ctx=max(row.tokens, 256), flash_attn=p.get("flash_attn", "auto"))
    planned = plan(
        gguf,
        host,
        settings,
        n_gpu_layers=int(p.get("n_gpu_layers", -1)),
        n_cpu_moe=int(p.get("n_cpu_moe", 0)),
        offload_rule=p.get("offload_rule", "current"),
        speed_model=model or speed_model(row),
    )
    if row.kind == "decode":
        value = planned.tokens_per_second
    else:
        speed = planned.speed.at(row.tokens) if planned.speed else None
        value = speed.prompt_tokens_per_second if speed else None
    return Prediction(row, value, planned)


def predict_all(
    rows: Iterable[PublishedRow], cache: pathlib.Path, *, model: SpeedModel | None = None
) -> list[Prediction]:
    models: dict[str, GGUFFile] = {}
    return [predict_row(r, cache, models=models, model=model) for r in rows]


@dataclass(frozen=True)
class Summary:
    """Error figures over the counted rows of one kind."""

    kind: str
    n: int
    median_abs: float
    max_abs: float
    worst: Prediction | None


def summarize(predictions: Sequence[Prediction], kind: str) -> Summary:
    counted = [
        p for p in predictions if p.row.kind == kind and not p.row.left_out and p.error is not None
    ]
    errors = [abs(p.error) for p in counted if p.error is not None]
    if not errors:
        return Summary(kind, 0, 0.0, 0.0, None)
    worst = max(counted, key=lambda p: abs(p.error or 0.0))
    return Summary(kind, len(errors), statistics.median(errors), max(errors), worst)
