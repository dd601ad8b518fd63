"""Write the seed corpus of fuzz/fuzz_gguf.py: small valid GGUF headers, one per file.

    python fuzz/make_corpus.py [OUT_DIR]        # default fuzz/corpus/, replaced in full

The seeds are deterministic (same bytes on every run) and together a few tens of KB. They
cover what the reader has code for, so the fuzzer starts from inputs that reach deep:
every scalar type, string and numeric arrays (short, past the 256-string fast path, past the
materialisation limit), nested arrays, tensors of 1-4 dimensions and several ggml types,
versions 2 and 3, a non-default alignment, header-only stubs, a file with no tensors,
shard 1 of a split model (the target keeps a valid shard 2 next to it, see
``fuzz_gguf.SHARD_2``), and one file written by the ``gguf`` package itself (when it is
installed) so the seeds do not all share one builder's habits.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import gguf_bytes as gb  # noqa: E402  (tests/gguf_bytes.py)

SPLIT_COUNT = 2


def _tokens(n: int) -> list[str]:
    return [f"t{i}" if i % 7 else f"<|tok_{i}|>" for i in range(n)]


def split_shard(no: int, count: int = SPLIT_COUNT, *, with_data: bool = False) -> bytes:
    """Shard ``no`` (0-based) of a ``count``-file split model, as llama.cpp's gguf-split
    writes it: split.no / split.count / split.tensors.count, tensors divided between shards."""
    tensors = [
        gb.Tensor("token_embd.weight", (64, 5), gb.F16),
        gb.Tensor("blk.0.attn_q.weight", (64, 64), gb.Q8_0),
        gb.Tensor("blk.0.ffn_up.weight", (64, 128), gb.Q4_0),
        gb.Tensor("output.weight", (256, 5), gb.Q6_K),
    ]
    mine = [t for i, t in enumerate(tensors) if i % count == no]
    kvs = [
        gb.kv("split.no", gb.UINT16, no),
        gb.kv("split.count", gb.UINT16, count),
        gb.kv("split.tensors.count", gb.INT32, len(tensors)),
    ]
    if no == 0:
        kvs = [
            gb.kv("general.architecture", gb.STRING, "llama"),
            gb.kv("llama.block_count", gb.UINT32, 1),
            gb.kv("llama.embedding_length", gb.UINT32, 64),
            *kvs,
        ]
    return gb.build(kvs, mine, with_data=with_data).data


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    out["small_full.gguf"] = gb.small_model().data
    out["small_stub.gguf"] = gb.small_model(with_data=False).data
    out["small_v2.gguf"] = gb.small_model(version=2, with_data=False).data
    out["small_align64.gguf"] = gb.small_model(alignment=64, with_data=False).data
    out["small_align1.gguf"] = gb.small_model(alignment=1).data
    out["empty.gguf"] = gb.build().data
    out["kv_only.gguf"] = gb.build([gb.kv("general.architecture", gb.STRING, "llama")]).data

    scalars = [
        gb.kv("s.u8", gb.UINT8, 200),
        gb.kv("s.i8", gb.INT8, -100),
        gb.kv("s.u16", gb.UINT16, 60000),
        gb.kv("s.i16", gb.INT16, -30000),
        gb.kv("s.u32", gb.UINT32, 4_000_000_000),
        gb.kv("s.i32", gb.INT32, -2_000_000_000),
        gb.kv("s.f32", gb.FLOAT32, 1.5),
        gb.kv("s.bool", gb.BOOL, True),
        gb.kv("s.str", gb.STRING, "hello \u00e9\u4e16"),
        gb.kv("s.u64", gb.UINT64, 2**63 + 5),
        gb.kv("s.i64", gb.INT64, -(2**62)),
        gb.kv("s.f64", gb.FLOAT64, -2.25),
    ]
    out["all_scalars.gguf"] = gb.build(scalars, [gb.Tensor("a", (32,), gb.F32)]).data

    arrays = [
        gb.kv(f"a.{gb.CODES.get(t, 'x')}{t}", gb.ARRAY, (t, [1, 0, 1]))
        for t in (gb.UINT8, gb.INT8, gb.UINT16, gb.INT16, gb.UINT32, gb.INT32, gb.UINT64, gb.INT64)
    ]
    arrays += [
        gb.kv("a.f32", gb.ARRAY, (gb.FLOAT32, [0.5, -1.0])),
        gb.kv("a.f64", gb.ARRAY, (gb.FLOAT64, [0.25])),
        gb.kv("a.bool", gb.ARRAY, (gb.BOOL, [True, False])),
        gb.kv("a.empty", gb.ARRAY, (gb.UINT32, [])),
        gb.kv("a.nested", gb.ARRAY, (gb.ARRAY, [(gb.INT32, [1, 2]), (gb.STRING, ["x", "yz"])])),
        gb.kv(
            "a.deep",
            gb.ARRAY,
            (gb.ARRAY, [(gb.ARRAY, [(gb.ARRAY, [(gb.UINT8, [7])])])]),
        ),
    ]
    out["arrays.gguf"] = gb.build(arrays).data

    # 600 short strings: two 256-string regular-expression runs plus a one-by-one tail
    vocab = [
        gb.kv("general.architecture", gb.STRING, "llama"),
        gb.kv("tokenizer.ggml.tokens", gb.ARRAY, (gb.STRING, _tokens(600))),
        gb.kv("tokenizer.ggml.merges", gb.ARRAY, (gb.STRING, ["a b", "x" * 70, ""])),
    ]
    out["vocab600.gguf"] = gb.build(
        vocab, [gb.Tensor("token_embd.weight", (256, 600), gb.Q4_K)], with_data=False
    ).data
    # a numeric array past MAX_MATERIALISED (16384): kept as a SkippedArray
    out["skipped_array.gguf"] = gb.build(
        [gb.kv("tokenizer.ggml.token_type", gb.ARRAY, (gb.UINT8, [1] * 16400))]
    ).data

    shapes = [
        gb.Tensor("t1", (32,), gb.F32),
        gb.Tensor("t2", (32, 3), gb.F16),
        gb.Tensor("t3", (32, 2, 2), gb.Q8_0),
        gb.Tensor("t4", (256, 1, 1, 2), gb.Q4_K),
        gb.Tensor("t0", (), gb.F32),
    ]
    out["tensor_dims.gguf"] = gb.build([], shapes, with_data=False).data
    out["split_00001.gguf"] = split_shard(0)
    out["split_00002.gguf"] = split_shard(1)
    # shard 1 naming a tensor that the target's shard 2 also holds
    out["split_duplicate.gguf"] = gb.build(
        [gb.kv("split.no", gb.UINT16, 0), gb.kv("split.count", gb.UINT16, SPLIT_COUNT)],
        [gb.Tensor("output.weight", (256, 5), gb.Q6_K)],
        with_data=False,
    ).data

    writer = gguf_package_seed()
    if writer is not None:
        out["gguf_package.gguf"] = writer
    return out


def gguf_package_seed() -> bytes | None:
    """A small header written by the gguf package's own GGUFWriter (None when absent)."""
    try:
        import gguf
        import numpy as np
    except ImportError:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.gguf"
        w = gguf.GGUFWriter(str(path), "qwen2")
        w.add_block_count(1)
        w.add_context_length(2048)
        w.add_embedding_length(32)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_tokenizer_model("gpt2")
        w.add_token_list([f"w{i}" for i in range(40)])
        w.add_token_scores([float(i) for i in range(40)])
        w.add_tensor("token_embd.weight", np.zeros((40, 32), dtype=np.float16))
        w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else HERE / "corpus"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    total = 0
    for name, data in sorted(seeds().items()):
        (out_dir / name).write_bytes(data)
        total += len(data)
    print(f"wrote {len(seeds())} seeds, {total} bytes, to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
