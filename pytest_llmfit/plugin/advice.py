"""The ways out of a skipped model test: the end of its reason and the report's alternatives.

Role: a test whose model does not fit is skipped with a reason that ends with the best way
out (``...; short by 114.7 GB; fits as IQ1_S with a q8_0 KV cache at n_ctx 2048 or on 1x
b300``), and its record's plan carries the best alternatives, so the JSON and Markdown
reports (and a CI summary) say what would make it run. Advice is computed once per model,
host and settings in a session (:class:`~pytest_llmfit.engine.advise.AdviceCache`), and
imported only when a model does not fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..engine.context import Settings
from ..engine.gguf import GGUFFile
from ..engine.plan import Plan
from ..engine.speed import SpeedModel
from ..errors import LlmfitError
from ..hardware.types import Host

if TYPE_CHECKING:
    from ..engine.advise import AdviceCache

IN_REPORT = 5  # alternatives kept in a test's record


class SessionAdvice:
    """The advisor's caches for one session (or one xdist worker)."""

    def __init__(self) -> None:
        self._cache: AdviceCache | None = None

    def ways_out(
        self,
        model: GGUFFile,
        host: Host,
        settings: Settings,
        result: Plan,
        headroom: int,
        speed_model: SpeedModel,
    ) -> tuple[str, list[dict[str, Any]]]:
        """``("fits as ... or on ...", [alternative dicts])`` for a plan that does not fit;
        ``("", [])`` when there is nothing to say (or the advisor cannot size the model)."""
        from ..engine.advise import AdviceCache, advise

        if self._cache is None:
            self._cache = AdviceCache()
        try:
            advice = advise(
                model,
                host,
                settings,
                headroom=headroom,
                speed_model=speed_model,
                base=result,
                cache=self._cache,
            )
        except LlmfitError:
            return "", []  # degrade: the decision stands without its ways out
        return advice.ways_out(), [a.to_dict() for a in advice.alternatives[:IN_REPORT]]
