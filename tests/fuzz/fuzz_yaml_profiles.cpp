// libFuzzer harness: the YAML profile loaders (model, GPU, runtime, cluster; the first byte
// picks one), and the engine on whatever loads: an estimate, vLLM sizing, the time model.
#include <string>

#include "fuzz_common.hpp"
#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "report/report.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const char which = static_cast<char>(data[0]);
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    fuzz::expect_clean([&] {
        static const GpuSpec h100 = resolve_gpu("h100-sxm");
        static const ModelSpec small = resolve_model("llama-3.1-8b");
        static const RuntimeSpec sdpa = resolve_runtime("hf-sdpa"), vllm = resolve_runtime("vllm");
        Workload w;
        w.context = 4096;
        w.batch = 2;
        // The seeds' prefixes pick their loader (m, g, r, c); any other byte picks one by its value.
        const int kind = which == 'm' ? 0 : which == 'g' ? 1 : which == 'r' ? 2 : which == 'c' ? 3 : static_cast<unsigned char>(which) % 4;
        switch (kind) {
            case 0: {
                ModelSpec m = load_model_yaml(text, "fuzz.yaml");
                for (const RuntimeSpec* rt : {&sdpa, &vllm}) {
                    w.runtime = *rt;
                    w.allow_long_context = true;
                    Estimate e = estimate(m, h100, {}, w);
                    if (e.total < e.weights) std::abort();
                    // Whatever loads renders (a string that is not UTF-8 was refused at reading).
                    (void)render_json(e, ToolInfo{"fuzz", "fuzz"}, true);
                    // The compiled plan: points are statuses, never exceptions, and equal the estimate.
                    const Plan plan = Plan::compile(m, h100, {}, w);
                    for (u64 ctx : {u64{1}, u64{4096}, u64{1} << 40})
                        for (Mode mode : {Mode::Prefill, Mode::Decode}) {
                            (void)plan.evaluate(Point{mode, 3, ctx});
                            const PointResult r = plan.evaluate(Point{mode, w.batch, ctx});
                            if (r.status == PointStatus::Ok && ctx == 4096 && mode == Mode::Prefill && r.total != e.total) std::abort();
                        }
                }
                break;
            }
            case 1: {
                GpuSpec g = load_gpu_yaml(text, "fuzz.yaml");
                w.runtime = sdpa;
                Estimate p = estimate(small, g, {}, w);
                Workload d = w;
                d.mode = Mode::Decode;
                Estimate q = estimate(small, g, {}, d);
                TimeEstimate t = estimate_time(p, q, Topology(single_node_cluster(g, 1)));
                if (!(t.ttft_s >= 0) || !(t.tpot_s >= 0)) std::abort();  // NaN fails both
                break;
            }
            case 2: {
                w.runtime = load_runtime_yaml(text, "fuzz.yaml");
                estimate(small, h100, {}, w);
                break;
            }
            case 3: {
                Topology topo(load_cluster_yaml(text, "fuzz.yaml"));
                if (topo.gpus() > 1) topo.ring({0, topo.gpus() - 1});
                break;
            }
        }
    });
    return 0;
}
