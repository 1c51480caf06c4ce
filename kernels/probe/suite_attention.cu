// Attention suites, causal prefill, bf16, [batch, heads, tokens, 128] tensors:
//  - `attention-eager`: the materialised algorithm — scores = QKᵀ·scale (cuBLAS, fp32 out,
//    the full S×S), a causal softmax to bf16 probabilities, out = P·V (cuBLAS). It allocates
//    exactly q, k, v, out, the fp32 scores, the bf16 probabilities and cuBLAS's workspace.
//  - `attention-flash`: a tiled online-softmax kernel (FlashAttention-2's schedule on mma.sync
//    tensor cores): 64 query rows per CTA, 64-key tiles streamed through shared memory with
//    cp.async, no S×S buffer; it allocates q, k, v and out only.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdio>

#include "common.cuh"

namespace probe {
namespace {

constexpr int D = 128;      // head dimension
constexpr int BM = 64;      // query rows per CTA (4 warps × 16)
constexpr int BN = 64;      // keys per tile
constexpr int LDS = D + 8;  // padded shared-memory row (bf16): ldmatrix rows hit distinct banks
constexpr int kFlashThreads = 128;

__device__ __forceinline__ unsigned smem_addr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldsm_x4(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
// D(16×8, fp32) += A(16×16, bf16, row) · B(16×8, bf16, col)
__device__ __forceinline__ void mma16816(float* d, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

__device__ __forceinline__ void load_tile(__nv_bfloat16* dst, const __nv_bfloat16* src) {
    for (int c = threadIdx.x; c < BN * D / 8; c += kFlashThreads) {
        const int r = c / (D / 8), col = (c % (D / 8)) * 8;
        cp_async16(dst + r * LDS + col, src + static_cast<std::size_t>(r) * D + col);
    }
}

__global__ void __launch_bounds__(kFlashThreads)
    k_flash(const __nv_bfloat16* __restrict__ Q, const __nv_bfloat16* __restrict__ K, const __nv_bfloat16* __restrict__ V,
            __nv_bfloat16* __restrict__ O, int S, float scale_log2) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);
    __nv_bfloat16* Ks = Qs + BM * LDS;
    __nv_bfloat16* Vs = Ks + BN * LDS;
    const int qb = gridDim.x - 1 - blockIdx.x;  // longest rows first
    const std::size_t base = (static_cast<std::size_t>(blockIdx.z) * gridDim.y + blockIdx.y) * S * D;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int q0 = qb * BM;

    load_tile(Qs, Q + base + static_cast<std::size_t>(q0) * D);
    cp_commit();
    load_tile(Ks, K + base);
    cp_commit();
    load_tile(Vs, V + base);
    cp_commit();
    cp_wait<2>();
    __syncthreads();
    unsigned qa[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ldsm_x4(qa[kk], Qs + (warp * 16 + (lane % 16)) * LDS + kk * 16 + (lane / 16) * 8);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f};
    const int row0 = q0 + warp * 16 + lane / 4;  // this lane's rows: row0 and row0 + 8
    const int nblocks = qb + 1;                  // causal: key tiles 0..qb

    for (int j = 0; j < nblocks; ++j) {
        cp_wait<1>();  // K_j has landed (V_j may be in flight)
        __syncthreads();
        float s[BN / 8][4];
#pragma unroll
        for (int n = 0; n < BN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
            for (int np = 0; np < BN / 16; ++np) {
                unsigned kb[4];
                ldsm_x4(kb, Ks + (np * 16 + (lane % 8) + (lane / 16) * 8) * LDS + kk * 16 + ((lane / 8) % 2) * 8);
                mma16816(s[2 * np], qa[kk], kb[0], kb[1]);
                mma16816(s[2 * np + 1], qa[kk], kb[2], kb[3]);
            }
        __syncthreads();  // every warp is done with Ks
        if (j + 1 < nblocks) load_tile(Ks, K + base + static_cast<std::size_t>(j + 1) * BN * D);
        cp_commit();
        // Online softmax in log2 units; the diagonal tile masks keys after the query.
        const bool diag = j == qb;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int qrow = row0 + r * 8;
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < BN / 8; ++n)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float v = s[n][2 * r + e] * scale_log2;
                    const int key = j * BN + n * 8 + (lane % 4) * 2 + e;
                    if (diag && key > qrow) v = -INFINITY;
                    s[n][2 * r + e] = v;
                    mx = fmaxf(mx, v);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m_r[r], mx);
            const float alpha = exp2f(m_r[r] - m_new);
            m_r[r] = m_new;
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < BN / 8; ++n)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const float p = exp2f(s[n][2 * r + e] - m_new);
                    s[n][2 * r + e] = p;
                    sum += p;
                }
            l_r[r] = l_r[r] * alpha + sum;
#pragma unroll
            for (int n = 0; n < D / 8; ++n) {
                o[n][2 * r] *= alpha;
                o[n][2 * r + 1] *= alpha;
            }
        }
        cp_wait<1>();  // V_j has landed (K_{j+1} may be in flight)
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
            const unsigned pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                unsigned vb[4];
                ldsm_x4_t(vb, Vs + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + dp * 16 + (lane / 16) * 8);
                mma16816(o[2 * dp], pa, vb[0], vb[1]);
                mma16816(o[2 * dp + 1], pa, vb[2], vb[3]);
            }
        }
        __syncthreads();  // every warp is done with Vs
        if (j + 1 < nblocks) load_tile(Vs, V + base + static_cast<std::size_t>(j + 1) * BN * D);
        cp_commit();
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float l = l_r[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const float inv = 1.f / l;
        __nv_bfloat16* orow = O + base + static_cast<std::size_t>(row0 + r * 8) * D;
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            *reinterpret_cast<__nv_bfloat162*>(orow + n * 8 + (lane % 4) * 2) =
                __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
}

