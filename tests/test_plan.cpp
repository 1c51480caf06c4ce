// Compiled plans: a point's plain numbers equal the full estimate's, exactly, over a grid of
// models, runtimes, modes, batches, contexts and deployments; bad points are statuses.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "spec/loaders.hpp"
#include "topology/topology.hpp"

using namespace memtax;

namespace {

void expect_equal(const PointResult& p, const Estimate& e) {
    EXPECT_EQ(p.status, PointStatus::Ok);
    EXPECT_EQ(p.weights, e.weights);
    EXPECT_EQ(p.kv_cache, e.kv_cache);
    EXPECT_EQ(p.kv_cache_visible, e.kv_cache_visible);
    EXPECT_EQ(p.attention_matrix, e.attention_matrix);
    EXPECT_EQ(p.activation_peak, e.activation_peak);
    EXPECT_EQ(p.logits, e.logits);
    EXPECT_EQ(p.logits_output, e.logits_output);
    EXPECT_EQ(p.runtime_overhead, e.runtime_overhead);
    EXPECT_EQ(p.total, e.total);
    EXPECT_EQ(p.forward_peak, e.forward_peak);
    EXPECT_EQ(p.resident_before, e.resident_before);
    EXPECT_EQ(p.capacity, e.capacity);
    EXPECT_EQ(p.fits, e.fits);
    EXPECT_EQ(p.max_concurrency_milli, e.max_concurrency_milli);
    EXPECT_EQ(p.batch_per_replica, e.batch_per_replica);
}

}  // namespace

// One plan per (model, runtime, deployment, KV dtype), evaluated at every point, against an
// estimate compiled afresh for that point alone.
TEST(Plan, PointsEqualFullEstimatesOverAGrid) {
    const GpuSpec gpu = resolve_gpu("h200");
    int points = 0;
    for (const char* model : {"llama-3.1-8b", "mistral-7b-v0.1", "qwen2.5-72b"})
        for (const char* runtime : {"hf-sdpa", "hf-eager", "vllm"})
            for (const Deployment& dep : {Deployment{1, 1, 1}, Deployment{4, 2, 1}, Deployment{4, 2, 2}})
                for (const char* kv : {"bf16", "fp8_e4m3"}) {
                    const ModelSpec m = resolve_model(model);
                    Workload w;
                    w.runtime = resolve_runtime(runtime);
                    parse_dtype(kv, w.kv_dtype.emplace());
                    w.allow_long_context = true;
                    const Plan plan = Plan::compile(m, gpu, dep, w);
                    for (Mode mode : {Mode::Prefill, Mode::Decode})
                        for (u64 batch : {1, 3, 16})
                            for (u64 context : {1, 1000, 4096, 4097, 32768}) {
                                SCOPED_TRACE(fmt::format("{} {} tp {} pp {} {} {} b{} s{}", model, runtime, dep.tp, dep.pp, kv,
                                                         to_string(mode), batch, context));
                                Workload one = w;
                                one.mode = mode;
                                one.batch = batch;
                                one.context = context;
                                expect_equal(plan.evaluate(Point{mode, batch, context}), estimate(m, gpu, dep, one));
                                ++points;
                            }
                }
    EXPECT_EQ(points, 3 * 3 * 3 * 2 * 2 * 3 * 5);
}

TEST(Plan, BadPointsAreStatusesNotExceptions) {
    Workload w;
    w.runtime = resolve_runtime("hf-eager");
    const Plan plan = Plan::compile(resolve_model("llama-3.1-405b"), resolve_gpu("h200"), {}, w);
    EXPECT_EQ(plan.evaluate(Point{Mode::Prefill, 0, 10}).status, PointStatus::BadBatch);
    EXPECT_EQ(plan.evaluate(Point{Mode::Prefill, 1, 0}).status, PointStatus::BadContext);
    EXPECT_EQ(plan.evaluate(Point{Mode::Prefill, 1, 131073}).status, PointStatus::BeyondMaxContext);
    w.allow_long_context = true;
    const Plan longer = Plan::compile(resolve_model("llama-3.1-405b"), resolve_gpu("h200"), {}, w);
    // 10M tokens of eager S×S scores at batch 4096 cannot be counted in 64 bits.
    const PointResult r = longer.evaluate(Point{Mode::Prefill, 4096, 10'000'000});
    EXPECT_EQ(r.status, PointStatus::Overflow);
    // The full estimate names the term.
    try {
        longer.estimate(Point{Mode::Prefill, 4096, 10'000'000});
        FAIL();
    } catch (const OverflowError& e) {
        EXPECT_NE(std::string(e.what()).find("decoder_layer/full_attention+gated_mlp."), std::string::npos) << e.what();
    }
    try {
        plan.estimate(Point{Mode::Prefill, 1, 131073});
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "workload.context");
    }
}

