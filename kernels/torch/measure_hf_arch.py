#!/usr/bin/env python3
"""Measure what transformers allocates for the architectures beyond dense Llamas.

Each family is built from a small config of its own model_type (a few layers, random weights,
bf16, no downloads): DeepSeek-V3 / V2 (MLA + MoE with shared experts), Mixtral, Qwen3-MoE,
gpt-oss (sinks, alternating sliding/full, experts with biases), Gemma-2 (soft-capping, sandwich
norms), Gemma-3 (q/k norm, local/global), Phi-3, Mamba-2 and Jamba (Mamba-1 + attention + MoE).
For every attention implementation the model accepts (eager, sdpa), batch and context: one
prefill (logits of the last position), then one unrecorded decode step and a recorded second one
(the steady state of a generate() loop: the first call after a case releases what the model still
referenced from the previous one). Recorded relative to
the bytes allocated before the step: forward_peak_bytes (torch.cuda.max_memory_allocated), the
cache's bytes (every tensor the cache object holds: K/V, conv and SSM states), the logits, and
what the step leaves allocated. Also records which experts implementation transformers chose
and what the cache keeps per layer (tensor shapes), so the mechanism can be read, not assumed.

Usage: python3 kernels/torch/measure_hf_arch.py OUT_DIR [--shapes a,b] [--contexts 1024,4096]
           [--batches 1,2] [--name FILE] [--trace-decode]
--trace-decode records the allocator's history during each shape's first recorded decode step
(OUT_DIR/decode_trace.json: every alloc and free with its Python frames).
Writes OUT_DIR/FILE (default hf_arch.json; schema memtax.measurements/1) and
OUT_DIR/<shape>.config.json, which the cases name.
"""
import datetime
import gc
import json
import os
import subprocess
import sys

