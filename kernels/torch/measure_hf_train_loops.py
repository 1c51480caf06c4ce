#!/usr/bin/env python3
"""Measure training steps as people run them (PyTorch + transformers + peft, random weights, bf16).

Each case is one configuration of the loop around `model(...)`:
  loop        "loss": `loss = model(...).loss; loss.backward()` (the caller keeps only the loss);
              "outputs": `out = model(...); out.loss.backward()` (the caller keeps the whole
              output: the logits, and the cache when use_cache is on)
  use_cache   passed to the forward (None: the config's default)
  micro       micro-batches per optimizer step (gradient accumulation)
  zero_grad   "none" (zero_grad(set_to_none=True), PyTorch's default) or "zeros" (set_to_none=False:
              the gradients stay allocated between steps)
  lora        None (full fine-tuning) or {rank, alpha, targets}: peft LoRA, the base frozen
  recompute   "none" or "full" (gradient_checkpointing_enable, use_reentrant=False)
Steps run until the states and gradients are in their steady state; the last step is recorded.
Relative to the bytes allocated before that step's first forward:
  saved_activation_bytes  allocated after the (last micro-batch's) forward
  backward_peak_bytes     the highest allocation through the micro-batches' forwards and backwards
  gradient_bytes          allocated after the last backward
  train_peak_bytes        the highest allocation with the optimizer step
plus resident_before_bytes, weight_bytes, optimizer_state_bytes (after the first step, less the
weights and the gradients), trainable_parameters (what peft counts) and step_time_ms (CUDA events
around the whole step, median of the timed steps after two warm-up steps).
Writes OUT_DIR/FILE (schema memtax.measurements/1, kind "train") after every case, and the configs.

Usage: python3 kernels/torch/measure_hf_train_loops.py OUT_DIR [--groups loops,accum,lora | oos | time] [--name FILE]
"""
import datetime
import json
import os
import statistics
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOOP_SHAPES, boot_id, out_dir_and_options, smi  # noqa: E402

def cases_of(groups):
    out = []
    if "oos" in groups:
        # Out of sample: other shapes, lengths, ranks and targets than the first run's.
        qv = ["q_proj", "v_proj"]
        every = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        for shape in ["mistral-7b-2l", "qwen2.5-3b-2l", "llama3-8b-2l"]:
            for impl in ["sdpa", "eager"]:
                for ckpt in ["none", "full"]:
                    out.append(dict(shape=shape, impl=impl, recompute=ckpt, loop="outputs", use_cache=None, batch=3, seq=1000,
                                    micro=1, zero_grad="none", lora=None))
            out.append(dict(shape=shape, impl="sdpa", recompute="none", loop="loss", use_cache=False, batch=1, seq=3000,
                            micro=4, zero_grad="none", lora=None))
            out.append(dict(shape=shape, impl="sdpa", recompute="none", loop="loss", use_cache=False, batch=1, seq=3000,
                            micro=2, zero_grad="zeros", lora=None))
            for lora in [dict(rank=32, alpha=64, targets=qv), dict(rank=4, alpha=8, targets=every)]:
                for impl in ["sdpa", "eager"]:
                    for ckpt in ["none", "full"]:
                        out.append(dict(shape=shape, impl=impl, recompute=ckpt, loop="outputs", use_cache=False, batch=1, seq=3000,
                                        micro=1, zero_grad="none", lora=lora))
    if "time" in groups:
        # Step times at lengths and batches no run had: 4,096 and 512-token sequences, 2 and 8 of
        # them, on three widths (and LoRA r16 on the MLP only), for the time model out of sample.
        mlp = ["gate_proj", "up_proj", "down_proj"]
        for shape in ["qwen2-7b-2l", "mistral-7b-2l", "qwen2.5-3b-2l"]:
            for impl in ["sdpa", "eager"]:
                for ckpt in ["none", "full"]:
                    out.append(dict(shape=shape, impl=impl, recompute=ckpt, loop="loss", use_cache=False, batch=2, seq=4096,
                                    micro=1, zero_grad="none", lora=None))
            out.append(dict(shape=shape, impl="sdpa", recompute="none", loop="loss", use_cache=False, batch=8, seq=512,
                            micro=2, zero_grad="none", lora=None))
            out.append(dict(shape=shape, impl="sdpa", recompute="full", loop="loss", use_cache=False, batch=2, seq=4096,
                            micro=1, zero_grad="none", lora=dict(rank=16, alpha=32, targets=mlp)))
    if "loops" in groups:
        for shape in [k for k in LOOP_SHAPES if k in ("gqa-2l", "llama3-8b-2l", "qwen2-7b-2l")]:
            for impl in ["sdpa", "eager"]:
                for ckpt in ["none", "full"]:
                    for loop, cache in [("loss", False), ("outputs", False), ("outputs", None)]:
                        for b, s in [(1, 2048), (2, 1024)]:
                            out.append(dict(shape=shape, impl=impl, recompute=ckpt, loop=loop, use_cache=cache, batch=b, seq=s,
                                            micro=1, zero_grad="none", lora=None))
    if "accum" in groups:
        for shape in ["gqa-2l", "llama3-8b-2l"]:
            for micro, zg in [(1, "zeros"), (2, "none"), (2, "zeros"), (3, "none")]:
                out.append(dict(shape=shape, impl="sdpa", recompute="none", loop="loss", use_cache=False, batch=1, seq=2048,
                                micro=micro, zero_grad=zg, lora=None))
    if "lora" in groups:
        qkvo = ["q_proj", "k_proj", "v_proj", "o_proj"]
        every = qkvo + ["gate_proj", "up_proj", "down_proj"]
        for shape in ["gqa-2l", "llama3-8b-2l", "qwen2-7b-2l"]:
            for lora in [dict(rank=16, alpha=32, targets=qkvo), dict(rank=8, alpha=16, targets=every)]:
                for ckpt in ["none", "full"]:
                    for loop in ["loss", "outputs"]:
                        out.append(dict(shape=shape, impl="sdpa", recompute=ckpt, loop=loop, use_cache=False, batch=1, seq=2048,
                                        micro=1, zero_grad="none", lora=lora))
    return out


