"""The pieces the PyTorch harnesses share: the shapes they build, provenance from nvidia-smi and the lease (boot id), and
how a step's bytes are read (the cache's tensors, the allocator's peak). Each harness imports
what it uses from here; none imports another harness.

Shape tables (random weights, no downloads; sizes from each public config.json):
  STEP_SHAPES   dense Llama-style shapes whose steps are timed (measure_hf_steps, measure_hf_tp,
                profile_hf_kernels, step_clocks)
  ARCH_SHAPES   one small config per architecture family (measure_hf_arch, trace_decode)
  TRAIN_SHAPES  the training steps' shapes (measure_hf_train)
  LOOP_SHAPES   full-width two-layer shapes of the training loops (measure_hf_train_loops, profile_train_phases)
"""
import subprocess


def out_dir_and_options():
    """The harness's command line: OUT_DIR (created) and opt(name, default), the comma-separated
    values after `name`, or `default`."""
    import os
    import sys
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    args = sys.argv[2:]

    def opt(name, default):
        return args[args.index(name) + 1].split(",") if name in args else default

    return out_dir, opt


def smi(query):
    """One nvidia-smi --query-gpu value, for provenance (never fatal)."""
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
    except Exception as e:  # provenance only
        return f"unavailable: {e}"


def boot_id():
    """The lease: this boot of the machine (two runs of one boot are one lease)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


STEP_SHAPES = {
    "llama-3.1-8b": dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                         intermediate_size=14336, num_hidden_layers=32, vocab_size=128256),
    "gqa-2l": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=4, head_dim=128,
                   intermediate_size=5632, num_hidden_layers=2, vocab_size=32000),
    # Shapes of public models (their config.json's sizes), random weights.
    "llama-3.2-3b": dict(hidden_size=3072, num_attention_heads=24, num_key_value_heads=8, head_dim=128,
                         intermediate_size=8192, num_hidden_layers=28, vocab_size=128256, tie_word_embeddings=True),
    "qwen2.5-7b": dict(config="Qwen2Config", hidden_size=3584, num_attention_heads=28, num_key_value_heads=4,
                       intermediate_size=18944, num_hidden_layers=28, vocab_size=152064, rms_norm_eps=1e-6),
    "mistral-7b-v0.1": dict(config="MistralConfig", hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                            head_dim=128, intermediate_size=14336, num_hidden_layers=32, vocab_size=32000, sliding_window=4096),
}


ARCH_SHAPES = {
    "dsv3-3l": dict(model_type="deepseek_v3", hidden_size=1024, num_attention_heads=16, num_key_value_heads=16,
                    q_lora_rank=256, kv_lora_rank=128, qk_rope_head_dim=32, qk_nope_head_dim=64, v_head_dim=64,
                    intermediate_size=2816, moe_intermediate_size=512, n_routed_experts=16, n_shared_experts=1,
                    num_experts_per_tok=4, n_group=4, topk_group=2, first_k_dense_replace=1, num_hidden_layers=3,
                    vocab_size=32000, max_position_embeddings=131072),
    "dsv2-2l": dict(model_type="deepseek_v2", hidden_size=1024, num_attention_heads=16, num_key_value_heads=16,
                    q_lora_rank=None, kv_lora_rank=128, qk_rope_head_dim=32, qk_nope_head_dim=64, v_head_dim=64,
                    intermediate_size=2816, moe_intermediate_size=512, n_routed_experts=16, n_shared_experts=2,
                    num_experts_per_tok=4, n_group=1, topk_group=1, topk_method="greedy", first_k_dense_replace=1,
                    num_hidden_layers=2, vocab_size=32000, max_position_embeddings=131072),
    "mixtral-2l": dict(model_type="mixtral", hidden_size=1024, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                       intermediate_size=2816, num_hidden_layers=2, vocab_size=32000, num_local_experts=8,
                       num_experts_per_tok=2, max_position_embeddings=131072),
    "qwen3moe-2l": dict(model_type="qwen3_moe", hidden_size=1024, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                        intermediate_size=2816, moe_intermediate_size=384, num_experts=32, num_experts_per_tok=4,
                        num_hidden_layers=2, vocab_size=32000, max_position_embeddings=131072),
    "gptoss-2l": dict(model_type="gpt_oss", hidden_size=1024, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                      intermediate_size=1024, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=2,
                      vocab_size=32000, sliding_window=128, layer_types=["sliding_attention", "full_attention"],
                      max_position_embeddings=131072),
    "gemma2-2l": dict(model_type="gemma2", hidden_size=1024, num_attention_heads=8, num_key_value_heads=4, head_dim=128,
                      intermediate_size=4096, num_hidden_layers=2, vocab_size=32000, sliding_window=512,
                      max_position_embeddings=131072),
    "gemma3-2l": dict(model_type="gemma3_text", hidden_size=1024, num_attention_heads=8, num_key_value_heads=4, head_dim=128,
                      intermediate_size=4096, num_hidden_layers=2, vocab_size=32000, sliding_window=512,
                      layer_types=["sliding_attention", "full_attention"], max_position_embeddings=131072),
    "phi3-2l": dict(model_type="phi3", hidden_size=1024, num_attention_heads=16, num_key_value_heads=16,
                    intermediate_size=2816, num_hidden_layers=2, vocab_size=32064, sliding_window=2047,
                    max_position_embeddings=131072),
    "mamba2-2l": dict(model_type="mamba2", hidden_size=768, num_heads=24, head_dim=64, state_size=64, n_groups=1, expand=2,
                      chunk_size=256, num_hidden_layers=2, vocab_size=32000),
    "jamba-4l": dict(model_type="jamba", hidden_size=1024, num_attention_heads=8, num_key_value_heads=4, intermediate_size=2048,
                     num_hidden_layers=4, vocab_size=32000, num_experts=4, num_experts_per_tok=2, expert_layer_period=2,
                     expert_layer_offset=1, attn_layer_period=2, attn_layer_offset=1, mamba_d_state=16, mamba_expand=2,
                     use_mamba_kernels=False, max_position_embeddings=131072),
}


TRAIN_SHAPES = {
    "gqa-2l": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=4, head_dim=128,
                   intermediate_size=5632, num_hidden_layers=2, vocab_size=32000),
    "mha-2l": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=16, head_dim=128,
                   intermediate_size=5632, num_hidden_layers=2, vocab_size=32000),
    # The shapes of meta-llama/Llama-3.2-1B's config (tied embeddings), random weights.
    "llama-1b": dict(hidden_size=2048, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                     intermediate_size=8192, num_hidden_layers=16, vocab_size=128256, tie_word_embeddings=True),
    # A small Mixtral-style mixture of experts: 8 experts, top 2.
    "moe-2l": dict(model_type="mixtral", hidden_size=1024, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                   intermediate_size=2816, num_hidden_layers=2, vocab_size=32000, num_local_experts=8, num_experts_per_tok=2),
}


def kv_bytes(cache):
    """Bytes of the K and V tensors a transformers cache holds (v5 `layers`, v4 lists)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        pairs = [(l.keys, l.values) for l in layers if getattr(l, "keys", None) is not None]
    else:
        pairs = list(zip(cache.key_cache, cache.value_cache))
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in pairs)


