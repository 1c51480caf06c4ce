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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ARCH_SHAPES, cache_storage_bytes, settle, smi  # noqa: E402


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
    names = opt("--shapes", list(ARCH_SHAPES))
    contexts = [int(c) for c in opt("--contexts", ["1024", "4096"])]
    batches = [int(b) for b in opt("--batches", ["1", "2"])]
    file_name = opt("--name", ["hf_arch.json"])[0]
    cases, notes, traced = [], {}, {}
    for shape in names:
        kw = dict(ARCH_SHAPES[shape])
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
                        vis, sto, shapes = cache_storage_bytes(cache)
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
                        vis2, sto2, _ = cache_storage_bytes(cache2)
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
