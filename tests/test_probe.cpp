// The CUDA probe's cases: the kernel model's buffers and traffic derived by hand, the committed
// device measurements predicted (memory exact; time within 10% / 15% with the calibrated
// profile), the calibration fit and the profile it writes, and malformed probe files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "model/kernel_model.hpp"
#include "spec/loaders.hpp"
#include "validate/calibrate.hpp"
#include "validate/validate.hpp"

using namespace memtax;

namespace {

std::string measured(const std::string& f) { return std::string(MEMTAX_TEST_DATA) + "/measured/" + f; }
std::string calibrated_h100() { return std::string(MEMTAX_SOURCE_DIR) + "/hardware/calibrated/h100-sxm.yaml"; }

u64 buffer(const ProbeModel& m, const std::string& name) {
    for (const auto& [n, b] : m.buffers)
        if (n == name) return b;
    ADD_FAILURE() << "no buffer " << name;
    return 0;
}
const ProbeKernel& kernel(const ProbeModel& m, const std::string& name) {
    for (const auto& k : m.kernels)
        if (k.name == name) return k;
    throw std::runtime_error("no kernel " + name);
}

}  // namespace

// decode-paged, batch 8, 4096 tokens, 8 KV heads × 4 query heads, head_dim 128, 16-token pages,
// 256 tokens per split: 2048 pages; 16 splits; 8·8·16·4 = 4096 partial rows.
TEST(ProbeModel, DecodePagedBuffersByHand) {
    ProbeShape s;
    s.batch = 8, s.context = 4096, s.kv_heads = 8, s.q_heads = 32, s.head_dim = 128, s.block_size = 16, s.tokens_per_split = 256;
    ProbeModel m = model_probe_case("decode-paged", s, resolve_gpu("h100-sxm"));
    EXPECT_EQ(buffer(m, "q"), 8u * 32 * 128 * 2);               // 65,536
    EXPECT_EQ(buffer(m, "k_cache"), 2048u * 8 * 16 * 128 * 2);  // 67,108,864
    EXPECT_EQ(buffer(m, "block_table"), 8u * 256 * 4);          // 8,192
    EXPECT_EQ(buffer(m, "partial_out"), 4096u * 128 * 4);       // 2,097,152
    EXPECT_EQ(buffer(m, "partial_max"), 4096u * 4);
    EXPECT_EQ(m.allocated, 65536u + 2 * 67108864u + 8192u + 65536u + 2097152u + 2 * 16384u);  // 136,486,912
    // The split kernel reads q, the K and V rows of 4096 tokens, the page table, writes the partials.
    EXPECT_EQ(kernel(m, "split").bytes, 65536u + 2ull * 8 * 4096 * 8 * 128 * 2 + 8192u + 2097152u + 2 * 16384u);
    EXPECT_EQ(kernel(m, "split").cls, KernelClass::MemtaxPagedDecode);
    EXPECT_EQ(kernel(m, "combine").bytes, 2097152u + 2 * 16384u + 65536u);
}

// Causal flash, S = 4096 in 64×64 tiles: 64·65/2 = 2080 tiles per head, 4·64·64·128 FLOPs each.
TEST(ProbeModel, FlashFlopsCountTheTilesOnAndBelowTheDiagonal) {
    ProbeShape s;
    s.batch = 1, s.heads = 32, s.context = 4096, s.head_dim = 128, s.block_m = 64, s.block_n = 64, s.causal = true;
    ProbeModel m = model_probe_case("attention-flash", s, resolve_gpu("h100-sxm"));
    EXPECT_EQ(m.allocated, 4u * 32 * 4096 * 128 * 2);                       // q, k, v, out: nothing grows with S²
    EXPECT_EQ(kernel(m, "flash").flops, 2080ull * 32 * 4 * 64 * 64 * 128);  // 139,586,437,120
}

