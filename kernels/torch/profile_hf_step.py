#!/usr/bin/env python3
"""Profile one step of a full-size model under PyTorch + transformers: every CUDA kernel with its
count and total device time (torch.profiler), to see which kernels a step really runs.

Usage: python3 kernels/torch/profile_hf_step.py OUT_DIR
Writes OUT_DIR/<case>.txt (the kernels by device time) and OUT_DIR/profile_summary.json.
"""
import json
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
dev = torch.device("cuda")
cfg = LlamaConfig(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128, intermediate_size=14336,
                  num_hidden_layers=32, vocab_size=128256, max_position_embeddings=131072, tie_word_embeddings=False)
summary = {}
for impl in ["eager", "sdpa"]:
    torch.manual_seed(0)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
    model.eval()
    cases = {"prefill_b1_s4096": ("prefill", 1, 4096), "decode_b8_kv8192": ("decode", 8, 8192), "decode_b1_kv1024": ("decode", 1, 1024)}
    for name, (mode, b, n) in cases.items():
        def step():
            with torch.inference_mode():
                if mode == "prefill":
                    model(input_ids=torch.randint(0, cfg.vocab_size, (b, n), device=dev), use_cache=True, logits_to_keep=1)
                else:
                    c = DynamicCache()
                    for i in range(cfg.num_hidden_layers):
                        c.update(torch.randn(b, 8, n, 128, device=dev, dtype=torch.bfloat16),
                                 torch.randn(b, 8, n, 128, device=dev, dtype=torch.bfloat16), i)
                    torch.cuda.synchronize()
                    model(input_ids=torch.randint(0, cfg.vocab_size, (b, 1), device=dev), past_key_values=c,
                          position_ids=torch.full((b, 1), n, device=dev), use_cache=True)
            torch.cuda.synchronize()
        for _ in range(2):
            step()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            step()
        ka = prof.key_averages()
        rows = []
        for e in ka:
            dt = getattr(e, "device_time_total", None)
            if dt is None:
                dt = getattr(e, "cuda_time_total", 0)
            if dt and e.device_type == torch.autograd.DeviceType.CUDA:
                rows.append((dt, e.count, e.key))
        rows.sort(reverse=True)
        with open(os.path.join(out, f"{impl}_{name}.txt"), "w") as f:
            for dt, cnt, key in rows:
                f.write(f"{dt/1000:10.3f} ms {cnt:6d}  {key[:160]}\n")
        summary[f"{impl}/{name}"] = {"kernels": sum(r[1] for r in rows), "device_ms": sum(r[0] for r in rows) / 1000,
                                     "cpu_ops": sum(e.count for e in ka if e.device_type == torch.autograd.DeviceType.CPU and e.key.startswith("aten::"))}
        print(impl, name, summary[f"{impl}/{name}"], flush=True)
    del model
    torch.cuda.empty_cache()
with open(os.path.join(out, "profile_summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
