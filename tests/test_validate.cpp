// Runtime profiles against the device: every committed measurement predicted by the engine
// (peak within 5%, KV exact), and vLLM's start-up arithmetic derived by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli_run.hpp"
#include "model/plan.hpp"
#include "spec/loaders.hpp"
#include "validate/validate.hpp"

using namespace memtax;

namespace {

std::string measured(const std::string& f) { return std::string(MEMTAX_TEST_DATA) + "/measured/" + f; }

Validation check(const std::string& file) { return validate_measurements(measured(file), "", 0.05, 4ull << 20); }

}  // namespace

// Recorded on an NVIDIA H100 80GB HBM3 (driver 580.159.04, torch 2.11.0+cu130, transformers
// 5.17.0, 2026-11-26; command and provenance in each file and tests/data/measured/README.md).
TEST(Validate, CommittedH100MeasurementsWithinFivePercentAndKvExact) {
    size_t cases = 0, by_slack = 0;
    for (const char* f : {"h100_hf_memory.json", "h100_hf_memory_llama31_8b.json", "h100_hf_memory_mistral_7b.json"}) {
        Validation v = check(f);
        SCOPED_TRACE(f);
        EXPECT_EQ(v.gpu, "h100-sxm");  // matched from provenance.gpu
        EXPECT_TRUE(v.all_ok);
        EXPECT_TRUE(v.overhead_exact);
        for (const auto& r : v.cases) {
            SCOPED_TRACE(r.c.id);
            EXPECT_TRUE(r.ok);
            if (r.c.status != "ok") {
                // Out of memory on the device: predicted not to fit (or within 5% of the limit).
                EXPECT_TRUE(!r.predicted_fits || r.oom_borderline);
                continue;
            }
            ++cases;
            ASSERT_TRUE(r.predicted_kv.has_value());
            EXPECT_EQ(*r.predicted_kv, *r.c.measured.kv_cache_bytes);
            EXPECT_EQ(*r.predicted_logits, *r.c.measured.logits_bytes);
            if (r.peak_by_slack_only) {
                // Only the small decode peaks of the 2-layer models (a few MB to 16 MB) may need
                // the allocator slack.
                ++by_slack;
                EXPECT_EQ(r.c.mode, "decode");
                EXPECT_LT(*r.c.measured.forward_peak_bytes, 32u << 20);
            } else {
                EXPECT_LE(std::fabs(r.peak_error), 0.05);
            }
        }
    }
    EXPECT_EQ(cases, 192u + 42u + 15u);
    EXPECT_LE(by_slack, 4u);
}

// The same harness on an NVIDIA H200 (driver 580.159.04, same software, 2026-11-26): the
// engine's predictions do not depend on the card beyond its capacity, and hold there too.
TEST(Validate, CommittedH200Measurements) {
    size_t cases = 0, fragmented = 0;
    for (const char* f : {"h200_hf_memory.json", "h200_hf_memory_full.json"}) {
        Validation v = check(f);
        SCOPED_TRACE(f);
        EXPECT_EQ(v.gpu, "h200");
        EXPECT_TRUE(v.all_ok);
        for (const auto& r : v.cases) {
            SCOPED_TRACE(r.c.id);
            if (r.c.status == "oom") {
                // Where the engine says it fits, PyTorch's own message must show fragmentation:
                // what was allocated plus the failed request within the predicted allocation.
                if (r.predicted_fits) {
                    EXPECT_TRUE(r.oom_explained);
                    EXPECT_GT(r.oom_stranded, 20.0 * (1ull << 30));
                    EXPECT_GE(static_cast<double>(r.predicted_allocation), 0.95 * (r.oom_allocated + r.oom_request));
                    ++fragmented;
                }
                continue;
            }
            ++cases;
            EXPECT_EQ(*r.predicted_kv, *r.c.measured.kv_cache_bytes);
            if (!r.peak_by_slack_only) EXPECT_LE(std::fabs(r.peak_error), 0.05);
        }
    }
    EXPECT_EQ(cases, 198u + 54u);
    EXPECT_EQ(fragmented, 6u);
}

TEST(Validate, FullSizeModelsArePredictedToTheByteInPrefill) {
    // Llama-3.1-8B (32 layers) prefill, eager and SDPA, batch 1 and 4, 1k-64k: the op-graph
    // liveness gives max_memory_allocated exactly.
    Validation v = check("h100_hf_memory_llama31_8b.json");
    int exact = 0;
    for (const auto& r : v.cases) {
        if (r.c.status != "ok" || r.c.mode != "prefill") continue;
        EXPECT_EQ(r.predicted_peak, *r.c.measured.forward_peak_bytes) << r.c.id;
        ++exact;
    }
    EXPECT_EQ(exact, 28);
    // Mistral-7B beyond its window (bool mask, repeat_kv fallback, cat copies): within 0.1%.
    for (const auto& r : check("h100_hf_memory_mistral_7b.json").cases)
        if (r.c.status == "ok") EXPECT_LE(std::fabs(r.peak_error), 0.003) << r.c.id;
}

