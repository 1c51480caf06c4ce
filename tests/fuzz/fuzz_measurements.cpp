// libFuzzer harness: the measurement-file reader (schema memtax.measurements/1).
#include <string>

#include "fuzz_common.hpp"
#include "validate/measurements.hpp"

using namespace memtax;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    fuzz::expect_clean([&] {
        MeasurementFile f = parse_measurements(text, "fuzz/measurements.json");
        for (const auto& c : f.cases)
            if (c.batch == 0 || c.context == 0) std::abort();  // the reader must have refused these
    });
    return 0;
}