// Eager softmax: row i reads keys 0..i in float4s, Σ_{j=1..S} ceil(j/4) = 2·(S/4)(S/4+1) per
// head for S a multiple of 4. On an H100 (132 SMs × 64 resident warps, one row each, 50 MiB L2)
// a 1024-key row set in flight is 132·64·4 KiB = 33 MiB: the second pass re-reads from L2. At
// 2048 keys it is 66 MiB: both passes read device memory.
TEST(ProbeModel, EagerSoftmaxRereadsFromL2OnlyWhileTheRowsInFlightFit) {
    const GpuSpec h100 = resolve_gpu("h100-sxm");
    ProbeShape s;
    s.batch = 1, s.heads = 32, s.head_dim = 128, s.workspace_bytes = 33554432;
    s.context = 1024;
    ProbeModel m = model_probe_case("attention-eager", s, h100);
    EXPECT_EQ(buffer(m, "scores"), 32ull * 1024 * 1024 * 4);
    EXPECT_EQ(buffer(m, "probs"), 32ull * 1024 * 1024 * 2);
    EXPECT_EQ(kernel(m, "softmax").bytes, 16ull * 32 * (2 * 256 * 257) + 32ull * 1024 * 1024 * 2);
    s.context = 2048;
    m = model_probe_case("attention-eager", s, h100);
    EXPECT_EQ(kernel(m, "softmax").bytes, 2 * 16ull * 32 * (2 * 512 * 513) + 32ull * 2048 * 2048 * 2);
    EXPECT_EQ(kernel(m, "scores").flops, 2ull * 32 * 2048 * 2048 * 128);
}

// The H100's calibrated profile is fitted on the first lease of 2026-12-07 (probe_h100_1207a.json,
// with the SDPA timings of the same lease; driver 580.159.04, CUDA 13.0, cuBLAS 13.1;
// `bash scripts/lease-evidence.sh $OUT`). probe_h100_1207a_run2.json is the same command again on
// that machine (the same lease: a repeat, not out of sample); probe_h100_1207b.json ran on another
// machine the same day (another lease: out of sample). Each case's bytes are counted by the device
// (its own memory pool). The bars are docs/accuracy.md's, fixed before these runs.
TEST(ProbeValidate, H100FitLeaseRepeatAndAnotherLease) {
    const Validation fit = validate_measurements(measured("probe_h100_1207a.json"), "", 0.05, 4ull << 20);
    const Validation repeat = validate_measurements(measured("probe_h100_1207a_run2.json"), "", 0.05, 4ull << 20);
    const Validation other = validate_measurements(measured("probe_h100_1207b.json"), "", 0.05, 4ull << 20);
    EXPECT_EQ(repeat.provenance.at("lease"), fit.provenance.at("lease"));
    EXPECT_NE(other.provenance.at("lease"), fit.provenance.at("lease"));
    for (const Validation* v : {&fit, &repeat, &other}) {
        SCOPED_TRACE(v->file);
        EXPECT_EQ(v->gpu, "h100-sxm-calibrated");  // the calibrated profile wins for timed files
        ASSERT_EQ(v->probe.size(), 160u);          // 161 cases, the eager 32k one skipped (193 GiB)
        ASSERT_EQ(v->checks.size(), 15u);
        for (const auto& c : v->checks) EXPECT_TRUE(c.passed) << c.what;
        std::set<std::string> bounds;
        for (const auto& r : v->probe) {
            SCOPED_TRACE(r.c.id);
            // Memory: the device's count equals the kernel model's buffers in every case.
            EXPECT_TRUE(r.device_measured);
            EXPECT_TRUE(r.device_exact) << r.device_used << " vs " << r.predicted_allocated;
            EXPECT_TRUE(r.allocated_exact) << r.buffer_diff;
            EXPECT_TRUE(r.driver_ok);
            EXPECT_EQ(r.c.probe->unwritten_outputs, 0u);
            if (r.bound == "compute") EXPECT_LE(std::fabs(r.time_error), 0.15);
            bounds.insert(r.bound);
        }
        EXPECT_EQ(bounds, (std::set<std::string>{"compute", "memory", "overhead"}));
    }
    // Time on the other lease, to the bar: at least 90% of the cases within their tolerance and
    // the median |error| at most 5%.
    size_t within = 0;
    std::vector<double> errors;
    for (const auto& r : other.probe) {
        within += r.time_ok;
        errors.push_back(std::fabs(r.time_error));
    }
    std::sort(errors.begin(), errors.end());
    EXPECT_GE(10 * within, 9 * other.probe.size());
    EXPECT_LE((errors[79] + errors[80]) / 2, 0.05);
}

