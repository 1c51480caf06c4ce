// The memory model: exact bytes derived by hand, published figures, and recorded device data.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "model/plan.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

Estimate run(const std::string& model, u64 batch, u64 context, Mode mode = Mode::Prefill, AttentionKernel kernel = AttentionKernel::Fused,
             Deployment dep = {}, const std::string& gpu = "h100-sxm") {
    Workload w;
    w.batch = batch;
    w.context = context;
    w.mode = mode;
    w.runtime = resolve_runtime(kernel == AttentionKernel::Eager ? "hf-eager" : "hf-sdpa");
    w.allow_long_context = true;  // extreme contexts are part of what these tests size
    return estimate(resolve_model(model), resolve_gpu(gpu), dep, w);
}

DType dtype(const char* name) {
    DType d;
    EXPECT_TRUE(parse_dtype(name, d)) << name;
    return d;
}

Estimate run(const std::string& model, Workload w) {
    if (w.runtime.name.empty()) w.runtime = resolve_runtime("hf-sdpa");
    return estimate(resolve_model(model), resolve_gpu("h100-sxm"), {}, w);
}

}  // namespace

// Published KV bytes per token in bf16 (REFERENCE-DATA.md §2.3): 2 · layers · kv_heads · head_dim · 2.
TEST(Golden, KvBytesPerToken) {
    EXPECT_EQ(run("llama-2-70b", 1, 1).kv_cache, 327680u);
    EXPECT_EQ(run("llama-3.1-8b", 1, 1).kv_cache, 131072u);
    EXPECT_EQ(run("llama-2-7b", 1, 1).kv_cache, 524288u);
    EXPECT_EQ(run("llama-2-13b", 1, 1).kv_cache, 819200u);  // vLLM paper: 800 KB for the same dims
    EXPECT_EQ(run("llama-3.1-405b", 1, 1).kv_cache, 516096u);
    EXPECT_EQ(run("qwen2.5-72b", 1, 1).kv_cache, 327680u);
}

TEST(Golden, IssueAcceptanceLlama31At8k) { EXPECT_EQ(run("llama-3.1-8b", 1, 8192).kv_cache, 1073741824u); }

TEST(Kv, SlidingWindowCacheAsTransformersKeepsIt) {
    // Mistral-7B: 131,072 B of K+V per token over 32 layers. transformers' sliding-window
    // layer exposes the last window - 1 = 4,095 tokens, as a view: after a prefill the whole
    // prompt's storage stays allocated; the next decode step's cat makes fresh storage of
    // 4,095 + 1 tokens. (Measured on H100: 536,739,840 B exposed, 1,073,741,824 B + logits
    // left allocated after an 8,192-token prefill; tests/data/measured/h100_hf_memory_mistral_7b.json.)
    Estimate p = run("mistral-7b-v0.1", 1, 8192);
    EXPECT_EQ(p.kv_cache_visible, 131072ull * 4095);
    EXPECT_EQ(p.kv_cache, 131072ull * 8192);
    Estimate d = run("mistral-7b-v0.1", 1, 8193, Mode::Decode);
    EXPECT_EQ(d.kv_cache_visible, 131072ull * 4095);
    EXPECT_EQ(d.kv_cache, 131072ull * 4096);
    // Below the window nothing is trimmed.
    EXPECT_EQ(run("mistral-7b-v0.1", 1, 2048).kv_cache, 131072ull * 2048);
    EXPECT_EQ(run("mistral-7b-v0.1", 1, 2048).kv_cache_visible, 131072ull * 2048);
}

TEST(Kv, Fp8HalvesAndLinearInContextAndBatch) {
    Workload w;
    w.context = 8192;
    w.kv_dtype = dtype("fp8_e4m3");
    EXPECT_EQ(run("llama-3.1-8b", w).kv_cache, 536870912u);
    EXPECT_EQ(run("llama-3.1-8b", 4, 1000).kv_cache, 4ull * 1000 * 131072);
}

TEST(Weights, Bf16IsTwoBytesPerParameter) {
    Estimate e = run("llama-3.1-8b", 1, 1024);
    EXPECT_EQ(e.weights, 2ull * 8030261248);
    EXPECT_EQ(e.parameters, 8030261248u);
}

TEST(Weights, Int4LinearLayersCarryGroupScales) {
    // Per layer, int4 with one fp16 scale per 128 values, each matrix on its own:
    //   q, o: 4096·4096 -> 8,388,608 + 131,072·2 = 8,650,752 each
    //   k, v: 4096·1024 -> 2,097,152 + 32,768·2  = 2,162,688 each
    //   gate, up, down: 4096·14336 -> 29,360,128 + 458,752·2 = 30,277,632 each
    //   norms (bf16): 2·4096·2 = 16,384  => 112,476,160 per layer
    // 32 layers + bf16 embedding and LM head (2 · 128,256·4096·2) + final norm (8,192).
    Workload w;
    w.context = 1024;
    w.weight_dtype = dtype("int4");
    Estimate e = run("llama-3.1-8b", w);
    EXPECT_EQ(e.weights, 32ull * 112476160 + 2ull * 1050673152 + 8192);
}

