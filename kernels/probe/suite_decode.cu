// The `decode-paged` suite: one decode step of attention reading a paged KV cache through a
// block table, grouped-query heads sharing each K/V read (flash-decoding: a split kernel and a
// combine kernel). The Hopper split kernel streams pages with tensor copies and computes on the
// tensor cores; earlier GPUs run a register-pipelined kernel.
#include <cuda.h>  // CUtensorMap (the type only: the encoder comes through the runtime)
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda/ptx>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "common.cuh"

namespace probe {
namespace {

// ---- decode-paged ----------------------------------------------------------------------------
// One decode step of attention over a paged KV cache, flash-decoding style: a split kernel (one
// CTA per (split of the context, KV head, sequence)) keeps an online softmax for the G query
// heads sharing the KV head and writes each split's partial result; a combine kernel merges the
// splits. On Hopper (sm_90) the split kernel streams whole pages into shared memory with the
// bulk-copy engine (cp.async.bulk.tensor completing on an mbarrier, kStages deep), so the bytes in
// flight do not depend on registers or on the arithmetic between loads; earlier GPUs run a
// register-pipelined version. The split size is chosen per shape to fill whole waves of the
// GPU (`decode_plan`) and is recorded with each case.
constexpr int kBlock = 16;  // tokens per KV page (vLLM's default block_size)
constexpr int kHeadDim = 128;
constexpr int kDecThreads = 128;
constexpr int kMinSplitTokens = 256;   // below this a split is all start-up
constexpr int kMaxSplitTokens = 8192;  // the split's page-table entries stay in shared memory
constexpr int kMaxSplits = 1024;

__device__ __forceinline__ void unpack8(const uint4& v, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        float2 x = __bfloat1622float2(h[k]);
        f[2 * k] = x.x;
        f[2 * k + 1] = x.y;
    }
}
// The register kernel's per-lane state of the online softmax over the tokens a half-warp sees
// (a lane holds 8 of a row's 128 dimensions): for each of the G query heads the running maximum
// (log2 domain), the running sum and the P·V accumulator.
template <int G>
struct Softmax {
    static constexpr int T = 16, kDims = kHeadDim / T;
    float q[G][kDims], m[G], l[G], acc[G][kDims];

