#!/usr/bin/env python3
"""Measure what PyTorch + Hugging Face transformers really allocate on a GPU.

Random-weight models are built from configs (no downloads). For each case it records
torch.cuda.max_memory_allocated() minus the bytes allocated before the step (the engine's
forward_peak_bytes), the KV cache bytes, the logits bytes, and the runtime overhead of the
process (CUDA context and library workspaces, from torch.cuda.mem_get_info()).

Usage: python3 kernels/torch/measure_hf_memory.py OUT_DIR [--overhead-only]
           [--shapes NAME,...] [--contexts N,...] [--batches N,...] [--warmup] [--name FILE]
Shapes: gqa-2l, mha-2l, qwen2-2l (the defaults; Qwen2 has q/k/v biases and tied
embeddings), llama-3.1-8b, mistral-7b-v0.1 (full-size configs).
--warmup runs one small forward per model before measuring (first-call library setup).
Writes OUT_DIR/FILE (default hf_memory.json; schema memtax.measurements/1, documented in
docs/measurement-schema.md) and OUT_DIR/<shape>.config.json, which the cases name.
"""
import datetime
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import boot_id, smi, step_bytes  # noqa: E402


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    used_before_process_mib = smi("memory.used")  # before this process creates a CUDA context
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.cuda.init()
    dev = torch.device("cuda")
    free0, total = torch.cuda.mem_get_info()
    # Warm every library the forward uses (cuBLAS handle and workspace, SDPA kernels), then
    # drop all tensors: what remains in use is the runtime overhead.
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    (a @ a).sum().item()
    q = torch.randn(1, 8, 1024, 128, device=dev, dtype=torch.bfloat16)
    torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).sum().item()
    del a, q
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    free1, _ = torch.cuda.mem_get_info()
    allocated_idle = torch.cuda.memory_allocated()
    reserved_idle = torch.cuda.memory_reserved()
    overhead = {
        "device_total_bytes": total,
        "used_before_process_mib": used_before_process_mib,
        "used_after_init_bytes": total - free0,
        "used_after_warmup_bytes": total - free1,
        "allocator_allocated_idle_bytes": allocated_idle,
        "allocator_reserved_idle_bytes": reserved_idle,
        # Everything the process holds that is not a live tensor of the model.
        "runtime_overhead_bytes": total - free1 - (reserved_idle - allocated_idle),
    }

    args = sys.argv[2:]

    def opt(name, default):
        return args[args.index(name) + 1].split(",") if name in args else default

    overhead_only = "--overhead-only" in args
    warmup = "--warmup" in args
    contexts = [int(c) for c in opt("--contexts", ["1024", "2048", "4096", "8192", "16384", "32768"])]
    batches = [int(b) for b in opt("--batches", ["1", "2"])]
    all_shapes = {
        "gqa-2l": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=4, head_dim=128,
                       intermediate_size=5632, num_hidden_layers=2, vocab_size=32000),
        "mha-2l": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=16, head_dim=128,
                       intermediate_size=5632, num_hidden_layers=2, vocab_size=32000),
        "qwen2-2l": dict(model_type="qwen2", hidden_size=1536, num_attention_heads=12, num_key_value_heads=2,
                         head_dim=128, intermediate_size=8960, num_hidden_layers=2, vocab_size=151936,
                         tie_word_embeddings=True),
        # Full-size public configs (meta-llama/Llama-3.1-8B, mistralai/Mistral-7B-v0.1), random weights.
        "llama-3.1-8b": dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                             intermediate_size=14336, num_hidden_layers=32, vocab_size=128256),
        "mistral-7b-v0.1": dict(model_type="mistral", hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                                head_dim=128, intermediate_size=14336, num_hidden_layers=32, vocab_size=32000,
                                sliding_window=4096, max_position_embeddings=32768),
    }
    names = opt("--shapes", ["gqa-2l", "mha-2l", "qwen2-2l"])
    file_name = opt("--name", ["hf_memory.json"])[0]
    shapes = {} if overhead_only else {n: all_shapes[n] for n in names}
    cases = []
    from transformers import MistralConfig, Qwen2Config
    for shape_name, kw in shapes.items():
        kw = dict(kw)
        model_type = kw.pop("model_type", "llama")
        if model_type == "mistral":
            cfg = MistralConfig(tie_word_embeddings=False, **kw)
        elif model_type == "qwen2":
            cfg = Qwen2Config(max_position_embeddings=131072, **kw)
        else:
            cfg = LlamaConfig(max_position_embeddings=131072, tie_word_embeddings=False, **kw)
        cfg_dict = cfg.to_dict()
        cfg_dict["dtype"] = "bfloat16"
        cfg_dict.pop("torch_dtype", None)
        with open(os.path.join(out_dir, f"{shape_name}.config.json"), "w") as f:
            json.dump(cfg_dict, f, indent=2, sort_keys=True)
        for impl in ["eager", "sdpa"]:
            cfg._attn_implementation = impl
            torch.manual_seed(0)
            with torch.device(dev):
                model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
            model.eval()
            if warmup:
                with torch.inference_mode():
                    model(input_ids=torch.randint(0, cfg.vocab_size, (1, 128), device=dev), use_cache=True)
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            for batch in batches:
                for ctx in contexts:
                    for kept in ["1", "all"]:
                        runtime = "hf-" + impl
                        case = dict(id=f"{shape_name}/{runtime}/b{batch}/s{ctx}/prefill/kept-{kept}",
                                    kind="forward", model_config=f"{shape_name}.config.json", runtime=runtime,
                                    mode="prefill", batch=batch, context=ctx, logits_kept=1 if kept == "1" else 0)
                        ids = torch.randint(0, cfg.vocab_size, (batch, ctx), device=dev)
                        torch.cuda.synchronize()
                        torch.cuda.empty_cache()
                        torch.cuda.reset_peak_memory_stats()
                        before = torch.cuda.memory_allocated()
                        try:
                            with torch.inference_mode():
                                out = model(input_ids=ids, use_cache=True,
                                            logits_to_keep=1 if kept == "1" else 0)
                            torch.cuda.synchronize()
                            case.update(status="ok", measured=step_bytes(out, before))
                            cache = out.past_key_values
                            # One decode step over the filled cache.
                            if kept == "1":
                                nxt = torch.randint(0, cfg.vocab_size, (batch, 1), device=dev)
                                torch.cuda.synchronize()
                                torch.cuda.reset_peak_memory_stats()
                                before_d = torch.cuda.memory_allocated()
                                with torch.inference_mode():
                                    out2 = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                                torch.cuda.synchronize()
                                # The decode case's context is the KV length after the step.
                                cases.append(dict(
                                    id=f"{shape_name}/{runtime}/b{batch}/s{ctx + 1}/decode",
                                    kind="forward", model_config=f"{shape_name}.config.json", runtime=runtime,
                                    mode="decode", batch=batch, context=ctx + 1, logits_kept=1, status="ok",
                                    measured=step_bytes(out2, before_d)))
                                del out2
                            del out, cache
                        except torch.OutOfMemoryError as err:
                            # PyTorch's message says what it tried to allocate, what was allocated
                            # and what was reserved but unallocated (fragmentation).
                            msg = " ".join(str(err).split())[:600]
                            case.update(status="oom", reason="torch.OutOfMemoryError in the prefill forward: " + msg)
                        cases.append(case)
                        del ids
                        torch.cuda.empty_cache()
                        print(json.dumps(cases[-1]), flush=True)
            del model
            torch.cuda.empty_cache()

    doc = {
        "schema": "memtax.measurements/1",
        "source": "torch-hf",
        "provenance": {
            "gpu": torch.cuda.get_device_name(0),
            "driver": smi("driver_version"),
            "nvidia_smi_memory_total_mib": smi("memory.total"),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.version.cuda,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "lease": boot_id(),
            "command": "python3 " + " ".join(["kernels/torch/measure_hf_memory.py", "$OUT"] + sys.argv[2:]),
        },
        "runtime_overhead_bytes": overhead["runtime_overhead_bytes"],
        "runtime_overhead_detail": overhead,
        "cases": cases,
    }
    with open(os.path.join(out_dir, file_name), "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(overhead, indent=1))


if __name__ == "__main__":
    main()
