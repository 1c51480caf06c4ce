// Evaluating a compiled plan allocates nothing: every operator new in the process is counted,
// and a grid of points over four plans (hf-sdpa, hf-eager, vllm, and a TP 2 × PP 2 pipeline)
// must leave the count where it was. A program of its own (not in the sanitizer builds, whose
// runtimes own operator new); exit 0 on success.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "model/plan.hpp"
#include "spec/loaders.hpp"

namespace {
std::atomic<long> allocations{0};
}

void* operator new(std::size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

int main() {
    using namespace memtax;
    const ModelSpec m = resolve_model("mistral-7b-v0.1");  // sliding-window layers: masks, views
    const GpuSpec g = resolve_gpu("h200");
    struct Case {
        const char* runtime;
        Deployment dep;
    };
    int failures = 0;
    for (const Case& c : {Case{"hf-sdpa", {1, 1, 1}}, Case{"hf-eager", {1, 1, 1}}, Case{"vllm", {1, 1, 1}}, Case{"hf-sdpa", {4, 2, 2}}}) {
        Workload w;
        w.runtime = resolve_runtime(c.runtime);
        w.allow_long_context = true;
        const Plan plan = Plan::compile(m, g, c.dep, w);
        const long before = allocations.load();
        u64 checksum = 0;
        for (Mode mode : {Mode::Prefill, Mode::Decode})
            for (u64 b = 1; b <= 64; b *= 4)
                for (u64 s = 1; s <= 1u << 20; s *= 8) checksum += plan.evaluate(Point{mode, b, s}).total;
        const long used = allocations.load() - before;
        std::printf("%s tp %llu pp %llu: %ld allocations over the grid (checksum %llu)\n", c.runtime,
                    static_cast<unsigned long long>(c.dep.tp), static_cast<unsigned long long>(c.dep.pp), used,
                    static_cast<unsigned long long>(checksum));
        failures += used != 0;
    }
    return failures == 0 ? 0 : 1;
}
