"""The prediction of one placement (:class:`Speed`): decode and prompt tokens/s, time to
first token, each device's share of a token and the line that explains it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import constants as C
from .decode import DeviceTime, decode_times
from .model import _figures
from .prompt import _gpu_prompt_seconds, _host_prompt_seconds
from .work import DeviceWork, LayerWork, SpeedInputs

if TYPE_CHECKING:  # pragma: no cover
    from ...hardware.types import Host
    from .model import SpeedModel


@dataclass(frozen=True)
class Speed:
    """Predicted speeds of one placement, and the parts they come from."""

    decode_tokens_per_second: float | None
    prompt_tokens_per_second: float | None  # over a prompt of ``prompt_tokens``
    prompt_tokens: int
    decode: tuple[DeviceTime, ...] = ()
    prompt_seconds: float | None = None  # for ``prompt_tokens``
    inputs: SpeedInputs | None = field(default=None, repr=False, compare=False)

    def at(self, prompt_tokens: int) -> Speed:
        """The same placement's prediction for a prompt of ``prompt_tokens``."""
        if self.inputs is None or prompt_tokens == self.prompt_tokens:
            return self
        return predict_inputs(self.inputs, prompt_tokens=prompt_tokens)

    def time_to_first_token(self, prompt_tokens: int | None = None) -> float | None:
        """Seconds from a prompt of ``prompt_tokens`` (this prediction's by default) to the
        first generated token: the prompt's ubatches, then one decode step."""
        speed = self if prompt_tokens is None else self.at(prompt_tokens)
        if speed.prompt_seconds is None or not speed.decode_tokens_per_second:
            return None
        return speed.prompt_seconds + 1.0 / speed.decode_tokens_per_second

    def explain(self) -> str:
        """Where a decoded token's time goes, device by device (the plan's speed line)."""
        total = sum(d.seconds for d in self.decode)
        if total <= 0:
            return ""
        parts = []
        for d in self.decode:
            text = f"{d.name} {d.seconds * 1e3:.2f} ms {d.bound}-bound: weights+KV "
            text += f"{d.stream_s * 1e3:.2f}"
            if d.compute_s > 0:
                text += f" + unpacking {d.compute_s * 1e3:.2f}"
            text += f" + fixed {d.overhead_s * 1e3:.2f}"
            parts.append(text)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decode_tokens_per_second": self.decode_tokens_per_second,
            "prompt_tokens_per_second": self.prompt_tokens_per_second,
            "prompt_tokens": self.prompt_tokens,
            "time_to_first_token_s": self.time_to_first_token(),
            "decode": [
                {
                    "device": d.name,
                    "seconds": d.seconds,
                    "stream_s": d.stream_s,
                    "compute_s": d.compute_s,
                    "overhead_s": d.overhead_s,
                    "bound": d.bound,
                }
                for d in self.decode
            ],
        }


def predict_inputs(inputs: SpeedInputs, *, prompt_tokens: int = C.DEFAULT_PROMPT_TOKENS) -> Speed:
    """Decode and prompt speed of ``inputs`` (see the module docstring)."""
    times = decode_times(inputs)
    decode = None
    if times is not None:
        total = sum(t.seconds for t in times)
        decode = round(1.0 / total, 2) if total > 0 else None
    prompt_tokens = max(int(prompt_tokens), 1)
    gpus = [d for d in inputs.devices if d.gpu is not None and d.busy]
    main_gpu = _figures(gpus[0].gpu) if gpus and gpus[0].gpu is not None else None
    prompt_s: float | None = 0.0
    for dev in inputs.devices:
        if dev.gpu is None:
            part = _host_prompt_seconds(inputs, dev, main_gpu, prompt_tokens)
        elif dev.busy:
            part = _gpu_prompt_seconds(inputs, dev, _figures(dev.gpu), prompt_tokens)
        else:
            continue
        prompt_s = None if part is None or prompt_s is None else prompt_s + part
    pp = round(prompt_tokens / prompt_s, 2) if prompt_s else None
    return Speed(
        decode_tokens_per_second=decode,
        prompt_tokens_per_second=pp,
        prompt_tokens=prompt_tokens,
        decode=times or (),
        prompt_seconds=prompt_s or None,
        inputs=inputs,
    )


def predict(
    work: Sequence[LayerWork],
    devices: Sequence[DeviceWork],
    host: Host,
    model: SpeedModel,
    *,
    cpu_seconds_per_byte: float,
    prompt_tokens: int = C.DEFAULT_PROMPT_TOKENS,
    n_ubatch: int = 512,
) -> Speed:
    """Decode and prompt speed of ``devices`` running ``work`` (see the module docstring)."""
    inputs = SpeedInputs(
        tuple(work), tuple(devices), host, model, cpu_seconds_per_byte, max(n_ubatch, 1)
    )
    return predict_inputs(inputs, prompt_tokens=prompt_tokens)
