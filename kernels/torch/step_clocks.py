#!/usr/bin/env python3
"""Is a slow small step the host or the GPU? For one shape's batch-1 decode: the wall clock of
steps, the GPU's SM clock sampled (NVML, via torch.cuda.clock_rate) right after them, and one
profiled step's device-busy time against its wall clock (busy ~ wall: the GPU bounds the step).

Usage: python3 kernels/torch/step_clocks.py OUT_DIR [--shape llama-3.1-8b] [--impl sdpa] [--kv 1024] [--runs 30]
"""
import json
import os
import statistics
import sys
import time

import torch
import transformers
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM, DynamicCache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import STEP_SHAPES, smi  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
args = sys.argv[2:]
opt = lambda k, d: args[args.index(k) + 1] if k in args else d
shape, impl, kv, runs = opt("--shape", "llama-3.1-8b"), opt("--impl", "sdpa"), int(opt("--kv", "1024")), int(opt("--runs", "30"))
spec = dict(STEP_SHAPES[shape])
cls = getattr(transformers, spec.pop("config", "LlamaConfig"))
spec.setdefault("tie_word_embeddings", False)
cfg = cls(max_position_embeddings=131072, **spec)
dev = torch.device("cuda")
with torch.device(dev):
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl).eval()
hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
base = [(torch.randn(1, cfg.num_key_value_heads, kv, hd, device=dev, dtype=torch.bfloat16),
         torch.randn(1, cfg.num_key_value_heads, kv, hd, device=dev, dtype=torch.bfloat16)) for _ in range(cfg.num_hidden_layers)]
ids = torch.zeros((1, 1), dtype=torch.long, device=dev)
pos = torch.full((1, 1), kv, dtype=torch.long, device=dev)


def fresh():
    c = DynamicCache(config=model.config)
    for i, (k, v) in enumerate(base):
        c.update(k, v, i)
    return c


def step(c):
    with torch.inference_mode():
        model(input_ids=ids, past_key_values=c, position_ids=pos, use_cache=True)


samples = []
for phase in ("cold", "after-2s-load"):
    if phase == "after-2s-load":  # keep the GPU busy for 2 s so its clocks ramp up
        a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 2:
            a @ a
        torch.cuda.synchronize()
    ts, clocks = [], []
    for i in range(runs):
        c = fresh()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(c)
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
        clocks.append(torch.cuda.clock_rate())
    samples.append(dict(phase=phase, median_s=statistics.median(ts), min_s=min(ts), max_s=max(ts), sm_clock_mhz=clocks, times_s=ts))
    print(phase, "median %.2f ms min %.2f max %.2f" % (statistics.median(ts) * 1e3, min(ts) * 1e3, max(ts) * 1e3), "SM MHz", sorted(set(clocks)), flush=True)
c = fresh()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as p:
    t0 = time.perf_counter()
    step(c)
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
busy = sum(e.device_time_total for e in p.key_averages()) * 1e-6  # device_time_total of each kernel name, microseconds
print("profiled wall %.2f ms, device busy %.2f ms" % (wall * 1e3, busy * 1e3))
json.dump(dict(shape=shape, impl=impl, kv=kv, gpu=torch.cuda.get_device_name(0), driver=smi("driver_version"),
               cpu_count=os.cpu_count(), loadavg=os.getloadavg(), samples=samples, profiled_wall_s=wall, profiled_device_busy_s=busy),
          open(os.path.join(out, f"step_clocks_{shape}_{impl}.json"), "w"), indent=1)