// Two plans live side by side: nothing is shared between them (no global graph cache).
TEST(Plan, PlansAreIndependent) {
    Workload w;
    w.runtime = resolve_runtime("hf-sdpa");
    const GpuSpec gpu = resolve_gpu("h100-sxm");
    const Plan a = Plan::compile(resolve_model("llama-3.1-8b"), gpu, {}, w);
    const PointResult alone = a.evaluate(Point{Mode::Decode, 4, 8192});
    const Plan b = Plan::compile(resolve_model("mistral-7b-v0.1"), gpu, {}, w);
    (void)b.evaluate(Point{Mode::Decode, 4, 8192});
    const PointResult again = a.evaluate(Point{Mode::Decode, 4, 8192});
    EXPECT_EQ(alone.total, again.total);
    EXPECT_EQ(alone.forward_peak, again.forward_peak);
}

// The time model reads only the step's graphs: an estimate described at Detail::Steps formats
// nothing (no components, tensors live at the peak, sections, verdict or peak site), and the
// steps it prices are the full estimate's, for each runtime family.
TEST(Plan, StepDetailFormatsNothingAndPricesTheSameSteps) {
    for (const char* runtime : {"hf-sdpa", "hf-eager", "vllm"}) {
        Workload w;
        w.runtime = resolve_runtime(runtime);
        w.batch = 4;
        w.context = 8192;
        const Plan plan = Plan::compile(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), Deployment{2, 2, 1, 1}, w);
        const Topology topo(single_node_cluster(resolve_gpu("h100-sxm"), 2));
        for (Mode mode : {Mode::Prefill, Mode::Decode}) {
            const Point p{mode, 4, 8192};
            const Estimate full = plan.estimate(p), steps = plan.estimate(p, Detail::Steps);
            EXPECT_FALSE(full.components.empty());
            EXPECT_FALSE(full.verdict.empty());
            EXPECT_TRUE(steps.components.empty() && steps.live_at_peak.empty() && steps.sections.empty()) << runtime;
            EXPECT_TRUE(steps.verdict.empty() && steps.peak_at.empty()) << runtime;
            EXPECT_EQ(steps.total, full.total);
            ASSERT_EQ(steps.step_graphs.size(), full.step_graphs.size()) << runtime;
            for (size_t i = 0; i < full.step_graphs.size(); ++i) {
                EXPECT_EQ(steps.step_graphs[i].graph, full.step_graphs[i].graph);
                EXPECT_EQ(steps.step_graphs[i].count, full.step_graphs[i].count);
                EXPECT_EQ(steps.step_graphs[i].hidden_bytes, full.step_graphs[i].hidden_bytes);
                EXPECT_EQ(steps.step_graphs[i].mask_read_bytes, full.step_graphs[i].mask_read_bytes);
            }
        }
        const TimeEstimate a =
            estimate_time(plan.estimate(Point{Mode::Prefill, 4, 8192}), plan.estimate(Point{Mode::Decode, 4, 8192}), topo);
        const TimeEstimate b = estimate_time(plan.estimate(Point{Mode::Prefill, 4, 8192}, Detail::Steps),
                                             plan.estimate(Point{Mode::Decode, 4, 8192}, Detail::Steps), topo);
        EXPECT_EQ(a.ttft_s, b.ttft_s) << runtime;
        EXPECT_EQ(a.tpot_s, b.tpot_s) << runtime;
    }
}
