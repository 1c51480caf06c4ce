#pragma once
// `memtax calibrate`: fits the probe's measurements to the time model's kernel classes and
// writes a calibrated GPU profile (hardware/calibrated/<gpu>.yaml).
//
// Each class is fitted by least squares on the relative error (every kernel weighs the same
// whatever its duration) over the sizes the probe ran:
//   stream              t = overhead + bytes / bandwidth          (copy, read, write; not cudaMemcpy)
//   gemm_<dtype>        t = overhead + max(FLOPs / rate, bytes / bandwidth)  (cuBLASLt products;
//                       each product is assigned to the term that dominates, refitted until stable)
//   attention_prefill   t = overhead + FLOPs / rate               (PyTorch's SDPA, causal prefill)
//   attention_decode    t = overhead + bytes / bandwidth          (PyTorch's SDPA, one query over the cache)
//   memtax_flash        t = overhead + FLOPs / rate               (the probe's tiled flash kernel)
//   memtax_paged_decode t = overhead + bytes / bandwidth          (the probe's paged decode split kernel)
//   launch, allreduce   (see the .cpp)
// The eager attention, the MLP block and the decode combine are not fitted: `memtax validate`
// predicts them from these classes.
#include <string>
#include <vector>

#include "spec/gpu_spec.hpp"
#include "spec/measurements.hpp"

namespace memtax {

struct ClassFit {
    std::string key;  // kernel_rates key
    KernelRates rates;
    std::vector<std::string> kernels;  // "case id/kernel" the fit used
};

struct CalibrationResult {
    std::string measurements;  // the files, as given, comma-separated
    std::map<std::string, std::string> provenance;
    GpuSpec base;  // the datasheet profile the calibration refines
    std::vector<ClassFit> fits;
    GpuSpec calibrated;  // the written profile, loaded back
    std::string yaml;    // its text
};

// `gpu`: the profile to refine (name or path); empty = the uncalibrated profile whose
// device_names has the file's provenance.gpu. `tool`: "memtax <version> (<sha>)".
// Several files (e.g. the one-GPU suites and a multi-GPU allreduce run) must come from the same device.
CalibrationResult calibrate(const std::vector<std::string>& measurements, const std::string& gpu, const std::string& tool);

}  // namespace memtax
