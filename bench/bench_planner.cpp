// Benchmarks of the planner: a million-point sweep and a plan over more than 10,000 candidate
// deployments. Run: build/memtax_bench --benchmark_filter='Million|Plan'
#include <benchmark/benchmark.h>

#include "model/plan.hpp"
#include "planner/planner.hpp"
#include "spec/loaders.hpp"

namespace {

// 1,000,000 what-if points of an 80-layer deployment (Llama-3.1-70B, TP 4 on H200, hf-sdpa), each
// the full per-GPU breakdown (weights, KV, attention matrix, activations, logits, overhead, total,
// forward peak, the verdict): 1,000 contexts from 1k to 128k × 125 batch sizes × prefill and
// decode... cut at a million. One iteration = the whole sweep.
void BM_SweepMillionPoints(benchmark::State& state) {
    const memtax::ModelSpec m = memtax::resolve_model("llama-3.1-70b");
    const memtax::GpuSpec g = memtax::resolve_gpu("h200");
    memtax::Workload w;
    w.runtime = memtax::resolve_runtime("hf-sdpa");
    const memtax::Plan plan = memtax::Plan::compile(m, g, memtax::Deployment{4, 4}, w);
    for (auto _ : state) {
        std::uint64_t fits = 0, n = 0;
        for (auto mode : {memtax::Mode::Prefill, memtax::Mode::Decode})
            for (std::uint64_t b = 1; b <= 500 && n < 1000000; ++b)
                for (std::uint64_t c = 1024; c <= 131072 && n < 1000000; c += 128, ++n) {
                    const memtax::PointResult r = plan.evaluate(memtax::Point{mode, b, c});
                    fits += r.fits;
                }
        benchmark::DoNotOptimize(fits);
        state.counters["points"] = static_cast<double>(n);
    }
}
BENCHMARK(BM_SweepMillionPoints)->Unit(benchmark::kMillisecond);

// A plan over 11,856 candidates: 6 GPU kinds × TP × PP × DP up to 64 GPUs (247 layouts) × 2 weight
// dtypes × 2 KV dtypes × 2 attention kernels, Llama-3.1-70B, 16 sequences of 8k prompts.
void BM_PlanTenThousandCandidates(benchmark::State& state) {
    const memtax::ScenarioSpec s = memtax::load_scenario_yaml(R"(
name: bench
model: llama-3.1-70b
runtime: hf-sdpa
workload:
  prompt_tokens: 8k
  output_tokens: 512
  concurrency: 16
constraints:
  gpus: [a100-80gb, l40s, h100-sxm, h200, b200, b300]
  max_gpus: 64
  gpus_per_node: 64
  weight_dtypes: [bf16, fp8_e4m3]
  kv_dtypes: [bf16, fp8_e4m3]
  attention: [eager, fused]
  tpot_s: 0.1
objective: fewest_gpus
)",
                                                              "bench.yaml");
    for (auto _ : state) {
        const memtax::PlanReport r = memtax::plan_scenario(s);
        benchmark::DoNotOptimize(r.ranked.size());
        state.counters["candidates"] = static_cast<double>(r.considered);
        state.counters["feasible"] = static_cast<double>(r.ranked.size());
    }
}
BENCHMARK(BM_PlanTenThousandCandidates)->Unit(benchmark::kMillisecond);

}  // namespace
