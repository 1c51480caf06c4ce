#!/usr/bin/env python3
"""Which tensors are live at the peak of one transformers forward? (a diagnostic for the op graphs)

Records the CUDA caching allocator's history during one forward, replays the alloc/free events,
and prints the tensors live at the peak with the Python line that allocated each.
Usage: python3 kernels/torch/trace_peak.py OUT_DIR
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, LlamaConfig


def trace(model, ids, **kw):
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.memory._record_memory_history(max_entries=1000000)
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True, **kw)
    torch.cuda.synchronize()
    peak_reported = torch.cuda.max_memory_allocated() - before
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    events = [e for dev in snap["device_traces"] for e in dev]
    live, cur, best, best_live = {}, 0, 0, {}
    for e in events:
        if e["action"] == "alloc":
            live[e["addr"]] = e
            cur += e["size"]
            if cur > best:
                best, best_live = cur, dict(live)
        elif e["action"] in ("free_requested",):
            if e["addr"] in live:
                cur -= live.pop(e["addr"])["size"]
    rows = []
    for e in best_live.values():
        frames = [f for f in e.get("frames", []) if "site-packages/transformers" in f["filename"] or "torch/nn" in f["filename"]]
        where = [f"{os.path.basename(f['filename'])}:{f['line']}:{f['name']}" for f in frames[:3]]
        rows.append({"size": e["size"], "where": where})
    rows.sort(key=lambda r: -r["size"])
    del out
    return {"peak_reported": peak_reported, "peak_replayed_in_trace": best, "live_at_peak": rows}


def main():
    out_dir = sys.argv[1]
    dev = torch.device("cuda")
    res = {}
    for impl, kv in [("eager", 4), ("eager", 16), ("sdpa", 4)]:
        cfg = LlamaConfig(hidden_size=2048, num_attention_heads=16, num_key_value_heads=kv, head_dim=128,
                          intermediate_size=5632, num_hidden_layers=2, vocab_size=32000,
                          max_position_embeddings=131072, tie_word_embeddings=False)
        with torch.device(dev):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
        model.eval()
        ids = torch.randint(0, 32000, (1, 1024), device=dev)
        res[f"{impl}-kv{kv}-prefill"] = trace(model, ids, logits_to_keep=1)
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        nxt = torch.randint(0, 32000, (1, 1), device=dev)
        res[f"{impl}-kv{kv}-decode"] = trace(model, nxt, past_key_values=out.past_key_values)
        del model, out
        torch.cuda.empty_cache()
    with open(os.path.join(out_dir, "trace_peak.json"), "w") as f:
        json.dump(res, f, indent=1)
    for k, v in res.items():
        print(k, v["peak_reported"], v["peak_replayed_in_trace"])
        for r in v["live_at_peak"][:40]:
            print("   ", r["size"], " | ".join(r["where"]))


if __name__ == "__main__":
    main()
