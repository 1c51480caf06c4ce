#!/usr/bin/env python3
"""Time whole steps of full-size models under PyTorch + transformers, as a caller waits for them.

For each shape and attention implementation (eager, sdpa): the prefill of `batch` prompts of
`context` tokens (logits of the last position, use_cache=True: the first step of generate())
and one decode step over a cache that holds `kv` tokens per sequence (the cache is filled with
random K/V, so no long prefill is needed first). Each time is host wall clock around the call
with torch.cuda.synchronize() before and after — what a caller of generate() waits, host
dispatch included — the median of RUNS runs after WARMUP runs, with the 10th and 90th
percentiles. Next to each case, measured.host_reference_seconds: the median wall clock of a
batch-1 decode step of a tiny fixed model (all host dispatch), taken just before the case, the
host's speed at that moment (a diagnostic). Writes OUT_DIR/FILE in schema memtax.measurements/1, cases of kind
"step_time".

Usage: python3 kernels/torch/measure_hf_steps.py OUT_DIR [--shapes llama-3.1-8b,gqa-2l,...]
           [--prefill B:S,...] [--decode B:KV,...] [--runs 7] [--warmup 2] [--name FILE]
           [--impls eager,sdpa] [--one-process]   (each implementation runs in its own process unless --one-process)
"""
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import STEP_SHAPES, smi  # noqa: E402


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    args = sys.argv[2:]

    def opt(name, default):
        return args[args.index(name) + 1].split(",") if name in args else default

    shapes = opt("--shapes", ["llama-3.1-8b"])
    prefill = [tuple(int(x) for x in p.split(":")) for p in opt("--prefill", ["1:1024", "1:4096", "1:16384", "4:4096", "8:2048"]) if p]
    decode = [tuple(int(x) for x in p.split(":")) for p in opt("--decode", ["1:1024", "1:8192", "1:32768", "8:1024", "8:8192", "8:32768",
                                                                         "32:1024", "32:8192", "64:1024", "64:4096"]) if p]
    runs = int(opt("--runs", ["7"])[0])
    warmup = int(opt("--warmup", ["2"])[0])
    file_name = opt("--name", ["hf_steps.json"])[0]
    impls = opt("--impls", ["eager", "sdpa"])

    if len(impls) > 1 and "--one-process" not in args:
        # Each attention implementation in a process of its own: an out-of-memory step in one
        # (the eager 32k prefill) slows the steps measured after it in the same process.
        return isolated(out_dir, args, impls, file_name)

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig

    dev = torch.device("cuda")

    def timed(fn):
        ts = []
        for i in range(warmup + runs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            if i >= warmup:
                ts.append(time.perf_counter() - t0)
        ts.sort()
        q = lambda p: ts[min(len(ts) - 1, int(round(p * (len(ts) - 1))))]
        return dict(seconds=statistics.median(ts), p10_seconds=q(0.1), p90_seconds=q(0.9), runs=len(ts))

    cases = []

    def write():
        # After every case, so a run stopped at its time limit keeps what it measured.
        prov = {
            "gpu": torch.cuda.get_device_name(0),
            "driver": smi("driver_version"),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.version.cuda,
            "cpu": subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python3 " + " ".join(["kernels/torch/measure_hf_steps.py", "$OUT"] + sys.argv[2:]),
        }
        doc = {"schema": "memtax.measurements/1", "source": "torch-hf-steps", "provenance": prov, "cases": cases}
        with open(os.path.join(out_dir, file_name), "w") as f:
            json.dump(doc, f, indent=1)

    # The host's speed, measured next to every case: the median wall clock of a batch-1 decode
    # step of a tiny fixed model (2 layers of width 256, SDPA, a 16-token cache) whose GPU work
    # is a few microseconds, so the step is all host dispatch (Python, ATen, kernel launches),
    # the work that bounds small steps of big models. Recorded for diagnosis: on the H200
    # leases it did not track the slowdowns of 32-layer steps, so no prediction uses it.
    ref_cfg = LlamaConfig(hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=512,
                          num_hidden_layers=2, vocab_size=1024, max_position_embeddings=4096, tie_word_embeddings=False)
    with torch.device(dev):
        ref_model = AutoModelForCausalLM.from_config(ref_cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    ref_kv = [(torch.randn(1, 2, 16, 64, device=dev, dtype=torch.bfloat16), torch.randn(1, 2, 16, 64, device=dev, dtype=torch.bfloat16))
              for _ in range(2)]
    ref_ids = torch.zeros((1, 1), dtype=torch.long, device=dev)
    ref_pos = torch.full((1, 1), 16, dtype=torch.long, device=dev)

    def host_reference():
        ts = []
        for i in range(5 + 31):
            c = DynamicCache(config=ref_model.config)
            for j, (k, v) in enumerate(ref_kv):
                c.update(k, v, j)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                ref_model(input_ids=ref_ids, past_key_values=c, position_ids=ref_pos, use_cache=True)
            torch.cuda.synchronize()
            if i >= 5:
                ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    def record(case):
        torch.cuda.empty_cache()
        cases.append(case)
        print(json.dumps(case), flush=True)
        write()

    for shape in shapes:
        spec = dict(STEP_SHAPES[shape])
        cls = getattr(transformers, spec.pop("config", "LlamaConfig"))
        spec.setdefault("tie_word_embeddings", False)
        cfg = cls(max_position_embeddings=131072, **spec)
        cfg_dict = cfg.to_dict()
        cfg_dict["dtype"] = "bfloat16"
        cfg_dict.pop("torch_dtype", None)
        with open(os.path.join(out_dir, f"{shape}.config.json"), "w") as f:
            json.dump(cfg_dict, f, indent=2, sort_keys=True)
        for impl in impls:
            torch.manual_seed(0)
            with torch.device(dev):
                model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl)
            model.eval()
            runtime = "hf-" + impl
            # Decode steps first: a prefill that runs out of memory leaves the process slower for the
            # steps after it (seen on the H200: a batch-1 decode 2x slower right after an OOM).
            kvh = cfg.num_key_value_heads
            hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads  # Qwen2Config has none
            for b, kv in decode:
                case = dict(id=f"{shape}/{runtime}/b{b}/s{kv + 1}/decode/time", kind="step_time", model_config=f"{shape}.config.json",
                            runtime=runtime, mode="decode", batch=b, context=kv + 1, logits_kept=1)
                ref_s = host_reference()
                try:
                    # A cache of `kv` random tokens per sequence; each timed step appends one token to a
                    # fresh copy, so every run sees the same length.
                    base = [(torch.randn(b, kvh, kv, hd, device=dev, dtype=torch.bfloat16),
                             torch.randn(b, kvh, kv, hd, device=dev, dtype=torch.bfloat16)) for _ in range(cfg.num_hidden_layers)]
                    nxt = torch.randint(0, cfg.vocab_size, (b, 1), device=dev)
                    pos = torch.full((b, 1), kv, device=dev, dtype=torch.long)
                    cache = [None]

                    def fresh():
                        c = DynamicCache(config=model.config)  # as generate() makes it: sliding-window layers keep their window
                        for i, (k, v) in enumerate(base):
                            c.update(k, v, i)
                        cache[0] = c

                    def step():
                        with torch.inference_mode():
                            model(input_ids=nxt, past_key_values=cache[0], position_ids=pos, use_cache=True)
                    ts = []
                    for i in range(warmup + runs):
                        fresh()
                        torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        step()
                        torch.cuda.synchronize()
                        if i >= warmup:
                            ts.append(time.perf_counter() - t0)
                    ts.sort()
                    q = lambda p: ts[min(len(ts) - 1, int(round(p * (len(ts) - 1))))]
                    case.update(status="ok", measured=dict(seconds=statistics.median(ts), p10_seconds=q(0.1), p90_seconds=q(0.9), runs=len(ts),
                                                            host_reference_seconds=ref_s))
                    del base, cache
                except torch.OutOfMemoryError as err:
                    case.update(status="oom", reason="torch.OutOfMemoryError: " + " ".join(str(err).split())[:300])
                record(case)
            for b, s in prefill:
                case = dict(id=f"{shape}/{runtime}/b{b}/s{s}/prefill/time", kind="step_time", model_config=f"{shape}.config.json",
                            runtime=runtime, mode="prefill", batch=b, context=s, logits_kept=1)
                try:
                    ids = torch.randint(0, cfg.vocab_size, (b, s), device=dev)

                    def step():
                        with torch.inference_mode():
                            model(input_ids=ids, use_cache=True, logits_to_keep=1)
                    ref_s = host_reference()
                    case.update(status="ok", measured=dict(timed(step), host_reference_seconds=ref_s))
                    del ids
                except torch.OutOfMemoryError as err:
                    case.update(status="oom", reason="torch.OutOfMemoryError: " + " ".join(str(err).split())[:300])
                record(case)
            del model
            torch.cuda.empty_cache()

    write()

def isolated(out_dir, args, impls, file_name):
    keep = []
    skip = False
    for a in args:  # the arguments without --impls/--name and their values
        if skip:
            skip = False
        elif a in ("--impls", "--name"):
            skip = True
        else:
            keep.append(a)
    merged = None
    for impl in impls:
        part = f".part-{impl}-{file_name}"
        subprocess.run([sys.executable, os.path.abspath(__file__), out_dir, *keep, "--impls", impl, "--name", part],
                       check=False)
        path = os.path.join(out_dir, part)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            doc = json.load(f)
        os.remove(path)
        if merged is None:
            merged = doc
        else:
            merged["cases"] += doc["cases"]
    if merged is None:
        sys.exit("measure_hf_steps: no implementation produced a result")
    merged["provenance"]["command"] = "python3 " + " ".join(["kernels/torch/measure_hf_steps.py", "$OUT"] + args)
    merged["provenance"]["note"] = "each attention implementation measured in a process of its own"
    with open(os.path.join(out_dir, file_name), "w") as f:
        json.dump(merged, f, indent=1)


if __name__ == "__main__":
    main()
