"""The fit engine: what llama.cpp will allocate for a GGUF model and where it goes.

Standard library only, no pytest. ``ggml`` (type table), ``gguf`` (the bounded header
reader), ``arch`` (architecture rules), ``context`` (settings and padded shapes),
``estimate`` and ``compute`` (weights, KV cache, compute and output buffers), ``speed``
(decode-rate model), ``plan`` (placement over a host's devices), ``ftypes``, ``quant_rules``
and ``quantize`` (the model at another llama-quantize file type) and ``advise`` (the ways
out: what would make a model fit; ``plan`` does not import it).
"""