    __device__ void init(const __nv_bfloat16* qh, int lane, float scale_log2) {
#pragma unroll
        for (int g = 0; g < G; ++g) {
            unpack8(*reinterpret_cast<const uint4*>(qh + static_cast<std::size_t>(g) * kHeadDim + lane * 8), q[g]);
#pragma unroll
            for (int j = 0; j < kDims; ++j) q[g][j] *= scale_log2;
            m[g] = -INFINITY;
            l[g] = 0.f;
#pragma unroll
            for (int j = 0; j < kDims; ++j) acc[g][j] = 0.f;
        }
    }
    // U tokens at once: kload(u, f) / vload(u, f) give this lane's dimensions of token u's K / V
    // row (valid[u] false past the context).
    template <int U, class KLoad, class VLoad>
    __device__ void step(KLoad kload, VLoad vload, const bool (&valid)[U]) {
        float s[U][G];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            float kf[kDims];
            kload(u, kf);
#pragma unroll
            for (int g = 0; g < G; ++g) {
                float x = 0;
#pragma unroll
                for (int j = 0; j < kDims; ++j) x += q[g][j] * kf[j];
#pragma unroll
                for (int o = T / 2; o; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
                s[u][g] = valid[u] ? x : -INFINITY;
            }
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
            float cm = -INFINITY;
#pragma unroll
            for (int u = 0; u < U; ++u) cm = fmaxf(cm, s[u][g]);
            if (cm == -INFINITY) continue;  // none of these tokens is in the context
            const float m_new = fmaxf(m[g], cm), alpha = exp2f(m[g] - m_new);
            m[g] = m_new;
            l[g] *= alpha;
#pragma unroll
            for (int j = 0; j < kDims; ++j) acc[g][j] *= alpha;
#pragma unroll
            for (int u = 0; u < U; ++u) {
                s[u][g] = exp2f(s[u][g] - m_new);
                l[g] += s[u][g];
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            if (!valid[u]) continue;
            float vf[kDims];
            vload(u, vf);
#pragma unroll
            for (int g = 0; g < G; ++g)
#pragma unroll
                for (int j = 0; j < kDims; ++j) acc[g][j] += s[u][g] * vf[j];
        }
    }
    // The CTA's lane groups merge through shared memory (red: groups·G·128 floats, gm/gl:
    // groups·G) and thread d writes dimension d of the split's partial result for each head.
    __device__ void merge_and_write(float* red, float* gm, float* gl, int grp, int lane, std::size_t base_out, float* po, float* pm,
                                    float* pl) {
        constexpr int kGroups = kDecThreads / T;
#pragma unroll
        for (int g = 0; g < G; ++g) {
            if (lane == 0) {
                gm[grp * G + g] = m[g];
                gl[grp * G + g] = l[g];
            }
#pragma unroll
            for (int j = 0; j < kDims; ++j) red[(grp * G + g) * kHeadDim + lane * kDims + j] = acc[g][j];
        }
        __syncthreads();
        const int d = threadIdx.x;
#pragma unroll
        for (int g = 0; g < G; ++g) {
            float M = -INFINITY;
#pragma unroll
            for (int w = 0; w < kGroups; ++w) M = fmaxf(M, gm[w * G + g]);
            float o = 0.f, sum = 0.f;
#pragma unroll
            for (int w = 0; w < kGroups; ++w) {
                const float f = gm[w * G + g] == -INFINITY ? 0.f : exp2f(gm[w * G + g] - M);
                o += f * red[(w * G + g) * kHeadDim + d];
                sum += f * gl[w * G + g];
            }
            po[(base_out + g) * kHeadDim + d] = o;
            if (d == 0) {
                pm[base_out + g] = M;
                pl[base_out + g] = sum;
            }
        }
    }
};

struct DecodeArgs {
    const __nv_bfloat16 *q, *kc, *vc;
    const int* table;
    int max_blocks, L, Hkv, splits, tps;
    float scale_log2;
    float *po, *pm, *pl;
};

// Hopper: one warp per CTA streams the split's pages into shared memory with the bulk-copy
// engine and computes with the tensor cores. Each page (16 tokens of one KV head) arrives as four
// 2-D tensor copies (K and V, dims 0..63 and 64..127, 16 rows each) with the 128-byte swizzle, so
// that the ldmatrix reads below hit 8 distinct bank groups; the copies complete on the page
// buffer's mbarrier, kStages buffers deep, so kStages − 1 pages per CTA are in flight while one
// is computed. (MEMTAX_DECODE_TMAP=0 builds the alternative measured in docs/probe.md: 32 row
// copies of 256 bytes per page, a lane each, into rows padded to 272 bytes; the issuing warp pays
// for every copy, a floor of ~28 µs at small shapes on the H200.) Per page: S = Q·Kᵀ as
// mma.m16n8k16 (bf16 in, fp32 out) with the G query heads as rows 0..G−1 of M (the rest zero), an online softmax on the accumulators (each
// row's four lanes share a max through two shuffles), then O += P·V with P in bf16 straight from the score registers and V through
// ldmatrix.trans. The arithmetic per page is 32 mma and 16 ldmatrix whatever G is (≤ 8).
#ifndef MEMTAX_DECODE_STAGES
#define MEMTAX_DECODE_STAGES 4
#endif
#ifndef MEMTAX_DECODE_PDL  // 0: the combine waits for the split kernel's end to be launched
#define MEMTAX_DECODE_PDL 1
#endif
#ifndef MEMTAX_DECODE_TMAP  // 0: 32 row copies per page into padded rows instead of 4 tensor copies
#define MEMTAX_DECODE_TMAP 1
#endif
constexpr int kStages = MEMTAX_DECODE_STAGES;
constexpr int kRowPad = kHeadDim + 8;                                                         // row copies: bf16 per shared row, 272 bytes
constexpr int kHalfSmem = MEMTAX_DECODE_TMAP ? kBlock * kHeadDim * 2 : kBlock * kRowPad * 2;  // a page's K (or V)
constexpr int kPageSmem = 2 * kHalfSmem;
constexpr int kStageTokens = kBlock;  // splits are whole pages
constexpr std::size_t kMmaSmem = 1024 /* alignment of the swizzled buffers */ + static_cast<std::size_t>(kStages) * kPageSmem +
                                 kStages * sizeof(std::uint64_t) + kMaxSplitTokens / kBlock * sizeof(int);

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // used by the Hopper kernel only
// Where 16-byte chunk c (dims 8c..8c+7) of row r of a page's K or V lies in shared memory. Tensor
// copies: two boxes of 16 rows × 64 dims (128 bytes a row), each written with the 128-byte
// swizzle (chunk c of row r at chunk c XOR r mod 8 of its row); row copies: padded rows.
__device__ __forceinline__ constexpr int kv_chunk(int r, int c) {
    return MEMTAX_DECODE_TMAP ? (c >> 3) * (kBlock * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4) : r * kRowPad * 2 + c * 16;
}

__device__ __forceinline__ void ldsm_x4(const void* p, std::uint32_t& r0, std::uint32_t& r1, std::uint32_t& r2, std::uint32_t& r3) {
    const auto a = static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(const void* p, std::uint32_t& r0, std::uint32_t& r1, std::uint32_t& r2, std::uint32_t& r3) {
    const auto a = static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(a));
}
// d += a·b for one m16n8k16 tile; rows 8..15 of A are zero here (a1 = a3 = 0).
__device__ __forceinline__ void mma16816(float (&d)[4], std::uint32_t a0, std::uint32_t a2, std::uint32_t b0, std::uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
}
#endif

template <int G>
__global__ void __launch_bounds__(32, 1)
    k_decode_split_mma(DecodeArgs a, const __grid_constant__ CUtensorMap tmk, const __grid_constant__ CUtensorMap tmv) {
    static_assert(G >= 1 && G <= 8, "the query heads of a KV head fill rows 0..7 of the tile");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace ptx = cuda::ptx;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    unsigned char* smem = smem_raw + ((1024 - (static_cast<unsigned>(__cvta_generic_to_shared(smem_raw)) & 1023)) & 1023);
    auto* bar = reinterpret_cast<std::uint64_t*>(smem + kStages * kPageSmem);
    int* tab_s = reinterpret_cast<int*>(bar + kStages);
    const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, lane = threadIdx.x;
    const int t0 = split * a.tps, nt = min(a.tps, a.L - t0), npages = (nt + kBlock - 1) / kBlock;
    for (int i = lane; i < npages; i += 32) tab_s[i] = a.table[static_cast<std::size_t>(b) * a.max_blocks + t0 / kBlock + i];
    if (lane == 0) {
        for (int s = 0; s < kStages; ++s) ptx::mbarrier_init(&bar[s], 1);
        ptx::fence_mbarrier_init(ptx::sem_release, ptx::scope_cluster);
    }
    __syncwarp();
#if !MEMTAX_DECODE_TMAP
    // Lanes 0..15 copy the page's K rows, lanes 16..31 its V rows.
    const __nv_bfloat16* src_base = (lane < 16 ? a.kc : a.vc) + static_cast<std::size_t>(lane & 15) * kHeadDim;
#endif
    auto issue = [&](int pg) {
        const int s = pg % kStages;
        if (lane == 0)
            ptx::mbarrier_arrive_expect_tx(ptx::sem_release, ptx::scope_cta, ptx::space_shared, &bar[s],
                                           static_cast<std::uint32_t>(2 * kBlock * kHeadDim * 2));
        __syncwarp();
#if MEMTAX_DECODE_TMAP
        // Lanes 0..3: K dims 0..63, K dims 64..127, V dims 0..63, V dims 64..127 (16 rows each).
        if (lane < 4) {
            const std::int32_t xy[2] = {64 * (lane & 1), (tab_s[pg] * a.Hkv + kvh) * kBlock};
            ptx::cp_async_bulk_tensor(ptx::space_cluster, ptx::space_global,
                                      smem + s * kPageSmem + (lane >> 1) * kHalfSmem + (lane & 1) * kBlock * 128, lane < 2 ? &tmk : &tmv,
                                      xy, &bar[s]);
        }
#else
        const std::size_t off = (static_cast<std::size_t>(tab_s[pg]) * a.Hkv + kvh) * kBlock * kHeadDim;
        ptx::cp_async_bulk(ptx::space_cluster, ptx::space_global, smem + s * kPageSmem + lane * kRowPad * 2, src_base + off, kHeadDim * 2,
                           &bar[s]);
#endif
    };
    for (int pg = 0; pg < min(kStages, npages); ++pg) issue(pg);
        // The combine kernel may be launched once every CTA of this grid has started (it waits for
        // this grid's end before it reads anything).
#if MEMTAX_DECODE_PDL
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif

    const int grp = lane >> 2, tig = lane & 3;  // the tile row this lane holds, and its column pair
    // Q as the A operand, rows = query heads: qa[s][0] dims 16s + 2·tig (+1), qa[s][1] 8 further.
    std::uint32_t qa[8][2];
    {
        const __nv_bfloat16* qh = a.q + ((static_cast<std::size_t>(b) * a.Hkv + kvh) * G + grp) * kHeadDim;
#pragma unroll
        for (int s = 0; s < 8; ++s)
#pragma unroll
            for (int h = 0; h < 2; ++h) qa[s][h] = grp < G ? *reinterpret_cast<const std::uint32_t*>(qh + 16 * s + 8 * h + 2 * tig) : 0u;
    }
    float o[16][4];
#pragma unroll
    for (int j = 0; j < 16; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m = -INFINITY, l = 0.f;  // this row's running max (log2 domain) and this lane's share of the sum
    for (int pg = 0; pg < npages; ++pg) {
        const int s = pg % kStages;
        while (!ptx::mbarrier_try_wait_parity(&bar[s], static_cast<std::uint32_t>((pg / kStages) & 1))) {
        }
        const unsigned char* kb = smem + s * kPageSmem;
        const unsigned char* vb = kb + kHalfSmem;
        float sc[2][4];
#pragma unroll
        for (int t = 0; t < 2; ++t) {  // tokens 8t..8t+7 of the page
            sc[t][0] = sc[t][1] = sc[t][2] = sc[t][3] = 0.f;
#pragma unroll
            for (int s2 = 0; s2 < 8; s2 += 2) {
                std::uint32_t b0, b1, b2, b3;
                ldsm_x4(kb + kv_chunk(8 * t + (lane & 7), 2 * s2 + (lane >> 3)), b0, b1, b2, b3);
                mma16816(sc[t], qa[s2][0], qa[s2][1], b0, b1);
                mma16816(sc[t], qa[s2 + 1][0], qa[s2 + 1][1], b2, b3);
            }
        }
        const int valid = nt - pg * kBlock;  // tokens of this page inside the context
        float pmax = -INFINITY;
#pragma unroll
        for (int t = 0; t < 2; ++t)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                sc[t][c] = 8 * t + 2 * tig + c < valid ? sc[t][c] * a.scale_log2 : -INFINITY;
                pmax = fmaxf(pmax, sc[t][c]);
            }
        pmax = fmaxf(pmax, __shfl_xor_sync(0xffffffffu, pmax, 1));
        pmax = fmaxf(pmax, __shfl_xor_sync(0xffffffffu, pmax, 2));
        const float m_new = fmaxf(m, pmax), alpha = exp2f(m - m_new);
        m = m_new;
        float p[2][2];
#pragma unroll
        for (int t = 0; t < 2; ++t)
#pragma unroll
            for (int c = 0; c < 2; ++c) p[t][c] = exp2f(sc[t][c] - m_new);
        l = l * alpha + p[0][0] + p[0][1] + p[1][0] + p[1][1];
        const std::uint32_t pa0 = pack_bf16(p[0][0], p[0][1]), pa2 = pack_bf16(p[1][0], p[1][1]);
#pragma unroll
        for (int j = 0; j < 16; j += 2) {  // dims 8j..8j+15
            std::uint32_t b0, b1, b2, b3;
            ldsm_x4_t(vb + kv_chunk(8 * ((lane >> 3) & 1) + (lane & 7), j + (lane >> 4)), b0, b1, b2, b3);
            o[j][0] *= alpha;
            o[j][1] *= alpha;
            o[j + 1][0] *= alpha;
            o[j + 1][1] *= alpha;
            mma16816(o[j], pa0, pa2, b0, b1);
            mma16816(o[j + 1], pa0, pa2, b2, b3);
        }
        __syncwarp();  // every lane has read the buffer before it is refilled
        if (pg + kStages < npages) issue(pg + kStages);
    }
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (grp < G) {
        const std::size_t row = ((static_cast<std::size_t>(b) * a.Hkv + kvh) * a.splits + split) * G + grp;
#pragma unroll
        for (int j = 0; j < 16; ++j) *reinterpret_cast<float2*>(a.po + row * kHeadDim + 8 * j + 2 * tig) = make_float2(o[j][0], o[j][1]);
        if (tig == 0) {
            a.pm[row] = m;
            a.pl[row] = l;
        }
    }
#else
    __trap();  // launched only on sm_90 and later (see decode_plan)
#endif
}
// Before Hopper: each half-warp loads U tokens' K and V rows into registers, then computes.
template <int G, int U>
__global__ void __launch_bounds__(kDecThreads) k_decode_split_regs(DecodeArgs a) {
    __shared__ int tab_s[kMaxSplitTokens / kBlock];
    __shared__ float red[(kDecThreads / 16) * G * kHeadDim];
    __shared__ float gml[2 * (kDecThreads / 16) * G];
    const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int t0 = split * a.tps, nt = min(a.tps, a.L - t0);
    const int grp = threadIdx.x >> 4, lane = threadIdx.x & 15;
    for (int i = threadIdx.x; i < (nt + kBlock - 1) / kBlock; i += kDecThreads)
        tab_s[i] = a.table[static_cast<std::size_t>(b) * a.max_blocks + t0 / kBlock + i];
    Softmax<G> sm;
    sm.init(a.q + (static_cast<std::size_t>(b) * a.Hkv + kvh) * G * kHeadDim, lane, a.scale_log2);
    __syncthreads();
    for (int base = 0; base < nt; base += 8 * U) {
        uint4 kv[2][U];
        bool valid[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int tt = base + u * 8 + grp;
            valid[u] = tt < nt;
            kv[0][u] = kv[1][u] = make_uint4(0, 0, 0, 0);
            if (valid[u]) {
                const std::size_t off =
                    ((static_cast<std::size_t>(tab_s[tt / kBlock]) * a.Hkv + kvh) * kBlock + tt % kBlock) * kHeadDim + lane * 8;
                kv[0][u] = *reinterpret_cast<const uint4*>(a.kc + off);
                kv[1][u] = *reinterpret_cast<const uint4*>(a.vc + off);
            }
        }
        sm.template step<U>([&](int u, float* f) { unpack8(kv[0][u], f); }, [&](int u, float* f) { unpack8(kv[1][u], f); }, valid);
    }
    const std::size_t base_out = ((static_cast<std::size_t>(b) * a.Hkv + kvh) * a.splits + split) * G;
    sm.merge_and_write(red, gml, gml + (kDecThreads / 16) * G, grp, lane, base_out, a.po, a.pm, a.pl);
}
// One CTA per (query head, sequence), a thread per head dimension: the splits' maxima and sums
// go through shared memory once, then each thread sums its dimension over the splits with the
// loads unrolled (independent addresses, many in flight).

constexpr int kCombineParts = 4;
__global__ void __launch_bounds__(kHeadDim* kCombineParts)
    k_decode_combine(const float* __restrict__ po, const float* __restrict__ pm, const float* __restrict__ pl,
                     __nv_bfloat16* __restrict__ out, int Hkv, int G, int splits) {
    __shared__ float w[kMaxSplits];
    __shared__ float red[kHeadDim * kCombineParts / 32];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // Launched as a programmatic dependent of the split kernel on Hopper: the CTAs can be resident
    // before the split kernel ends; its partial results are complete and visible after this wait.
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
    const int hq = blockIdx.x, b = blockIdx.y, kvh = hq / G, g = hq % G, d = threadIdx.x;
    const std::size_t base = (static_cast<std::size_t>(b) * Hkv + kvh) * splits;
    const int t = threadIdx.y * kHeadDim + d, nt = kHeadDim * kCombineParts;
    float M = -INFINITY;
    for (int s = t; s < splits; s += nt) M = fmaxf(M, pm[(base + s) * G + g]);
    for (int o = 16; o; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    if ((t & 31) == 0) red[t >> 5] = M;
    __syncthreads();
    M = red[0];
    for (int i = 1; i < nt / 32; ++i) M = fmaxf(M, red[i]);
    __syncthreads();
    float den = 0.f;
    for (int s = t; s < splits; s += nt) {
        w[s] = exp2f(pm[(base + s) * G + g] - M);
        den += w[s] * pl[(base + s) * G + g];
    }
    for (int o = 16; o; o >>= 1) den += __shfl_xor_sync(0xffffffffu, den, o);
    if ((t & 31) == 0) red[t >> 5] = den;
    __syncthreads();
    den = 0.f;
    for (int i = 0; i < nt / 32; ++i) den += red[i];
    // Four thread groups (blockDim = 4 · 128) each sum a quarter of the splits: a short chain of
    // loads per thread even at batch 1 with hundreds of splits.
    const int part = threadIdx.y;
    float num = 0.f;
#pragma unroll 8
    for (int s = part; s < splits; s += kCombineParts) num += w[s] * po[((base + s) * G + g) * kHeadDim + d];
    __shared__ float acc[kCombineParts][kHeadDim];
    acc[part][d] = num;
    __syncthreads();
    if (part == 0)
        out[(static_cast<std::size_t>(b) * Hkv * G + hq) * kHeadDim + d] =
            __float2bfloat16((acc[0][d] + acc[1][d] + acc[2][d] + acc[3][d]) / den);
}

struct DecodeShape {
    int B, L, Hkv, G;
};

// How a shape runs: the split size and count, and which split kernel. The bulk-copy kernel
// holds kMmaSmem of shared memory, so a few CTAs fit on a multiprocessor; splits are sized so
// that the grid is a whole number of those waves (one wave where a split can hold the context
// share), between kMinSplitTokens and kMaxSplitTokens tokens, a whole number of pages.
struct DecodePlan {
    int tps = 0, splits = 0, threads = 0;
    bool hopper = false;
    const void* fn = nullptr;  // the split kernel, set up by decode_kernel
    std::size_t smem = 0;      // its dynamic shared memory
};

template <int G>
void decode_kernel_setup(DecodePlan& p) {
    constexpr int U = G > 4 ? 2 : 8;  // tokens in flight per half-warp
    p.fn = p.hopper ? reinterpret_cast<const void*>(&k_decode_split_mma<G>) : reinterpret_cast<const void*>(&k_decode_split_regs<G, U>);
    p.smem = p.hopper ? kMmaSmem : 0;
    p.threads = p.hopper ? 32 : kDecThreads;
    if (p.hopper) CK(cudaFuncSetAttribute(p.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(p.smem)));
}

// Picks the split kernel for p.hopper and the group size G (once per plan, outside any timing).
void decode_kernel(int G, DecodePlan& p) {
    switch (G) {
        case 1:
            decode_kernel_setup<1>(p);
            break;
        case 4:
            decode_kernel_setup<4>(p);
            break;
        case 8:
            decode_kernel_setup<8>(p);
            break;
        default:
            throw ProbeError("decode-paged: query heads per KV head must be 1, 4 or 8");
    }
}

DecodePlan decode_plan(const Device& dev, const DecodeShape& s) {
    DecodePlan p;
    p.hopper = dev.sm >= 90;
    decode_kernel(s.G, p);
    int per_sm = 0;  // resident CTAs per multiprocessor
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, p.fn, p.threads, p.smem));
    if (per_sm < 1) throw ProbeError("decode-paged: the split kernel does not fit on a multiprocessor");
    const long slots = static_cast<long>(per_sm) * dev.prop.multiProcessorCount, heads = static_cast<long>(s.B) * s.Hkv;
    const long most = (s.L + kMinSplitTokens - 1) / kMinSplitTokens, least = (s.L + kMaxSplitTokens - 1) / kMaxSplitTokens;
    long splits = most;
    for (long waves = 1; waves <= 64; ++waves) {
        const long fit = waves * slots / heads;  // splits per head that fill `waves` waves
        if (fit >= least) {
            splits = std::min(fit, most);
            break;
        }
    }
    const long tps = ((s.L + splits - 1) / splits + kStageTokens - 1) / kStageTokens * kStageTokens;
    p.tps = static_cast<int>(tps);
    p.splits = static_cast<int>((s.L + tps - 1) / tps);
    if (p.splits > kMaxSplits) throw ProbeError("decode-paged: more than 1024 splits");
    return p;
}

struct DecodeBuffers {
    __nv_bfloat16 *q, *kc, *vc, *out;
    int* table;
    float *po, *pm, *pl;
    std::size_t pages, max_blocks;
    CUtensorMap tmk, tmv;  // the Hopper kernel's view of the K and V pools (see kv_map; tensor copies only)
};

// The K (or V) pool as a 2-D tensor for the bulk-copy engine: rows of 128 dims (pages × KV heads
// × 16 rows), boxes of 16 rows × 64 dims, 128-byte swizzle. The driver's encoder is reached
// through the runtime (cudaGetDriverEntryPointByVersion), so the probe still links the runtime
// alone.
CUtensorMap kv_map(const void* pool, std::uint64_t rows) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
    if (!encode) {
        void* fn = nullptr;
        cudaDriverEntryPointQueryResult q{};
        CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q));
        if (q != cudaDriverEntryPointSuccess || !fn) throw ProbeError("decode-paged: the driver has no cuTensorMapEncodeTiled");
        encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
    }
    CUtensorMap m{};
    const cuuint64_t dims[2] = {kHeadDim, rows}, strides[1] = {kHeadDim * 2};
    const cuuint32_t box[2] = {64, kBlock}, step[2] = {1, 1};
    const CUresult r =
        encode(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(pool), dims, strides, box, step, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        throw ProbeError("decode-paged: cuTensorMapEncodeTiled failed with CUresult " + std::to_string(static_cast<int>(r)));
    return m;
}

