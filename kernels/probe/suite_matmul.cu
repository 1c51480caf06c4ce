// Matrix suites: `gemm` (cuBLASLt bf16 / fp16 / fp8 e4m3 over the projection shapes of
// Llama-3.1-8B and -70B, from one decode token to long prefills) and `mlp` (the gated MLP block:
// merged gate/up projection, SiLU(gate)·up, down projection).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdio>

#include "common.cuh"

namespace probe {

static cudaDataType_t cuda_type(DT d) {
    switch (d) {
        case DT::BF16:
            return CUDA_R_16BF;
        case DT::F16:
            return CUDA_R_16F;
        case DT::E4M3:
            return CUDA_R_8F_E4M3;
        default:
            return CUDA_R_32F;
    }
}

LtGemm::LtGemm(Device& d, DT in_, std::uint64_t M, std::uint64_t N, std::uint64_t K, std::size_t workspace_bytes)
    : in(in_), out(in_ == DT::F16 ? DT::F16 : DT::BF16), workspace(workspace_bytes) {
    CKB(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CKB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CKB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    // Row-major C[M×N] = A[M×K]·W[N×K]ᵀ is column-major Cᵀ[N×M] = W(K×N)ᵀ · A(K×M).
    CKB(cublasLtMatrixLayoutCreate(&la, cuda_type(in), K, N, K));
    CKB(cublasLtMatrixLayoutCreate(&lb, cuda_type(in), K, M, K));
    CKB(cublasLtMatrixLayoutCreate(&lc, cuda_type(out), N, M, N));
    cublasLtMatmulPreference_t pref;
    CKB(cublasLtMatmulPreferenceCreate(&pref));
    CKB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
    cublasLtMatmulHeuristicResult_t res{};
    int n = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(d.lt, desc, la, lb, lc, lc, pref, 1, &res, &n);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || n == 0) {
        why = std::string("cuBLASLt has no algorithm for ") + dt_name(in) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
              std::to_string(K) + " on this device (" + cublasGetStatusString(st) + ")";
        return;
    }
    algo = res.algo;
    ok = true;
}

LtGemm::~LtGemm() {
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (desc) cublasLtMatmulDescDestroy(desc);
}

void LtGemm::run(Device& d, const void* A, const void* W, void* C, void* ws, cudaStream_t s) const {
    const float alpha = 1.0f, beta = 0.0f;
    CKB(cublasLtMatmul(d.lt, desc, &alpha, W, la, A, lb, &beta, C, lc, C, lc, &algo, ws, workspace, s));
}

namespace {

void gemm_check(Device& d, Results& r, DT dt) {
    const std::uint64_t M = 64, N = 96, K = 128;
    LtGemm g(d, dt, M, N, K, kLtWorkspace);
    if (!g.ok) return;
    Arena a;
    void* A = a.alloc("a", M * K * dt_size(dt));
    void* W = a.alloc("w", N * K * dt_size(dt));
    void* C = a.alloc("c", M * N * dt_size(g.out));
    void* ws = a.alloc("workspace", kLtWorkspace);
    fill_random(A, M * K, dt, 21, 1.0f, d.stream);
    fill_random(W, N * K, dt, 22, 1.0f, d.stream);
    poison(C, M * N * dt_size(g.out), d.stream);
    g.run(d, A, W, C, ws, d.stream);
    std::uint64_t unwritten = count_poison(C, M * N, g.out, d.stream);
    auto ha = to_host(A, M * K, dt), hw = to_host(W, N * K, dt), hc = to_host(C, M * N, g.out);
    std::vector<double> ref(M * N);
    for (std::uint64_t m = 0; m < M; ++m)
        for (std::uint64_t n = 0; n < N; ++n) {
            double s = 0;
            for (std::uint64_t k = 0; k < K; ++k) s += ha[m * K + k] * hw[n * K + k];
            ref[m * N + n] = s;
        }
    r.checks.push_back({"gemm", std::string(dt_name(dt)) + " 64x96x128 vs float64", rel_error(hc, ref), 1e-2, unwritten});
}

__global__ void k_silu_mul(const __nv_bfloat16* __restrict__ gu, __nv_bfloat16* __restrict__ act, std::uint64_t T, std::uint64_t I) {
    // 8 elements (16 bytes) per thread; I is a multiple of 8.
    const std::uint64_t per_row = I / 8, n = T * per_row;
    for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
        const std::uint64_t t = i / per_row, c = (i % per_row) * 8;
        uint4 gv = *reinterpret_cast<const uint4*>(gu + t * 2 * I + c);
        uint4 uv = *reinterpret_cast<const uint4*>(gu + t * 2 * I + I + c);
        const __nv_bfloat162* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
        const __nv_bfloat162* u2 = reinterpret_cast<const __nv_bfloat162*>(&uv);
        uint4 ov;
        __nv_bfloat162* o2 = reinterpret_cast<__nv_bfloat162*>(&ov);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            float2 gf = __bfloat1622float2(g2[k]), uf = __bfloat1622float2(u2[k]);
            o2[k] = __floats2bfloat162_rn(gf.x / (1.0f + __expf(-gf.x)) * uf.x, gf.y / (1.0f + __expf(-gf.y)) * uf.y);
        }
        *reinterpret_cast<uint4*>(act + t * I + c) = ov;
    }
}

