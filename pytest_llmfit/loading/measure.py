"""Measure a loaded model's speed: prompt processing and decode tokens/s, and peak RSS."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .load import check_int
from .logs import capture_llama_log


@dataclass(frozen=True)
class SpeedResult:
    """Prompt processing and decode speed over several repeats (medians, and the spread)."""

    prompt_tokens: int
    gen_tokens: int
    repeats: int
    prompt_tps: float  # median prompt-processing tokens/s
    decode_tps: float  # median decode tokens/s
    ttft_s: float  # median time to first token: the prompt's evaluation
    prompt_tps_range: tuple[float, float]  # (min, max) over repeats
    decode_tps_range: tuple[float, float]
    prompt_tps_samples: tuple[float, ...]
    decode_tps_samples: tuple[float, ...]
    peak_rss: int | None  # peak host RSS while measuring (VmHWM after a reset, else ru_maxrss)
    n_threads: int | None = None

    @property
    def decode_spread(self) -> float:
        """(max - min) / median of the decode speed: how steady the measurement was."""
        lo, hi = self.decode_tps_range
        return (hi - lo) / self.decode_tps if self.decode_tps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "gen_tokens": self.gen_tokens,
            "repeats": self.repeats,
            "prompt_tps": self.prompt_tps,
            "decode_tps": self.decode_tps,
            "ttft_s": self.ttft_s,
            "prompt_tps_range": list(self.prompt_tps_range),
            "decode_tps_range": list(self.decode_tps_range),
            "peak_rss": self.peak_rss,
            "n_threads": self.n_threads,
        }


_SPEED_TEXT = (
    "The quick brown fox jumps over the lazy dog while the tests measure how fast a model "
    "reads a prompt and writes its answer, one token at a time. "
)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss(reset_worked: bool) -> int | None:
    if reset_worked:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except Exception:
        return None


def _prompt(llm: Any, n: int) -> list[int]:
    text = _SPEED_TEXT
    tokens: list[int] = list(llm.tokenize(text.encode(), add_bos=True))
    while len(tokens) < n:
        text += _SPEED_TEXT
        tokens = list(llm.tokenize(text.encode(), add_bos=True))
    return tokens[:n]


def measure_speed(
    llm: Any,
    *,
    prompt_tokens: int = 64,
    gen_tokens: int = 32,
    repeats: int = 3,
    warmup: int = 1,
) -> SpeedResult:
    """Prompt processing and decode tokens/s of a loaded ``llama_cpp.Llama``.

    Each repeat clears the context (``llm.reset()``), evaluates ``prompt_tokens`` tokens in
    one ``llm.eval`` (timed: prompt speed and time to first token, whose logits are then
    ready), then ``gen_tokens`` single-token evals (timed: decode speed). The decoded tokens
    are taken from the prompt rather than sampled, so the figure is the model's forward pass
    without sampling; a sampler adds well under a millisecond per token. ``warmup`` untimed
    repeats come first (page faults, thread pool start-up). Medians are reported, with the
    min/max over repeats and the peak RSS of the process while measuring.
    """
    check_int(prompt_tokens, "prompt_tokens", 1)
    check_int(gen_tokens, "gen_tokens", 1)
    check_int(repeats, "repeats", 1)
    check_int(warmup, "warmup", 0)
    n_ctx = int(llm.n_ctx())
    if prompt_tokens + gen_tokens > n_ctx:
        raise ConfigError(
            prompt_tokens + gen_tokens,
            f"a token count within the context (n_ctx={n_ctx})",
            source="prompt_tokens + gen_tokens, measure_speed",
        )
    prompt = _prompt(llm, prompt_tokens)
    follow = [
        prompt[1 + i % (len(prompt) - 1)] if len(prompt) > 1 else prompt[0]
        for i in range(gen_tokens)
    ]
    reset = _reset_peak_rss()
    pp: list[float] = []
    tg: list[float] = []
    ttft: list[float] = []
    with capture_llama_log():
        for i in range(warmup + repeats):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(prompt)
            t1 = time.perf_counter()
            for tok in follow:
                llm.eval([tok])
            t2 = time.perf_counter()
            if i >= warmup:
                ttft.append(t1 - t0)
                pp.append(len(prompt) / max(t1 - t0, 1e-9))
                tg.append(gen_tokens / max(t2 - t1, 1e-9))
        llm.reset()
    return SpeedResult(
        prompt_tokens=len(prompt),
        gen_tokens=gen_tokens,
        repeats=repeats,
        prompt_tps=statistics.median(pp),
        decode_tps=statistics.median(tg),
        ttft_s=statistics.median(ttft),
        prompt_tps_range=(min(pp), max(pp)),
        decode_tps_range=(min(tg), max(tg)),
        prompt_tps_samples=tuple(pp),
        decode_tps_samples=tuple(tg),
        peak_rss=_peak_rss(reset),
        n_threads=getattr(llm, "n_threads", None),
    )
