// libFuzzer harness: the Hugging Face config.json importer, then the engine on the model, held to
// invariants that its own arithmetic does not make true: every graph's evaluation agrees with the
// slow storage walk (graph_reference.hpp); the weights do not depend on the point; a longer
// prompt never needs less memory, nor a smaller cache.
#include <string>

#include "../graph_reference.hpp"
#include "fuzz_common.hpp"
#include "model/plan.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    fuzz::expect_clean([&] {
        static const GpuSpec h200 = resolve_gpu("h200");
        static const RuntimeSpec eager = resolve_runtime("hf-eager");
        ModelSpec m = load_hf_config(text, "config.json");
        Workload w;
        w.runtime = eager;
        w.allow_long_context = true;
        const Plan plan = Plan::compile(m, h200, {}, w);
        const Estimate shorter = plan.estimate(Point{Mode::Prefill, 1, 1024}, Detail::Steps);
        const Estimate longer = plan.estimate(Point{Mode::Prefill, 1, 2048}, Detail::Steps);
        if (shorter.total > longer.total || shorter.kv_cache > longer.kv_cache || shorter.weights != longer.weights) std::abort();
        for (const Estimate* e : {&shorter, &longer})
            for (const GraphUse& gu : e->step_graphs) {
                const GraphEval fast = gu.graph->evaluate(gu.bindings);
                const auto slow = reference::evaluate(*gu.graph, gu.bindings);
                if (fast.overflow != !slow.has_value()) std::abort();
                if (slow && (fast.peak_bytes != slow->peak || fast.kv_written != slow->kv_written ||
                             fast.persistent_other != slow->persistent_other))
                    std::abort();
            }
    });
    return 0;
}
