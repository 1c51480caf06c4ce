#!/usr/bin/env python3
"""The training time model's measured constants, from one diagnostic run on an H100
(tests/data/diagnostics/h100_train_phases.json, kernels/torch/profile_train_phases.py):

  kernels.foreach       torch.optim's multi-tensor kernels, B/s ÷ the calibrated stream B/s: least
                        squares over the AdamW-only series (foreach, bf16, 50M/200M/800M parameters in
                        8 tensors) of t = c0 + launches · queued + bytes / (foreach · stream), with
                        21 element accesses a parameter and ceil(chunks / 320) launches per pass
  train_host            the host's cost per forward and backward kernel: the costs at which memtax's
                        phases of gqa-2l SDPA (b1 s2048, host-bound) equal the measured phases
                        (bisection); the optimizer's cost per launch from the full and LoRA r16 runs'
                        host times to issue their steps, and per step where LoRA's step equals its phase
Every recorded training step (tests/data/measured/h100_hf_train_loops*.json) is out of sample.
Usage: python3 scripts/fit-train-time.py [build/memtax]
"""
import json
import math
import os
import subprocess
import sys
import tempfile

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


def phases(h_fwd, h_bwd, step, launch, extra=()):
    """memtax's phases for gqa-2l SDPA b1 s2048 under trial host costs (a runtime file with them)."""
    rt = open("runtimes/hf-train.yaml").read()
    head, tail = rt.split("train_host:", 1)
    body = tail.split("\n  source:", 1)[1]
    h_fwd, h_bwd, step, launch = (max(v, 1e-12) for v in (h_fwd, h_bwd, step, launch))
    rt = (head + f"train_host:\n  forward_per_op_s: {h_fwd:.6e}\n  backward_per_op_s: {h_bwd:.6e}\n"
          f"  optimizer_per_step_s: {step:.6e}\n  optimizer_per_launch_s: {launch:.6e}\n  source:" + body)
    rt = rt.replace("name: hf-train\n", "name: hf-train-fit\n", 1)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(rt)
    cmd = [memtax, "estimate", "--model", "tests/data/measured/gqa-2l.config.json", "--gpu", "h100-sxm-calibrated", "--mode", "train",
           "--batch", "1", "--context", "2048", "--time", "--runtime", f.name, "--format", "json"] + list(extra)
    t = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)["time"]
    os.unlink(f.name)
    return t


def solve(measured_s, predicted):
    """The host cost at which the predicted phase equals the measured one (bisection: the phase
    grows with the cost)."""
    lo, hi = 0.0, 1e-3
    for _ in range(40):
        mid = (lo + hi) / 2
        if predicted(mid) < measured_s:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


case = {(c["shape"], c["impl"], c["lora"], c["recompute"]): c for c in d["cases"]}
full = case[("gqa-2l", "sdpa", False, "none")]
lora = case[("gqa-2l", "sdpa", True, "none")]
h_fwd = solve(full["phases_ms"]["forward"] * 1e-3, lambda h: phases(h, 0, 0, 0)["forward"]["seconds"])
h_bwd = solve(full["phases_ms"]["backward"] * 1e-3, lambda h: phases(0, h, 0, 0)["backward"]["seconds"])
t = phases(h_fwd, h_bwd, 0, 0)
k_full = t["optimizer"]["kernels"]
k_lora = phases(h_fwd, h_bwd, 0, 0, ["--lora-rank", "16"])["optimizer"]["kernels"]
# The optimizer's host: LoRA's step is host-bound (a cost per step and per launch); the full
# model's host time to issue its launches gives the cost per launch.
launch = (full["host_ms"]["optimizer"] - lora["host_ms"]["optimizer"]) * 1e-3 / (k_full - k_lora)
step = solve(lora["phases_ms"]["optimizer"] * 1e-3,
             lambda h: phases(h_fwd, h_bwd, h, launch, ["--lora-rank", "16"])["optimizer"]["seconds"])
print(f"forward_per_op_s: {h_fwd:.4e} ({t['forward']['kernels']} kernels, phase {full['phases_ms']['forward']:.3f} ms)")
print(f"backward_per_op_s: {h_bwd:.4e} ({t['backward']['kernels']} kernels, phase {full['phases_ms']['backward']:.3f} ms)")
print(f"optimizer_per_step_s: {step:.4e}; optimizer_per_launch_s: {launch:.4e} ({k_full} and {k_lora} launches)")
