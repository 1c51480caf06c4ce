#!/usr/bin/env python3
"""Memory and step time of tensor-parallel transformers forwards, every rank, under torchrun.

transformers' own tensor parallelism (`from_pretrained(..., tp_plan="auto")`: the model's
`base_model_tp_plan` shards q/k/v/gate/up column-wise and o/down row-wise over the ranks, with
DTensor all-reduces after the row-wise layers) on random weights: rank 0 builds the model from
the shape's config and saves it (no downloads), every rank loads its shard. For each
implementation, batch and context, on every rank: a prefill (use_cache=True, logits of the last
position) and one decode step over the filled cache, each with its forward peak
(`max_memory_allocated()` minus the bytes allocated before it), the local KV bytes, the logits
bytes and the bytes left after the step; and the wall clock of both steps (synchronised, all
ranks entering together, median of RUNS after a warm-up). Rank 0 gathers the ranks and writes
OUT_DIR/FILE in schema memtax.measurements/1: cases of kind "forward" and "step_time" with
`tp` (the world size) and `ranks` (each rank's measured values); `measured` is the fullest rank.

Usage: torchrun --nproc_per_node N kernels/torch/measure_hf_tp.py OUT_DIR [--shapes llama-3.1-8b,...]
           [--contexts 1024,4096] [--batches 1,4] [--impls sdpa,eager] [--runs 5] [--name FILE]
(N = 1 runs the same path on one GPU: the harness's own test where one GPU is all there is.)
"""
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import STEP_SHAPES, smi, step_bytes  # noqa: E402


