#pragma once
// The shapes of memtax-probe's cases as measurement files record them (kernels/probe/ writes
// them; the engine's kernel model reads them).
#include <string>
#include <vector>

#include "core/bytes.hpp"

namespace memtax {

// A probe case's shape, as the measurement file records it under "params" (one struct for
// every kind; a kind reads only its own fields).
struct ProbeShape {
    std::string op;               // stream: copy | read | write | memcpy
    u64 bytes = 0, partials = 0;  // stream: bytes per buffer; read: per-CTA partial sums
    u64 kernels = 0;              // stream launch: empty kernels back to back
    u64 gpus = 0;                 // allreduce: ranks (bytes: the message per GPU)
    u64 q_len = 0;                // attention-sdpa: query tokens (context = KV tokens)
    std::string dtype = "bf16", out_dtype = "bf16", scores_dtype = "fp32";
    u64 m = 0, n = 0, k = 0;                              // gemm: C[m×n] = A[m×k]·W[n×k]ᵀ
    u64 workspace_bytes = 0;                              // cuBLAS(Lt) workspace the case allocates
    u64 batch = 0, heads = 0, context = 0, head_dim = 0;  // attention, decode
    bool causal = true;
    u64 block_m = 0, block_n = 0;                                         // flash tiles
    u64 kv_heads = 0, q_heads = 0, block_size = 0, tokens_per_split = 0;  // decode-paged
    u64 tokens = 0, hidden = 0, intermediate = 0;                         // mlp
};

inline const std::vector<std::string>& probe_kinds() {
    static const std::vector<std::string> k = {"stream",       "gemm", "attention-eager", "attention-flash",
                                               "decode-paged", "mlp",  "allreduce",       "attention-sdpa"};
    return k;
}

}  // namespace memtax
