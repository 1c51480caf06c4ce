// Bandwidth-bound suite `stream`: copy / read / write / cudaMemcpy over sizes well past L2, and
// the launch cost of an empty kernel. The decode-paged suite is in suite_decode.cu.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "common.cuh"

namespace probe {
namespace {

constexpr int kStreamThreads = 256;
constexpr int kStreamUnroll = 4;  // independent 16-byte loads in flight per thread

__global__ void k_copy(const uint4* __restrict__ a, uint4* __restrict__ b, std::size_t n) {
    const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x * kStreamUnroll;
    std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x * kStreamUnroll + threadIdx.x;
    for (; i + (kStreamUnroll - 1) * blockDim.x < n; i += stride) {
        uint4 v[kStreamUnroll];
#pragma unroll
        for (int u = 0; u < kStreamUnroll; ++u) v[u] = a[i + u * blockDim.x];
#pragma unroll
        for (int u = 0; u < kStreamUnroll; ++u) b[i + u * blockDim.x] = v[u];
    }
    for (; i < n; i += blockDim.x) b[i] = a[i];
}

__global__ void k_read(const uint4* __restrict__ a, std::size_t n, unsigned* __restrict__ partial) {
    const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x * kStreamUnroll;
    std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x * kStreamUnroll + threadIdx.x;
    unsigned acc = 0;
    for (; i + (kStreamUnroll - 1) * blockDim.x < n; i += stride) {
        uint4 v[kStreamUnroll];
#pragma unroll
        for (int u = 0; u < kStreamUnroll; ++u) v[u] = a[i + u * blockDim.x];
#pragma unroll
        for (int u = 0; u < kStreamUnroll; ++u) acc += v[u].x + v[u].y + v[u].z + v[u].w;
    }
    for (; i < n; i += blockDim.x) acc += a[i].x + a[i].y + a[i].z + a[i].w;
    __shared__ unsigned s[kStreamThreads / 32];
    for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) s[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned t = 0;
        for (int w = 0; w < kStreamThreads / 32; ++w) t += s[w];
        partial[blockIdx.x] = t;
    }
}

__device__ __forceinline__ uint4 pattern(std::size_t i) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u;
    return make_uint4(x, x ^ 0x5bd1e995u, x + 1u, x & 0x7fffffffu);  // never all 0xFF bytes
}

__global__ void k_write(uint4* __restrict__ b, std::size_t n) {
    const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
    for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) b[i] = pattern(i);
}

__global__ void k_empty() {}

int stream_grid(const Device& d, std::size_t n16) {
    std::size_t want = (n16 + kStreamThreads * kStreamUnroll - 1) / (kStreamThreads * kStreamUnroll);
    return static_cast<int>(
        std::max<std::size_t>(1, std::min<std::size_t>(want, static_cast<std::size_t>(d.prop.multiProcessorCount) * 8)));
}

void stream_check(Device& d, Results& r) {
    const std::size_t bytes = 1u << 20, n16 = bytes / 16;
    Arena a;
    auto* src = a.get<uint4>("src", n16);
    auto* dst = a.get<uint4>("dst", n16);
    const int grid = stream_grid(d, n16);
    auto* part = a.get<unsigned>("partials", grid);
    fill_random(src, bytes / 4, DT::F32, 11, 1.0f, d.stream);
    std::vector<unsigned> hs(bytes / 4), hd(bytes / 4);
    CK(cudaMemcpy(hs.data(), src, bytes, cudaMemcpyDeviceToHost));
    auto mismatch = [&](const std::vector<unsigned>& x, const std::vector<unsigned>& y) {
        std::size_t m = 0;
        for (std::size_t i = 0; i < x.size(); ++i) m += x[i] != y[i];
        return static_cast<double>(m) / static_cast<double>(x.size());
    };
    poison(dst, bytes, d.stream);
    k_copy<<<grid, kStreamThreads, 0, d.stream>>>(src, dst, n16);
    CK_LAUNCH();
    CK(cudaMemcpy(hd.data(), dst, bytes, cudaMemcpyDeviceToHost));
    r.checks.push_back({"stream", "copy 1 MiB equals its source", mismatch(hs, hd), 0.0, count_poison(dst, bytes / 4, DT::F32, d.stream)});
    poison(part, grid * 4, d.stream);
    k_read<<<grid, kStreamThreads, 0, d.stream>>>(src, n16, part);
    CK_LAUNCH();
    std::vector<unsigned> hp(grid);
    CK(cudaMemcpy(hp.data(), part, grid * 4, cudaMemcpyDeviceToHost));
    unsigned got = std::accumulate(hp.begin(), hp.end(), 0u), want = std::accumulate(hs.begin(), hs.end(), 0u);
    r.checks.push_back({"stream", "read 1 MiB: sum of its 32-bit words", got == want ? 0.0 : 1.0, 0.0, 0});
    poison(dst, bytes, d.stream);
    k_write<<<grid, kStreamThreads, 0, d.stream>>>(dst, n16);
    CK_LAUNCH();
    CK(cudaMemcpy(hd.data(), dst, bytes, cudaMemcpyDeviceToHost));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n16; ++i) {
        unsigned x = static_cast<unsigned>(i) * 2654435761u;
        bad += hd[4 * i] != x || hd[4 * i + 1] != (x ^ 0x5bd1e995u) || hd[4 * i + 2] != x + 1u || hd[4 * i + 3] != (x & 0x7fffffffu);
    }
    r.checks.push_back({"stream", "write 1 MiB: the pattern", static_cast<double>(bad) / n16, 0.0, 0});
}

}  // namespace

