#!/usr/bin/env python3
"""Where a training step's time goes (a diagnostic, not a measurement any model is fitted to).

For each case (PyTorch + transformers, random weights, bf16, AdamW as torch.optim builds it):
  phases_ms   the median over timed steps of forward, backward and optimizer step, each timed with
              CUDA events and a synchronize between phases (as measure_hf_train_loops.py's step)
  host_ms     the host's wall time to issue each phase (perf_counter; loss.backward() returns once
              the autograd engine has queued every kernel)
  kernels     per phase, every CUDA kernel name with its count and total device time (torch.profiler)
and an AdamW-only series: opt.step() over N bf16 parameters in 8 tensors, foreach (the default) and
fused, to see the optimizer's bytes per parameter.

Usage: python3 kernels/torch/profile_train_phases.py OUT_DIR
Writes OUT_DIR/train_phases.json.
"""
import datetime
import json
import os
import statistics
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOOP_SHAPES, boot_id, out_dir_and_options, smi  # noqa: E402


CASES = [
    dict(shape="gqa-2l", impl="sdpa", lora=False, recompute="none"),
    dict(shape="gqa-2l", impl="eager", lora=False, recompute="none"),
    dict(shape="gqa-2l", impl="sdpa", lora=True, recompute="none"),
    dict(shape="llama3-8b-2l", impl="sdpa", lora=False, recompute="none"),
    dict(shape="llama3-8b-2l", impl="eager", lora=False, recompute="none"),
    dict(shape="llama3-8b-2l", impl="sdpa", lora=True, recompute="none"),
    dict(shape="llama3-8b-2l", impl="sdpa", lora=False, recompute="full"),
    dict(shape="qwen2-7b-2l", impl="sdpa", lora=False, recompute="none"),
]


def main():
    out_dir, _ = out_dir_and_options()
    import torch
    import transformers
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config
    import peft

    dev = torch.device("cuda")
    doc = dict(schema="memtax.diagnostic/1", source="torch-train-phases", provenance=dict(
        gpu=torch.cuda.get_device_name(0), driver=smi("driver_version"), torch=torch.__version__,
        transformers=transformers.__version__, peft=peft.__version__, lease=boot_id(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command="python3 kernels/torch/profile_train_phases.py $OUT"), cases=[], adamw=[])

    def kernels_of(prof):
        rows = []
        for e in prof.key_averages():
            t = getattr(e, "device_time_total", 0) or getattr(e, "cuda_time_total", 0)
            if t > 0 and e.device_type == torch.autograd.DeviceType.CUDA:
                rows.append(dict(name=e.key[:160], count=e.count, total_us=round(t, 1)))
        rows.sort(key=lambda r: -r["total_us"])
        return rows[:60]

    for c in CASES:
        kw = dict(LOOP_SHAPES[c["shape"]])
        mt = kw.pop("model_type", "llama")
        tie = kw.pop("tie_word_embeddings", False)
        cfg = (Qwen2Config if mt == "qwen2" else LlamaConfig)(max_position_embeddings=131072, tie_word_embeddings=tie, **kw)
        torch.manual_seed(0)
        with torch.device(dev):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=c["impl"])
        if c["lora"]:
            model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
        model.train()
        if c["recompute"] == "full":
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        ids = torch.randint(0, cfg.vocab_size, (1, 2048), device=dev)
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        gpu, host = {"forward": [], "backward": [], "optimizer": []}, {"forward": [], "backward": [], "optimizer": []}

        def step(timed, prof_phase=None):
            phases = {}
            torch.cuda.synchronize()
            ev[0].record()
            h0 = time.perf_counter()
            with (profile(activities=[ProfilerActivity.CUDA]) if prof_phase == "forward" else _Null()) as pf:
                loss = model(input_ids=ids, labels=ids).loss
                torch.cuda.synchronize()
            h1 = time.perf_counter()
            ev[1].record()
            with (profile(activities=[ProfilerActivity.CUDA]) if prof_phase == "backward" else _Null()) as pb:
                loss.backward()
                h2 = time.perf_counter()
                torch.cuda.synchronize()
            ev[2].record()
            h3 = time.perf_counter()
            with (profile(activities=[ProfilerActivity.CUDA]) if prof_phase == "optimizer" else _Null()) as po:
                opt.step()
                h4 = time.perf_counter()
                torch.cuda.synchronize()
            ev[3].record()
            torch.cuda.synchronize()
            opt.zero_grad(set_to_none=True)
            del loss
            if timed:
                for i, k in enumerate(["forward", "backward", "optimizer"]):
                    gpu[k].append(ev[i].elapsed_time(ev[i + 1]))
                host["forward"].append((h1 - h0) * 1e3)
                host["backward"].append((h2 - h1) * 1e3)
                host["optimizer"].append((h4 - h3) * 1e3)
            for name, p in (("forward", pf), ("backward", pb), ("optimizer", po)):
                if prof_phase == name:
                    phases[name] = kernels_of(p)
            return phases

        for _ in range(2):
            step(False)
        for _ in range(7):
            step(True)
        kern = {}
        for ph in ("forward", "backward", "optimizer"):
            kern.update(step(False, ph))
        rec = dict(c, batch=1, seq=2048, phases_ms={k: statistics.median(v) for k, v in gpu.items()},
                   host_ms={k: statistics.median(v) for k, v in host.items()},
                   parameters=sum(p.numel() for p in model.parameters()),
                   trainable=sum(p.numel() for p in model.parameters() if p.requires_grad), kernels=kern)
        doc["cases"].append(rec)
        print(json.dumps({k: v for k, v in rec.items() if k != "kernels"}), flush=True)
        del model, opt
        torch.cuda.empty_cache()

    # AdamW alone: 8 bf16 tensors of n/8 elements, gradients set, timed steps after warm-up.
    for n in (50_000_000, 200_000_000, 800_000_000):
        for impl in ("foreach", "fused"):
            ps = [torch.nn.Parameter(torch.zeros(n // 8, device=dev, dtype=torch.bfloat16)) for _ in range(8)]
            for p in ps:
                p.grad = torch.ones_like(p)
            o = torch.optim.AdamW(ps, lr=1e-5, foreach=impl == "foreach", fused=impl == "fused")
            times = []
            for it in range(12):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                a.record()
                o.step()
                b.record()
                torch.cuda.synchronize()
                if it >= 2:
                    times.append(a.elapsed_time(b))
            rec = dict(parameters=n, tensors=8, impl=impl, dtype="bf16", step_ms=statistics.median(times))
            doc["adamw"].append(rec)
            print(json.dumps(rec), flush=True)
            del ps, o
            torch.cuda.empty_cache()

    with open(os.path.join(out_dir, "train_phases.json.tmp"), "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(os.path.join(out_dir, "train_phases.json.tmp"), os.path.join(out_dir, "train_phases.json"))


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


if __name__ == "__main__":
    main()