TEST(Validate, SeedClaimOnRealData) {
    // The article: eager attention ~4x per doubling of context, fused ~2x. Measured pairs of
    // prefill peaks at S and 2S on the H100, and the predictions for the same pairs.
    Validation v = check("h100_hf_memory.json");
    ASSERT_EQ(v.claims.size(), 2u);
    for (const auto& d : v.claims) {
        SCOPED_TRACE(d.runtime);
        EXPECT_GE(d.pairs, 20);
        if (d.runtime == "hf-eager") {
            EXPECT_GT(d.measured_ratio, 3.5);
            EXPECT_LT(d.measured_ratio, 4.05);
        } else {
            EXPECT_GT(d.measured_ratio, 1.9);
            EXPECT_LT(d.measured_ratio, 2.1);
        }
        EXPECT_NEAR(d.predicted_ratio, d.measured_ratio, 0.05);
    }
}

TEST(Vllm, StartupSizingDerivedByHand) {
    // Llama-3.1-8B, one H100 (cudaMemGetInfo total 85,017,493,504 B), vLLM defaults.
    Workload w;
    w.context = 131072;  // max_model_len
    w.batch = 4;
    w.runtime = resolve_runtime("vllm");
    Estimate e = estimate(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), {}, w);
    auto V = [&](const char* key) {
        const auto v = section_u64(e, "vllm", key);
        EXPECT_TRUE(v.has_value()) << key;
        return v.value_or(0);
    };
    // requested = floor(85,017,493,504 · 0.9).
    EXPECT_EQ(V("requested_bytes"), 76515744153u);
    // Profile forward, T = 8,192 tokens (MiB): hidden + residual 64 + 64; merged QKV 96;
    // gate_up [T, 28,672] 448 alive with its SiluAndMul output 224 and the residual 64:
    // 736 MiB, plus int64 token ids and positions 2 · 64 KiB.
    EXPECT_EQ(V("profile_forward_peak_bytes"), 736ull * 1048576 + 2 * 65536);
    // Sampler, 256 requests × 128,256 vocab = 32,833,536 elements: at the scatter, bf16
    // logits (2) + fp32 logits (4) + sorted (4) + indices (8) + probs_sort (4) + top-p mask (1)
    // + scatter output (4) = 27 bytes per element.
    EXPECT_EQ(V("profile_sampler_peak_bytes"), 27ull * 32833536);
    EXPECT_EQ(e.forward_peak, V("profile_sampler_peak_bytes"));
    // CUDA-graph pool: the same forward at 512 tokens: 46 MiB + ids 2 · 4 KiB.
    EXPECT_EQ(V("cudagraph_pool_bytes"), 46ull * 1048576 + 2 * 4096);
    // Page: 2 · 16 tokens · 8 KV heads · 128 · 2 B = 65,536; 32 layers per block id.
    EXPECT_EQ(V("page_bytes"), 65536u);
    EXPECT_EQ(V("layers_per_block"), 32u);
    const u64 available = 76515744153ull - 16060522496ull - 27ull * 32833536 - 760020992ull - (46ull * 1048576 + 8192);
    EXPECT_EQ(V("available_kv_bytes"), available);
    EXPECT_EQ(V("num_blocks"), available / (65536ull * 32));
    EXPECT_EQ(V("blocks_per_request"), 131072u / 16);
    EXPECT_EQ(V("max_concurrent_requests"), V("num_blocks") / 8192);  // 28,019 blocks: 3 whole requests
    EXPECT_EQ(V("num_blocks"), 28019u);
    EXPECT_FALSE(e.fits);  // 4 sequences of 128k wanted
    w.batch = 3;
    EXPECT_TRUE(estimate(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), {}, w).fits);
}

TEST(Vllm, SlidingWindowLayersHoldWindowPlusBatchedTokens) {
    // Mistral-7B (window 4,096) at max_model_len 32,768: SlidingWindowSpec needs
    // cdiv(min(4,095 + 8,192, 32,768), 16) + 1 = 768 + 1 blocks per request, not 2,048.
    Workload w;
    w.context = 32768;
    w.runtime = resolve_runtime("vllm");
    Estimate e = estimate(resolve_model("mistral-7b-v0.1"), resolve_gpu("h100-sxm"), {}, w);
    EXPECT_EQ(*section_u64(e, "vllm", "blocks_per_request"), 769u);
    // Below the window plus batch, a request needs its whole length: cdiv(8,000, 16) + 1.
    w.context = 8000;
    e = estimate(resolve_model("mistral-7b-v0.1"), resolve_gpu("h100-sxm"), {}, w);
    EXPECT_EQ(*section_u64(e, "vllm", "blocks_per_request"), 501u);
}

