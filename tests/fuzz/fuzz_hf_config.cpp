// libFuzzer harness: the Hugging Face config.json importer, then the engine on the model.
#include <string>

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
        w.context = 2048;
        w.runtime = eager;
        for (Mode mode : {Mode::Prefill, Mode::Decode}) {
            w.mode = mode;
            Estimate e = estimate(m, h200, {}, w);
            if (e.total != e.weights + e.kv_cache + e.attention_matrix + e.activation_peak + e.logits + e.runtime_overhead) std::abort();
        }
    });
    return 0;
}
