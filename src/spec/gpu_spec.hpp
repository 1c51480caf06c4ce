#pragma once
// Plain, validated description of one GPU kind, read from a memtax YAML profile. Every number
// carries its source in `sources` (the loader refuses a number without one).
#include <map>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/units.hpp"

namespace memtax {

struct GpuSpec {
    std::string name;          // catalog key, e.g. "h100-sxm"
    std::string display_name;  // e.g. "NVIDIA H100 SXM5 80GB"
    std::string vendor;
    std::string source;

    u64 memory_bytes = 0;         // device memory as nvidia-smi/datasheet states it
    u64 usable_memory_bytes = 0;  // what cudaMemGetInfo reports as total (allocatable); = memory_bytes if unmeasured
    BytesPerSecond hbm_bandwidth;
    std::map<std::string, FlopsPerSecond> peak_flops;  // dense (no 2:4 sparsity), per dtype name
    u64 l2_bytes = 0;             // 0 = unknown
    u64 sm_count = 0;             // SMs (NVIDIA) or CUs (AMD); 0 = unknown
    BytesPerSecond interconnect_bandwidth;  // per GPU, as vendors state it; 0 = none
    std::string interconnect;
    // Names the device reports (torch.cuda.get_device_name, cudaGetDeviceProperties), so
    // measurement files can be matched to this profile.
    std::vector<std::string> device_names;
    // Achievable fractions of the peaks, and the fixed cost of launching one kernel: the time
    // model's roofline (assumed in the shipped profiles until `memtax calibrate` measures them).
    double bandwidth_efficiency = 1.0;
    double matmul_efficiency = 1.0;
    double launch_overhead_s = 0.0;
    bool calibrated = false;
    std::map<std::string, std::string> sources;  // field -> citation
    std::string file;
};

}  // namespace memtax