// which: 1 = the split kernel, 2 = the combine kernel, 3 = both.
void decode_run(const DecodeShape& s, const DecodePlan& p, const DecodeBuffers& d, cudaStream_t st, int which = 3) {
    if (which & 1) {
        DecodeArgs a{d.q,  d.kc,  d.vc,     d.table, static_cast<int>(d.max_blocks),
                     s.L,  s.Hkv, p.splits, p.tps,   1.4426950408889634f / std::sqrt(static_cast<float>(kHeadDim)),
                     d.po, d.pm,  d.pl};
        void* args[] = {&a, const_cast<CUtensorMap*>(&d.tmk), const_cast<CUtensorMap*>(&d.tmv)};
        CK(cudaLaunchKernel(p.fn, dim3(p.splits, s.Hkv, s.B), dim3(p.threads), args, p.smem, st));
        CK_LAUNCH();
    }
    if (!(which & 2)) return;
    // On Hopper the combine is a programmatic dependent launch: its launch and start overlap the
    // split kernel's last wave instead of following its end.
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(s.Hkv * s.G, s.B);
    cfg.blockDim = dim3(kHeadDim, kCombineParts);
    cfg.stream = st;
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = p.hopper && MEMTAX_DECODE_PDL ? 1 : 0;
    CK(cudaLaunchKernelEx(&cfg, k_decode_combine, static_cast<const float*>(d.po), static_cast<const float*>(d.pm),
                          static_cast<const float*>(d.pl), d.out, s.Hkv, s.G, p.splits));
    CK_LAUNCH();
}

