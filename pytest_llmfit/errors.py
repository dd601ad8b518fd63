"""The errors pytest-llmfit raises: each renders as one line a user can act on.

Every message names the offending value, where it came from (a marker, an option, a
file and offset) and what would have been accepted, so a bad input never needs a
traceback to be understood.
"""

from __future__ import annotations


class LlmfitError(Exception):
    """Base class: ``str(error)`` is the whole, single-line explanation."""


class ConfigError(LlmfitError, ValueError):
    """A value given by the user (size, spec string, option, marker argument) is wrong.

    >>> str(ConfigError("16 gigs", "a size like '24GB' or '16GiB'", source="marker requires_vram"))
    "'16 gigs' is not a size like '24GB' or '16GiB' (marker requires_vram)"
    """

    def __init__(
        self,
        value: object,
        expected: str,
        *,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.value = value
        self.expected = expected
        self.source = source
        self.hint = hint
        message = f"{value!r} is not {expected}"
        if hint:
            message += f"; {hint}"
        if source:
            message += f" ({source})"
        super().__init__(message)


class GGUFError(LlmfitError):
    """A file is missing, is not GGUF, or its header is corrupt or hostile."""

    def __init__(self, path: str, reason: str, *, offset: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.offset = offset
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{path}: {reason}{where}")


class SourceError(GGUFError):
    """A model could not be read from where it lives (a server, the Hugging Face Hub,
    Ollama's store, the header cache): ``str(error)`` names the model, then what happened."""


class ProbeError(LlmfitError):
    """A hardware probe could not read what it needs (turned into a warning by callers)."""


class ProfileError(ConfigError):
    """A hardware profile name, spec string or profile file is wrong."""
