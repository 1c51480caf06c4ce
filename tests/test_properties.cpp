// Properties that must hold for every shipped model and random valid workloads.
#include <gtest/gtest.h>

#include <random>

#include "model/plan.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

Estimate at(const ModelSpec& m, const GpuSpec& g, u64 batch, u64 ctx, Mode mode, AttentionKernel k, u64 tp = 1) {
    Workload w;
    w.allow_long_context = true;  // properties hold past max_context too
    w.batch = batch;
    w.context = ctx;
    w.mode = mode;
    static const RuntimeSpec eager = resolve_runtime("hf-eager"), sdpa = resolve_runtime("hf-sdpa");
    w.runtime = k == AttentionKernel::Eager ? eager : sdpa;
    return estimate(m, g, Deployment{tp, tp}, w);
}

}  // namespace

TEST(Properties, MonotoneLinearQuadraticAndTpNeverGrows) {
    std::mt19937_64 rng(20261126);  // fixed seed: the same cases every run
    const GpuSpec gpu = resolve_gpu("h200");
    int cases = 0;
    for (const ModelSpec& m : catalog_models()) {
        bool all_full = true;
        for (const auto& l : m.layers) all_full &= l.token_mixer == "full_attention";
        for (int i = 0; i < 6; ++i) {
            const u64 ctx = 256 + rng() % 16384;
            const u64 batch = 1 + rng() % 8;
            for (auto mode : {Mode::Prefill, Mode::Decode})
                for (auto kernel : {AttentionKernel::Eager, AttentionKernel::Fused}) {
                    Estimate base = at(m, gpu, batch, ctx, mode, kernel);
                    Estimate longer = at(m, gpu, batch, 2 * ctx, mode, kernel);
                    Estimate wider = at(m, gpu, batch + 1, ctx, mode, kernel);
                    SCOPED_TRACE(m.name + " ctx " + std::to_string(ctx) + " batch " + std::to_string(batch));
                    EXPECT_LE(base.total, longer.total);
                    // Not for transformers' first decode step over a sliding window: the longer the
                    // prompt, the more old storage the step's cat releases early (measured on H100:
                    // Mistral-7B decode peak 50.5 MB at 8,193 tokens, 16.8 MB at 32,769).
                    if (all_full || mode == Mode::Prefill) EXPECT_LE(base.forward_peak, longer.forward_peak);
                    EXPECT_LE(base.total, wider.total);
                    // The weights are the model's, whatever the point.
                    EXPECT_EQ(base.weights, longer.weights);
                    EXPECT_EQ(base.weights, wider.weights);
                    EXPECT_LE(base.kv_cache, longer.kv_cache);
                    if (all_full) EXPECT_EQ(longer.kv_cache, 2 * base.kv_cache);
                    // (A learned sink adds a column: gpt-oss's scores are S·(S+1), not exactly ×4.)
                    if (kernel == AttentionKernel::Eager && mode == Mode::Prefill && !m.attn.sinks) {
                        // ×4 per doubling, up to the allocator's rounding of each S×S tensor to 512 B
                        // (at most 4 tensors live at once, each off by < 512 B before and after).
                        const double quad = 4.0 * static_cast<double>(base.layers[0].attention_matrix_bytes);
                        EXPECT_NEAR(static_cast<double>(longer.layers[0].attention_matrix_bytes), quad, 5.0 * 4 * 512);
                    }
                    // The fused kernel has no score matrix; with a sliding window SDPA still gets a
                    // bool mask and its additive copy, which count as attention matrix.
                    if (kernel == AttentionKernel::Fused && all_full) EXPECT_EQ(base.attention_matrix, 0u);
                    for (u64 tp : {2u, 4u, 8u}) {
                        if (m.num_attention_heads % tp || m.intermediate_size % tp) continue;
                        Estimate sharded = at(m, gpu, batch, ctx, mode, kernel, tp);
                        EXPECT_LE(sharded.weights, base.weights);
                        EXPECT_LE(sharded.kv_cache, base.kv_cache);
                        EXPECT_LE(sharded.total, base.total);
                    }
                    ++cases;
                }
        }
    }
    EXPECT_EQ(cases, static_cast<int>(catalog_models().size()) * 6 * 4);
}
