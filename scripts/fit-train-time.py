#!/usr/bin/env python3
"""The training time model's measured constants, from one diagnostic run on an H100
(tests/data/diagnostics/h100_train_phases.json, kernels/torch/profile_train_phases.py):

  kernels.foreach       torch.optim's multi-tensor kernels, B/s ÷ the calibrated stream B/s: least
                        squares over the AdamW-only series (foreach, bf16, 50M/200M/800M parameters in
                        8 tensors) of t = c0 + launches · queued + bytes / (foreach · stream), with
                        21 element accesses a parameter and ceil(chunks / 320) launches per pass
  train_host            the host's cost per forward and backward kernel: gqa-2l SDPA's forward and
                        backward host times (b1 s2048) ÷ memtax's kernel counts for that case;
                        optimizer per step and per launch: gqa-2l's full and LoRA r16 steps
Every recorded training step (tests/data/measured/h100_hf_train_loops*.json) is out of sample.
Usage: python3 scripts/fit-train-time.py [build/memtax]
"""
import json
import math
import subprocess
import sys

memtax = sys.argv[1] if len(sys.argv) > 1 else "build/memtax"
d = json.load(open("tests/data/diagnostics/h100_train_phases.json"))
cal = open("hardware/calibrated/h100-sxm.yaml").read()
eff = float(cal.split("\n  bandwidth: ")[1].split("\n")[0])
stream = eff * 3.35e12
queued = float(cal.split("queued_s: ")[1].split("\n")[0])

pts = []
for r in d["adamw"]:
    if r["impl"] != "foreach":
        continue
    n, tensors = r["parameters"], r["tensors"]
    chunks = math.ceil(n / 65536) + tensors
    launches = 8 * max(1, math.ceil(chunks / 320))
    pts.append((launches * queued, 42.0 * n, r["step_ms"] * 1e-3))
# t - L·q = c0 + bytes · (1 / (f · stream)): a line in bytes.
xs = [b for _, b, _ in pts]
ys = [t - lq for lq, _, t in pts]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
print(f"foreach: {1 / slope / stream:.4f} of the stream bandwidth ({1 / slope:.4e} B/s; intercept {my - slope * mx:.3e} s)")


def counts(extra):
    cmd = [memtax, "estimate", "--model", "tests/data/measured/gqa-2l.config.json", "--gpu", "h100-sxm-calibrated", "--mode", "train",
           "--batch", "1", "--context", "2048", "--time", "--runtime", "hf-train", "--format", "json"] + extra
    t = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)["time"]
    return t["forward"]["kernels"], t["backward"]["kernels"], t["optimizer"]["kernels"]


case = {(c["shape"], c["impl"], c["lora"], c["recompute"]): c for c in d["cases"]}
full = case[("gqa-2l", "sdpa", False, "none")]
lora = case[("gqa-2l", "sdpa", True, "none")]
fk, bk, ok = counts([])
_, _, ok_lora = counts(["--lora-rank", "16"])
print(f"forward_per_op_s: {full['host_ms']['forward'] * 1e-3 / fk:.4e} ({fk} kernels)")
print(f"backward_per_op_s: {full['host_ms']['backward'] * 1e-3 / bk:.4e} ({bk} kernels)")
per_launch = (full["host_ms"]["optimizer"] - lora["host_ms"]["optimizer"]) * 1e-3 / (ok - ok_lora)
print(f"optimizer_per_launch_s: {per_launch:.4e}; optimizer_per_step_s: {lora['host_ms']['optimizer'] * 1e-3 - ok_lora * per_launch:.4e}")