// The runs of 2026-11-26 (probe_h100.json and its repeat a minute later, one lease) predate the
// device count and today's decode kernel: their bytes are the probe's bookkeeping only, which the
// report says, and they are not judged against a fit of another build of the kernels.
TEST(ProbeValidate, EarlierH100RunsAreBookkeepingOnly) {
    for (const char* f : {"probe_h100.json", "probe_h100_run2.json"}) {
        SCOPED_TRACE(f);
        Validation v = validate_measurements(measured(f), "", 0.05, 4ull << 20);
        ASSERT_EQ(v.probe.size(), 148u);
        for (const auto& c : v.checks) EXPECT_TRUE(c.passed) << c.what;
        for (const auto& r : v.probe) {
            EXPECT_FALSE(r.device_measured) << r.c.id;
            EXPECT_TRUE(r.allocated_exact) << r.buffer_diff;
            EXPECT_EQ(r.c.probe->unwritten_outputs, 0u);
        }
    }
}

// The probe's own performance against the card's ceilings measured in the same run.
// Recorded on an NVIDIA H200 (driver 580.159.04, CUDA 13.0; 2026-12-03; provenance in
// tests/data/measured/README.md). hardware/calibrated/h200.yaml was fitted on probe_h200.json;
// probe_h200_run2.json is the same command again on that machine a few seconds later: the same
// lease, so a repeat, not out of sample (no other H200 lease has run today's probe yet). Its
// bytes predate the device count: the probe's bookkeeping.
TEST(ProbeValidate, RecordedH200RepeatOnTheFitLease) {
    Validation v = validate_measurements(measured("probe_h200_run2.json"), "", 0.05, 4ull << 20);
    EXPECT_EQ(v.gpu, "h200-calibrated");
    ASSERT_EQ(v.probe.size(), 160u);  // 161 cases, the eager 32k one skipped
    for (const auto& c : v.checks) EXPECT_TRUE(c.passed) << c.what;
    size_t ok = 0;
    for (const auto& r : v.probe) {
        EXPECT_TRUE(r.allocated_exact) << r.c.id;
        EXPECT_FALSE(r.device_measured) << r.c.id;
        if (r.bound == "compute") EXPECT_LE(std::fabs(r.time_error), 0.15) << r.c.id;
        ok += r.time_ok;
    }
    // The bar of a run on another lease (docs/accuracy.md), which a repeat must meet too.
    EXPECT_GE(10 * ok, 9 * v.probe.size());
}

TEST(ProbeValidate, RecordedH100Ceilings) {
    Validation v = validate_measurements(measured("probe_h100.json"), "", 0.05, 4ull << 20);
    std::map<std::string, double> c;
    for (const auto& x : v.probe_claims) c[x.name] = x.value;
    EXPECT_GE(c.at("stream_copy_vs_memcpy"), 0.90);  // 2.843 vs 3.027 TB/s
    EXPECT_GE(c.at("decode_vs_stream:decode-paged/b8/l65536/kv8/g4"), 0.80);
    EXPECT_GE(c.at("decode_vs_stream:decode-paged/b32/l65536/kv8/g4"), 0.80);
    for (int s : {4096, 8192, 16384}) {
        const std::string id = "attention-flash/b1/h32/s" + std::to_string(s);
        EXPECT_GT(c.at("flash_speedup:" + id), 1.0) << id;
        EXPECT_EQ(c.at("flash_extra_bytes:" + id), 0.0) << id;  // flat in S: nothing beyond q, k, v, out
    }
}

