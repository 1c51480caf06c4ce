// Benchmarks of the engine's hot paths. Run: build/memtax_bench
#include <benchmark/benchmark.h>

#include "model/kernel_model.hpp"
#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "spec/loaders.hpp"
#include "validate/calibrate.hpp"
#include "validate/validate.hpp"

namespace {

// The full estimate of one point of an 80-layer model (Llama-3.1-70B, prefill, batch 16, 32k,
// TP 4) from its compiled plan: the point's numbers, the walk again for where the peak is, the
// layer rows, the step's graphs for the time model, every component with its formula, the
// verdict. Arg: 0 hf-sdpa, 1 hf-eager, 2 vllm.
void BM_Estimate80Layers(benchmark::State& state) {
    memtax::ModelSpec m = memtax::resolve_model("llama-3.1-70b");
    memtax::GpuSpec g = memtax::resolve_gpu("h200");
    memtax::Workload w;
    w.batch = 16;
    w.context = 32768;
    const char* names[] = {"hf-sdpa", "hf-eager", "vllm"};
    w.runtime = memtax::resolve_runtime(names[state.range(0)]);
    const memtax::Plan plan = memtax::Plan::compile(m, g, memtax::Deployment{4, 4}, w);
    for (auto _ : state) {
        memtax::Estimate e = plan.estimate(plan.point_of(w));
        benchmark::DoNotOptimize(e.total);
    }
}
BENCHMARK(BM_Estimate80Layers)->Arg(0)->Arg(1)->Arg(2)->ArgName("runtime");

// Compiling that plan: shards, every layer type's graph from its blocks, the head, the
// runtime's fixed costs (vLLM: the start-up profile run, sampler, CUDA-graph pool, KV pool).
void BM_Compile80Layers(benchmark::State& state) {
    memtax::ModelSpec m = memtax::resolve_model("llama-3.1-70b");
    memtax::GpuSpec g = memtax::resolve_gpu("h200");
    memtax::Workload w;
    const char* names[] = {"hf-sdpa", "hf-eager", "vllm"};
    w.runtime = memtax::resolve_runtime(names[state.range(0)]);
    for (auto _ : state) {
        const memtax::Plan plan = memtax::Plan::compile(m, g, memtax::Deployment{4, 4}, w);
        benchmark::DoNotOptimize(&plan);
    }
}
BENCHMARK(BM_Compile80Layers)->Arg(0)->Arg(1)->Arg(2)->ArgName("runtime");

// The unsharded parameter count of the same model (what a TP > 1 plan reports beside its
// per-GPU count).
void BM_ParameterCount80Layers(benchmark::State& state) {
    const memtax::ModelSpec m = memtax::resolve_model("llama-3.1-70b");
    for (auto _ : state) benchmark::DoNotOptimize(memtax::parameter_count(m));
}
BENCHMARK(BM_ParameterCount80Layers);

// A planner's inner loop: the compiled plan of the same 80-layer deployment evaluated over a
// grid of points (prefill and decode × batch 1…128 × context 1k…128k, 128 points, cycled).
// items_per_second = points per second. Arg: 0 hf-sdpa, 1 hf-eager, 2 vllm.
void BM_Sweep(benchmark::State& state) {
    memtax::ModelSpec m = memtax::resolve_model("llama-3.1-70b");
    memtax::GpuSpec g = memtax::resolve_gpu("h200");
    memtax::Workload w;
    const char* names[] = {"hf-sdpa", "hf-eager", "vllm"};
    w.runtime = memtax::resolve_runtime(names[state.range(0)]);
    const memtax::Plan plan = memtax::Plan::compile(m, g, memtax::Deployment{4, 4}, w);
    std::vector<memtax::Point> grid;
    for (auto mode : {memtax::Mode::Prefill, memtax::Mode::Decode})
        for (std::uint64_t b = 1; b <= 128; b *= 2)
            for (std::uint64_t c = 1024; c <= 131072; c *= 2) grid.push_back({mode, b, c});
    size_t i = 0;
    for (auto _ : state) {
        const memtax::PointResult r = plan.evaluate(grid[i]);
        benchmark::DoNotOptimize(r.total);
        if (++i == grid.size()) i = 0;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_Sweep)->Arg(0)->Arg(1)->Arg(2)->ArgName("runtime");

// The roofline of both steps (prefill and decode) of the same 80-layer deployment over an
// 8-GPU NVSwitch node: per-op traffic of every graph, the per-kind table, the TP all-reduces.
void BM_TimeModel80Layers(benchmark::State& state) {
    memtax::ModelSpec m = memtax::resolve_model("llama-3.1-70b");
    memtax::GpuSpec g = memtax::resolve_gpu("h200");
    memtax::Workload w;
    w.batch = 16;
    w.context = 32768;
    w.runtime = memtax::resolve_runtime("hf-sdpa");
    memtax::Workload d = w;
    d.mode = memtax::Mode::Decode;
    const memtax::Estimate p = memtax::estimate(m, g, memtax::Deployment{4, 4}, w);
    const memtax::Estimate q = memtax::estimate(m, g, memtax::Deployment{4, 4}, d);
    const memtax::Topology topo(memtax::resolve_cluster("hgx-h200-8"));
    for (auto _ : state) {
        memtax::TimeEstimate t = memtax::estimate_time(p, q, topo);
        benchmark::DoNotOptimize(t.tpot_s);
    }
}
BENCHMARK(BM_TimeModel80Layers);

// One probe case predicted: the kernel model's buffers and kernels, and their times on the
// calibrated H100 (the eager attention: three kernels, the L2 re-read rule).
void BM_ProbeCasePrediction(benchmark::State& state) {
    const memtax::GpuSpec g = memtax::resolve_gpu("h100-sxm-calibrated");
    memtax::ProbeShape s;
    s.batch = 1, s.heads = 32, s.context = 16384, s.head_dim = 128, s.workspace_bytes = 33554432;
    for (auto _ : state) {
        memtax::ProbeModel m = memtax::model_probe_case("attention-eager", s, g);
        benchmark::DoNotOptimize(memtax::probe_time(m, g).seconds);
    }
}
BENCHMARK(BM_ProbeCasePrediction);

// `memtax validate` and `memtax calibrate` on the recorded H100 run (148 cases, 10 checks):
// reading the file, every prediction / every least-squares fit and the profile it writes.
void BM_ValidateRecordedProbeRun(benchmark::State& state) {
    const std::string f = std::string(MEMTAX_SOURCE_DIR) + "/tests/data/measured/probe_h100.json";
    for (auto _ : state) {
        memtax::Validation v = memtax::validate_measurements(f, "", 0.05, 4ull << 20);
        benchmark::DoNotOptimize(v.all_ok);
    }
}
BENCHMARK(BM_ValidateRecordedProbeRun)->Unit(benchmark::kMillisecond);

void BM_CalibrateRecordedProbeRun(benchmark::State& state) {
    const std::string f = std::string(MEMTAX_SOURCE_DIR) + "/tests/data/measured/probe_h100.json";
    for (auto _ : state) {
        memtax::CalibrationResult c = memtax::calibrate({f}, "", "bench");
        benchmark::DoNotOptimize(c.yaml.size());
    }
}
BENCHMARK(BM_CalibrateRecordedProbeRun)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