void stream_launch(Device& d, Results& r);

void suite_stream(Device& d, Results& r) {
    stream_check(d, r);
    stream_launch(d, r);
    std::vector<std::size_t> sizes = {64u << 10, 256u << 10, 1u << 20, 256u << 20, 1u << 30, 4ull << 30};
    if (d.quick) sizes = {1u << 20, 256u << 20};
    for (const char* op : {"copy", "read", "write", "memcpy"}) {
        for (std::size_t bytes : sizes) {
            Case c;
            c.kind = "stream";
            char id[96];
            std::snprintf(id, sizeof id, "stream/%s/%zu", op, bytes);
            c.id = id;
            const std::size_t n16 = bytes / 16;
            const int grid = stream_grid(d, n16);
            const std::string o = op;
            c.params.set("op", Json::str(o)).set("bytes", Json::integer(bytes));
            if (o == "read") c.params.set("partials", Json::integer(static_cast<std::uint64_t>(grid)));
            const std::uint64_t need = (o == "write" ? 1 : 2) * static_cast<std::uint64_t>(bytes);
            if (skip_if_too_big(c, need)) {
                r.cases.push_back(c);
                continue;
            }
            Arena a;
            uint4* src = nullptr;
            uint4* dst = nullptr;
            unsigned* part = nullptr;
            if (o != "write") src = a.get<uint4>("src", n16);
            if (o != "read") dst = a.get<uint4>("dst", n16);
            if (o == "read") part = a.get<unsigned>("partials", grid);
            if (src) fill_random(src, bytes / 4, DT::F32, 5, 1.0f, d.stream);
            void* out = dst ? static_cast<void*>(dst) : static_cast<void*>(part);
            const std::size_t out_bytes = dst ? bytes : grid * 4u;
            auto run = [&](cudaStream_t s) {
                if (o == "copy")
                    k_copy<<<grid, kStreamThreads, 0, s>>>(src, dst, n16);
                else if (o == "read")
                    k_read<<<grid, kStreamThreads, 0, s>>>(src, n16, part);
                else if (o == "write")
                    k_write<<<grid, kStreamThreads, 0, s>>>(dst, n16);
                else
                    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
                CK_LAUNCH();
            };
            StageTimes t = time_stages(
                {{o, run}}, [&](cudaStream_t s) { poison(out, out_bytes, s); }, d.stream);
            record(c, a, t, count_poison(out, out_bytes / 4, DT::F32, d.stream));
            r.cases.push_back(c);
        }
    }
}

// Launch cost: one empty kernel alone, and 64 back to back (the per-kernel cost once the launch
// latency hides behind the kernel before).
void stream_launch(Device& d, Results& r) {
    for (int n : {1, 64}) {
        Case c;
        c.kind = "stream";
        c.id = "stream/launch/" + std::to_string(n);
        c.params.set("op", Json::str("launch")).set("kernels", Json::integer(static_cast<std::uint64_t>(n)));
        Arena a;
        StageTimes t = time_stages({{"launch",
                                     [n](cudaStream_t s) {
                                         for (int i = 0; i < n; ++i) k_empty<<<1, 32, 0, s>>>();
                                         CK_LAUNCH();
                                     }}},
                                   nullptr, d.stream);
        record(c, a, t, 0);
        r.cases.push_back(c);
    }
}

}  // namespace probe
