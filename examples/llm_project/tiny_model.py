"""A tiny but real Llama-architecture GGUF that llama.cpp loads and generates from.

Two transformer blocks, 64-wide embeddings, a 268-token SentencePiece-style vocabulary
(byte fallback, so any text tokenizes) and seeded random F32 weights: about 440 KB, written
in well under a second, loaded and run by llama-cpp-python in milliseconds. It talks
nonsense, but every step of a real generation happens: tokenizing, the forward pass,
sampling, detokenizing. That is what a CI smoke test of the loading code needs.

    python tiny_model.py models/tiny-llama-f32.gguf

Needs the ``gguf`` and ``numpy`` packages (``pip install pytest-llmfit[gguf]``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Byte-fallback tokens first (the SPM layout llama.cpp expects), then a few whole words.
_SPECIAL = ("<unk>", "<s>", "</s>")
_WORDS = ("\u2581the", "\u2581a", "\u2581hello", "\u2581world", "\u2581", "e", "t", "a", "o")


def write_tiny_llama(
    path: str | os.PathLike[str],
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_ctx_train: int = 2048,
    seed: int = 0,
) -> Path:
    """Write the tiny model to ``path`` (atomically) and return the path."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    token_type = gguf.TokenType
    tokens = [t.encode() for t in _SPECIAL] + [f"<0x{i:02X}>".encode() for i in range(256)]
    types = [token_type.UNKNOWN, token_type.CONTROL, token_type.CONTROL]
    types += [token_type.BYTE] * 256
    tokens += [w.encode() for w in _WORDS]
    types += [token_type.NORMAL] * len(_WORDS)
    n_vocab = len(tokens)
    head_dim = n_embd // n_head

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(os.fspath(tmp), "llama")
    try:
        writer.add_name("tiny-llama (pytest-llmfit example)")
        writer.add_context_length(n_ctx_train)
        writer.add_embedding_length(n_embd)
        writer.add_block_count(n_layer)
        writer.add_feed_forward_length(n_ff)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_head_kv)
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(10000.0)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_vocab_size(n_vocab)
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores([0.0] * n_vocab)
        writer.add_token_types(types)
        writer.add_unk_token_id(0)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)

        def weight(name: str, rows: int, cols: int) -> None:
            # numpy order: (rows, cols) is ggml's [cols, rows], as llama.cpp expects.
            writer.add_tensor(name, (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32))

        def norm(name: str) -> None:
            writer.add_tensor(name, np.ones(n_embd, dtype=np.float32))

        weight("token_embd.weight", n_vocab, n_embd)
        for i in range(n_layer):
            norm(f"blk.{i}.attn_norm.weight")
            weight(f"blk.{i}.attn_q.weight", n_embd, n_embd)
            weight(f"blk.{i}.attn_k.weight", n_head_kv * head_dim, n_embd)
            weight(f"blk.{i}.attn_v.weight", n_head_kv * head_dim, n_embd)
            weight(f"blk.{i}.attn_output.weight", n_embd, n_embd)
            norm(f"blk.{i}.ffn_norm.weight")
            weight(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
            weight(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
            weight(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
        norm("output_norm.weight")
        weight("output.weight", n_vocab, n_embd)

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tiny_model.py OUT.gguf")
    print(write_tiny_llama(sys.argv[1]))