struct Mlp {
    std::uint64_t T, H, I;
    LtGemm up, down;
    void *x, *wgu, *wd, *gu, *act, *out, *ws;
    Mlp(Device& d, Arena& a, std::uint64_t T_, std::uint64_t H_, std::uint64_t I_)
        : T(T_), H(H_), I(I_), up(d, DT::BF16, T, 2 * I, H, kLtWorkspace), down(d, DT::BF16, T, H, I, kLtWorkspace) {
        if (!up.ok || !down.ok) return;
        x = a.alloc("x", T * H * 2);
        wgu = a.alloc("w_gate_up", 2 * I * H * 2);
        wd = a.alloc("w_down", H * I * 2);
        gu = a.alloc("gate_up", T * 2 * I * 2);
        act = a.alloc("act", T * I * 2);
        out = a.alloc("out", T * H * 2);
        ws = a.alloc("workspace", kLtWorkspace);
    }
    void gate_up(Device& d, cudaStream_t s) { up.run(d, x, wgu, gu, ws, s); }
    void silu_mul(cudaStream_t s) {
        const std::uint64_t n = T * I / 8;
        const int grid = static_cast<int>(std::min<std::uint64_t>((n + 255) / 256, 65535));
        k_silu_mul<<<grid, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(gu), static_cast<__nv_bfloat16*>(act), T, I);
        CK_LAUNCH();
    }
    void down_proj(Device& d, cudaStream_t s) { down.run(d, act, wd, out, ws, s); }
    void run(Device& d, cudaStream_t s) {
        gate_up(d, s);
        silu_mul(s);
        down_proj(d, s);
    }
};

void mlp_check(Device& d, Results& r) {
    const std::uint64_t T = 16, H = 256, I = 512;
    Arena a;
    Mlp m(d, a, T, H, I);
    if (!m.up.ok) return;
    fill_random(m.x, T * H, DT::BF16, 31, 1.0f, d.stream);
    fill_random(m.wgu, 2 * I * H, DT::BF16, 32, 0.1f, d.stream);
    fill_random(m.wd, H * I, DT::BF16, 33, 0.1f, d.stream);
    poison(m.out, T * H * 2, d.stream);
    m.run(d, d.stream);
    std::uint64_t unwritten = count_poison(m.out, T * H, DT::BF16, d.stream);
    auto x = to_host(m.x, T * H, DT::BF16), wgu = to_host(m.wgu, 2 * I * H, DT::BF16), wd = to_host(m.wd, H * I, DT::BF16),
         out = to_host(m.out, T * H, DT::BF16);
    std::vector<double> ref(T * H), act(I);
    for (std::uint64_t t = 0; t < T; ++t) {
        for (std::uint64_t i = 0; i < I; ++i) {
            double g = 0, u = 0;
            for (std::uint64_t h = 0; h < H; ++h) {
                g += x[t * H + h] * wgu[i * H + h];
                u += x[t * H + h] * wgu[(I + i) * H + h];
            }
            act[i] = g / (1 + std::exp(-g)) * u;
        }
        for (std::uint64_t h = 0; h < H; ++h) {
            double s = 0;
            for (std::uint64_t i = 0; i < I; ++i) s += act[i] * wd[h * I + i];
            ref[t * H + h] = s;
        }
    }
    r.checks.push_back({"mlp", "T=16 H=256 I=512 vs float64", rel_error(out, ref), 2e-2, unwritten});
}

}  // namespace

