// Benchmarks of the engine's hot paths. Run: build/memtax_bench
#include <benchmark/benchmark.h>

#include "model/memory_model.hpp"
#include "spec/loaders.hpp"

namespace {

// A full per-layer estimate of an 80-layer model (Llama-3.1-70B, eager prefill, TP 4):
// weights, KV, liveness of the layer graph, the 80-layer walk, the head and the verdict.
void BM_Estimate80Layers(benchmark::State& state) {
    memtax::ModelSpec m = memtax::resolve_model("llama-3.1-70b");
    memtax::GpuSpec g = memtax::resolve_gpu("h200");
    memtax::Workload w;
    w.batch = 16;
    w.context = 32768;
    w.attention = state.range(0) ? memtax::AttentionKernel::Eager : memtax::AttentionKernel::Fused;
    for (auto _ : state) {
        memtax::Estimate e = memtax::estimate(m, g, memtax::Deployment{4, 4}, w);
        benchmark::DoNotOptimize(e.total);
    }
}
BENCHMARK(BM_Estimate80Layers)->Arg(0)->Arg(1)->ArgName("eager");

}  // namespace

BENCHMARK_MAIN();
