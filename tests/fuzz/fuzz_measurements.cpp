// libFuzzer harness: the measurement-file reader (schema memtax.measurements/1).
#include <cmath>
#include <string>

#include "fuzz_common.hpp"
#include "model/kernel_model.hpp"
#include "spec/loaders.hpp"
#include "spec/measurements.hpp"

using namespace memtax;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    fuzz::expect_clean([&] {
        MeasurementFile f = parse_measurements(text, "fuzz/measurements.json");
        static const GpuSpec gpu = resolve_gpu("h100-sxm-calibrated");
        for (const auto& c : f.cases) {
            if (c.kind == "forward" || c.kind == "step_time" || c.kind == "train") {
                if (c.batch == 0 || c.context == 0) std::abort();                             // the reader must have refused these
                if (c.tp == 0 || (!c.ranks.empty() && c.ranks.size() != c.tp)) std::abort();  // a sharded case lists each rank once
                if (c.kind == "step_time" && c.status == "ok" && !(c.step && c.step->seconds > 0)) std::abort();
                if (c.kind == "train" && c.status == "ok" && !c.train) std::abort();
                continue;
            }
            // Whatever shape the reader accepts, the kernel model sizes it exactly or names the
            // overflowing term; the predicted time is finite.
            ProbeModel m = model_probe_case(c.kind, c.shape, gpu);
            if (!std::isfinite(probe_time(m, gpu).seconds)) std::abort();
        }
    });
    return 0;
}
