"""The catalog of shape twins: every ModelShape of the CATALOG_MODULES, by id.

The catalog is built on first use, so importing it costs nothing. A catalog module may
expose its shapes as ``SHAPES`` or ``MODELS`` (a sequence or a mapping of ModelShape);
ModelShape objects bound to other module-level names are collected too. A module that
does not exist (yet) is skipped.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping

from ..errors import ConfigError
from .spec import ModelShape

CATALOG_MODULES = ("dense", "moe", "recurrent", "decoders", "swa", "mla", "hybrid", "encoder")


def _shapes_of(module: object) -> list[ModelShape]:
    found: list[ModelShape] = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, ModelShape):
            found.append(value)
        elif isinstance(value, Mapping):
            found.extend(v for v in value.values() if isinstance(v, ModelShape))
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if isinstance(v, ModelShape))
    return found


def _load() -> dict[str, ModelShape]:
    models: dict[str, ModelShape] = {}
    for mod_name in CATALOG_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{mod_name}":
                continue
            raise
        for shape in _shapes_of(module):
            other = models.get(shape.id)
            if other is not None and other is not shape:
                raise ValueError(f"shape twin id {shape.id!r} is defined twice ({mod_name})")
            models[shape.id] = shape
    return dict(sorted(models.items()))


class _Registry(Mapping[str, ModelShape]):
    """A read-only mapping id -> ModelShape, filled on first access."""

    def __init__(self) -> None:
        self._models: dict[str, ModelShape] | None = None

    def _data(self) -> dict[str, ModelShape]:
        if self._models is None:
            self._models = _load()
        return self._models

    def __getitem__(self, key: str) -> ModelShape:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return f"MODELS({', '.join(self._data())})"


MODELS: Mapping[str, ModelShape] = _Registry()


def get_model(model_id: str, *, source: str | None = None) -> ModelShape:
    """The ModelShape with this id; a ConfigError naming close matches otherwise."""
    key = str(model_id).strip().lower()
    if key in MODELS:
        return MODELS[key]
    close = difflib.get_close_matches(key, list(MODELS), n=5, cutoff=0.5)
    if not close:
        close = [m for m in MODELS if key and (key in m or m.split("-")[0] in key)][:5]
    hint = f"did you mean {', '.join(close)}?" if close else None
    raise ConfigError(
        model_id,
        f"a known shape twin ({len(MODELS)} models, e.g. {', '.join(list(MODELS)[:4])})",
        source=source,
        hint=hint,
    )