def main():
    out_dir = sys.argv[1]
    args = sys.argv[2:]

    def opt(name, default):
        return args[args.index(name) + 1].split(",") if name in args else default

    shapes = opt("--shapes", ["llama-3.1-8b"])
    contexts = [int(x) for x in opt("--contexts", ["1024", "4096"])]
    batches = [int(x) for x in opt("--batches", ["1", "4"])]
    impls = opt("--impls", ["sdpa", "eager"])
    runs = int(opt("--runs", ["5"])[0])
    file_name = opt("--name", ["hf_tp.json"])[0]

    import torch
    import torch.distributed as dist
    import transformers
    from transformers import AutoModelForCausalLM

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl", device_id=dev)
    if rank == 0:
        os.makedirs(out_dir, exist_ok=True)
    cases = []
    ckpt_root = tempfile.mkdtemp(prefix="memtax-tp-") if rank == 0 else None
    ckpt_root = [ckpt_root]
    dist.broadcast_object_list(ckpt_root, src=0)
    ckpt_root = ckpt_root[0]

    def gather(d):
        got = [None] * world
        dist.all_gather_object(got, d)
        return got

    for shape in shapes:
        spec = dict(STEP_SHAPES[shape])
        cls = getattr(transformers, spec.pop("config", "LlamaConfig"))
        spec.setdefault("tie_word_embeddings", False)
        cfg = cls(max_position_embeddings=131072, **spec)
        ckpt = os.path.join(ckpt_root, shape)
        if rank == 0:
            cfg_dict = cfg.to_dict()
            cfg_dict["dtype"] = "bfloat16"
            cfg_dict.pop("torch_dtype", None)
            with open(os.path.join(out_dir, f"{shape}.config.json"), "w") as f:
                json.dump(cfg_dict, f, indent=2, sort_keys=True)
            torch.manual_seed(0)
            m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
            m.save_pretrained(ckpt)
            del m
        dist.barrier()
        for impl in impls:
            runtime = "hf-" + impl
            model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16, attn_implementation=impl,
                                                         tp_plan="auto" if world > 1 else None,
                                                         device_map=None if world > 1 else dev).eval()
            # One small forward first, as a serving process has run before the step a user sizes:
            # cuBLAS's workspace (32 MiB and more) is allocated by the first GEMM of the process,
            # inside the first measured step otherwise (seen on the H200: +35.6 MB in the first prefill).
            with torch.inference_mode():
                model(input_ids=torch.zeros((1, 128), dtype=torch.long, device=dev), use_cache=True)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            for b in batches:
                for s in contexts:
                    ids = torch.randint(0, cfg.vocab_size, (b, s), device=dev, generator=torch.Generator(device=dev).manual_seed(1))
                    nxt = torch.zeros((b, 1), dtype=torch.long, device=dev)
                    mine = {}
                    try:
                        torch.cuda.synchronize()
                        torch.cuda.empty_cache()
                        torch.cuda.reset_peak_memory_stats()
                        before = torch.cuda.memory_allocated()
                        with torch.inference_mode():
                            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
                        torch.cuda.synchronize()
                        mine["prefill"] = step_bytes(out, before)
                        cache = out.past_key_values
                        del out
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                        before = torch.cuda.memory_allocated()
                        with torch.inference_mode():
                            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                        torch.cuda.synchronize()
                        mine["decode"] = step_bytes(out, before)
                        del out, cache

                        def timed(fn):
                            ts = []
                            for i in range(1 + runs):
                                dist.barrier()
                                torch.cuda.synchronize()
                                t0 = time.perf_counter()
                                fn()
                                torch.cuda.synchronize()
                                if i:
                                    ts.append(time.perf_counter() - t0)
                            return statistics.median(ts)

                        def prefill():
                            with torch.inference_mode():
                                return model(input_ids=ids, use_cache=True, logits_to_keep=1)
                        mine["prefill_s"] = timed(prefill)
                        with torch.inference_mode():
                            filled = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
                        mine["decode_s"] = timed(lambda: model(input_ids=nxt, past_key_values=filled, use_cache=True))
                        del filled
                    except torch.OutOfMemoryError as err:
                        mine["oom"] = " ".join(str(err).split())[:400]
                    torch.cuda.empty_cache()
                    ranks = gather(mine)
                    if rank != 0:
                        continue
                    for mode, ctx in (("prefill", s), ("decode", s + 1)):
                        base = dict(model_config=f"{shape}.config.json", runtime=runtime, mode=mode, batch=b, context=ctx,
                                    logits_kept=1, tp=world)
                        key = f"{shape}/{runtime}/tp{world}/b{b}/s{ctx}/{mode}"
                        oom = [r for r in ranks if "oom" in r]
                        if oom:
                            cases.append(dict(id=key, kind="forward", **base, status="oom", reason="torch.OutOfMemoryError: " + oom[0]["oom"]))
                            continue
                        per = [dict(rank=i, measured=r[mode]) for i, r in enumerate(ranks)]
                        fullest = max(per, key=lambda x: x["measured"]["forward_peak_bytes"])
                        cases.append(dict(id=key, kind="forward", **base, status="ok", measured=fullest["measured"], ranks=per))
                        secs = max(r[mode + "_s"] for r in ranks)  # the step ends when its slowest rank does
                        cases.append(dict(id=key + "/time", kind="step_time", **base, status="ok", measured=dict(seconds=secs, runs=runs)))
                    print(json.dumps(cases[-2])[:300], flush=True)
            del model
            torch.cuda.empty_cache()
    if rank == 0:
        prov = dict(gpu=torch.cuda.get_device_name(local), gpus=world, driver=smi("driver_version"), torch=torch.__version__,
                    transformers=transformers.__version__, cuda=torch.version.cuda, nccl=".".join(map(str, torch.cuda.nccl.version())),
                    date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    command=f"torchrun --nproc_per_node {world} kernels/torch/measure_hf_tp.py $OUT " + " ".join(args))
        doc = {"schema": "memtax.measurements/1", "source": "torch-hf-tp", "provenance": prov, "cases": cases}
        with open(os.path.join(out_dir, file_name), "w") as f:
            json.dump(doc, f, indent=1)
        subprocess.run(["rm", "-rf", ckpt_root], check=False)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
