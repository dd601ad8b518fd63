"""Time read_gguf against gguf-py's GGUFReader on a Llama 3.1 405B-shaped header.

Not a test: run ``python benchmarks/bench_header.py [--runs N] [--keep DIR]``. It writes a
shape twin (1,137 tensors, a 128,256-token vocabulary with token types and scores; the data
section left as a sparse hole), then prints the median of N runs of each reader and the ratio.
Uses ``pytest_llmfit.twins.write_twin`` when that module provides it, otherwise builds the
header here with the ``gguf`` package's GGUFWriter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmfit.engine.gguf import read_gguf

N_VOCAB = 128_256
N_LAYER = 126
N_EMBD = 16_384
N_HEAD_KV = 8
HEAD_DIM = 128
N_FF = 53_248


def _token(i: int) -> str:
    # lengths 1-16 like a BPE vocabulary; every token distinct
    text = f"{i:x}"
    return text + "abcdefghijklmnop"[: (i * 7) % 13]


def build_405b_header(path: Path) -> str:
    """Write a Llama 3.1 405B Q3_K_M-like twin with GGUFWriter; return what was built."""
    import gguf  # the optional dependency; only this benchmark path needs it
    import numpy as np

    q = gguf.GGMLQuantizationType
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Llama 3.1 405B (shape twin)")
    writer.add_block_count(N_LAYER)
    writer.add_context_length(131_072)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_EMBD // HEAD_DIM)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_freq_base(500_000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(12)  # MOSTLY_Q3_K_M
    writer.add_vocab_size(N_VOCAB)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list([_token(i) for i in range(N_VOCAB)])
    writer.add_token_types([1] * N_VOCAB)
    writer.add_token_scores([0.0] * N_VOCAB)
    writer.add_bos_token_id(128_000)
    writer.add_eos_token_id(128_009)

    def add(name: str, shape: tuple[int, ...], kind: gguf.GGMLQuantizationType) -> None:
        # shape in numpy order (rows, cols); GGUFWriter reverses it into ggml order and wants
        # the row length in bytes for a raw (uint8) tensor
        block, size = gguf.GGML_QUANT_SIZES[kind]
        byte_shape = (*shape[:-1], shape[-1] // block * size)
        n_bytes = 1
        for d in byte_shape:
            n_bytes *= d
        writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), n_bytes, kind)

    add("token_embd.weight", (N_VOCAB, N_EMBD), q.Q3_K)
    kv = N_HEAD_KV * HEAD_DIM
    for i in range(N_LAYER):
        attn_v = q.Q5_K if i < 4 else q.Q4_K
        add(f"blk.{i}.attn_norm.weight", (N_EMBD,), q.F32)
        add(f"blk.{i}.attn_q.weight", (N_EMBD, N_EMBD), q.Q3_K)
        add(f"blk.{i}.attn_k.weight", (kv, N_EMBD), q.Q3_K)
        add(f"blk.{i}.attn_v.weight", (kv, N_EMBD), attn_v)
        add(f"blk.{i}.attn_output.weight", (N_EMBD, N_EMBD), q.Q4_K)
        add(f"blk.{i}.ffn_norm.weight", (N_EMBD,), q.F32)
        add(f"blk.{i}.ffn_gate.weight", (N_FF, N_EMBD), q.Q3_K)
        add(f"blk.{i}.ffn_up.weight", (N_FF, N_EMBD), q.Q3_K)
        add(f"blk.{i}.ffn_down.weight", (N_EMBD, N_FF), q.Q5_K if i < 4 else q.Q4_K)
    add("output_norm.weight", (N_EMBD,), q.F32)
    add("output.weight", (N_VOCAB, N_EMBD), q.Q6_K)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    # Make it a shape twin: a sparse data section of the true size, so GGUFReader can map it.
    model = read_gguf(path)
    last = model.tensors[-1]
    with open(path, "r+b") as handle:
        handle.truncate(model.data_offset + last.offset + last.nbytes)
    return "GGUFWriter (built here)"


def make_twin(path: Path, *, builtin: bool = False) -> str:
    if builtin:
        return build_405b_header(path)
    try:
        from pytest_llmfit.twins import write_twin
    except ImportError:
        return build_405b_header(path)
    try:
        write_twin("llama-3.1-405b", path, quant="Q3_K_M")
    except Exception as error:  # a twin catalog still in progress: fall back, say why
        print(f"write_twin failed ({error}); building the header here", file=sys.stderr)
        return build_405b_header(path)
    return "pytest_llmfit.twins.write_twin('llama-3.1-405b', quant='Q3_K_M')"


def timings_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, fastest) of ``runs`` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of read_gguf (median)")
    parser.add_argument("--reader-runs", type=int, default=3, help="runs of GGUFReader (0: none)")
    parser.add_argument("--keep", type=Path, help="write the twin into this folder and keep it")
    parser.add_argument(
        "--builtin", action="store_true", help="build the header here even if twins exists"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "llama-3.1-405b-Q3_K_M.gguf"
        source = make_twin(path, builtin=args.builtin)
        model = read_gguf(path)
        header_bytes = model.data_offset
        print(f"twin:       {path.name} via {source}")
        print(
            f"header:     {len(model.tensors)} tensors, vocabulary {model.vocab_size}, "
            f"{len(model.metadata)} keys, {header_bytes / 1e6:.1f} MB of header, "
            f"{model.file_size / 1e9:.1f} GB on paper"
        )
        ours, ours_min = timings_ms(lambda: read_gguf(path), args.runs)
        print(f"read_gguf:  {ours:8.1f} ms  (median of {args.runs}; fastest {ours_min:.1f} ms)")
        try:
            import gguf
        except ImportError:
            print("GGUFReader: gguf package not installed, no comparison")
            return 0
        if args.reader_runs > 0:
            theirs, _ = timings_ms(lambda: gguf.GGUFReader(str(path)), args.reader_runs)
            print(f"GGUFReader: {theirs:8.1f} ms  (median of {args.reader_runs})")
            print(f"ratio:      {theirs / ours:8.1f}x faster")
        if args.keep is None:
            os.remove(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