SHAPES = {
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


def smi(query):
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
    except Exception as e:  # provenance only
        return f"unavailable: {e}"


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


def cache_bytes(cache):
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


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    args = sys.argv[2:]

    def opt(name, default):
        return args[args.index(name) + 1].split(",") if name in args else default

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    dev = torch.device("cuda")
    torch.cuda.init()
    # cuBLAS and SDPA workspaces are created by the first calls; make them before any case.
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    (a @ a).sum().item()
    q = torch.randn(1, 8, 1024, 128, device=dev, dtype=torch.bfloat16)
    torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).sum().item()
    del a, q
    names = opt("--shapes", list(SHAPES))
    contexts = [int(c) for c in opt("--contexts", ["1024", "4096"])]
    batches = [int(b) for b in opt("--batches", ["1", "2"])]
    file_name = opt("--name", ["hf_arch.json"])[0]
    cases, notes, traced = [], {}, {}
    for shape in names:
        kw = dict(SHAPES[shape])
        mt = kw.pop("model_type")
        try:
            cfg = AutoConfig.for_model(mt, tie_word_embeddings=kw.pop("tie_word_embeddings", mt in ("gemma2", "gemma3_text", "mamba2")), **kw)
        except Exception as e:
            notes[shape] = f"config failed: {type(e).__name__}: {e}"[:400]
            print(shape, notes[shape], flush=True)
            continue
        d = cfg.to_dict()
        d["dtype"] = "bfloat16"
        d.pop("torch_dtype", None)
        with open(os.path.join(out_dir, f"{shape}.config.json"), "w") as f:
            json.dump(d, f, indent=2, sort_keys=True)
        for impl in ["eager", "sdpa"]:
            runtime = "hf-" + impl
            try:
                torch.manual_seed(0)
                with torch.device(dev):
                    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
                model.eval()
            except Exception as e:
                notes[f"{shape}/{impl}"] = f"model failed: {type(e).__name__}: {e}"[:400]
                print(shape, impl, notes[f"{shape}/{impl}"], flush=True)
                continue
            with torch.inference_mode():  # first-call library setup of this model's kernels
                model(input_ids=torch.randint(0, cfg.vocab_size, (1, 256), device=dev), use_cache=True)
            gc.collect()
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            notes[f"{shape}/{impl}"] = dict(experts_implementation=str(getattr(model.config, "_experts_implementation", None)),
                                            attn_implementation=str(getattr(model.config, "_attn_implementation", None)),
                                            module=type(model).__module__)
            for batch in batches:
                for ctx in contexts:
                    base = dict(kind="forward", model_config=f"{shape}.config.json", runtime=runtime, batch=batch)
                    ids = torch.randint(0, cfg.vocab_size, (batch, ctx), device=dev)
                    settle(torch, dev)
                    torch.cuda.reset_peak_memory_stats()
                    before = torch.cuda.memory_allocated()
                    case = dict(base, id=f"{shape}/{runtime}/b{batch}/s{ctx}/prefill/kept-1", mode="prefill", context=ctx, logits_kept=1)
                    try:
                        with torch.inference_mode():
                            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
                        torch.cuda.synchronize()
                        peak = torch.cuda.max_memory_allocated() - before
                        cache = out.past_key_values if hasattr(out, "past_key_values") else None
                        if cache is None:
                            cache = getattr(out, "cache_params", None)
                        vis, sto, shapes = cache_bytes(cache)
                        case.update(status="ok", measured=dict(forward_peak_bytes=peak, kv_cache_bytes=vis, kv_cache_storage_bytes=sto,
                                                               logits_bytes=out.logits.numel() * out.logits.element_size(),
                                                               after_step_bytes=torch.cuda.memory_allocated() - before),
                                    cache_shapes=shapes)
                        cases.append(case)
                        print(json.dumps(case), flush=True)
                        nxt = torch.randint(0, cfg.vocab_size, (batch, 1), device=dev)
                        # One unrecorded decode step first: the first call after a case frees what
                        # the model still referenced from the previous case (traced on the H200:
                        # a decode began by freeing the previous case's K/V), which would hide this
                        # step's own allocations. The recorded step is the second, as every step of
                        # a generate() loop after the first is.
                        kwargs = dict(input_ids=nxt, use_cache=True)
                        if mt == "mamba2":
                            kwargs.update(cache_params=cache, cache_position=torch.tensor([ctx], device=dev))
                        else:
                            kwargs.update(past_key_values=cache)
                        with torch.inference_mode():
                            out1 = model(**kwargs)
                        del out1
                        settle(torch, dev)
                        torch.cuda.reset_peak_memory_stats()
                        before_d = torch.cuda.memory_allocated()
                        tracing = "--trace-decode" in args and not traced.get(f"{shape}/{impl}")
                        if tracing:
                            torch.cuda.memory._record_memory_history(max_entries=200000)
                        kwargs = dict(input_ids=nxt, use_cache=True)
                        if mt == "mamba2":
                            kwargs.update(cache_params=cache, cache_position=torch.tensor([ctx + 1], device=dev))
                        else:
                            kwargs.update(past_key_values=cache)
                        with torch.inference_mode():
                            out2 = model(**kwargs)
                        torch.cuda.synchronize()
                        if tracing:
                            snap = torch.cuda.memory._snapshot()
                            torch.cuda.memory._record_memory_history(enabled=None)
                            ev = []
                            for tr in snap.get("device_traces", []):
                                for e in tr:
                                    if e["action"] in ("alloc", "free_completed", "free_requested"):
                                        ev.append([e["action"], e["size"], [f"{f['filename'].split('/')[-1]}:{f['line']}:{f['name']}"
                                                                            for f in e.get("frames", [])][:6]])
                            traced[f"{shape}/{impl}"] = dict(before=before_d, peak=torch.cuda.max_memory_allocated() - before_d,
                                                 after=torch.cuda.memory_allocated() - before_d, events=ev[:600])
                        cache2 = out2.past_key_values if hasattr(out2, "past_key_values") else getattr(out2, "cache_params", None)
                        vis2, sto2, _ = cache_bytes(cache2)
                        dec = dict(base, id=f"{shape}/{runtime}/b{batch}/s{ctx + 2}/decode", mode="decode", context=ctx + 2, decode_step=2, logits_kept=1,
                                   status="ok", measured=dict(forward_peak_bytes=torch.cuda.max_memory_allocated() - before_d,
                                                              kv_cache_bytes=vis2, kv_cache_storage_bytes=sto2,
                                                              logits_bytes=out2.logits.numel() * out2.logits.element_size(),
                                                              after_step_bytes=torch.cuda.memory_allocated() - before_d))
                        cases.append(dec)
                        print(json.dumps(dec), flush=True)
                        del out2, cache2
                        del out, cache
                    except torch.OutOfMemoryError as err:
                        case.update(status="oom", reason="torch.OutOfMemoryError: " + " ".join(str(err).split())[:300])
                        cases.append(case)
                    except Exception as err:
                        case.update(status="error", reason=f"{type(err).__name__}: {err}"[:400])
                        cases.append(case)
                        print(json.dumps(case), flush=True)
                    del ids
                    torch.cuda.empty_cache()
            del model
            gc.collect()
            torch.cuda.empty_cache()
    doc = {
        "schema": "memtax.measurements/1",
        "source": "torch-hf",
        "provenance": {
            "gpu": torch.cuda.get_device_name(0), "driver": smi("driver_version"), "torch": torch.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python3 " + " ".join(["kernels/torch/measure_hf_arch.py", "$OUT"] + sys.argv[2:]),
        },
        "notes": notes,
        "cases": cases,
    }
    with open(os.path.join(out_dir, file_name), "w") as f:
        json.dump(doc, f, indent=1)
    if traced:
        with open(os.path.join(out_dir, "decode_trace.json"), "w") as f:
            json.dump(traced, f)


if __name__ == "__main__":
    main()
