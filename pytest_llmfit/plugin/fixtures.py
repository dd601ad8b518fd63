"""The ``llm`` and ``llm_benchmark`` fixtures: real models, loaded as the plan says.

pytest glue over pytest_llmfit.loading (the only module that imports llama_cpp). One model
is held at a time per process (per xdist worker): a test asking for another model or other
settings evicts it, and every model is closed and checked to have given its memory back.
What llama.cpp really allocated, beside the estimate, goes into the test's report row.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import LlmfitError
from ..hardware.types import Host
from .state import LlmfitState, state_key

# The plan the ``llm`` fixture loaded this test's model with, for ``llm_benchmark``'s
# prediction at the prompt length it measures.
planned_key = pytest.StashKey["Plan"]()

if TYPE_CHECKING:
    from ..engine.estimate import Footprint
    from ..engine.plan import Plan
    from ..loading import Loaded, SpeedResult

ESTIMATE_TOLERANCE = 0.10  # a component missing by more than this warns (report keeps all)


class LlmfitEstimateWarning(UserWarning):
    """llama.cpp allocated noticeably more or less than pytest-llmfit estimated."""


@dataclass
class ModelPool:
    """The loaded model of this process, keyed by path and settings."""

    key: tuple[Any, ...] | None = None
    loaded: Loaded | None = None
    releases: list[dict[str, Any]] = field(default_factory=list)

    def get(self, key: tuple[Any, ...]) -> Loaded | None:
        return self.loaded if self.key == key else None

    def put(self, key: tuple[Any, ...], loaded: Loaded) -> None:
        self.evict()
        self.key, self.loaded = key, loaded

    def evict(self) -> None:
        if self.loaded is None:
            return
        from ..loading import close_and_check

        release = close_and_check(self.loaded)
        self.releases.append(
            {
                "model": self.loaded.path,
                "released": release.looks_released,
                "reason": release.reason,
            }
        )
        if not release.looks_released:
            warnings.warn(
                f"pytest-llmfit: {os.path.basename(self.loaded.path)} did not give its memory "
                f"back after close: {release.reason}",
                LlmfitEstimateWarning,
                stacklevel=2,
            )
        self.key = self.loaded = None


@pytest.fixture(scope="session")
def llmfit_models() -> Generator[ModelPool, None, None]:
    """The process's model pool (one loaded model at a time); closed at session end."""
    pool = ModelPool()
    yield pool
    pool.evict()