DecodeBuffers decode_alloc(Arena& a, const DecodeShape& s, const DecodePlan& p) {
    DecodeBuffers d{};
    d.max_blocks = (s.L + kBlock - 1) / kBlock;
    d.pages = static_cast<std::size_t>(s.B) * d.max_blocks;
    const std::size_t hq = static_cast<std::size_t>(s.Hkv) * s.G, row = static_cast<std::size_t>(s.Hkv) * kBlock * kHeadDim;
    d.q = a.get<__nv_bfloat16>("q", s.B * hq * kHeadDim);
    d.kc = a.get<__nv_bfloat16>("k_cache", d.pages * row);
    d.vc = a.get<__nv_bfloat16>("v_cache", d.pages * row);
    d.table = a.get<int>("block_table", static_cast<std::size_t>(s.B) * d.max_blocks);
    d.out = a.get<__nv_bfloat16>("out", s.B * hq * kHeadDim);
    const std::size_t parts = static_cast<std::size_t>(s.B) * s.Hkv * p.splits * s.G;
    d.po = a.get<float>("partial_out", parts * kHeadDim);
    d.pm = a.get<float>("partial_max", parts);
    d.pl = a.get<float>("partial_sum", parts);
    if (p.hopper && MEMTAX_DECODE_TMAP) {
        d.tmk = kv_map(d.kc, d.pages * s.Hkv * kBlock);
        d.tmv = kv_map(d.vc, d.pages * s.Hkv * kBlock);
    }
    return d;
}