constexpr std::size_t kFlashSmem = (BM + 2 * BN) * LDS * sizeof(__nv_bfloat16);

// Causal softmax of fp32 scores (already scaled) into bf16 probabilities, one warp per row:
// pass 1 reads keys 0..i once (online max and sum), pass 2 re-reads them (a row is at most
// 128 KiB, so from L2) and writes the whole row, zeros after the query.
constexpr int kSmThreads = 256;
constexpr int kSmRows = kSmThreads / 32;
__global__ void __launch_bounds__(kSmThreads)
    k_causal_softmax(const float* __restrict__ Sc, __nv_bfloat16* __restrict__ P, std::uint64_t rows, int S) {
    const std::uint64_t row = static_cast<std::uint64_t>(blockIdx.x) * kSmRows + (threadIdx.x >> 5);
    if (row >= rows) return;
    const int lane = threadIdx.x & 31, i = static_cast<int>(row % S), nvec = (i + 1 + 3) / 4;
    const float4* src = reinterpret_cast<const float4*>(Sc + row * S);
    auto masked = [&](float4 v, int c) {
        const int k = 4 * c;
        if (k + 1 > i) v.y = -INFINITY;
        if (k + 2 > i) v.z = -INFINITY;
        if (k + 3 > i) v.w = -INFINITY;
        return v;
    };
    float m = -INFINITY, l = 0.f;
    for (int c0 = lane; c0 < nvec; c0 += 4 * 32) {
        float4 v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const int c = c0 + u * 32;
            v[u] = c < nvec ? masked(src[c], c) : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const float mx = fmaxf(fmaxf(v[u].x, v[u].y), fmaxf(v[u].z, v[u].w));
            if (mx > m) {
                l *= __expf(m - mx);
                m = mx;
            }
            if (mx > -INFINITY) l += __expf(v[u].x - m) + __expf(v[u].y - m) + __expf(v[u].z - m) + __expf(v[u].w - m);
        }
    }
    float M = m;
    for (int o = 16; o; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    l = m > -INFINITY ? l * __expf(m - M) : 0.f;
    for (int o = 16; o; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    const float inv = 1.f / l;
    uint2* dst = reinterpret_cast<uint2*>(P + row * S);
    for (int c = lane; c < S / 4; c += 32) {
        uint2 w = make_uint2(0u, 0u);
        if (c < nvec) {
            const float4 v = masked(src[c], c);
            __nv_bfloat162 lo = __floats2bfloat162_rn(__expf(v.x - M) * inv, __expf(v.y - M) * inv);
            __nv_bfloat162 hi = __floats2bfloat162_rn(__expf(v.z - M) * inv, __expf(v.w - M) * inv);
            w = make_uint2(*reinterpret_cast<unsigned*>(&lo), *reinterpret_cast<unsigned*>(&hi));
        }
        dst[c] = w;
    }
}

struct AttnShape {
    int B, H, S;
};

struct AttnBuffers {
    __nv_bfloat16 *q, *k, *v, *o;
    float* scores = nullptr;
    __nv_bfloat16* probs = nullptr;
    void* ws = nullptr;
};

std::uint64_t elems(const AttnShape& s) { return static_cast<std::uint64_t>(s.B) * s.H * s.S * D; }
std::uint64_t square(const AttnShape& s) { return static_cast<std::uint64_t>(s.B) * s.H * s.S * s.S; }

AttnBuffers attn_alloc(Arena& a, const AttnShape& s, bool eager) {
    AttnBuffers b;
    b.q = a.get<__nv_bfloat16>("q", elems(s));
    b.k = a.get<__nv_bfloat16>("k", elems(s));
    b.v = a.get<__nv_bfloat16>("v", elems(s));
    b.o = a.get<__nv_bfloat16>("out", elems(s));
    if (eager) {
        b.scores = a.get<float>("scores", square(s));
        b.probs = a.get<__nv_bfloat16>("probs", square(s));
        b.ws = a.alloc("workspace", kLtWorkspace);
    }
    return b;
}

// stage: 0 = all, 1 = scores (or the flash kernel), 2 = softmax, 3 = P·V.
void attn_run(Device& d, const AttnShape& s, const AttnBuffers& b, bool eager, cudaStream_t st, int stage = 0) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    if (!eager) {
        static bool set = false;
        if (!set) {
            CK(cudaFuncSetAttribute(k_flash, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kFlashSmem)));
            set = true;
        }
        k_flash<<<dim3(s.S / BM, s.H, s.B), kFlashThreads, kFlashSmem, st>>>(b.q, b.k, b.v, b.o, s.S, scale * 1.4426950408889634f);
        CK_LAUNCH();
        return;
    }
    CKB(cublasSetStream(d.blas, st));
    CKB(cublasSetWorkspace(d.blas, b.ws, kLtWorkspace));
    const long long sd = static_cast<long long>(s.S) * D, ss = static_cast<long long>(s.S) * s.S;
    const float one = 1.0f, zero = 0.0f;
    if (stage == 0 || stage == 1)
        // Row-major scores[i][j] = Σ_d q[i][d]·k[j][d] is column-major scoresᵀ = kᵀ(D×S)ᵀ·q: gemm(T, N).
        CKB(cublasGemmStridedBatchedEx(d.blas, CUBLAS_OP_T, CUBLAS_OP_N, s.S, s.S, D, &scale, b.k, CUDA_R_16BF, D, sd, b.q, CUDA_R_16BF, D,
                                       sd, &zero, b.scores, CUDA_R_32F, s.S, ss, s.B * s.H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (stage == 0 || stage == 2) {
        const std::uint64_t rows = static_cast<std::uint64_t>(s.B) * s.H * s.S;
        k_causal_softmax<<<static_cast<unsigned>((rows + kSmRows - 1) / kSmRows), kSmThreads, 0, st>>>(b.scores, b.probs, rows, s.S);
        CK_LAUNCH();
    }
    if (stage == 0 || stage == 3)
        // Row-major out[i][d] = Σ_j p[i][j]·v[j][d] is column-major outᵀ = vᵀ(D×S)·pᵀ(S×S): gemm(N, N).
        CKB(cublasGemmStridedBatchedEx(d.blas, CUBLAS_OP_N, CUBLAS_OP_N, D, s.S, s.S, &one, b.v, CUDA_R_16BF, D, sd, b.probs, CUDA_R_16BF,
                                       s.S, ss, &zero, b.o, CUDA_R_16BF, D, sd, s.B * s.H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void attn_init(const AttnShape& s, const AttnBuffers& b, std::uint32_t seed, cudaStream_t st) {
    fill_random(b.q, elems(s), DT::BF16, seed, 1.0f, st);
    fill_random(b.k, elems(s), DT::BF16, seed + 1, 1.0f, st);
    fill_random(b.v, elems(s), DT::BF16, seed + 2, 1.0f, st);
}

void attn_check(Device& d, Results& r, bool eager) {
    const AttnShape s{1, 2, 256};
    Arena a;
    AttnBuffers b = attn_alloc(a, s, eager);
    attn_init(s, b, 91, d.stream);
    poison(b.o, elems(s) * 2, d.stream);
    attn_run(d, s, b, eager, d.stream);
    std::uint64_t unwritten = count_poison(b.o, elems(s), DT::BF16, d.stream);
    auto q = to_host(b.q, elems(s), DT::BF16), k = to_host(b.k, elems(s), DT::BF16), v = to_host(b.v, elems(s), DT::BF16),
         o = to_host(b.o, elems(s), DT::BF16);
    std::vector<double> ref(o.size());
    for (int h = 0; h < s.B * s.H; ++h)
        for (int i = 0; i < s.S; ++i) {
            const std::size_t hb = static_cast<std::size_t>(h) * s.S * D;
            std::vector<double> p(i + 1);
            double m = -INFINITY, l = 0;
            for (int j = 0; j <= i; ++j) {
                double dot = 0;
                for (int e = 0; e < D; ++e) dot += q[hb + i * D + e] * k[hb + j * D + e];
                p[j] = dot / std::sqrt(static_cast<double>(D));
                m = std::max(m, p[j]);
            }
            for (auto& x : p) l += (x = std::exp(x - m));
            for (int e = 0; e < D; ++e) {
                double acc = 0;
                for (int j = 0; j <= i; ++j) acc += p[j] * v[hb + j * D + e];
                ref[hb + i * D + e] = acc / l;
            }
        }
    r.checks.push_back(
        {eager ? "attention-eager" : "attention-flash", "causal B=1 H=2 S=256 D=128 vs float64", rel_error(o, ref), 1e-2, unwritten});
}

}  // namespace

void suite_attention(Device& d, Results& r, bool eager_suite, bool flash_suite) {
    std::vector<AttnShape> shapes;
    // Smallest first: a long case heats the card and can slow the one after it.
    shapes = {{1, 32, 1024}, {1, 32, 2048}, {4, 8, 4096}, {1, 32, 4096}, {2, 16, 8192}, {1, 32, 8192}, {1, 32, 16384}, {1, 32, 32768}};
    if (d.quick) shapes = {{1, 32, 1024}, {1, 32, 4096}};
    for (bool eager : {true, false}) {
        if ((eager && !eager_suite) || (!eager && !flash_suite)) continue;
        attn_check(d, r, eager);
        for (const auto& s : shapes) {
            Case c;
            c.kind = eager ? "attention-eager" : "attention-flash";
            c.id = c.kind + "/b" + std::to_string(s.B) + "/h" + std::to_string(s.H) + "/s" + std::to_string(s.S);
            c.params.set("batch", Json::integer(s.B))
                .set("heads", Json::integer(s.H))
                .set("context", Json::integer(s.S))
                .set("head_dim", Json::integer(D))
                .set("causal", Json::boolean(true))
                .set("dtype", Json::str("bf16"));
            if (eager)
                c.params.set("scores_dtype", Json::str("fp32")).set("workspace_bytes", Json::integer(kLtWorkspace));
            else
                c.params.set("block_m", Json::integer(BM)).set("block_n", Json::integer(BN));
            std::uint64_t need = 4 * elems(s) * 2 + (eager ? square(s) * 6 + kLtWorkspace : 0);
            if (skip_if_too_big(c, need)) {
                r.cases.push_back(c);
                continue;
            }
            Arena a;
            AttnBuffers b = attn_alloc(a, s, eager);
            attn_init(s, b, 7, d.stream);
            std::vector<Stage> stages;
            if (eager)
                stages = {{"scores", [&](cudaStream_t st) { attn_run(d, s, b, true, st, 1); }},
                          {"softmax", [&](cudaStream_t st) { attn_run(d, s, b, true, st, 2); }},
                          {"pv", [&](cudaStream_t st) { attn_run(d, s, b, true, st, 3); }}};
            else
                stages = {{"flash", [&](cudaStream_t st) { attn_run(d, s, b, false, st); }}};
            StageTimes t = time_stages(
                stages, [&](cudaStream_t st) { poison(b.o, elems(s) * 2, st); }, d.stream, 2, 5, 50, 0.1);
            record(c, a, t, count_poison(b.o, elems(s), DT::BF16, d.stream));
            r.cases.push_back(c);
        }
    }
}

}  // namespace probe