def _model_request(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """The model this test asks for: an indirect parameter, else its requires_model marker."""
    param = getattr(request, "param", None)
    if isinstance(param, (str, os.PathLike)):
        return os.fspath(param), {}
    if isinstance(param, Mapping):
        values = dict(param)
        return os.fspath(values.pop("path")), values
    mark = request.node.get_closest_marker("requires_model")
    if mark is None:
        raise pytest.UsageError(
            f"the llm fixture needs a model: mark {request.node.nodeid} with "
            "@requires_model('model.gguf', ...) or parametrize llm indirectly"
        )
    path = mark.args[0] if mark.args else mark.kwargs["path"]
    options = {k: v for k, v in mark.kwargs.items() if k != "path"}
    return os.fspath(path), options


def _plan_for(request: pytest.FixtureRequest) -> tuple[str, Plan]:
    from .requirements import parse_requirement

    config = request.config
    state = config.stash[state_key]
    path, options = _model_request(request)
    req = parse_requirement(
        "requires_model",
        (path,),
        options,
        source=f"llm fixture of {request.node.nodeid}",
        models_dir=state.settings.models_dir,
        root=str(config.rootpath),
    )
    assert req.model_path is not None and req.settings is not None
    # The session's plan (its speed model carries this host's calibration).
    return req.model_path, state.cache.plan(
        req.model_path,
        state.get_host(),
        req.settings,
        state.settings.headroom,
        n_gpu_layers=req.n_gpu_layers,
        tensor_split=req.tensor_split,
        n_cpu_moe=req.n_cpu_moe,
    )


@pytest.fixture
def llm(request: pytest.FixtureRequest, llmfit_models: ModelPool) -> Any:
    """A ``llama_cpp.Llama`` for this test's model, loaded with the planned n_gpu_layers,
    tensor_split, context and KV settings; reused by later tests asking for the same."""
    from ..loading import compare, load_planned

    state = request.config.stash[state_key]
    problem: LlmfitError | None = None
    try:
        path, planned = _plan_for(request)
    except LlmfitError as error:  # a bad model name, an unreachable or corrupt header
        problem = error
    if problem is not None:  # outside the except: one line, no chained traceback
        pytest.fail(f"pytest-llmfit: {problem}", pytrace=False)
    if planned.n_cpu_moe:
        # llama-cpp-python's Llama() has no tensor buffer overrides (its params struct
        # leaves tensor_buft_overrides unused): it cannot load what this plan says.
        pytest.fail(
            f"pytest-llmfit: the llm fixture cannot load {os.path.basename(path)} with "
            f"n_cpu_moe={planned.n_cpu_moe}: llama-cpp-python's Llama() has no tensor buffer "
            "overrides (use the marker alone to plan it, or llama.cpp's --n-cpu-moe)",
            pytrace=False,
        )
    if not planned.fits:
        pytest.skip(
            f"llm fixture: {os.path.basename(path)} does not fit: "
            f"{planned.reasons[-1] if planned.reasons else planned.mode}"
        )
    settings = planned.footprint.settings
    key = (path, settings, planned.n_gpu_layers, planned.tensor_split)
    loaded = llmfit_models.get(key)
    fresh = loaded is None
    if loaded is None:
        llmfit_models.evict()  # free the old model before the new one needs the memory
        try:
            from ..sources import model_file

            # a remote model (hf://, https://) is downloaded once per machine, xdist-safe
            loaded = load_planned(model_file(path, state.source_settings()), planned)
        except LlmfitError as error:
            pytest.fail(f"pytest-llmfit: {error}", pytrace=False)
        llmfit_models.put(key, loaded)
    misses = compare(planned.footprint, loaded.allocations, tolerance=ESTIMATE_TOLERANCE)
    record = state.measured.setdefault(request.node.nodeid, {})
    record["llama_cpp"] = {
        "allocations": loaded.allocations.to_dict(),
        "estimate": {m.component: m.estimated for m in misses},
        "miss_bytes": {m.component: m.miss_bytes for m in misses},
        "flagged": [m.component for m in misses if m.flagged],
        "n_gpu_layers_planned": planned.n_gpu_layers,
        "n_gpu_layers_used": loaded.n_gpu_layers_used,
        "attempts": len(loaded.attempts),
        "load_seconds": round(loaded.load_seconds, 3),
    }
    record["predicted_tokens_per_second"] = planned.tokens_per_second
    record["predicted_prompt_tokens_per_second"] = planned.prompt_tokens_per_second
    record["plan_mode"] = planned.mode
    request.node.stash[planned_key] = planned
    if fresh:
        if loaded.n_gpu_layers_used < planned.n_gpu_layers:
            warnings.warn(
                f"pytest-llmfit: {os.path.basename(path)} loaded with "
                f"{loaded.n_gpu_layers_used} of the {planned.n_gpu_layers} planned GPU "
                f"layers after {len(loaded.attempts)} attempts: the estimate was too optimistic",
                LlmfitEstimateWarning,
                stacklevel=2,
            )
        for miss in misses:
            if miss.flagged:
                warnings.warn(
                    f"pytest-llmfit: {os.path.basename(path)}: {miss.describe()}",
                    LlmfitEstimateWarning,
                    stacklevel=2,
                )
    return loaded.llm


@pytest.fixture
def llm_benchmark(request: pytest.FixtureRequest, llm: Any, llmfit_models: ModelPool) -> Any:
    """Measure this test's model: ``result = llm_benchmark()`` times prompt processing and
    decode over a fixed prompt (a warm-up, then repeats; medians and spread) and records
    the decode tokens/s in the report beside the predicted speed."""
    from ..loading import measure_speed

    state = request.config.stash[state_key]

    def run(
        *, prompt_tokens: int = 64, gen_tokens: int = 32, repeats: int = 3, warmup: int = 1
    ) -> SpeedResult:
        result = measure_speed(
            llm, prompt_tokens=prompt_tokens, gen_tokens=gen_tokens, repeats=repeats, warmup=warmup
        )
        record = state.measured.setdefault(request.node.nodeid, {})
        record["measured_tokens_per_second"] = round(result.decode_tps, 2)
        record["measured_prompt_tokens_per_second"] = round(result.prompt_tps, 2)
        record["speed"] = result.to_dict()
        planned = request.node.stash.get(planned_key, None)
        if planned is not None and planned.speed is not None:
            at = planned.speed.at(prompt_tokens)
            record["predicted_prompt_tokens_per_second"] = at.prompt_tokens_per_second
            ttft = at.time_to_first_token()
            record["predicted_ttft_s"] = round(ttft, 4) if ttft is not None else None
        predicted = record.get("predicted_tokens_per_second")
        if predicted and record.get("plan_mode") == "cpu":
            record["calibration_ratio"] = result.decode_tps / predicted
        return result

    return run


class LlmfitEngine:
    """The engine bound to this session's host and settings (the ``llmfit`` fixture)."""

    def __init__(self, state: LlmfitState, root: str) -> None:
        self._state = state
        self._root = root

    @property
    def host(self) -> Host:
        return self._state.get_host()

    def model_path(self, model: str | os.PathLike[str]) -> str:
        """Where a model name resolves, exactly as requires_model resolves it."""
        from .requirements import resolve_model_path

        return resolve_model_path(os.fspath(model), self._state.settings.models_dir, self._root)

    def estimate(self, model: str | os.PathLike[str], **settings: Any) -> Footprint:
        from ..engine.context import Settings
        from ..engine.estimate import estimate

        return estimate(self._state.cache.header(self.model_path(model)), Settings(**settings))

    def plan(self, model: str | os.PathLike[str], **settings: Any) -> Plan:
        """The plan, with its ways out in ``suggestions`` when it does not run on GPU."""
        from ..engine.advise import with_suggestions
        from ..engine.context import Settings

        return with_suggestions(
            self._state.cache.header(self.model_path(model)),
            self.host,
            Settings(**settings),
            headroom=self._state.settings.headroom,
        )

    def fits(self, size: int | str, *, per_device: bool = False) -> bool:
        from ..units import parse_size

        need = parse_size(size, source="llmfit.fits()")
        gpus = [
            g.memory_total if self._state.settings.basis == "total" else g.memory_free
            for g in self.host.gpus
        ]
        have = max(gpus, default=0) if per_device else sum(gpus)
        return bool(gpus) and need <= have


@pytest.fixture(scope="session")
def llmfit_host(pytestconfig: pytest.Config) -> Host:
    """This session's host snapshot: detected once, or simulated by --llmfit-hardware."""
    return pytestconfig.stash[state_key].get_host()


@pytest.fixture(scope="session")
def llmfit(pytestconfig: pytest.Config) -> LlmfitEngine:
    """The fit engine bound to this session: ``llmfit.plan(path, n_ctx=8192)``,
    ``llmfit.fits("24GB")``, ``llmfit.host``."""
    return LlmfitEngine(pytestconfig.stash[state_key], str(pytestconfig.rootpath))


@pytest.fixture
def llmfit_record(request: pytest.FixtureRequest) -> Any:
    """Record what this test measured into its llmfit report row::

    def test_speed(llmfit_record):
        llmfit_record(tokens_per_second=41.7)
    """

    state = request.config.stash[state_key]

    def record(*, tokens_per_second: float | None = None, **extra: Any) -> None:
        values = state.measured.setdefault(request.node.nodeid, {})
        if tokens_per_second is not None:
            values["measured_tokens_per_second"] = float(tokens_per_second)
        values.update(extra)

    return record
