#!/usr/bin/env python3
"""Every CUDA kernel of whole transformers steps, in launch order, with its device time.

For the time model's kernel list: which kernels each module of a decoder layer really launches
(eager and SDPA), and how long each takes on this GPU. For each case: the step's host wall clock
(median of 5 after 2 warm-ups, synchronised), then one profiled run (torch.profiler): every
device kernel and memcpy/memset in start order with its duration and the gap before it.

Usage: python3 kernels/torch/profile_hf_kernels.py OUT_DIR [--shape NAME (measure_hf_steps.STEP_SHAPES)]
           [--cases impl:mode:batch:tokens,...]
Writes OUT_DIR/kernel_trace_<shape>.json.
"""
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM, DynamicCache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import STEP_SHAPES, smi  # noqa: E402


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    args = sys.argv[2:]
    shape = args[args.index("--shape") + 1] if "--shape" in args else "llama-3.1-8b"
    cases = [("prefill", 1, 4096), ("prefill", 4, 4096), ("decode", 1, 1024), ("decode", 8, 8192),
             ("decode", 8, 32768), ("decode", 64, 4096)]
    impls = ["eager", "sdpa"]
    if "--cases" in args:  # impl:mode:batch:tokens,...
        picked = [c.split(":") for c in args[args.index("--cases") + 1].split(",")]
        impls = sorted({p[0] for p in picked})
        cases = [(p[1], int(p[2]), int(p[3])) for p in picked]
    dev = torch.device("cuda")
    spec = dict(STEP_SHAPES[shape])
    import transformers
    cls = getattr(transformers, spec.pop("config", "LlamaConfig"))
    spec.setdefault("tie_word_embeddings", False)
    cfg = cls(max_position_embeddings=131072, **spec)
    L, kvh = cfg.num_hidden_layers, cfg.num_key_value_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    result = dict(schema="memtax.kernel-trace/0", provenance=dict(
        gpu=torch.cuda.get_device_name(0), driver=smi("driver_version"), torch=torch.__version__,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command="python3 kernels/torch/profile_hf_kernels.py $OUT " + " ".join(args)), shape=shape, cases=[])
    for impl in impls:
        torch.manual_seed(0)
        with torch.device(dev):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
        model.eval()
        for mode, b, n in cases:
            if "--cases" in args and f"{impl}:{mode}:{b}:{n}" not in args[args.index("--cases") + 1].split(","):
                continue
            ids = torch.randint(0, cfg.vocab_size, (b, n if mode == "prefill" else 1), device=dev)
            base = []
            if mode == "decode":
                # As measure_hf_steps.py: a fresh cache over the same random K/V before each run,
                # so every run appends to n contiguous tokens.
                base = [(torch.randn(b, kvh, n, hd, device=dev, dtype=torch.bfloat16),
                         torch.randn(b, kvh, n, hd, device=dev, dtype=torch.bfloat16)) for _ in range(L)]
                pos = torch.full((b, 1), n, device=dev)
            cache = [None]

            def fresh():
                if mode == "decode":
                    c = DynamicCache(config=model.config)  # sliding-window layers where the model has them
                    for i, (k, v) in enumerate(base):
                        c.update(k, v, i)
                    cache[0] = c
                torch.cuda.synchronize()

            def step():
                with torch.inference_mode():
                    if mode == "prefill":
                        model(input_ids=ids, use_cache=True, logits_to_keep=1)
                    else:
                        model(input_ids=ids, past_key_values=cache[0], position_ids=pos, use_cache=True)
                torch.cuda.synchronize()
            ts = []
            for i in range(7):
                fresh()
                t0 = time.perf_counter()
                step()
                if i >= 2:
                    ts.append(time.perf_counter() - t0)
            fresh()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                step()
            ev = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            ev.sort(key=lambda e: e.time_range.start)
            kernels, prev_end = [], None
            for e in ev:
                s, d = e.time_range.start, e.time_range.end - e.time_range.start
                kernels.append([e.name[:120], round(d, 2), round(s - prev_end, 2) if prev_end is not None else 0.0])
                prev_end = max(prev_end or 0, e.time_range.end)
            cpu_ops = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU and e.name.startswith("aten::"))
            c = dict(impl=impl, mode=mode, batch=b, tokens=n, wall_seconds=statistics.median(ts), wall_all=ts,
                     device_us=round(sum(k[1] for k in kernels), 1), span_us=round((ev[-1].time_range.end - ev[0].time_range.start) if ev else 0, 1),
                     kernel_count=len(kernels), aten_ops=cpu_ops, kernels=kernels)
            result["cases"].append(c)
            print(impl, mode, b, n, "wall %.3f ms" % (c["wall_seconds"] * 1e3), "device %.3f ms" % (c["device_us"] / 1e3),
                  "kernels", len(kernels), flush=True)
            del cache, base
            torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()
    with open(os.path.join(out, f"kernel_trace_{shape}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
