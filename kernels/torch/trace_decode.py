#!/usr/bin/env python3
"""Trace every allocation and free of one transformers decode step (after a prefill) with
torch.cuda.memory._record_memory_history, for the families whose decode peak stays at or below
the step's starting allocation. Writes OUT_DIR/decode_trace.json: per shape, the events
(action, size, top frames) between the decode's start and end.

Usage: python3 kernels/torch/trace_decode.py OUT_DIR [--shapes mixtral-2l,gemma2-2l]
"""
import gc
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ARCH_SHAPES  # noqa: E402


def main():
    out_dir = sys.argv[1]
    args = sys.argv[2:]
    shapes = args[args.index("--shapes") + 1].split(",") if "--shapes" in args else ["mixtral-2l", "gemma2-2l", "phi3-2l"]
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    dev = torch.device("cuda")
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    (a @ a).sum().item()
    del a
    result = {}
    for shape in shapes:
        kw = dict(ARCH_SHAPES[shape])
        mt = kw.pop("model_type")
        cfg = AutoConfig.for_model(mt, **kw)
        with torch.device(dev):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        model.eval()
        ids = torch.randint(0, cfg.vocab_size, (1, 1024), device=dev)
        with torch.inference_mode():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        nxt = torch.randint(0, cfg.vocab_size, (1, 1), device=dev)
        gc.collect()
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.memory._record_memory_history(max_entries=100000)
        with torch.inference_mode():
            out2 = model(input_ids=nxt, past_key_values=cache, use_cache=True)
        torch.cuda.synchronize()
        snap = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        events = []
        for trace in snap.get("device_traces", []):
            for e in trace:
                if e["action"] not in ("alloc", "free_requested", "free_completed"):
                    continue
                frames = [f"{f['filename'].split('/')[-1]}:{f['line']}:{f['name']}" for f in e.get("frames", [])
                          if "transformers" in f["filename"] or "torch/nn" in f["filename"]][:4]
                events.append([e["action"], e["size"], frames])
        result[shape] = dict(before=before, after=torch.cuda.memory_allocated(), events=events[:400])
        print(shape, before, torch.cuda.memory_allocated(), len(events), flush=True)
        del model, out, out2, cache
        gc.collect()
        torch.cuda.empty_cache()
    with open(os.path.join(out_dir, "decode_trace.json"), "w") as f:
        json.dump(result, f, indent=0)


if __name__ == "__main__":
    main()
