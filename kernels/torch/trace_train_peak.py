#!/usr/bin/env python3
"""Which tensors are live at the peak of a training step's backward (diagnostic).

Builds a 2-layer Llama-shaped model (gqa-2l of measure_hf_train.py), runs one warm-up training
step, then records the caching allocator's history through forward + backward of a second and
replays it: at the highest allocated point, every live block with its size and the frames that
allocated it (Python and C++). Writes OUT_DIR/train_peak_trace.json.

Usage: python3 kernels/torch/trace_train_peak.py OUT_DIR [--impl eager] [--seq 4096] [--batch 1] [--ckpt]
"""
import json
import os
import sys


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    args = sys.argv[2:]

    def opt(name, default):
        return args[args.index(name) + 1] if name in args else default

    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    impl, seq, batch, ckpt = opt("--impl", "eager"), int(opt("--seq", "4096")), int(opt("--batch", "1")), "--ckpt" in args
    cfg = LlamaConfig(hidden_size=2048, num_attention_heads=16, num_key_value_heads=4, head_dim=128, intermediate_size=5632,
                      num_hidden_layers=2, vocab_size=32000, max_position_embeddings=131072)
    dev = torch.device("cuda")
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
    model.train()
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device=dev)
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.memory._record_memory_history(max_entries=400000, stacks="all")
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    fwd_done = torch.cuda.memory_allocated() - base
    loss.backward()
    torch.cuda.synchronize()
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    live, cur, best, best_live, order = {}, 0, -1, None, 0
    for tr in snap.get("device_traces", []):
        for e in tr:
            a = e["action"]
            if a == "alloc":
                fr = e.get("frames", [])
                py = [f"{f['filename'].split('/')[-1]}:{f['line']}:{f['name']}" for f in fr if f["filename"].endswith(".py")][:3]
                cpp = [f["name"][:90] for f in fr if not f["filename"].endswith(".py") and ("native" in f["name"] or "Backward" in f["name"] or "autograd::generated" in f["name"])][:3]
                live[e["addr"]] = (e["size"], order, py, cpp)
                order += 1
                cur += e["size"]
                if cur > best:
                    best, best_live = cur, dict(live)
            elif a == "free_completed" and e["addr"] in live:
                cur -= live.pop(e["addr"])[0]
    blocks = sorted(best_live.values(), key=lambda v: -v[0])
    doc = dict(impl=impl, seq=seq, batch=batch, ckpt=ckpt, saved_after_forward=fwd_done, peak_above_base_in_trace=best,
               measured_peak_above_base=torch.cuda.max_memory_allocated() - base,
               live_at_peak=[dict(bytes=s, order=o, python=p, cpp=c) for s, o, p, c in blocks if s >= 1 << 20])
    with open(os.path.join(out_dir, "train_peak_trace.json" if not ckpt else "train_peak_trace_ckpt.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps({k: v for k, v in doc.items() if k != "live_at_peak"}))


if __name__ == "__main__":
    main()