TEST(Vllm, Fp8KvDoublesTheBlocks) {
    Workload w;
    w.context = 131072;
    w.runtime = resolve_runtime("vllm");
    Estimate bf = estimate(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), {}, w);
    parse_dtype("fp8_e4m3", w.kv_dtype.emplace());
    Estimate f8 = estimate(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), {}, w);
    EXPECT_EQ(*section_u64(f8, "vllm", "page_bytes") * 2, *section_u64(bf, "vllm", "page_bytes"));
    EXPECT_EQ(*section_u64(f8, "vllm", "num_blocks"), *section_u64(bf, "vllm", "available_kv_bytes") / (32768ull * 32));
    // int4 KV has no vLLM kernel.
    parse_dtype("int4", w.kv_dtype.emplace());
    EXPECT_THROW(estimate(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), {}, w), InputError);
}

// A tensor-parallel run (kernels/torch/measure_hf_tp.py) lists every rank. The KV each rank
// holds under TP 2 is derived by hand: gqa-2l (2 layers, 4 KV heads of 128, bf16), a prefill of
// 1,024 tokens, batch 1: 2 layers · (K, V) · 1,024 · 4 · 128 · 2 B = 4,194,304 B in all, and
// its 4 KV heads split 2 + 2 over the ranks: 2,097,152 B on each. A rank holding the unsharded
// cache is a failed rank, named; a list that does not match tp is a one-line input error.
TEST(Validate, ShardedRunsCheckEveryRank) {
    const std::string dir = std::string(MEMTAX_TEST_DATA) + "/measured/";
    auto file = [&](u64 kv_rank1, size_t ranks) {
        std::string rs;
        for (size_t k = 0; k < ranks; ++k)
            rs += fmt::format(R"({}{{"rank": {}, "measured": {{"forward_peak_bytes": 50000000, "kv_cache_bytes": {}}}}})", k ? "," : "", k,
                              k == 1 ? kv_rank1 : 2097152);
        const std::string text = fmt::format(
            R"({{"schema": "memtax.measurements/1", "source": "test", "provenance": {{"gpu": "NVIDIA H200", "date": "2026-12-03", "command": "hand-written"}},
 "cases": [{{"id": "gqa-2l/tp2", "kind": "forward", "model_config": "{}", "runtime": "hf-sdpa", "mode": "prefill",
  "batch": 1, "context": 1024, "logits_kept": 1, "tp": 2, "status": "ok",
  "measured": {{"forward_peak_bytes": 50000000, "kv_cache_bytes": 2097152}}, "ranks": [{}]}}]}})",
            dir + "gqa-2l.config.json", rs);
        const std::string path = (std::filesystem::temp_directory_path() / "memtax-tp-test.json").string();
        std::ofstream(path) << text;
        return path;
    };
    Validation even = validate_measurements(file(2097152, 2), "h200", 0.05, 4ull << 20);
    ASSERT_EQ(even.cases.size(), 1u);
    const CaseResult& e = even.cases[0];
    EXPECT_EQ(e.c.tp, 2u);
    EXPECT_EQ(e.ranks_checked, 2u);
    ASSERT_TRUE(e.predicted_kv.has_value());
    EXPECT_EQ(*e.predicted_kv, 2097152u);
    EXPECT_TRUE(e.kv_exact);
    EXPECT_EQ(e.ranks_ok, e.peak_ok);  // equal ranks: each as the fullest
    Validation off = validate_measurements(file(4194304, 2), "h200", 0.05, 4ull << 20);
    EXPECT_FALSE(off.cases[0].ranks_ok);
    EXPECT_FALSE(off.cases[0].ok);
    EXPECT_FALSE(off.all_ok);
    try {
        validate_measurements(file(2097152, 3), "h200", 0.05, 4ull << 20);
        ADD_FAILURE() << "three ranks for tp 2 accepted";
    } catch (const InputError& err) {
        EXPECT_NE(std::string(err.what()).find("cases[0].ranks: expected a list of 2 ranks"), std::string::npos) << err.what();
    }
    std::filesystem::remove(std::filesystem::temp_directory_path() / "memtax-tp-test.json");
}

// The sharded-run harness on one H200 (tp 1, h200_hf_tp1_gqa-2l.json, 2026-12-03): every rank's
// KV exact and every peak within 5%, but for the process's first prefill, which holds cuBLAS's
// workspace (recorded before the harness warmed up; tests/data/measured/README.md).
TEST(Validate, ShardedHarnessOnOneGpu) {
    const Validation v = check("h200_hf_tp1_gqa-2l.json");
    ASSERT_EQ(v.cases.size(), 16u);
    size_t ranks = 0;
    for (const auto& r : v.cases) {
        ranks += r.ranks_checked;
        EXPECT_TRUE(r.kv_exact) << r.c.id;
        EXPECT_TRUE(r.logits_exact) << r.c.id;
        const bool first = r.c.id == "gqa-2l/hf-sdpa/tp1/b1/s1024/prefill";
        EXPECT_EQ(r.ok, !first) << r.c.id;
    }
    EXPECT_EQ(ranks, 16u);
}