def step_bytes(out, before):
    """What a step just returned costs (call it after torch.cuda.synchronize(), peak stats reset
    before the step): its forward peak over `before`, the cache's K/V bytes, the logits' bytes and
    what stays allocated."""
    import torch
    return dict(forward_peak_bytes=torch.cuda.max_memory_allocated() - before,
                kv_cache_bytes=kv_bytes(out.past_key_values),
                logits_bytes=out.logits.numel() * out.logits.element_size(),
                after_step_bytes=torch.cuda.memory_allocated() - before)


def tensors_of(obj, seen=None, depth=0):
    """Every CUDA tensor reachable from a cache object (its attributes, lists, dicts, layers)."""
    import torch
    seen = set() if seen is None else seen
    out = []
    if depth > 6 or id(obj) in seen:
        return out
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        if obj.is_cuda:
            out.append(obj)
        return out
    if isinstance(obj, (list, tuple)):
        for v in obj:
            out += tensors_of(v, seen, depth + 1)
    elif isinstance(obj, dict):
        for v in obj.values():
            out += tensors_of(v, seen, depth + 1)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        for v in vars(obj).values():
            out += tensors_of(v, seen, depth + 1)
    return out


def cache_storage_bytes(cache):
    """Bytes of the cache's floating-point tensors (K/V, latents, conv and SSM states; views
    counted at their own size) and of their storages. Integer bookkeeping (a sliding layer's
    int64 token counter) is not cache memory and is left out."""
    ts = [t for t in tensors_of(cache) if t.is_floating_point()]
    visible = sum(t.numel() * t.element_size() for t in ts)
    storages = {}
    for t in ts:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
    return visible, sum(storages.values()), [list(t.shape) for t in ts[:8]]


def settle(torch, dev):
    """Let the caching allocator finish the frees it deferred: a block freed while a stream still
    used it is released only when the allocator next processes its events (on a later
    allocation). Without this, a step's baseline still counts the previous case's freed cache and
    the step's own allocations are hidden behind those late frees (traced on the H200: the first
    events of a decode were frees of the previous case's 1,025-token K/V blocks)."""
    import gc
    gc.collect()
    torch.cuda.synchronize()
    torch.empty(1, device=dev)  # an allocation processes the completed events
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


# Full-width layers of public models (their config.json's sizes), two decoder layers.
LOOP_SHAPES = {
    "gqa-2l": TRAIN_SHAPES["gqa-2l"],
    # meta-llama/Meta-Llama-3-8B's widths.
    "llama3-8b-2l": dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                         intermediate_size=14336, num_hidden_layers=2, vocab_size=128256, rope_theta=500000.0),
    # Qwen/Qwen2-7B's widths (q/k/v biases).
    "qwen2-7b-2l": dict(model_type="qwen2", hidden_size=3584, num_attention_heads=28, num_key_value_heads=4,
                        intermediate_size=18944, num_hidden_layers=2, vocab_size=152064, rope_theta=1000000.0),
    # Shapes no model was developed against: Mistral-7B's widths (32k vocab) and Qwen2.5-3B's
    # (2 KV heads, tied 152k vocabulary).
    "mistral-7b-2l": dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                          intermediate_size=14336, num_hidden_layers=2, vocab_size=32000),
    "qwen2.5-3b-2l": dict(model_type="qwen2", hidden_size=2048, num_attention_heads=16, num_key_value_heads=2,
                          intermediate_size=11008, num_hidden_layers=2, vocab_size=151936, tie_word_embeddings=True),
}
