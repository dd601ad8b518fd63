"""One settings resolver for the whole plugin, in one documented order:

    marker  >  command line  >  environment  >  ini file  >  default

The pytest glue gathers the raw values of each layer into plain mappings and calls
:func:`resolve`; every value is checked here, and a bad one raises a ConfigError that names
the value, where it came from (``--llmfit-headroom``, ``LLMFIT_HEADROOM``, ``ini
llmfit_headroom``) and what is accepted. Markers override per test through
:func:`resolve_action`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..engine.plan import DEFAULT_HEADROOM
from ..errors import ConfigError
from ..units import parse_size

NOFIT_ACTIONS = ("skip", "xfail", "fail")
OFFLOAD_ACTIONS = ("run", "xfail", "skip", "benchmark")
BASES = ("free", "total")


@dataclass(frozen=True)
class Option:
    """One setting: its names in each layer, its default and how to check it."""

    name: str  # attribute on SessionSettings
    flag: str  # command line
    env: str  # environment variable
    ini: str  # ini key
    default: Any
    help: str
    kind: str = "str"  # "str", "path", "size", "bool", "choice", "seconds"
    choices: tuple[str, ...] = ()
    env_also: tuple[str, ...] = ()  # further environment variables, read after ``env``


OPTIONS: tuple[Option, ...] = (
    Option(
        "hardware",
        "--llmfit-hardware",
        "LLMFIT_HARDWARE",
        "llmfit_hardware",
        None,
        "simulate a host: a spec such as '2x h100, ram=256GB' or a TOML profile file",
    ),
    Option(
        "catalog",
        "--llmfit-catalog",
        "LLMFIT_CATALOG",
        "llmfit_catalog",
        None,
        "a TOML file of extra hardware profiles (cards, Apple chips, runners) for "
        "--llmfit-hardware and --llmfit-expect; an entry with a built-in id replaces it "
        "(an ini path is relative to the ini file)",
        kind="path",
    ),
    Option(
        "headroom",
        "--llmfit-headroom",
        "LLMFIT_HEADROOM",
        "llmfit_headroom",
        DEFAULT_HEADROOM,
        "memory kept free on every device when planning (default 1GiB)",
        kind="size",
    ),
    Option(
        "basis",
        "--llmfit-basis",
        "LLMFIT_BASIS",
        "llmfit_basis",
        "free",
        "compare needs with free or total memory (default free)",
        kind="choice",
        choices=BASES,
    ),
    Option(
        "on_nofit",
        "--llmfit-on-nofit",
        "LLMFIT_ON_NOFIT",
        "llmfit_on_nofit",
        "skip",
        "what a test whose requirement does not fit does: skip, xfail or fail",
        kind="choice",
        choices=NOFIT_ACTIONS,
    ),
    Option(
        "on_offload",
        "--llmfit-on-offload",
        "LLMFIT_ON_OFFLOAD",
        "llmfit_on_offload",
        "run",
        "what a model test that fits only by offloading to RAM does: run, xfail, skip or benchmark",
        kind="choice",
        choices=OFFLOAD_ACTIONS,
    ),
    Option(
        "models_dir",
        "--llmfit-models-dir",
        "LLMFIT_MODELS_DIR",
        "llmfit_models_dir",
        None,
        "directory that relative requires_model paths resolve against",
    ),
    Option(
        "strict",
        "--llmfit-strict",
        "LLMFIT_STRICT",
        "llmfit_strict",
        False,
        "a hardware skip becomes a failure (for GPU runners)",
        kind="bool",
    ),
    Option(
        "expect",
        "--llmfit-expect",
        "LLMFIT_EXPECT",
        "llmfit_expect",
        None,
        "fail the session at start unless the detected host matches this spec",
    ),
    Option(
        "ledger_timeout",
        "--llmfit-ledger-timeout",
        "LLMFIT_LEDGER_TIMEOUT",
        "llmfit_ledger_timeout",
        600.0,
        "seconds a test waits under pytest-xdist for its share of GPU memory before it "
        "skips (default 600)",
        kind="seconds",
    ),
    Option(
        "http_timeout",
        "--llmfit-http-timeout",
        "LLMFIT_HTTP_TIMEOUT",
        "llmfit_http_timeout",
        30.0,
        "seconds to wait for a server's next byte when reading a remote model's header "
        "(hf://, https://; default 30)",
        kind="seconds",
    ),
    Option(
        "offline",
        "--llmfit-offline",
        "LLMFIT_OFFLINE",
        "llmfit_offline",
        False,
        "read remote models' headers from the header cache only, never the network "
        "(also HF_HUB_OFFLINE)",
        kind="bool",
        env_also=("HF_HUB_OFFLINE",),
    ),
)
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class SessionSettings:
    hardware: str | None = None
    catalog: str | None = None  # a user catalog file, extending the built-in hardware catalog
    headroom: int = DEFAULT_HEADROOM
    basis: str = "free"
    on_nofit: str = "skip"
    on_offload: str = "run"
    models_dir: str | None = None
    strict: bool = False
    expect: str | None = None
    ledger_timeout: float = 600.0
    http_timeout: float = 30.0
    offline: bool = False
    # Where each value came from, for messages: {"headroom": "LLMFIT_HEADROOM", ...}
    sources: tuple[tuple[str, str], ...] = ()

    def source_of(self, name: str) -> str:
        return dict(self.sources).get(name, "default")

    def to_dict(self) -> dict[str, Any]:
        return {
            "hardware": self.hardware,
            "catalog": self.catalog,
            "headroom": self.headroom,
            "basis": self.basis,
            "on_nofit": self.on_nofit,
            "on_offload": self.on_offload,
            "models_dir": self.models_dir,
            "strict": self.strict,
            "expect": self.expect,
            "ledger_timeout": self.ledger_timeout,
            "http_timeout": self.http_timeout,
            "offline": self.offline,
            "sources": dict(self.sources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionSettings:
        values = {k: data[k] for k in OPTIONS_BY_NAME if k in data}
        return cls(**values, sources=tuple(sorted(dict(data.get("sources", {})).items())))


def _check(option: Option, value: Any, source: str) -> Any:
    if option.kind == "size":
        return parse_size(value, source=source)
    if option.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(
            value, "a yes/no value (1, true, yes, on / 0, false, no, off)", source=source
        )
    if option.kind == "seconds":
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = -1.0
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigError(value, "a number of seconds above 0", source=source)
        return seconds
    if option.kind == "choice":
        text = str(value).strip().lower()
        if text not in option.choices:
            raise ConfigError(value, f"one of {', '.join(option.choices)}", source=source)
        return text
    text = str(value).strip()
    return text or None


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    ini: Mapping[str, Any],
) -> SessionSettings:
    """Settings from the command line (by option name, None = not given), the environment
    and the ini file, in that order of precedence, each value checked and traced."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        layers: list[tuple[Any, str]] = [
            (cli.get(option.name), f"command line {option.flag}"),
            (env.get(option.env), f"environment {option.env}"),
            *((env.get(name), f"environment {name}") for name in option.env_also),
            (ini.get(option.name), f"ini {option.ini}"),
        ]
        for raw, source in layers:
            if raw is None or (isinstance(raw, str) and raw == "" and option.kind != "bool"):
                continue
            values[option.name] = _check(option, raw, source)
            sources[option.name] = source
            break
        else:
            values[option.name] = option.default
    return SessionSettings(**values, sources=tuple(sorted(sources.items())))


def resolve_action(
    marker_value: object,
    session_value: str,
    *,
    allowed: tuple[str, ...],
    source: str,
) -> str:
    """A marker's ``on_nofit``/``on_offload`` beats the session's setting when given."""
    if marker_value is None:
        return session_value
    text = str(marker_value).strip().lower()
    if text not in allowed:
        raise ConfigError(marker_value, f"one of {', '.join(allowed)}", source=source)
    return text
