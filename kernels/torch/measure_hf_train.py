#!/usr/bin/env python3
"""Measure the memory of training steps under PyTorch + transformers (random weights, bf16).

For each shape, attention implementation (eager, sdpa), gradient checkpointing (off, on:
gradient_checkpointing_enable(use_reentrant=False)), batch and sequence length: two training
steps (forward with labels, backward, AdamW step, zero_grad(set_to_none=True)); the second is
recorded, so the optimizer states already exist. Relative to the bytes allocated before the
step's forward:
  saved_activation_bytes  allocated after the forward (what backward will read, the loss too)
  backward_peak_bytes     the highest allocation during forward + backward
  gradient_bytes          allocated after backward (the gradients)
  train_peak_bytes        the highest allocation during forward + backward + optimizer step
and optimizer_state_bytes (allocated after the first step, less weights and gradients).
Writes OUT_DIR/FILE (schema memtax.measurements/1, kind "train") and the configs.

Usage: python3 kernels/torch/measure_hf_train.py OUT_DIR [--shapes gqa-2l,...] [--seqs 1024,4096]
           [--batches 1,2] [--name FILE]
"""
import datetime
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TRAIN_SHAPES, out_dir_and_options, smi  # noqa: E402


def main():
    out_dir, opt = out_dir_and_options()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig, MixtralConfig

    dev = torch.device("cuda")
    shapes = opt("--shapes", ["gqa-2l", "mha-2l", "llama-1b", "moe-2l"])
    seqs = [int(s) for s in opt("--seqs", ["1024", "4096"])]
    batches = [int(b) for b in opt("--batches", ["1", "2"])]
    file_name = opt("--name", ["hf_train.json"])[0]
    cases = []
    for shape in shapes:
        kw = dict(TRAIN_SHAPES[shape])
        mt = kw.pop("model_type", "llama")
        tie = kw.pop("tie_word_embeddings", False)
        cfg = (MixtralConfig if mt == "mixtral" else LlamaConfig)(max_position_embeddings=131072, tie_word_embeddings=tie, **kw)
        d = cfg.to_dict()
        d["dtype"] = "bfloat16"
        d.pop("torch_dtype", None)
        with open(os.path.join(out_dir, f"{shape}.config.json"), "w") as f:
            json.dump(d, f, indent=2, sort_keys=True)
        for impl in ["eager", "sdpa"]:
            for ckpt in [False, True]:
                for b in batches:
                    for s in seqs:
                        runtime = "hf-train" if impl == "sdpa" else "hf-train-eager"
                        case = dict(id=f"{shape}/{runtime}/b{b}/s{s}/recompute-{'full' if ckpt else 'none'}", kind="train",
                                    model_config=f"{shape}.config.json", runtime=runtime, mode="train", batch=b, context=s,
                                    recompute="full" if ckpt else "none", optimizer="adamw", dtype="bf16")
                        model = opt_ = None
                        try:
                            torch.manual_seed(0)
                            with torch.device(dev):
                                model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
                            model.train()
                            if ckpt:
                                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                            opt_ = torch.optim.AdamW(model.parameters(), lr=1e-5)
                            ids = torch.randint(0, cfg.vocab_size, (b, s), device=dev)
                            weights = torch.cuda.memory_allocated()
                            rec = {}
                            for it in range(2):
                                torch.cuda.synchronize()
                                torch.cuda.reset_peak_memory_stats()
                                before = torch.cuda.memory_allocated()
                                loss = model(input_ids=ids, labels=ids, use_cache=False).loss
                                torch.cuda.synchronize()
                                saved = torch.cuda.memory_allocated() - before
                                loss.backward()
                                torch.cuda.synchronize()
                                bwd_peak = torch.cuda.max_memory_allocated() - before
                                del loss
                                grads = torch.cuda.memory_allocated() - before
                                opt_.step()
                                torch.cuda.synchronize()
                                train_peak = torch.cuda.max_memory_allocated() - before
                                after_step = torch.cuda.memory_allocated()
                                opt_.zero_grad(set_to_none=True)
                                if it == 0:
                                    rec["optimizer_state_bytes"] = after_step - weights - grads
                                rec.update(saved_activation_bytes=saved, backward_peak_bytes=bwd_peak, gradient_bytes=grads,
                                           train_peak_bytes=train_peak, resident_before_bytes=before)
                            rec["weight_bytes"] = weights
                            case.update(status="ok", measured=rec)
                        except torch.OutOfMemoryError as err:
                            case.update(status="oom", reason="torch.OutOfMemoryError: " + " ".join(str(err).split())[:300])
                        del model, opt_
                        torch.cuda.empty_cache()
                        cases.append(case)
                        print(json.dumps(case), flush=True)
    doc = {
        "schema": "memtax.measurements/1",
        "source": "torch-hf-train",
        "provenance": {
            "gpu": torch.cuda.get_device_name(0), "driver": smi("driver_version"), "torch": torch.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python3 " + " ".join(["kernels/torch/measure_hf_train.py", "$OUT"] + sys.argv[2:]),
        },
        "cases": cases,
    }
    with open(os.path.join(out_dir, file_name), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