std::uint64_t decode_need(const DecodeShape& s, const DecodePlan& p) {
    const std::uint64_t mb = (s.L + kBlock - 1) / kBlock, pages = static_cast<std::uint64_t>(s.B) * mb,
                        hq = static_cast<std::uint64_t>(s.Hkv) * s.G;
    const std::uint64_t parts = static_cast<std::uint64_t>(s.B) * s.Hkv * p.splits * s.G;
    return 2 * (2 * s.B * hq * kHeadDim) + 2 * 2 * pages * s.Hkv * kBlock * kHeadDim + 4 * s.B * mb + parts * (kHeadDim + 2) * 4;
}

void decode_init(const DecodeShape& s, DecodeBuffers& d, std::uint32_t seed, cudaStream_t st) {
    const std::size_t row = static_cast<std::size_t>(s.Hkv) * kBlock * kHeadDim;
    fill_random(d.q, static_cast<std::size_t>(s.B) * s.Hkv * s.G * kHeadDim, DT::BF16, seed, 1.0f, st);
    fill_random(d.kc, d.pages * row, DT::BF16, seed + 1, 1.0f, st);
    fill_random(d.vc, d.pages * row, DT::BF16, seed + 2, 1.0f, st);
    // Pages scattered over the pool (a permutation), as a paged allocator leaves them.
    std::vector<int> tab(d.pages);
    std::iota(tab.begin(), tab.end(), 0);
    std::mt19937 rng(seed);
    std::shuffle(tab.begin(), tab.end(), rng);
    CK(cudaMemcpyAsync(d.table, tab.data(), tab.size() * sizeof(int), cudaMemcpyHostToDevice, st));
    CK(cudaStreamSynchronize(st));
}

