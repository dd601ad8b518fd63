"""Encoder family: bidirectional models that llama.cpp gives no memory at all.

``create_memory`` returns nullptr for these (src/llama-model.cpp:2358-2374): no KV cache and
no recurrent state, whatever n_ctx is; attention runs over the ubatch itself
(``build_attn_inp_no_cache``, llama-graph.cpp:2757-2781). They still reserve an
``n_vocab``-wide logits buffer (llama-context.cpp:2116-2190) and a compute buffer.
token_embd_norm (the BERT family, ModernBERT) is created with layer 0's buffer (bid 0);
cls*, dense_2/3 and enc.output_norm go with the output layer (llama-arch.cpp:728-742).

Not here, because llama.cpp does allocate their (unused) KV cache: llama-embed (dense.py)
and t5encoder (unknown: its blocks are enc.blk.N).
"""

from __future__ import annotations

from .rules import IF_WINDOW, NONE, ArchRule, SwaRule

_SRC = "src/llama-model.cpp:2358-2374 (create_memory returns nullptr)"
_BERT_LAYER0 = ("token_embd_norm.",)
_HEADS = ("cls.", "cls_", "dense_2.", "dense_3.", "enc.output_norm.")

RULES: tuple[ArchRule, ...] = (
    *(
        ArchRule(
            arch,
            "encoder",
            f"src/models/{src}.cpp; {_SRC}",
            memory=NONE,
            layer0_tensors=_BERT_LAYER0,
            output_tensors=_HEADS,
            output_matrix=False,
        )
        for arch, src in (
            ("bert", "bert"),
            ("nomic-bert", "nomic-bert"),
            ("nomic-bert-moe", "nomic-bert-moe"),
            ("jina-bert-v2", "jina-bert-v2"),
            ("jina-bert-v3", "jina-bert-v3"),
            ("neo-bert", "neo-bert"),
            ("eurobert", "eurobert"),
        )
    ),
    # modern-bert.cpp:4-11: a window > 0 adds a symmetric window mask (no cache).
    ArchRule(
        "modern-bert",
        "encoder",
        f"src/models/modern-bert.cpp:4-11; {_SRC}",
        memory=NONE,
        swa=SwaRule(pattern=3, dense_first=True, when=IF_WINDOW, kind="symmetric"),
        layer0_tensors=_BERT_LAYER0,
        output_tensors=_HEADS,
        output_matrix=False,
    ),
    # gemma-embedding.cpp:4-10: symmetric window on 5 of 6 layers, causal_attn = false.
    ArchRule(
        "gemma-embedding",
        "encoder",
        f"src/models/gemma-embedding.cpp:4-10; {_SRC}",
        memory=NONE,
        swa=SwaRule(pattern=6, kind="symmetric"),
        output_tensors=_HEADS,
    ),
    # Diffusion language models: bidirectional, no cache either.
    *(
        ArchRule(arch, "encoder", f"src/models/{arch}.cpp; {_SRC}", memory=NONE)
        for arch in ("dream", "llada", "llada-moe", "rnd1")
    ),
)
