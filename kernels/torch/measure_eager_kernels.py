#!/usr/bin/env python3
"""Time the kernels eager PyTorch + transformers runs around attention and in the norms, each
alone: repeat_kv's expand-and-copy, the batched GEMVs of eager decode attention, DynamicCache's
cat, LlamaRMSNorm's fp32 passes and apply_rotary_pos_emb. CUDA events, L2 flushed (a write of
twice its size) before each run, 3 warm-ups, median of 20. For the time model's kernel classes.

Usage: python3 kernels/torch/measure_eager_kernels.py OUT_DIR [--name FILE]
Writes OUT_DIR/FILE (default eager_kernels.json): {"provenance": ..., "cases": [{id, op, shape,
bytes (the fewest: inputs read once, outputs written once), flops, seconds, p10, p90}]}.
"""
import datetime, json, os, statistics, subprocess, sys

import torch

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
name = sys.argv[sys.argv.index("--name") + 1] if "--name" in sys.argv else "eager_kernels.json"
dev = torch.device("cuda")
l2 = torch.cuda.get_device_properties(0).L2_cache_size
flush = torch.empty(2 * l2, dtype=torch.uint8, device=dev)
bf = torch.bfloat16


def timed(fn, runs=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        flush.fill_(1)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    ts.sort()
    return statistics.median(ts), ts[2], ts[-3]


cases = []


def add(id_, op, shape, nbytes, flops, fn):
    med, p10, p90 = timed(fn)
    cases.append(dict(id=id_, op=op, shape=shape, bytes=nbytes, flops=flops, seconds=med, p10_seconds=p10, p90_seconds=p90))
    print(f"{id_:40s} {med*1e6:10.1f} us  {nbytes/med/1e12 if med else 0:6.3f} TB/s", flush=True)


kv, rep, d = 8, 4, 128
for b, s in [(1, 1024), (1, 8192), (1, 32768), (8, 1024), (8, 8192), (8, 32768), (32, 8192), (64, 4096)]:
    x = torch.randn(b, kv, s, d, device=dev, dtype=bf)
    n = x.numel() * 2
    add(f"repeat_kv/b{b}/s{s}", "repeat_kv", [b, kv, rep, s, d], n + rep * n,  0,
        lambda: x[:, :, None, :, :].expand(b, kv, rep, s, d).reshape(b, kv * rep, s, d))
    kr = x[:, :, None].expand(b, kv, rep, s, d).reshape(b, kv * rep, s, d)
    q = torch.randn(b, kv * rep, 1, d, device=dev, dtype=bf)
    add(f"scores_gemv/b{b}/s{s}", "bmm_qk", [b, kv * rep, 1, s, d], rep * n + q.numel() * 2 + b * kv * rep * s * 2, 2 * b * kv * rep * s * d,
        lambda: torch.matmul(q, kr.transpose(2, 3)))
    p = torch.randn(b, kv * rep, 1, s, device=dev, dtype=bf)
    add(f"pv_gemv/b{b}/s{s}", "bmm_pv", [b, kv * rep, 1, s, d], rep * n + p.numel() * 2 + q.numel() * 2, 2 * b * kv * rep * s * d,
        lambda: torch.matmul(p, kr))
    new = torch.randn(b, kv, 1, d, device=dev, dtype=bf)
    add(f"cache_cat/b{b}/s{s}", "cat", [b, kv, s + 1, d], n + 2 * (n + new.numel() * 2), 0, lambda: torch.cat([x, new], dim=-2))
    del x, kr, q, p, new
    torch.cuda.empty_cache()

w = torch.ones(4096, device=dev, dtype=bf)


def rmsnorm(h):
    x = h.to(torch.float32)
    var = x.pow(2).mean(-1, keepdim=True)
    x = x * torch.rsqrt(var + 1e-5)
    return w * x.to(bf)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


for t in [1, 64, 1024, 4096, 16384]:
    h = torch.randn(t, 4096, device=dev, dtype=bf)
    add(f"rmsnorm/t{t}", "rmsnorm", [t, 4096], 2 * h.numel() * 2, 0, lambda: rmsnorm(h))
    qh = torch.randn(1, 32, t, 128, device=dev, dtype=bf)
    cos = torch.randn(1, 1, t, 128, device=dev, dtype=bf)
    sin = torch.randn(1, 1, t, 128, device=dev, dtype=bf)
    add(f"rotary_q/t{t}", "rotary", [1, 32, t, 128], 2 * qh.numel() * 2, 0, lambda: (qh * cos) + (rotate_half(qh) * sin))
    del h, qh, cos, sin

doc = {"schema": "memtax.eager-kernels/0", "provenance": {
    "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
    "driver": subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip(),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "command": "python3 kernels/torch/measure_eager_kernels.py $OUT"}, "cases": cases}
with open(os.path.join(out_dir, name), "w") as f:
    json.dump(doc, f, indent=1)