// Against float64 on the host, for each group size, at a context that ends inside a page and
// inside a stage, with the plan the timed cases use; and, on Hopper, with the register kernel too.
void decode_check(Device& dev, Results& r) {
    for (const DecodeShape s : {DecodeShape{2, 1100, 2, 4}, DecodeShape{1, 2900, 1, 8}, DecodeShape{3, 700, 2, 1}})
        for (const bool hopper : {true, false}) {
            DecodePlan p = decode_plan(dev, s);
            if (hopper && !p.hopper) continue;
            if (!hopper && p.hopper) {  // the fallback, as a pre-Hopper GPU would run it
                p.hopper = false;
                decode_kernel(s.G, p);
                p.tps = kMinSplitTokens;
                p.splits = (s.L + p.tps - 1) / p.tps;
            }
            Arena a;
            DecodeBuffers d = decode_alloc(a, s, p);
            decode_init(s, d, 77 + s.G, dev.stream);
            const std::size_t hq = s.Hkv * s.G;
            poison(d.out, s.B * hq * kHeadDim * 2, dev.stream);
            decode_run(s, p, d, dev.stream);
            std::uint64_t unwritten = count_poison(d.out, s.B * hq * kHeadDim, DT::BF16, dev.stream);
            auto out = to_host(d.out, s.B * hq * kHeadDim, DT::BF16);
            auto q = to_host(d.q, s.B * hq * kHeadDim, DT::BF16);
            const std::size_t row = static_cast<std::size_t>(s.Hkv) * kBlock * kHeadDim;
            auto kc = to_host(d.kc, d.pages * row, DT::BF16), vc = to_host(d.vc, d.pages * row, DT::BF16);
            auto tab = to_host(d.table, d.pages, DT::I32);
            std::vector<double> ref(out.size());
            for (int b = 0; b < s.B; ++b)
                for (std::size_t h = 0; h < hq; ++h) {
                    const int kvh = static_cast<int>(h) / s.G;
                    std::vector<double> sc(s.L);
                    double m = -INFINITY;
                    for (int t = 0; t < s.L; ++t) {
                        const std::size_t page = static_cast<std::size_t>(tab[b * d.max_blocks + t / kBlock]);
                        const std::size_t off = ((page * s.Hkv + kvh) * kBlock + t % kBlock) * kHeadDim;
                        double dot = 0;
                        for (int j = 0; j < kHeadDim; ++j) dot += q[(b * hq + h) * kHeadDim + j] * kc[off + j];
                        sc[t] = dot / std::sqrt(static_cast<double>(kHeadDim));
                        m = std::max(m, sc[t]);
                    }
                    double l = 0;
                    for (auto& x : sc) l += (x = std::exp(x - m));
                    for (int j = 0; j < kHeadDim; ++j) {
                        double acc = 0;
                        for (int t = 0; t < s.L; ++t) {
                            const std::size_t page = static_cast<std::size_t>(tab[b * d.max_blocks + t / kBlock]);
                            acc += sc[t] * vc[((page * s.Hkv + kvh) * kBlock + t % kBlock) * kHeadDim + j];
                        }
                        ref[(b * hq + h) * kHeadDim + j] = acc / l;
                    }
                }
            char what[128];
            std::snprintf(what, sizeof what, "B=%d L=%d kv_heads=%d group=%d, %s kernel, %d splits, vs float64", s.B, s.L, s.Hkv, s.G,
                          p.hopper ? "bulk-copy" : "register", p.splits);
            r.checks.push_back({"decode-paged", what, rel_error(out, ref), 1e-2, unwritten});
        }
}
}  // namespace

