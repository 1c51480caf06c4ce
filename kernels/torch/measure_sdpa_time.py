#!/usr/bin/env python3
"""Times PyTorch's scaled_dot_product_attention on this GPU: the fused attention kernels a
transformers `attn_implementation="sdpa"` model runs (prefill: causal, S×S; decode: one query
over a KV cache of `context` tokens, grouped-query heads). Writes OUT_DIR/NAME in the schema
memtax.measurements/1 (kind "attention-sdpa"), which `memtax calibrate` fits into the
attention_prefill / attention_decode classes of the engine's time model.

    python3 kernels/torch/measure_sdpa_time.py OUT_DIR [--name sdpa_time.json]

Timing: CUDA events around each call, L2 flushed (a write of twice its size) before each,
3 warm-ups, median of 20. Memory: max_memory_allocated() during the call minus the bytes
allocated before it (the output and whatever workspace the kernel takes)."""
import argparse, datetime, json, os, subprocess, sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import boot_id  # noqa: E402


def timed(fn, flush, runs=20, warmup=3):
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
        ts.append(a.elapsed_time(b) * 1e-3)
    ts.sort()
    return ts[len(ts) // 2], ts[int(0.1 * (len(ts) - 1) + 0.5)], ts[int(0.9 * (len(ts) - 1) + 0.5)], len(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--name", default="sdpa_time.json")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    dev = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(dev)
    flush = torch.empty(2 * getattr(props, "L2_cache_size", 50 << 20), dtype=torch.uint8, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    cases = []
    shapes = [("prefill", 1, 32, 32, s) for s in (1024, 2048, 4096, 8192, 16384, 32768)] + [("prefill", 4, 8, 8, 4096)]
    shapes += [("decode", b, 32, 8, l) for b in (1, 8, 32) for l in (1024, 4096, 16384, 65536)]
    for mode, B, H, Hkv, L in shapes:
        S = L if mode == "prefill" else 1
        cid = f"attention-sdpa/{mode}/b{B}/h{H}/kv{Hkv}/l{L}"
        params = {"batch": B, "heads": H, "kv_heads": Hkv, "context": L, "q_len": S, "head_dim": 128,
                  "causal": mode == "prefill", "dtype": "bf16"}
        try:
            q = torch.randn(B, H, S, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
            k = torch.randn(B, Hkv, L, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
            v = torch.randn(B, Hkv, L, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=(mode == "prefill"), enable_gqa=(Hkv != H))
            out = fn()
            del out
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            out = fn()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - before
            assert torch.isfinite(out.float()).all()
            out_bytes = out.numel() * out.element_size()
            del out
            t, p10, p90, n = timed(fn, flush)
            cases.append({"id": cid, "kind": "attention-sdpa", "params": params, "status": "ok",
                          "measured": {"allocated_bytes": peak, "buffers": {"out": out_bytes},
                                       "time_s": t, "time_p10_s": p10, "time_p90_s": p90, "runs": n,
                                       "unwritten_outputs": 0}})
            print(f"{cid:44s} {t * 1e6:10.1f} us  peak {peak:,} B (out {out_bytes:,})", flush=True)
            del q, k, v
        except torch.OutOfMemoryError as e:
            cases.append({"id": cid, "kind": "attention-sdpa", "params": params, "status": "skipped", "reason": str(e).split("\n")[0]})
        torch.cuda.empty_cache()
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        driver = "unknown"
    doc = {"schema": "memtax.measurements/1", "source": "torch-sdpa",
           "provenance": {"gpu": torch.cuda.get_device_name(dev), "driver": driver, "torch": torch.__version__,
                          "cuda": torch.version.cuda or "", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          "lease": boot_id(),
                          "command": " ".join(["python3 kernels/torch/measure_sdpa_time.py", "$OUT"] + sys.argv[2:]),
                          "timing": "CUDA events, L2 flushed before each call, 3 warm-ups, median of 20"},
           "cases": cases}
    path = os.path.join(args.out, args.name)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(path + ".tmp", path)
    print("wrote", path)


if __name__ == "__main__":
    main()