TEST(TensorParallel, ShardsHeadsAndMlpAndReplicatesKvHeads) {
    Estimate tp8 = run("llama-3.1-70b", 1, 8192, Mode::Prefill, AttentionKernel::Fused, {8, 8});
    // One KV head per GPU: 80 layers · 2 · 8192 tokens · 128 · 2 B.
    EXPECT_EQ(tp8.kv_cache, 80ull * 2 * 8192 * 128 * 2);
    // Per GPU: vocab-parallel embedding and head 2 · 16,032·8192·2; per layer q, o 8192·1024·2,
    // k, v 8192·128·2, MLP 3·8192·3584·2, norms 2·8192·2; final norm 8192·2.
    u64 layer = 2ull * 16777216 + 2ull * 2097152 + 176160768 + 32768;
    EXPECT_EQ(tp8.weights, 80ull * layer + 2ull * 262668288 + 16384);
    // 16 GPUs: 4 query heads each, but the 8 KV heads cannot split 16 ways: each GPU keeps one.
    Estimate tp16 = run("llama-3.1-70b", 1, 8192, Mode::Prefill, AttentionKernel::Fused, {16, 16});
    EXPECT_EQ(tp16.kv_cache, tp8.kv_cache);
    EXPECT_LT(tp16.weights, tp8.weights);
}

TEST(TensorParallel, RejectsImpossibleDegrees) {
    try {
        run("llama-3.1-8b", 1, 1024, Mode::Prefill, AttentionKernel::Fused, {3, 3});
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "deployment.tp");  // the engine names the field path; the CLI maps it to --tp
        EXPECT_NE(e.message().find("num_attention_heads = 32"), std::string::npos);
    }
    EXPECT_THROW(run("llama-3.1-8b", 1, 1024, Mode::Prefill, AttentionKernel::Fused, {6, 4}), InputError);
}

TEST(DataParallel, SplitsTheBatchOverReplicas) {
    Estimate e = run("llama-3.1-8b", 16, 4096, Mode::Prefill, AttentionKernel::Fused, {8, 4});
    EXPECT_EQ(e.replicas, 2u);
    EXPECT_EQ(e.batch_per_replica, 8u);
}

TEST(Attention, EagerScoresByHand) {
    // Llama-3.1-8B, batch 1, S = 8192: at the softmax, masked bf16 scores + the fp32 copy
    // softmax(dtype=fp32) makes of them + fp32 probabilities = 10 B · 32 heads · 8192².
    Estimate e = run("llama-3.1-8b", 1, 8192, Mode::Prefill, AttentionKernel::Eager);
    const u64 per_layer = 10ull * 32 * 8192 * 8192;
    ASSERT_EQ(e.layers.size(), 1u);
    EXPECT_EQ(e.layers[0].attention_matrix_bytes, per_layer);
    // The forward-wide additive mask [1, 1, S, S] in bf16 is live beside it.
    EXPECT_EQ(e.attention_matrix, per_layer + 2ull * 8192 * 8192);
    EXPECT_NE(e.peak_at.find("softmax"), std::string::npos);
}

TEST(Attention, EagerQuadruplesFusedDoubles) {
    Estimate e4 = run("llama-3.1-8b", 1, 4096, Mode::Prefill, AttentionKernel::Eager);
    Estimate e8 = run("llama-3.1-8b", 1, 8192, Mode::Prefill, AttentionKernel::Eager);
    EXPECT_EQ(e8.layers[0].attention_matrix_bytes, 4 * e4.layers[0].attention_matrix_bytes);
    // The S² terms dominate more with every doubling: the whole peak tends to 4x.
    double r = static_cast<double>(e8.forward_peak) / static_cast<double>(e4.forward_peak);
    EXPECT_GT(r, 3.5);
    EXPECT_LE(r, 4.0);
    Estimate e16 = run("llama-3.1-8b", 1, 16384, Mode::Prefill, AttentionKernel::Eager);
    Estimate e32 = run("llama-3.1-8b", 1, 32768, Mode::Prefill, AttentionKernel::Eager);
    double r2 = static_cast<double>(e32.forward_peak) / static_cast<double>(e16.forward_peak);
    EXPECT_GT(r2, r);
    EXPECT_GT(r2, 3.9);
    EXPECT_LE(r2, 4.0);
    Estimate f8 = run("llama-3.1-8b", 1, 8192);
    Estimate f16 = run("llama-3.1-8b", 1, 16384);
    EXPECT_EQ(f8.attention_matrix, 0u);
    EXPECT_EQ(f16.attention_matrix, 0u);
    // Every live tensor of a fused prefill (at the MLP) is linear in S: exactly 2x.
    ASSERT_EQ(f8.peak_at, f16.peak_at);
    EXPECT_EQ(f16.forward_peak, 2 * f8.forward_peak);
}

