#!/usr/bin/env python3
"""Rates of eager PyTorch's own kernel classes, read off a kernel trace of Llama-3.1-8B's shape
(kernels/torch/profile_hf_kernels.py). Prints each class's rate, the kernels it comes from and
the ratio to the trace GPU's stream bandwidth, for the `kernels:` block of runtimes/hf-*.yaml.

Kernels are picked by their position in the second decoder layer of two cases (eager prefill,
batch 1, 4,096 tokens; eager decode, batch 8, 32,768 cached tokens) and checked by name, with
the elements each processes from the model's shape. Each rate is the median of its kernels'
elements (or bytes) per second.

Usage: python3 kernels/torch/fit_eager_classes.py TRACE.json[.gz] [STREAM_BYTES_PER_S]
       (python3 kernels/torch/fit_eager_classes.py tests/data/measured/h200_kernel_trace_llama-3.1-8b.json.gz)
"""
import gzip
import json
import statistics
import sys

trace = json.load(gzip.open(sys.argv[1]) if sys.argv[1].endswith(".gz") else open(sys.argv[1]))
stream = float(sys.argv[2]) if len(sys.argv) > 2 else 4.27017e12  # hardware/calibrated/h200.yaml stream class
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
print(json.dumps({k: round(v / stream, 4) for k, v in out.items()}))
