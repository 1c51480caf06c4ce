// OpGraph::evaluate (precomputed sizes, free lists and alias variants) against the slow storage
// walk of graph_reference.hpp, on every layer, embedding and head graph that the shipped models
// compile to under each runtime, at random points: the two must agree on the peak, where it is,
// what is live there by category, and what the graph leaves behind.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "graph_reference.hpp"
#include "model/plan.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

Bindings random_point(std::mt19937_64& rng) {
    Bindings b;
    auto pick = [&](u64 lo, u64 hi) { return lo + rng() % (hi - lo + 1); };
    b[Sym::Batch] = pick(1, 8);
    const bool decode = rng() % 2;
    b[Sym::Sq] = decode ? 1 : pick(1, 9000);
    b[Sym::SkvOld] = decode ? pick(1, 40000) : (rng() % 4 == 0 ? pick(1, 4000) : 0);  // a prefill after a cached prefix, sometimes
    b[Sym::SkvNew] = b[Sym::SkvOld] + b[Sym::Sq];
    b[Sym::Skv] = rng() % 3 == 0 ? std::min<u64>(b[Sym::SkvNew], pick(1, 4096)) : b[Sym::SkvNew];  // a window, sometimes
    b[Sym::AttnKeys] = pick(1, b[Sym::Skv]);
    b[Sym::Kept] = rng() % 2 ? 1 : b[Sym::Sq];
    b[Sym::Repeat] = rng() % 2;
    b[Sym::NativeGqa] = 1 - b[Sym::Repeat];
    b[Sym::MaskConv] = rng() % 2;
    b[Sym::MaskElems] = b[Sym::MaskConv] * b[Sym::Batch] * b[Sym::Sq] * b[Sym::Skv];
    b[Sym::SkvSink] = b[Sym::Skv] + 1;
    b[Sym::Cached] = b[Sym::SkvOld] > 0;
    b[Sym::Prefilling] = 1 - b[Sym::Cached];
    b[Sym::StateLive] = rng() % 8 ? 1 : 0;
    b[Sym::MultiSeq] = b[Sym::Batch] > 1;
    b[Sym::CacheView] = b[Sym::Cached] ? rng() % 2 : 0;
    b[Sym::CacheContig] = b[Sym::Cached] - b[Sym::CacheView];
    return b;
}

}  // namespace

TEST(GraphReference, EvaluateAgreesWithTheStorageWalkOnEveryShippedGraph) {
    std::mt19937_64 rng(20261208);  // fixed: the same points every run
    const GpuSpec gpu = resolve_gpu("h200");
    std::set<std::string> seen;  // graph names per model and runtime, each checked once
    int graphs = 0, points = 0;
    for (const ModelSpec& m : catalog_models())
        for (const char* runtime : {"hf-sdpa", "hf-eager", "vllm"}) {
            Workload w;
            w.runtime = resolve_runtime(runtime);
            w.allow_long_context = true;
            std::unique_ptr<Plan> plan;
            try {
                plan = std::make_unique<Plan>(Plan::compile(m, gpu, Deployment{8, 8, 1}, w));
            } catch (const InputError&) {
                plan = std::make_unique<Plan>(Plan::compile(m, gpu, Deployment{1, 1, 1}, w));  // heads TP 8 cannot split
            }
            for (Mode mode : {Mode::Prefill, Mode::Decode}) {
                const Estimate e = plan->estimate(Point{mode, 2, 4097}, Detail::Steps);
                for (const GraphUse& gu : e.step_graphs) {
                    const OpGraph& g = *gu.graph;
                    if (!seen.insert(fmt::format("{}/{}/{}/{}", m.name, runtime, g.name(), static_cast<const void*>(&g))).second) continue;
                    ++graphs;
                    for (int i = 0; i < 24; ++i) {
                        const Bindings b = i == 0 ? gu.bindings : random_point(rng);
                        const GraphEval fast = g.evaluate(b);
                        const auto slow = reference::evaluate(g, b);
                        SCOPED_TRACE(fmt::format("{} {} {} point {}", m.name, runtime, g.name(), i));
                        ASSERT_EQ(fast.overflow, !slow.has_value());
                        if (!slow) continue;
                        ++points;
                        EXPECT_EQ(fast.peak_bytes, slow->peak);
                        EXPECT_EQ(fast.peak_op, slow->peak_op);
                        for (size_t c = 0; c < kCategories; ++c) EXPECT_EQ(fast.at_peak.bytes[c], slow->at_peak.bytes[c]) << c;
                        EXPECT_EQ(fast.kv_written, slow->kv_written);
                        EXPECT_EQ(fast.persistent_other, slow->persistent_other);
                        EXPECT_EQ(fast.preexisting, slow->preexisting);
                        if (::testing::Test::HasFailure()) return;  // one graph's disagreement is enough to read
                    }
                }
            }
        }
    EXPECT_GT(graphs, 100);
    EXPECT_GT(points, 2000);
}
