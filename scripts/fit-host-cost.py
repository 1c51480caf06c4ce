#!/usr/bin/env python3
"""Fit a transformers runtime's host cost (per op, per step) from two host-bound steps.

The time model's host clock for a step is per_step_s + host_ops · per_op_s; a host-bound step
ends that clock plus the GPU time of what was queued last (the tail). Given two measured
host-bound steps with different op counts (a 2-layer and a 32-layer model's batch-1 decode),
each normalised to one host speed by its recorded host reference (measured.host_reference_seconds:
the harness's tiny reference step), this solves the two unknowns and prints the `host:` block
for runtimes/<runtime>.yaml, reference_seconds being the mean reference of the two cases.

Usage: python3 scripts/fit-host-cost.py RUNTIME FILE.json:CASE_ID FILE.json:CASE_ID [--memtax build/memtax] [--gpu h200-calibrated]
"""
import json
import os
import subprocess
import sys


def main():
    args = sys.argv[1:]
    memtax = "build/memtax"
    gpu = "h200-calibrated"
    if "--memtax" in args:
        i = args.index("--memtax")
        memtax = args[i + 1]
        del args[i:i + 2]
    if "--gpu" in args:
        i = args.index("--gpu")
        gpu = args[i + 1]
        del args[i:i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    runtime, picks = args[0], args[1:]
    rows = []
    for pick in picks:
        path, case_id = pick.split(":", 1)
        doc = json.load(open(path))
        case = next((c for c in doc["cases"] if c["id"] == case_id), None)
        if case is None or case.get("status") != "ok" or case["kind"] != "step_time":
            sys.exit(f"{pick}: no measured step_time case of that id")
        if case["runtime"] != runtime:
            sys.exit(f"{pick}: runtime {case['runtime']}, not {runtime}")
        ref = case["measured"].get("host_reference_seconds")
        if not ref:
            sys.exit(f"{pick}: no host_reference_seconds")
        model = os.path.join(os.path.dirname(path), case["model_config"]) if "model_config" in case else case["model"]
        out = subprocess.run([memtax, "estimate", "--model", model, "--gpu", gpu, "--runtime", runtime, "--batch", str(case["batch"]),
                              "--context", str(case["context"]), "--logits-kept", str(case.get("logits_kept", 1)), "--time", "--format", "json"],
                             capture_output=True, text=True, check=True).stdout
        step = json.loads(out)["time"][case["mode"]]
        if step["host_seconds"] < step["gpu_seconds"]:
            sys.exit(f"{pick}: predicted GPU-bound, not a host-bound step")
        rows.append(dict(pick=pick, measured=case["measured"]["seconds"], ref=ref, ops=step["host_ops"],
                         tail=step["seconds"] - step["host_seconds"]))
    R = sum(r["ref"] for r in rows) / len(rows)
    (a, b) = rows
    ya = a["measured"] * R / a["ref"] - a["tail"]
    yb = b["measured"] * R / b["ref"] - b["tail"]
    per_op = (yb - ya) / (b["ops"] - a["ops"])
    per_step = ya - a["ops"] * per_op
    for r in rows:
        print(f"# {r['pick']}: measured {r['measured'] * 1e3:.3f} ms, reference {r['ref'] * 1e3:.4f} ms, {r['ops']} ops, tail {r['tail'] * 1e3:.3f} ms")
    if per_op <= 0 or per_step < 0:
        sys.exit(f"no positive solution: per_op {per_op}, per_step {per_step}")
    print(f"host:\n  per_op_s: {per_op:.4g}\n  per_step_s: {per_step:.4g}\n  reference_seconds: {R:.4g}")


if __name__ == "__main__":
    main()
