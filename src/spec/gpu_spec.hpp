#pragma once
// Plain, validated description of one GPU kind, read from a memtax YAML profile. Every number
// carries its source in `sources` (the loader refuses a number without one).
#include <map>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/units.hpp"

namespace memtax {

// What `memtax calibrate` measured for one class of kernel on this GPU (from the probe): a
// fixed cost per kernel, the achievable bandwidth and the achievable FLOP rate. 0 = not fitted
// (the time model falls back to the profile's efficiencies).
struct KernelRates {
    double overhead_s = 0;
    double bandwidth = 0;  // bytes/s
    double flops = 0;      // FLOP/s
    double queued_s = 0;   // "launch" class: cost of a kernel queued right behind another
    // "allreduce" class: NCCL's low-latency protocol line (fixed cost, bus bandwidth); the
    // collective takes the faster of it and the bandwidth line above, as NCCL's tuner picks.
    double ll_overhead_s = 0, ll_bandwidth = 0;
    // "allreduce": latency per ring step (a ring all-reduce over n GPUs takes 2(n−1) steps), per line.
    double step_s = 0, ll_step_s = 0;
    u64 cases = 0;         // kernels the fit used
    double rms_error = 0;  // relative, of the fit on those kernels
};

// The time model's efficiencies for a GPU profile that states none: what memtax's probe measured
// on an H100 SXM (a 2 GiB device copy at 90% of peak bandwidth, an 8192³ bf16 GEMM at 76% of the
// dense peak; docs/accuracy.md) and PyTorch eager's per-kernel launch cost.
inline constexpr double kDefaultBandwidthEfficiency = 0.90;
inline constexpr double kDefaultMatmulEfficiency = 0.75;
inline constexpr double kDefaultLaunchOverheadS = 4.0e-6;

struct GpuSpec {
    std::string name;                  // catalog key, e.g. "h100-sxm"
    std::string display_name;          // e.g. "NVIDIA H100 SXM5 80GB"
    std::vector<std::string> aliases;  // other names it resolves from
    std::string vendor;
    std::string source;

    u64 memory_bytes = 0;         // device memory as nvidia-smi/datasheet states it
    u64 usable_memory_bytes = 0;  // what cudaMemGetInfo reports as total (allocatable); = memory_bytes if unmeasured
    BytesPerSecond hbm_bandwidth;
    std::map<std::string, FlopsPerSecond> peak_flops;  // dense (no 2:4 sparsity), per dtype name
    u64 l2_bytes = 0;                                  // 0 = unknown
    u64 sm_count = 0;                                  // SMs (NVIDIA) or CUs (AMD); 0 = unknown
    unsigned compute_capability = 0;                   // NVIDIA major·10 + minor (90 = Hopper, 100 = Blackwell); 0 = not stated
    BytesPerSecond interconnect_bandwidth;             // per GPU, as vendors state it; 0 = none
    // A full mesh of direct links per GPU (AMD's Infinity Fabric: 7 on an 8-GPU MI300X board),
    // interconnect_bandwidth being all of them together; 0 = a switched fabric (NVSwitch, PCIe),
    // where one GPU's bandwidth reaches any peer.
    u64 interconnect_mesh_links = 0;
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
    // Calibrated kernel classes ("stream", "gemm_bf16", "gemm_fp16", "gemm_fp8_e4m3",
    // "attention_prefill", "attention_decode") and where they came from (measurements, gpu,
    // driver, date, command); empty for a datasheet profile.
    std::map<std::string, KernelRates> kernel_rates;
    std::map<std::string, std::string> calibration;
    std::map<std::string, std::string> sources;  // field -> citation
    // Non-fatal notes about the profile (no efficiency: block, so the defaults below apply).
    std::vector<std::string> warnings;
    std::string file;
};

}  // namespace memtax