// The decode kernel against the stream copy of the same run, on both recorded H200 runs: K+V
// read at 80% of the copy's bandwidth or more at 64k tokens, batch 1, 8 and 32, with 4 and 8
// query heads per KV head (the measured values are in docs/probe.md).
TEST(ProbeValidate, RecordedH200DecodeReadsAtEightyPercentOfTheCopy) {
    for (const char* file : {"probe_h200.json", "probe_h200_run2.json"}) {
        Validation v = validate_measurements(measured(file), "", 0.05, 4ull << 20);
        std::map<std::string, double> c;
        for (const auto& x : v.probe_claims) c[x.name] = x.value;
        for (int g : {4, 8})
            for (int b : {1, 8, 32}) {
                const std::string id = "decode_vs_stream:decode-paged/b" + std::to_string(b) + "/l65536/kv8/g" + std::to_string(g);
                ASSERT_TRUE(c.count(id)) << file << " " << id;
                EXPECT_GE(c.at(id), 0.80) << file << " " << id;
            }
    }
}

TEST(Calibrate, FitsTheRecordedRunAndWritesALoadableProfile) {
    CalibrationResult c = calibrate({measured("probe_h100_1207a.json"), measured("probe_h100x2_allreduce.json"),
                                     measured("probe_h100x4_allreduce.json"), measured("h100_sdpa_time_1207a.json")},
                                    "", "memtax test");
    EXPECT_EQ(c.base.name, "h100-sxm");
    std::map<std::string, KernelRates> r;
    for (const auto& f : c.fits) r[f.key] = f.rates;
    for (const char* k : {"stream", "gemm_bf16", "gemm_fp16", "gemm_fp8_e4m3", "attention_prefill", "attention_decode", "memtax_flash",
                          "memtax_paged_decode", "launch", "allreduce"})
        EXPECT_TRUE(r.count(k)) << k;
    // The stream fit lies between the slowest and fastest large streams measured: copy 2.887,
    // write 3.195 TB/s (read + written bytes; 4 GiB buffers; probe_h100_1207a.json).
    EXPECT_GT(r["stream"].bandwidth, 2.887e12);
    EXPECT_LT(r["stream"].bandwidth, 3.195e12);
    // The bf16 rate lies within the range the large products reached (m ≥ 2048: 695.6..779.1 TFLOP/s).
    EXPECT_GT(r["gemm_bf16"].flops, 695.6e12);
    EXPECT_LT(r["gemm_bf16"].flops, 779.1e12);
    EXPECT_GT(r["gemm_fp8_e4m3"].flops, 1.5 * r["gemm_bf16"].flops);  // fp8 tensor cores: about twice
    // Every class's residual within 10%, but PyTorch's SDPA decode: its twelve calls include
    // batch-1 steps of 7–40 µs, overhead-dominated, whose time moved by up to half between the two
    // leases of 2026-12-07 (h100_sdpa_time_1207a/b.json); its residual on the fit lease is 12.3%,
    // and it is held to 15% (the compute-bound tolerance) until a per-split model explains them.
    for (const auto& f : c.fits)
        if (f.key != "launch") EXPECT_LT(f.rates.rms_error, f.key == "attention_decode" ? 0.15 : 0.10) << f.key;
    // The written profile loads back with the fitted classes and says where they came from.
    EXPECT_TRUE(c.calibrated.calibrated);
    EXPECT_EQ(c.calibrated.name, "h100-sxm-calibrated");
    EXPECT_NEAR(c.calibrated.kernel_rates.at("gemm_bf16").flops / r["gemm_bf16"].flops, 1.0, 1e-5);
    EXPECT_EQ(c.calibrated.calibration.at("gpu"), "NVIDIA H100 80GB HBM3");
    EXPECT_NEAR(c.calibrated.bandwidth_efficiency, r["stream"].bandwidth / 3.35e12, 1e-5);
    // The committed profile is this fit.
    GpuSpec committed = resolve_gpu(calibrated_h100());
    for (const auto& [k, rates] : r) {
        EXPECT_NEAR(committed.kernel_rates.at(k).overhead_s, rates.overhead_s, 1e-5 * rates.overhead_s + 1e-12) << k;
        EXPECT_NEAR(committed.kernel_rates.at(k).bandwidth, rates.bandwidth, 1e-5 * rates.bandwidth) << k;
        EXPECT_NEAR(committed.kernel_rates.at(k).flops, rates.flops, 1e-5 * rates.flops) << k;
    }
    EXPECT_THROW(calibrate({measured("probe_h100_1207a.json")}, "h100-sxm-calibrated", "t"), InputError);
    EXPECT_THROW(calibrate({measured("h100_hf_memory.json")}, "", "t"), InputError);  // no stream cases
}