TEST(Vllm, ChunkedLayersHoldOneChunkPlusBatchedTokens) {
    // Llama-4-Scout at max_model_len 131,072 on 8 H200 (TP 8): 12 full layers and 36 chunked
    // (8,192) form 4 groups of 12 layers (vLLM's hybrid allocator); a full group needs
    // 131,072 / 16 = 8,192 blocks per request, a chunked group (ChunkedLocalAttentionSpec)
    // cdiv(min(8,192 + 8,192, 131,072), 16) = 1,024: 8,192 + 3 · 1,024 = 11,264, not 4 · 8,192.
    Workload w;
    w.context = 131072;
    w.runtime = resolve_runtime("vllm");
    Estimate e = estimate(resolve_model("llama-4-scout"), resolve_gpu("h200"), Deployment{8, 8, 1}, w);
    EXPECT_EQ(*section_u64(e, "vllm", "kv_groups"), 4u);
    EXPECT_EQ(*section_u64(e, "vllm", "layers_per_block"), 12u);
    EXPECT_EQ(*section_u64(e, "vllm", "blocks_per_request"), 11264u);
    // One KV head of 128 per GPU: a page is 2 · 16 · 1 · 128 · 2 B.
    EXPECT_EQ(*section_u64(e, "vllm", "page_bytes"), 8192u);
    // Below a chunk plus a step, a chunked layer needs the whole request: cdiv(8,192, 16) each.
    w.context = 8192;
    Estimate s = estimate(resolve_model("llama-4-scout"), resolve_gpu("h200"), Deployment{8, 8, 1}, w);
    EXPECT_EQ(*section_u64(s, "vllm", "blocks_per_request"), 4u * 512);
}

// Mistral-7B under vLLM, 2 sequences at 32,768 tokens on one H100: every layer is windowed (4,096),
// so a decode step reads 2 · 4,096 keys' K and V per layer (8 KV heads of 128 in bf16: 4,096 B per
// token per layer) over 32 layers, and its attention does 4 · 32 heads · 128 FLOPs per key for each
// of the 2 queries; a prefill query i attends min(i, 4,096) keys.
TEST(Vllm, WindowedLayersReadOnlyTheirWindow) {
    auto step = [](const char* mode) {
        Result r = run_command({"estimate", "--model", "mistral-7b-v0.1", "--gpu", "h100-sxm", "--runtime", "vllm", "--mode", mode,
                                "--batch", "2", "--context", "32768", "--time", "--format", "json"});
        EXPECT_EQ(r.code, 0) << r.err;
        return nlohmann::json::parse(r.out)["time"][mode];
    };
    const auto decode = step("decode");
    EXPECT_EQ(decode["kv_bytes"].get<u64>(), 32ull * 2 * 4096 * 4096);
    const auto prefill = step("prefill");
    // Keys per query over 32,768: (4,096 · 4,097 / 2 + (32,768 − 4,096) · 4,096) / 32,768, floored.
    const u64 keys = (4096ull * 4097 / 2 + (32768ull - 4096) * 4096) / 32768;
    EXPECT_EQ(keys, 3840u);
    // The attention FLOPs of 2 · 32,768 queries over 32 layers, besides the GEMMs' (their count
    // is the same as a full layer's, so the difference to the full-attention keys (L + 1) / 2 is
    // the window's alone).
    const u64 full_keys = (32768 + 1) / 2;
    const u64 diff = 32ull * 4 * 32 * 128 * 2 * 32768 * (full_keys - keys);
    Result full = run_command({"estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--runtime", "vllm", "--mode", "prefill",
                               "--batch", "2", "--context", "32768", "--time", "--format", "json"});
    ASSERT_EQ(full.code, 0) << full.err;
    // Llama-3.1-8B has Mistral's attention shapes (32 layers, 32 heads, 8 KV heads of 128) and
    // attends every key: its attention FLOPs exceed Mistral's by `diff`, whatever the MLPs do.
    const auto lf = nlohmann::json::parse(full.out)["time"]["prefill"];
    auto attention_flops = [](const nlohmann::json& t) {
        for (const auto& k : t["kinds"])
            if (k["kind"] == "attention core") return k["flops"].get<u64>();
        return u64{0};
    };
    EXPECT_EQ(attention_flops(lf) - attention_flops(prefill), diff);
}
