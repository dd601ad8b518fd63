"""Recurrent family: a fixed state per sequence instead of a KV cache.

``llm_arch_is_recurrent`` (llama-arch.cpp:1071-1083) gives these a
``llama_memory_recurrent`` over every layer below ``n_layer()`` (llama-model.cpp:2669-2678):
per layer and sequence an r (conv / token-shift) state of ``n_embd_r()`` and an s (ssm / wkv)
state of ``n_embd_s()`` f32 elements (llama-hparams.cpp:208-258), whatever the context size
and the cache types:

- Mamba: r = (d_conv - 1) x d_inner, s = d_state x d_inner
- Mamba-2: r = (d_conv - 1) x (d_inner + 2 n_group d_state), s = d_state x d_inner
- RWKV 6/7: r = token_shift_count (2) x n_embd, s = n_embd x wkv.head_size

RWKV's token_embd_norm is created with layer 0 (bid 0, rwkv6.cpp:32-33).
"""

from __future__ import annotations

from .rules import ALL_LAYERS, RECURRENT, ArchRule

_SRC = "llama-arch.cpp:1071-1083; llama-model.cpp:2669-2678"

RULES: tuple[ArchRule, ...] = (
    ArchRule(
        "mamba",
        "recurrent",
        f"src/models/mamba.cpp:3-32; {_SRC}",
        memory=RECURRENT,
        recurrent=ALL_LAYERS,
    ),
    ArchRule(
        "mamba2",
        "recurrent",
        f"src/models/mamba2.cpp:3-33; {_SRC}",
        memory=RECURRENT,
        recurrent=ALL_LAYERS,
    ),
    *(
        ArchRule(
            arch,
            "recurrent",
            f"src/models/{arch}.cpp; {_SRC}",
            memory=RECURRENT,
            recurrent=ALL_LAYERS,
            layer0_tensors=("token_embd_norm.",),
        )
        for arch in ("rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7")
    ),
)
