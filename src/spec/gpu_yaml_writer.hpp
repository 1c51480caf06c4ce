#pragma once
// Writes a calibrated GPU profile (hardware/calibrated/<gpu>.yaml): the datasheet profile's
// text with the fitted kernel classes, the efficiencies they imply and their provenance. The
// only YAML emitter; `memtax calibrate` fills the struct.
#include <string>
#include <utility>
#include <vector>

#include "spec/gpu_spec.hpp"

namespace memtax {

struct CalibratedGpu {
    std::string base_text;  // the datasheet profile's YAML
    std::string name, display_name;
    double bandwidth_efficiency = 0, matmul_efficiency = 0, launch_overhead_s = 0;
    std::vector<std::pair<std::string, KernelRates>> kernels;  // kernel_rates key, fitted rates
    std::string measurements, tool;
    std::vector<std::pair<std::string, std::string>> provenance;  // gpu, driver, date, command
    std::string efficiency_source, calibration_source;
    std::string header;  // comment lines above the profile
};

std::string write_calibrated_gpu_yaml(const CalibratedGpu& c);

}  // namespace memtax