// The time model picks the calibrated classes up: a stream kernel runs at the fitted bandwidth.
TEST(Calibrate, TimeModelUsesTheCalibratedClasses) {
    GpuSpec g = resolve_gpu("h100-sxm-calibrated");
    const KernelRates& s = g.kernel_rates.at("stream");
    KernelTime k = kernel_time(g, KernelClass::Stream, "bf16", 0, 3'000'000'000ull);
    EXPECT_DOUBLE_EQ(k.seconds, s.overhead_s + 3e9 / s.bandwidth);
    const KernelRates& m = g.kernel_rates.at("gemm_bf16");
    k = kernel_time(g, KernelClass::Gemm, "bf16", 2ull * 8192 * 8192 * 8192, 3ull * 8192 * 8192 * 2);
    EXPECT_DOUBLE_EQ(k.seconds, m.overhead_s + 2.0 * 8192 * 8192 * 8192 / m.flops);
    EXPECT_EQ(k.bound, "compute");
    // Uncalibrated: peak × efficiency, the launch overhead.
    GpuSpec d = resolve_gpu("h100-sxm");
    k = kernel_time(d, KernelClass::Stream, "bf16", 0, 3'000'000'000ull);
    EXPECT_DOUBLE_EQ(k.seconds, 4e-6 + 3e9 / (3.35e12 * 0.9));
}

TEST(ProbeFiles, MalformedProbeCasesNameTheField) {
    auto file = [](const std::string& params, const std::string& kind = "stream") {
        return std::string(
                   R"({"schema":"memtax.measurements/1","source":"memtax-probe","provenance":{"gpu":"g","date":"d","command":"c"},)") +
               "\n\"cases\":[\n{\"id\":\"x\",\"kind\":\"" + kind + "\",\n\"params\":" + params + ",\"status\":\"skipped\"}]}";
    };
    auto message = [&](const std::string& params, const std::string& kind = "stream") {
        try {
            parse_measurements(file(params, kind), "f.json");
        } catch (const InputError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(message(R"({"op":"copyy","bytes":16})").find("cases[0].params.op: \"copyy\" (did you mean \"copy\"?)"), std::string::npos);
    EXPECT_NE(message(R"({"op":"copy","bytes":100})").find("not a multiple of 16"), std::string::npos);
    EXPECT_NE(message(R"({"op":"read","bytes":16})").find("\"partials\" is missing"), std::string::npos);
    EXPECT_NE(
        message(R"({"batch":1,"context":8,"kv_heads":8,"q_heads":30,"head_dim":128,"block_size":16,"tokens_per_split":256,"dtype":"bf16"})",
                "decode-paged")
            .find("not a multiple of kv_heads"),
        std::string::npos);
    EXPECT_NE(
        message(R"({"dtype":"fp4","m":1,"n":1,"k":1,"out_dtype":"bf16","workspace_bytes":0})", "gemm").find("valid: bf16, fp16, fp8_e4m3"),
        std::string::npos);
    EXPECT_EQ(message(R"({"op":"copy","bytes":16})"), "no error");
    // A line number: the params object is on line 4.
    EXPECT_EQ(message(R"({"op":"copy","bytes":100})").rfind("f.json:4: cases[0].params.bytes:", 0), 0u)
        << message(R"({"op":"copy","bytes":100})");
}

// NCCL all-reduce across the NVLink-connected H100s of one host: 2 GPUs (NV18) and 4 GPUs (NV18
// between every pair); driver 580.159.04, 2026-11-26; `bash scripts/probe-device.sh $OUT --suites
// allreduce`. The allreduce class is fitted on both runs: two protocol lines, each
// a + 2(n−1)·α + bus bytes / bandwidth, the faster taken.
TEST(ProbeValidate, RecordedH100AllReduce) {
    size_t within = 0, n = 0;
    for (const char* f : {"probe_h100x2_allreduce.json", "probe_h100x4_allreduce.json"}) {
        Validation v = validate_measurements(measured(f), "", 0.05, 4ull << 20);
        ASSERT_EQ(v.probe.size(), 7u);
        for (const auto& c : v.checks) EXPECT_TRUE(c.passed);
        for (const auto& r : v.probe) {
            SCOPED_TRACE(r.c.id);
            EXPECT_EQ(r.predicted_allocated, 2 * r.c.shape.bytes);  // send + recv on each rank
            EXPECT_TRUE(r.allocated_exact);
            ++n;
            within += r.time_ok;
            if (r.c.shape.gpus == 2 || r.c.shape.bytes >= (256u << 20) || r.c.shape.bytes <= (512u << 10))
                EXPECT_LE(std::fabs(r.time_error), 0.10);
        }
    }
    // The two 4-GPU misses are 4 and 32 MiB, where NCCL's middle protocol (LL128) beats both lines.
    EXPECT_EQ(within, n - 2);
    // The time model's TP term: a 16 KiB message over 2 GPUs takes the low-latency line, 1 GiB
    // the bus-bandwidth line; the ring's 2(n−1) steps add their latency.
    GpuSpec g = resolve_gpu("h100-sxm-calibrated");
    const KernelRates& a = g.kernel_rates.at("allreduce");
    EXPECT_DOUBLE_EQ(kernel_time(g, KernelClass::AllReduce, "", 0, 16384, 2).seconds,
                     a.ll_overhead_s + 2 * a.ll_step_s + 16384 / a.ll_bandwidth);
    EXPECT_DOUBLE_EQ(kernel_time(g, KernelClass::AllReduce, "", 0, 1ull << 30, 2).seconds,
                     a.overhead_s + 2 * a.step_s + (1ull << 30) / a.bandwidth);
    EXPECT_GT(a.ll_step_s, 0.0);    // 10.4 µs on 2 GPUs, 13.8 µs on 4 at 8 KiB: latency grows with the ring
    EXPECT_GT(a.bandwidth, 320e9);  // bus bandwidth at 1 GiB measured 332 (2 GPUs) and 356 GB/s (4)
    EXPECT_LT(a.bandwidth, 370e9);
}

// PyTorch 2.11's scaled_dot_product_attention on the H100 (driver 580.159.04, torch 2.11.0+cu130;
// `python3 kernels/torch/measure_sdpa_time.py $OUT`): the runtime's fused attention, which the
// engine's attention_prefill / attention_decode classes are fitted on (our own flash kernel runs
// at less than half its rate, so it calibrates only itself). Fitted on the 2026-12-07 first lease
// (h100_sdpa_time_1207a.json); the second lease's run and the 2026-11-26 run are other leases.
// Memory holds on every run; time on the other leases is reported in docs/accuracy.md against
// the probe's bar (the small decode calls miss it: 7 to 12 µs calls that move by up to half
// between leases).
TEST(ProbeValidate, RecordedH100Sdpa) {
    for (const char* f : {"h100_sdpa_time_1207a.json", "h100_sdpa_time_1207b.json", "h100_sdpa_time.json"}) {
        SCOPED_TRACE(f);
        Validation v = validate_measurements(measured(f), "", 0.05, 4ull << 20);
        ASSERT_EQ(v.probe.size(), 19u);
        for (const auto& r : v.probe) {
            SCOPED_TRACE(r.c.id);
            // The output exactly, plus at most 1 MiB of the kernel's own workspace.
            EXPECT_TRUE(r.allocated_exact);
            EXPECT_EQ(r.predicted_allocated, r.c.shape.batch * r.c.shape.heads * r.c.shape.q_len * 128 * 2);
            EXPECT_LE(r.workspace_bytes, 1u << 20);
            if (r.bound == "compute" && std::string(f) != "h100_sdpa_time_1207b.json") EXPECT_LE(std::fabs(r.time_error), 0.15);
        }
    }
    GpuSpec g = resolve_gpu("h100-sxm-calibrated");
    EXPECT_GT(g.kernel_rates.at("attention_prefill").flops, 2 * g.kernel_rates.at("memtax_flash").flops);
}
