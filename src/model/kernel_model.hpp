#pragma once
// The engine's model of memtax-probe's kernels (kernels/probe/): for a case's kind and shape,
// every buffer the case allocates (exact bytes) and every kernel it launches with its FLOPs,
// the bytes it moves through device memory and its kernel class. `memtax validate` predicts
// each probe case from this and the GPU profile; `memtax calibrate` fits the classes' rates.
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "model/time_model.hpp"
#include "spec/gpu_spec.hpp"

namespace memtax {

// A probe case's shape, as the measurement file records it under "params" (one struct for
// every kind; a kind reads only its own fields).
struct ProbeShape {
    std::string op;                           // stream: copy | read | write | memcpy
    u64 bytes = 0, partials = 0;              // stream: bytes per buffer; read: per-CTA partial sums
    u64 kernels = 0;                          // stream launch: empty kernels back to back
    u64 gpus = 0;                             // allreduce: ranks (bytes: the message per GPU)
    u64 q_len = 0;                            // attention-sdpa: query tokens (context = KV tokens)
    std::string dtype = "bf16", out_dtype = "bf16", scores_dtype = "fp32";
    u64 m = 0, n = 0, k = 0;                  // gemm: C[m×n] = A[m×k]·W[n×k]ᵀ
    u64 workspace_bytes = 0;                  // cuBLAS(Lt) workspace the case allocates
    u64 batch = 0, heads = 0, context = 0, head_dim = 0;  // attention, decode
    bool causal = true;
    u64 block_m = 0, block_n = 0;             // flash tiles
    u64 kv_heads = 0, q_heads = 0, block_size = 0, tokens_per_split = 0;  // decode-paged
    u64 tokens = 0, hidden = 0, intermediate = 0;                         // mlp
};

struct ProbeKernel {
    std::string name;
    KernelClass cls = KernelClass::Stream;
    std::string dtype;  // the matrix rate's dtype (gemm, attention)
    u64 flops = 0;
    u64 bytes = 0;
    u64 steps = 0;  // allreduce: ring steps, 2(n−1)
};

struct ProbeModel {
    std::vector<std::pair<std::string, u64>> buffers;  // in allocation order
    u64 allocated = 0;
    std::vector<ProbeKernel> kernels;                   // in launch order
};

inline const std::vector<std::string>& probe_kinds() {
    static const std::vector<std::string> k = {"stream", "gemm", "attention-eager", "attention-flash", "decode-paged", "mlp", "allreduce", "attention-sdpa"};
    return k;
}

// `gpu` gives the L2 size and SM count for the eager softmax's re-read (see the .cpp).
ProbeModel model_probe_case(const std::string& kind, const ProbeShape& s, const GpuSpec& gpu);

// The case's time on `gpu`: Σ kernel_time over its kernels.
struct ProbeTime {
    double seconds = 0;
    double overhead_s = 0, memory_s = 0, compute_s = 0;  // the dominant term of each kernel, summed
    std::string bound;                                   // the largest of the three
    std::vector<KernelTime> kernels;
};
ProbeTime probe_time(const ProbeModel& m, const GpuSpec& gpu);

}  // namespace memtax
