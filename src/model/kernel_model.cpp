#include "model/kernel_model.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.hpp"

namespace memtax {
namespace {

u64 dtype_bytes(const std::string& d) {
    if (d == "fp8_e4m3" || d == "fp8_e5m2") return 1;
    if (d == "fp32") return 4;
    return 2;  // bf16, fp16
}

u64 mul(std::initializer_list<u64> f, const std::string& term) { return checked_product(f, term); }
u64 add(u64 a, u64 b, const std::string& term) { return checked_add(a, b, term); }
u64 cdiv(u64 a, u64 b) { return b ? (a + b - 1) / b : 0; }

struct Builder {
    ProbeModel m;
    u64 buffer(const std::string& name, u64 bytes) {
        m.buffers.emplace_back(name, bytes);
        m.allocated = add(m.allocated, bytes, "allocated bytes");
        return bytes;
    }
    void kernel(const std::string& name, KernelClass c, const std::string& dtype, u64 flops, u64 bytes) {
        m.kernels.push_back({name, c, dtype, flops, bytes});
    }
};

// Σ_{j=1..S} ceil(j/4): float4s the causal softmax reads over the rows of one head (row i
// reads keys 0..i in whole float4s).
u64 causal_float4s(u64 S) {
    const u64 q = S / 4, r = S % 4;
    return add(mul({2, q, q + 1}, "softmax reads"), mul({r, q + 1}, "softmax reads"), "softmax reads");
}

// Maximum resident warps per multiprocessor for compute capability 8.0 and 9.0 (CUDA C++
// Programming Guide, "Features and Technical Specifications", table of technical
// specifications per compute capability: 64).
constexpr u64 kResidentWarpsPerSm = 64;

}  // namespace

ProbeModel model_probe_case(const std::string& kind, const ProbeShape& s, const GpuSpec& gpu) {
    Builder b;
    if (kind == "stream") {
        const u64 n = s.bytes;
        if (s.op == "launch") {
            for (u64 i = 0; i < s.kernels; ++i) b.kernel("launch", KernelClass::Launch, "", 0, 0);
        } else if (s.op == "copy" || s.op == "memcpy") {
            b.buffer("src", n);
            b.buffer("dst", n);
            b.kernel(s.op, KernelClass::Stream, "", 0, mul({2, n}, "stream bytes"));
        } else if (s.op == "read") {
            b.buffer("src", n);
            const u64 p = b.buffer("partials", mul({4, s.partials}, "partials"));
            b.kernel("read", KernelClass::Stream, "", 0, add(n, p, "stream bytes"));
        } else {
            b.buffer("dst", n);
            b.kernel("write", KernelClass::Stream, "", 0, n);
        }
    } else if (kind == "gemm") {
        const u64 a = b.buffer("a", mul({s.m, s.k, dtype_bytes(s.dtype)}, "gemm a"));
        const u64 w = b.buffer("w", mul({s.n, s.k, dtype_bytes(s.dtype)}, "gemm w"));
        const u64 c = b.buffer("c", mul({s.m, s.n, dtype_bytes(s.out_dtype)}, "gemm c"));
        b.buffer("workspace", s.workspace_bytes);
        b.kernel("gemm", KernelClass::Gemm, s.dtype, mul({2, s.m, s.n, s.k}, "gemm FLOPs"), add(add(a, w, "gemm bytes"), c, "gemm bytes"));
    } else if (kind == "mlp") {
        const u64 T = s.tokens, H = s.hidden, I = s.intermediate, e = dtype_bytes(s.dtype);
        const u64 x = b.buffer("x", mul({T, H, e}, "mlp x"));
        const u64 wgu = b.buffer("w_gate_up", mul({2, I, H, e}, "mlp w_gate_up"));
        const u64 wd = b.buffer("w_down", mul({H, I, e}, "mlp w_down"));
        const u64 gu = b.buffer("gate_up", mul({T, 2, I, e}, "mlp gate_up"));
        const u64 act = b.buffer("act", mul({T, I, e}, "mlp act"));
        const u64 out = b.buffer("out", mul({T, H, e}, "mlp out"));
        b.buffer("workspace", s.workspace_bytes);
        b.kernel("gate_up", KernelClass::Gemm, s.dtype, mul({2, T, 2, I, H}, "mlp FLOPs"), add(add(x, wgu, "mlp"), gu, "mlp"));
        b.kernel("silu_mul", KernelClass::Stream, "", 0, add(gu, act, "mlp"));
        b.kernel("down", KernelClass::Gemm, s.dtype, mul({2, T, H, I}, "mlp FLOPs"), add(add(act, wd, "mlp"), out, "mlp"));
    } else if (kind == "attention-eager" || kind == "attention-flash") {
        const u64 e = dtype_bytes(s.dtype), S = s.context, D = s.head_dim, BH = mul({s.batch, s.heads}, "attention heads");
        const u64 qkvo = mul({BH, S, D, e}, "attention q");
        for (const char* n : {"q", "k", "v", "out"}) b.buffer(n, qkvo);
        if (kind == "attention-eager") {
            const u64 sq = mul({BH, S, S}, "attention scores");
            const u64 scores = b.buffer("scores", mul({sq, dtype_bytes(s.scores_dtype)}, "attention scores"));
            const u64 probs = b.buffer("probs", mul({sq, e}, "attention probs"));
            b.buffer("workspace", s.workspace_bytes);
            const u64 flops = mul({2, BH, S, S, D}, "attention FLOPs");
            b.kernel("scores", KernelClass::Gemm, s.dtype, flops, add(mul({2, qkvo}, "q+k"), scores, "scores bytes"));
            // The softmax reads each row's keys 0..i in pass 1 and again in pass 2. The re-read
            // hits L2 only while the rows in flight (one per resident warp) fit in it.
            const u64 one_read = mul({16, BH, causal_float4s(S)}, "softmax reads");
            const u64 in_flight = mul({gpu.sm_count, kResidentWarpsPerSm, 4, S}, "softmax rows in flight");
            const bool reread_from_l2 = gpu.sm_count && gpu.l2_bytes && in_flight <= gpu.l2_bytes;
            const u64 reads = reread_from_l2 ? one_read : mul({2, one_read}, "softmax reads");
            b.kernel("softmax", KernelClass::Stream, "", 0, add(reads, probs, "softmax bytes"));
            b.kernel("pv", KernelClass::Gemm, s.dtype, flops, add(add(probs, qkvo, "pv bytes"), qkvo, "pv bytes"));
        } else {
            if (!s.block_m || !s.block_n) throw InternalError("attention-flash needs its tile sizes");
            // Every 64×64 tile on or below the diagonal is computed in full: QKᵀ and P·V, 2·D FLOPs
            // per score each.
            const u64 qb = cdiv(S, s.block_m), kb = cdiv(S, s.block_n);
            const u64 tiles = s.causal ? qb * (qb + 1) / 2 : qb * kb;
            const u64 flops = mul({4, BH, tiles, s.block_m, s.block_n, D}, "flash FLOPs");
            b.kernel("flash", KernelClass::MemtaxFlash, s.dtype, flops, mul({4, qkvo}, "flash bytes"));
        }
    } else if (kind == "decode-paged") {
        const u64 B = s.batch, L = s.context, Hkv = s.kv_heads, Hq = s.q_heads, D = s.head_dim, e = dtype_bytes(s.dtype);
        if (!Hkv || Hq % Hkv) throw InternalError("decode-paged: q_heads must be a multiple of kv_heads");
        const u64 G = Hq / Hkv, pages_per_seq = cdiv(L, s.block_size), pages = mul({B, pages_per_seq}, "pages");
        const u64 splits = cdiv(L, s.tokens_per_split);
        const u64 q = b.buffer("q", mul({B, Hq, D, e}, "decode q"));
        b.buffer("k_cache", mul({pages, Hkv, s.block_size, D, e}, "k_cache"));
        b.buffer("v_cache", mul({pages, Hkv, s.block_size, D, e}, "v_cache"));
        const u64 table = b.buffer("block_table", mul({B, pages_per_seq, 4}, "block_table"));
        const u64 out = b.buffer("out", mul({B, Hq, D, e}, "decode out"));
        const u64 parts = mul({B, Hkv, splits, G}, "partials");
        const u64 po = b.buffer("partial_out", mul({parts, D, 4}, "partial_out"));
        const u64 pm = b.buffer("partial_max", mul({parts, 4}, "partial_max"));
        const u64 pl = b.buffer("partial_sum", mul({parts, 4}, "partial_sum"));
        const u64 partials = add(add(po, pm, "partials"), pl, "partials");
        // The split kernel reads q, the K and V rows of the context's tokens (not the unused tail
        // of the last page), the page table, and writes the partial results.
        const u64 kv_rows = mul({2, B, L, Hkv, D, e}, "kv rows");
        b.kernel("split", KernelClass::MemtaxPagedDecode, s.dtype, mul({4, B, Hq, L, D}, "decode FLOPs"),
                 add(add(add(q, kv_rows, "split bytes"), table, "split bytes"), partials, "split bytes"));
        b.kernel("combine", KernelClass::Stream, "", 0, add(partials, out, "combine bytes"));
    } else if (kind == "attention-sdpa") {
        // PyTorch's fused attention: it returns `out`; the kernel reads q, k, v and writes out.
        // Causal prefill computes the S(S+1)/2 query-key pairs on and below the diagonal.
        const u64 e = dtype_bytes(s.dtype), D = s.head_dim;
        const u64 q = mul({s.batch, s.heads, s.q_len, D, e}, "sdpa q"), kv = mul({s.batch, s.kv_heads, s.context, D, e}, "sdpa kv");
        b.buffer("out", q);
        const u64 pairs = s.causal ? mul({s.q_len, s.q_len + 1}, "sdpa pairs") / 2 : mul({s.q_len, s.context}, "sdpa pairs");
        b.kernel("sdpa", s.q_len > 1 ? KernelClass::AttentionPrefill : KernelClass::AttentionDecode, s.dtype,
                 mul({4, s.batch, s.heads, pairs, D}, "sdpa FLOPs"),
                 add(add(mul({2, q}, "sdpa bytes"), mul({2, kv}, "sdpa bytes"), "sdpa bytes"), 0, "sdpa"));
    } else if (kind == "allreduce") {
        // Out of place on every rank; a ring moves 2(n−1)/n of the message through each GPU's link.
        b.buffer("send", s.bytes);
        b.buffer("recv", s.bytes);
        const u64 n = std::max<u64>(s.gpus, 1);
        b.kernel("allreduce", KernelClass::AllReduce, "", 0, mul({2, n - 1, s.bytes}, "allreduce bytes") / n);
        b.m.kernels.back().steps = 2 * (n - 1);
    } else {
        throw InternalError(fmt::format("no probe model for kind {}", kind));
    }
    return b.m;
}

ProbeTime probe_time(const ProbeModel& m, const GpuSpec& gpu) {
    ProbeTime t;
    // A kernel queued right behind another does not wait out the launch latency: the launch
    // class's isolated cost minus its queued cost is hidden for every kernel after the first.
    double hidden = 0;
    if (auto it = gpu.kernel_rates.find("launch"); it != gpu.kernel_rates.end())
        hidden = std::max(0.0, it->second.overhead_s - it->second.queued_s);
    for (size_t i = 0; i < m.kernels.size(); ++i) {
        const auto& k = m.kernels[i];
        KernelTime kt = kernel_time(gpu, k.cls, k.dtype.empty() ? "bf16" : k.dtype, k.flops, k.bytes, k.steps);
        if (i > 0 && hidden > 0) {
            const double cut = std::min(hidden, kt.overhead_s);
            kt.overhead_s -= cut;
            kt.seconds -= cut;
            kt.bound = kt.overhead_s > std::max(kt.memory_s, kt.compute_s) ? "overhead" : kt.compute_s > kt.memory_s ? "compute" : "memory";
        }
        t.seconds += kt.seconds;
        t.overhead_s += kt.overhead_s;
        if (kt.compute_s > kt.memory_s)
            t.compute_s += kt.compute_s;
        else
            t.memory_s += kt.memory_s;
        t.kernels.push_back(std::move(kt));
    }
    t.bound = t.overhead_s > std::max(t.memory_s, t.compute_s) ? "overhead" : t.compute_s > t.memory_s ? "compute" : "memory";
    return t;
}

}  // namespace memtax