TEST(Logits, AllPositionsInTheComputeDtype) {
    Workload w;
    w.context = 8192;
    w.logits_kept = 0;  // all
    Estimate e = run("llama-3.1-8b", w);
    EXPECT_EQ(e.logits, 8192ull * 128256 * 2);
    EXPECT_EQ(e.peak_at, "head lm_head");
    EXPECT_EQ(e.logits_kept, 8192u);
}

TEST(Totals, ComponentsMeetTheLivenessPeak) {
    for (auto mode : {Mode::Prefill, Mode::Decode})
        for (auto kernel : {AttentionKernel::Eager, AttentionKernel::Fused})
            for (u64 ctx : {1024u, 8192u}) {
                Estimate e = run("llama-3.1-8b", 2, ctx, mode, kernel);
                // Homogeneous stack: the component total (weights, cache, attention matrix, activations,
                // logits, overhead) is the liveness walk's peak above what the forward starts with.
                EXPECT_EQ(e.total, e.resident_before + e.forward_peak + e.runtime_overhead) << ctx;
            }
}

TEST(Decode, CacheBeforeTheStepIsResident) {
    Estimate d = run("llama-3.1-8b", 1, 8192, Mode::Decode);
    EXPECT_EQ(d.kv_cache, 8192ull * 131072);
    EXPECT_EQ(d.resident_before, d.weights + 8191ull * 131072);
}

TEST(Fit, VerdictCarriesTheNumbers) {
    Estimate e = run("llama-3.1-70b", 1, 8192);
    EXPECT_FALSE(e.fits);
    EXPECT_EQ(e.weights, 2ull * 70553706496);
    EXPECT_EQ(e.verdict.rfind("does not fit: weights 131.4 GiB + KV 2.5 GiB", 0), 0u) << e.verdict;
    EXPECT_NE(e.verdict.find("exceeds 79.2 GiB usable"), std::string::npos) << e.verdict;
    Estimate ok = run("llama-3.1-70b", 1, 8192, Mode::Prefill, AttentionKernel::Fused, {4, 4}, "h200");
    EXPECT_TRUE(ok.fits);
    EXPECT_EQ(ok.verdict.rfind("fits: ", 0), 0u);
}

TEST(Overflow, ExtremeInputsFailNamingTheTerm) {
    try {
        run("llama-3.1-405b", 4096, 10000000, Mode::Prefill, AttentionKernel::Eager);
        FAIL() << "expected an overflow";
    } catch (const OverflowError& e) {
        EXPECT_NE(std::string(e.what()).find("decoder_layer"), std::string::npos) << e.what();
    }
    // Fused attention at the same size is linear and fits in 64 bits.
    EXPECT_NO_THROW(run("llama-3.1-405b", 4096, 10000000));
}

TEST(Kv, MixedLayerKindsKeepTheirOwnTokens) {
    // The test profile (hidden 256, 4 heads, 2 KV heads, head_dim 64) with one sliding layer
    // (window 1024) and one full layer: K+V per token per layer = 2 · 2 · 64 · 2 B = 512 B.
    std::ifstream in(std::string(MEMTAX_TEST_DATA) + "/good_model.yaml");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text += "sliding_window: 1024\nlayer_types: [sliding_attention, full_attention]\n";
    ModelSpec m = load_model_yaml(text, "hybrid.yaml");
    Workload w;
    w.context = 4096;
    for (auto kernel : {AttentionKernel::Eager, AttentionKernel::Fused}) {
        w.runtime = resolve_runtime(kernel == AttentionKernel::Eager ? "hf-eager" : "hf-sdpa");
        Estimate e = estimate(m, resolve_gpu("h100-sxm"), {}, w);
        // Prefill: both layers hold the prompt's storage; the sliding one exposes 1,023 tokens.
        EXPECT_EQ(e.kv_cache, 4096u * 512 + 4096u * 512);
        EXPECT_EQ(e.kv_cache_visible, 4096u * 512 + 1023u * 512);
        ASSERT_EQ(e.layers.size(), 2u);
        // Rows in order of first appearance: layer 0 is the sliding one.
        ASSERT_EQ(e.layers[0].token_mixer, "sliding_attention");
        EXPECT_EQ(e.layers[1].kv_cache_bytes, 4096u * 512);  // full
        EXPECT_EQ(e.layers[0].kv_cache_bytes, 4096u * 512);  // sliding (storage)
        // The component total bounds the exact liveness peak from above.
        EXPECT_GE(e.total, e.resident_before + e.forward_peak + e.runtime_overhead);
    }
    // Decode: the sliding layer's cat makes fresh storage of 1,023 + 1 tokens and reads only those.
    w.mode = Mode::Decode;
    w.runtime = resolve_runtime("hf-eager");
    Estimate d = estimate(m, resolve_gpu("h100-sxm"), {}, w);
    EXPECT_EQ(d.layers[0].kv_cache_bytes, 1024u * 512);
    EXPECT_LT(d.layers[0].attention_matrix_bytes, d.layers[1].attention_matrix_bytes);
}