def case_id(c):
    rt = "hf-train" if c["impl"] == "sdpa" else "hf-train-eager"
    parts = [c["shape"], rt, f"b{c['batch']}", f"s{c['seq']}", f"recompute-{c['recompute']}", f"loop-{c['loop']}"]
    if c["loop"] == "outputs":
        parts.append("cache-" + ("default" if c["use_cache"] is None else "off"))
    if c["micro"] > 1 or c["zero_grad"] != "none":
        parts.append(f"micro{c['micro']}-zerograd-{c['zero_grad']}")
    if c["lora"]:
        parts.append(f"lora-r{c['lora']['rank']}-{len(c['lora']['targets'])}")
    return "/".join(parts)


def main():
    out_dir, opt = out_dir_and_options()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    dev = torch.device("cuda")
    groups = opt("--groups", ["loops", "accum", "lora"])
    file_name = opt("--name", ["hf_train_loops.json"])[0]
    try:
        import peft
        peft_version = peft.__version__
    except ImportError:
        peft = None
        peft_version = "absent"
    doc = {
        "schema": "memtax.measurements/1",
        "source": "torch-hf-train-loops",
        "provenance": {
            "gpu": torch.cuda.get_device_name(0), "driver": smi("driver_version"), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft_version, "cuda": torch.version.cuda, "lease": boot_id(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python3 " + " ".join(["kernels/torch/measure_hf_train_loops.py", "$OUT"] + sys.argv[2:]),
        },
        "cases": [],
    }
    written = set()
    for c in cases_of(groups):
        kw = dict(LOOP_SHAPES[c["shape"]])
        mt = kw.pop("model_type", "llama")
        tie = kw.pop("tie_word_embeddings", False)
        cfg = (Qwen2Config if mt == "qwen2" else LlamaConfig)(max_position_embeddings=131072, tie_word_embeddings=tie, **kw)
        if c["shape"] not in written:
            d = cfg.to_dict()
            d["dtype"] = "bfloat16"
            d.pop("torch_dtype", None)
            with open(os.path.join(out_dir, f"{c['shape']}.config.json"), "w") as f:
                json.dump(d, f, indent=2, sort_keys=True)
            written.add(c["shape"])
        rt = "hf-train" if c["impl"] == "sdpa" else "hf-train-eager"
        case = dict(id=case_id(c), kind="train", model_config=f"{c['shape']}.config.json", runtime=rt, mode="train",
                    batch=c["batch"], context=c["seq"], recompute=c["recompute"], optimizer="adamw", dtype="bf16",
                    loop=c["loop"], micro_batches=c["micro"], zero_grad=c["zero_grad"])
        if c["loop"] == "outputs":
            case["use_cache"] = "default" if c["use_cache"] is None else "off"
        if c["lora"]:
            case["lora"] = dict(rank=c["lora"]["rank"], alpha=c["lora"]["alpha"], targets=c["lora"]["targets"])
        model = opt_ = None
        try:
            if c["lora"] and peft is None:
                raise RuntimeError("peft is not installed")
            torch.manual_seed(0)
            with torch.device(dev):
                model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=c["impl"])
            if c["lora"]:
                lc = peft.LoraConfig(r=c["lora"]["rank"], lora_alpha=c["lora"]["alpha"], target_modules=c["lora"]["targets"],
                                     lora_dropout=0.0, task_type="CAUSAL_LM")
                model = peft.get_peft_model(model, lc)
            model.train()
            if c["recompute"] == "full":
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                if c["lora"]:
                    model.enable_input_require_grads()
            trainable = [p for p in model.parameters() if p.requires_grad]
            opt_ = torch.optim.AdamW(trainable, lr=1e-5)
            ids = torch.randint(0, cfg.vocab_size, (c["batch"], c["seq"]), device=dev)
            weights = torch.cuda.memory_allocated()
            rec = dict(trainable_parameters=sum(p.numel() for p in trainable),
                       parameters=sum(p.numel() for p in model.parameters()))
            kwargs = dict(input_ids=ids, labels=ids)
            if c["use_cache"] is not None:
                kwargs["use_cache"] = c["use_cache"]
            times = []
            steps = 6
            for it in range(steps):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
                t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                t0.record()
                for m in range(c["micro"]):
                    if c["loop"] == "loss":
                        loss = model(**kwargs).loss
                        torch.cuda.synchronize()
                        saved = torch.cuda.memory_allocated() - before
                        loss.backward()
                        del loss
                    else:
                        out = model(**kwargs)
                        torch.cuda.synchronize()
                        saved = torch.cuda.memory_allocated() - before
                        out.loss.backward()
                        del out
                torch.cuda.synchronize()
                bwd_peak = torch.cuda.max_memory_allocated() - before
                grads = torch.cuda.memory_allocated() - before
                opt_.step()
                t1.record()
                torch.cuda.synchronize()
                train_peak = torch.cuda.max_memory_allocated() - before
                after_step = torch.cuda.memory_allocated()
                opt_.zero_grad(set_to_none=c["zero_grad"] == "none")
                if it == 0:
                    rec["optimizer_state_bytes"] = after_step - weights - grads
                if it >= 2:
                    times.append(t0.elapsed_time(t1))
                rec.update(saved_activation_bytes=saved, backward_peak_bytes=bwd_peak, gradient_bytes=grads,
                           train_peak_bytes=train_peak, resident_before_bytes=before)
            rec["weight_bytes"] = weights
            rec["step_time_ms"] = statistics.median(times)
            rec["step_times_ms"] = times
            case.update(status="ok", measured=rec)
        except torch.OutOfMemoryError as err:
            case.update(status="oom", reason="torch.OutOfMemoryError: " + " ".join(str(err).split())[:300])
        except Exception as err:  # recorded, never silently dropped
            case.update(status="error", reason=f"{type(err).__name__}: " + " ".join(str(err).split())[:300])
        del model, opt_
        torch.cuda.empty_cache()
        doc["cases"].append(case)
        print(json.dumps(case), flush=True)
        with open(os.path.join(out_dir, file_name + ".tmp"), "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(os.path.join(out_dir, file_name + ".tmp"), os.path.join(out_dir, file_name))


if __name__ == "__main__":
    main()
