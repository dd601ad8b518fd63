"""Ways out by model size: a smaller member of the same family, at the same quantization.

Role: a model is recognised as one of the shape twins (:mod:`pytest_llmfit.twins`) by its
architecture and shapes (block count, widths, heads, experts, vocabulary), or else by its
``general.basename`` and ``general.size_label``; the family's smaller members are then
sized from their twins' tensor tables, in memory (no file is written): an f16 header as
convert_hf_to_gguf.py makes it, requantized to the question's file type by llama.cpp's
rules. The largest member reaching each level is kept (a smaller one running no better only
loses what the bigger model knows).
"""

from __future__ import annotations

import functools
import re

from ...twins.registry import MODELS
from ...twins.spec import ModelShape
from ...twins.writer import source_type
from ..ggml import GGML_TYPES_BY_NAME
from ..gguf import GGUFFile, MetadataValue, SkippedArray, TensorInfo, ValueType
from ..quantize import requantize
from .base import Alternative, Context, tier
from .search import fast_plan

KINDS: tuple[str, ...] = ("model",)

# Families of the twin catalog, largest member first.
FAMILIES: dict[str, tuple[str, ...]] = {
    "llama-3": ("llama-3.1-405b", "llama-3.1-70b", "llama-3.1-8b", "llama-3.2-3b", "llama-3.2-1b"),
    "qwen2.5": ("qwen2.5-7b", "qwen2.5-3b", "qwen2.5-0.5b"),
    "qwen3": ("qwen3-30b-a3b", "qwen3-8b", "qwen3-0.6b"),
    "gemma-2": ("gemma-2-9b", "gemma-2-2b"),
    "gemma-3": ("gemma-3-4b", "gemma-3-1b"),
    "granite-3.1": ("granite-3.1-8b", "granite-3.1-2b"),
    "gpt-oss": ("gpt-oss-120b", "gpt-oss-20b"),
    "mistral": ("mixtral-8x7b", "mistral-7b-v0.3"),
    "cohere": ("command-r-v01", "aya-expanse-8b"),
}

# The keys that tell two models of one architecture apart.
SHAPE_KEYS = (
    "block_count",
    "embedding_length",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length_mla",
    "expert_count",
    "expert_used_count",
)


def _plain(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def recognise(model: GGUFFile) -> ModelShape | None:
    """The shape twin ``model`` has the shapes of (or, failing that, the name and size
    label of), when it belongs to a family; None otherwise."""
    arch = model.architecture
    vocab = model.vocab_size
    if vocab is None:
        embd = model.tensor("token_embd.weight")
        vocab = embd.shape[1] if embd is not None and len(embd.shape) > 1 else None
    members = {member for family in FAMILIES.values() for member in family}
    candidates = [MODELS[m] for m in sorted(members) if m in MODELS and MODELS[m].arch == arch]
    same = [
        shape
        for shape in candidates
        if shape.n_vocab == vocab
        and all(
            _plain(model.arch_value(key)) == _plain(shape.metadata.get(key)) for key in SHAPE_KEYS
        )
    ]
    if same:
        return same[0]
    basename = model.metadata.get("general.basename")
    size = model.metadata.get("general.size_label")
    if isinstance(basename, str) and isinstance(size, str) and _key(basename) and _key(size):
        for shape in candidates:
            words = {_key(word) for word in shape.title.split()}
            if _key(basename) in _key(shape.title) and _key(size) in words:
                return shape
    return None


def family_of(shape: ModelShape) -> tuple[str, tuple[str, ...]] | None:
    for name, members in FAMILIES.items():
        if shape.id in members:
            return name, members
    return None


@functools.lru_cache(maxsize=64)
def twin_header(model_id: str, ftype: str) -> GGUFFile:
    """The header of ``model_id``'s shape twin at llama-quantize file type ``ftype``, built in
    memory: the same metadata and tensor table ``pytest-llmfit twin`` writes."""
    shape = MODELS[model_id]
    metadata: dict[str, MetadataValue] = {
        "general.architecture": shape.arch,
        "general.name": shape.title,
        "general.file_type": 1,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": SkippedArray(int(ValueType.STRING), shape.n_vocab),
    }
    for key, value in shape.metadata.items():
        full = (
            key if key.startswith(("general.", "tokenizer.", "split.")) else f"{shape.arch}.{key}"
        )
        metadata[full] = tuple(value) if isinstance(value, list) else value
    tensors = []
    offset = 0
    for spec in shape.tensors():
        kind = GGML_TYPES_BY_NAME[source_type(spec).lower()]
        info = TensorInfo(spec.name, spec.shape, kind.id, offset)
        tensors.append(info)
        offset += -(-info.nbytes // 32) * 32
    header = GGUFFile(
        path=f"twin:{model_id}",
        version=3,
        alignment=32,
        metadata=metadata,
        tensors=tuple(tensors),
        data_offset=0,
        file_size=offset,
        shards=(f"twin:{model_id}",),
        header_only=True,
    )
    return requantize(header, ftype)


def propose(ctx: Context) -> list[Alternative]:
    if tier(ctx.base) == 3 or ctx.quant is None:
        return []
    shape = recognise(ctx.model)
    family = family_of(shape) if shape is not None else None
    if shape is None or family is None:
        return []
    members = family[1]
    smaller = members[members.index(shape.id) + 1 :]
    out: list[Alternative] = []
    reached = tier(ctx.base)
    for member in smaller:
        if member not in MODELS or reached == 3:
            continue
        header = twin_header(member, ctx.quant)
        fp = ctx.estimate(header, ctx.settings, variant=f"twin:{member}")
        p = fast_plan(
            header, ctx.host, ctx.settings, fp, headroom=ctx.headroom, speed_model=ctx.speed_model
        )
        if tier(p) <= reached:
            continue
        reached = tier(p)
        out.append(
            Alternative.from_plan(
                "model",
                f"{member} {ctx.quant}",
                p,
                quality=float(fp.weights_bytes),
                quant=ctx.quant,
                model=member,
                notes=(f"{MODELS[member].title}, the {family[0]} family",),
            )
        )
    return out