void suite_gemm(Device& d, Results& r) {
    std::vector<DT> dts = {DT::BF16, DT::F16};
    if (d.sm >= 89) dts.push_back(DT::E4M3);  // fp8 tensor cores: Ada and Hopper on
    for (DT dt : dts) gemm_check(d, r, dt);
    struct NK {
        std::uint64_t N, K;
    };
    std::vector<NK> nks = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {8192, 8192}};
    std::vector<std::uint64_t> ms = {1, 16, 128, 512, 2048, 8192};
    if (d.quick) {
        nks = {{4096, 4096}};
        ms = {16, 2048};
    }
    for (DT dt : {DT::BF16, DT::F16, DT::E4M3})
        for (auto nk : nks)
            for (auto M : ms) {
                Case c;
                c.kind = "gemm";
                char id[96];
                std::snprintf(id, sizeof id, "gemm/%s/m%llu/n%llu/k%llu", dt_name(dt), static_cast<unsigned long long>(M),
                              static_cast<unsigned long long>(nk.N), static_cast<unsigned long long>(nk.K));
                c.id = id;
                c.params.set("dtype", Json::str(dt_name(dt)))
                    .set("m", Json::integer(M))
                    .set("n", Json::integer(nk.N))
                    .set("k", Json::integer(nk.K))
                    .set("out_dtype", Json::str(dt == DT::F16 ? "fp16" : "bf16"))
                    .set("workspace_bytes", Json::integer(kLtWorkspace));
                if (dt == DT::E4M3 && d.sm < 89) {
                    c.status = "skipped";
                    c.reason = "fp8 matrix products need compute capability 8.9 or newer";
                    r.cases.push_back(c);
                    continue;
                }
                LtGemm g(d, dt, M, nk.N, nk.K, kLtWorkspace);
                if (!g.ok) {
                    c.status = "skipped";
                    c.reason = g.why;
                    r.cases.push_back(c);
                    continue;
                }
                const std::uint64_t need = (M * nk.K + nk.N * nk.K) * dt_size(dt) + M * nk.N * dt_size(g.out) + kLtWorkspace;
                if (skip_if_too_big(c, need)) {
                    r.cases.push_back(c);
                    continue;
                }
                Arena a;
                void* A = a.alloc("a", M * nk.K * dt_size(dt));
                void* W = a.alloc("w", nk.N * nk.K * dt_size(dt));
                void* C = a.alloc("c", M * nk.N * dt_size(g.out));
                void* ws = a.alloc("workspace", kLtWorkspace);
                fill_random(A, M * nk.K, dt, 1, 1.0f, d.stream);
                fill_random(W, nk.N * nk.K, dt, 2, 1.0f, d.stream);
                StageTimes t = time_stages(
                    {{"gemm", [&](cudaStream_t s) { g.run(d, A, W, C, ws, s); }}},
                    [&](cudaStream_t s) { poison(C, M * nk.N * dt_size(g.out), s); }, d.stream);
                record(c, a, t, count_poison(C, M * nk.N, g.out, d.stream));
                r.cases.push_back(c);
            }
}

void suite_mlp(Device& d, Results& r) {
    mlp_check(d, r);
    const std::uint64_t H = 4096, I = 14336;  // Llama-3.1-8B
    std::vector<std::uint64_t> ts = {1, 16, 256, 2048, 8192};
    if (d.quick) ts = {16, 2048};
    for (auto T : ts) {
        Case c;
        c.kind = "mlp";
        c.id = "mlp/bf16/t" + std::to_string(T) + "/h4096/i14336";
        c.params.set("tokens", Json::integer(T))
            .set("hidden", Json::integer(H))
            .set("intermediate", Json::integer(I))
            .set("dtype", Json::str("bf16"))
            .set("workspace_bytes", Json::integer(kLtWorkspace));
        const std::uint64_t need = 2 * (T * H + 3 * I * H + 3 * T * I + T * H) + kLtWorkspace;
        if (skip_if_too_big(c, need)) {
            r.cases.push_back(c);
            continue;
        }
        Arena a;
        Mlp m(d, a, T, H, I);
        if (!m.up.ok || !m.down.ok) {
            c.status = "skipped";
            c.reason = m.up.ok ? m.down.why : m.up.why;
            r.cases.push_back(c);
            continue;
        }
        fill_random(m.x, T * H, DT::BF16, 41, 1.0f, d.stream);
        fill_random(m.wgu, 2 * I * H, DT::BF16, 42, 0.05f, d.stream);
        fill_random(m.wd, H * I, DT::BF16, 43, 0.05f, d.stream);
        StageTimes t = time_stages(
            {{"gate_up", [&](cudaStream_t s) { m.gate_up(d, s); }},
             {"silu_mul", [&](cudaStream_t s) { m.silu_mul(s); }},
             {"down", [&](cudaStream_t s) { m.down_proj(d, s); }}},
            [&](cudaStream_t s) { poison(m.out, T * H * 2, s); }, d.stream);
        record(c, a, t, count_poison(m.out, T * H, DT::BF16, d.stream));
        r.cases.push_back(c);
    }
}

}  // namespace probe