void suite_decode_paged(Device& dev, Results& r) {
    decode_check(dev, r);
    std::vector<DecodeShape> shapes;
    // Llama-3.1-8B (8 KV heads, 32 query heads: groups of 4) and Llama-3.1-70B (8 KV heads, 64
    // query heads: groups of 8), one layer's attention.
    for (int G : {4, 8})
        for (int B : {1, 8, 32})
            for (int L : {1024, 4096, 16384, 65536}) shapes.push_back({B, L, 8, G});
    if (dev.quick) shapes = {{8, 4096, 8, 4}};
    for (const auto& s : shapes) {
        Case c;
        c.kind = "decode-paged";
        char id[96];
        std::snprintf(id, sizeof id, "decode-paged/b%d/l%d/kv%d/g%d", s.B, s.L, s.Hkv, s.G);
        c.id = id;
        const DecodePlan p = decode_plan(dev, s);
        c.params.set("batch", Json::integer(s.B))
            .set("context", Json::integer(s.L))
            .set("kv_heads", Json::integer(s.Hkv))
            .set("q_heads", Json::integer(s.Hkv * s.G))
            .set("head_dim", Json::integer(kHeadDim))
            .set("block_size", Json::integer(kBlock))
            .set("tokens_per_split", Json::integer(p.tps))
            .set("dtype", Json::str("bf16"));
        if (skip_if_too_big(c, decode_need(s, p))) {
            r.cases.push_back(c);
            continue;
        }
        Arena a;
        DecodeBuffers d = decode_alloc(a, s, p);
        decode_init(s, d, 3, dev.stream);
        const std::size_t out_n = static_cast<std::size_t>(s.B) * s.Hkv * s.G * kHeadDim;
        StageTimes t = time_stages(
            {{"split", [&](cudaStream_t st) { decode_run(s, p, d, st, 1); }},
             {"combine", [&](cudaStream_t st) { decode_run(s, p, d, st, 2); }}},
            [&](cudaStream_t st) { poison(d.out, out_n * 2, st); }, dev.stream);
        record(c, a, t, count_poison(d.out, out_n, DT::BF16, dev.stream));
        r.cases.push_back(c);
    }
}

}  // namespace probe
