#!/usr/bin/env python3
"""List what autograd saves in one training forward, per module, under full training and under
peft LoRA (the base frozen): each saved tensor's shape, dtype, bytes and storage, and which
module's forward was running when it was saved (torch.autograd.graph.saved_tensors_hooks).

Usage: python3 kernels/torch/trace_saved.py OUT_DIR [--shape llama3-8b-2l] [--seq 2048]
Writes OUT_DIR/saved_<shape>.json: {variant: [{module, shape, dtype, bytes, storage}, ...]}.
"""
import json
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import out_dir_and_options  # noqa: E402
from measure_hf_train_loops import LOOP_SHAPES  # noqa: E402


def main():
    out_dir, opt = out_dir_and_options()

    import torch
    import peft
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    shape = opt("--shape", ["llama3-8b-2l"])[0]
    seq = int(opt("--seq", ["2048"])[0])
    kw = dict(LOOP_SHAPES[shape])
    mt = kw.pop("model_type", "llama")
    cfg = (Qwen2Config if mt == "qwen2" else LlamaConfig)(max_position_embeddings=131072, **kw)
    qkvo = ["q_proj", "k_proj", "v_proj", "o_proj"]
    variants = {"full": None, "lora-qkvo": qkvo, "lora-all": qkvo + ["gate_proj", "up_proj", "down_proj"]}
    result = {}
    for name, targets in variants.items():
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        if targets:
            model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, target_modules=targets, lora_dropout=0.0,
                                                               task_type="CAUSAL_LM"))
        model.train()
        stack = []
        hooks = []
        for mname, mod in model.named_modules():
            hooks.append(mod.register_forward_pre_hook(lambda m, a, n=mname: stack.append(n)))
            hooks.append(mod.register_forward_hook(lambda m, a, o: stack.pop()))
        rows = []

        def pack(t):
            st = t.untyped_storage()
            rows.append(dict(module=stack[-1] if stack else "", shape=list(t.shape), dtype=str(t.dtype),
                             bytes=t.numel() * t.element_size(), storage=st.data_ptr(), storage_bytes=st.nbytes(),
                             is_param=isinstance(t, torch.nn.Parameter) or t.requires_grad and t.is_leaf))
            return t

        ids = torch.randint(0, cfg.vocab_size, (1, seq), device="cuda")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        for h in hooks:
            h.remove()
        result[name] = rows
        del model, loss
        torch.cuda.empty_cache()
    with open(os.path.join(out_dir, f"saved_{shape}.json"), "w") as f:
        json.dump(result, f, indent=0)


if __name__ == "__main__":
    main()
