#!/usr/bin/env python3
"""Rates of eager PyTorch's own kernel classes, read off a kernel trace of Llama-3.1-8B's shape
(kernels/torch/profile_hf_kernels.py). Prints each class's rate, the kernels it comes from and
the ratio to the trace GPU's stream bandwidth, for the `kernels:` block of runtimes/hf-*.yaml.

Kernels are picked by their position in the second decoder layer of two cases (eager prefill,
batch 1, 4,096 tokens; eager decode, batch 8, 32,768 cached tokens) and checked by name, with
the elements each processes from the model's shape. Each rate is the median of its kernels'
elements (or bytes) per second.

The fused-attention kernel given an explicit mask (SDPA past a sliding window) is read off a
second trace, of Mistral-7B's shape (window 4,096) at an SDPA prefill of batch 1, 8,192 tokens:
the cuDNN flash kernel of each layer over the full 8,192 x 8,192 scores, as a fraction of the
GPU's calibrated attention_prefill FLOP/s (hardware/calibrated/h200.yaml).

Usage: python3 kernels/torch/fit_eager_classes.py TRACE.json[.gz] [STREAM_BYTES_PER_S]
           [--masked MASKED_TRACE.json[.gz] [--attention-flops FLOP_PER_S]]
       (python3 kernels/torch/fit_eager_classes.py tests/data/diagnostics/h200_kernel_trace_llama-3.1-8b.json.gz
            --masked tests/data/diagnostics/h200_kernel_trace_mistral-7b-v0.1.json.gz)
"""
import gzip
import json
import statistics
import sys

def load(path):
    return json.load(gzip.open(path) if path.endswith(".gz") else open(path))


argv = sys.argv[1:]
masked_path = attention_flops = None
if "--masked" in argv:
    i = argv.index("--masked")
    masked_path = argv[i + 1]
    del argv[i:i + 2]
attention_flops = 5.98525e14  # hardware/calibrated/h200.yaml attention_prefill flops_per_s
if "--attention-flops" in argv:
    i = argv.index("--attention-flops")
    attention_flops = float(argv[i + 1])
    del argv[i:i + 2]
trace = load(argv[0])
stream = float(argv[1]) if len(argv) > 1 else 4.27017e12  # hardware/calibrated/h200.yaml stream class
h, hq, hkv, d = 4096, 32, 8, 128


def case(impl, mode, b, n):
    for c in trace["cases"]:
        if (c["impl"], c["mode"], c["batch"], c["tokens"]) == (impl, mode, b, n):
            return c["kernels"]
    raise SystemExit(f"no case {impl} {mode} {b} {n}")


def layer(kernels, start_pattern, nth):
    """The kernels of the nth decoder layer: from the nth RMSNorm upcast to the next."""
    starts = [i for i, k in enumerate(kernels) if start_pattern in k[0]]
    return starts, kernels


samples = {}


def take(cls, kernels, i, pattern, amount):
    name, us = kernels[i][0], kernels[i][1]
    if pattern not in name:
        raise SystemExit(f"kernel {i} is {name[:100]!r}, expected {pattern!r}")
    samples.setdefault(cls, []).append((amount / (us * 1e-6), name[:70], us, amount))


# Eager prefill, B=1, S=4096: the layer starting at the second input-norm upcast.
k = case("eager", "prefill", 1, 4096)
T = 4096
Eh, Eq, Ekv, Es = T * h, T * hq * d, T * hkv * d, hq * T * T
first = next(i for i, x in enumerate(k) if "pow_tensor_scalar" in x[0]) - 1  # the upcast before the first pow
n_layer = next(i for i in range(first + 1, len(k)) if "pow_tensor_scalar" in k[i][0]) - first  # to the post-attention norm
L = [first + j for j in range(60)]
take("strided", k, L[0], "direct_copy", Eh)             # hidden.to(float32)
take("reduce_bytes", k, L[2], "MeanOps", 4 * Eh)         # .mean(-1)
take("strided", k, L[5], "BinaryFunctor<float", Eh)      # x * rsqrt(var)
take("strided", k, L[7], "BinaryFunctor<c10::BFloat16", Eh)  # weight * x
take("strided", k, L[12], "BinaryFunctor", Eq)           # q * cos
take("strided", k, L[13], "neg_kernel", Eq // 2)         # -x2
take("cat", k, L[14], "CatArrayBatchedCopy", Eq)         # cat(-x2, x1)
take("strided", k, L[15], "BinaryFunctor", Eq)           # rotate_half(q) * sin
take("strided", k, L[16], "CUDAFunctor_add", Eq)         # sum
take("cat", k, L[22], "CatArrayBatchedCopy", Ekv)        # DynamicLayer.update: cat onto the empty cache (K)
take("cat", k, L[23], "CatArrayBatchedCopy", Ekv)        # (V)
take("strided_copy", k, L[24], "direct_copy", Eq)        # repeat_kv K
take("strided_copy", k, L[25], "direct_copy", Eq)        # repeat_kv V
take("strided", k, L[29], "CUDAFunctor_add", Es)         # scores + mask
take("strided", k, L[30], "direct_copy", Es)             # softmax's upcast to fp32
take("softmax_bytes", k, L[31], "SoftMax", 8 * Es)       # softmax fp32 -> fp32
take("strided_copy", k, L[35], "direct_copy", Eq)        # attn_output.transpose(1, 2).contiguous()

# Eager decode, B=8, 32,768 cached tokens (+1): the batched GEMVs over an odd key count.
k = case("eager", "decode", 8, 32768)
B, S = 8, 32769
first = next(i for i, x in enumerate(k) if "gemvx" in x[0])
take("gemv_unaligned_bytes", k, first, "gemvx", 2 * B * hq * S * d)        # q @ k_repeated^T: reads the repeated K
take("gemv_unaligned_bytes", k, first + 6, "gemvx", 2 * B * hq * S * d)    # probs @ v_repeated
for j in range(1, 5):
    take("strided_copy", k, first - j, "direct_copy", B * hq * S * d // 2)  # repeat_kv, split in two kernels past 2^31 bytes

out = {}
for cls, xs in samples.items():
    rate = statistics.median(x[0] for x in xs)
    out[cls] = rate
    unit = "B/s" if cls.endswith("_bytes") else "elements/s"
    print(f"{cls:22s} {rate:.4g} {unit}  ratio to stream {rate / stream:.4f}  ({len(xs)} kernels)")
    for r, name, us, amount in xs:
        print(f"    {r:.4g}  {us:9.1f} us  {amount:>12d}  {name}")
ratios = {k: round(v / stream, 4) for k, v in out.items()}

if masked_path:
    m = load(masked_path)
    ks = next(c["kernels"] for c in m["cases"] if (c["impl"], c["mode"], c["batch"], c["tokens"]) == ("sdpa", "prefill", 1, 8192))
    flops = 4 * 1 * 32 * 8192 * 8192 * 128  # Q·Kᵀ and P·V over every key: Mistral-7B's 32 heads of 128
    rates = [flops / (x[1] * 1e-6) for x in ks if "sdpa" in x[0] and "fprop" in x[0]]
    if len(rates) != 32:
        raise SystemExit(f"expected 32 fused attention kernels (one per layer), found {len(rates)}")
    rate = statistics.median(rates)
    print(f"masked_attention       {rate:.4g} FLOP/s  ratio to attention_prefill {rate / attention_flops:.4f}  (32 kernels)")
    ratios["masked_attention"] = round(rate / attention_flops, 4)
print(json.dumps(ratios))
