#pragma once
// The engine's model of memtax-probe's kernels (kernels/probe/): for a case's kind and shape,
// every buffer the case allocates (exact bytes) and every kernel it launches with its FLOPs,
// the bytes it moves through device memory and its kernel class. `memtax validate` predicts
// each probe case from this and the GPU profile; `memtax calibrate` fits the classes' rates.
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "model/time_model.hpp"
#include "spec/gpu_spec.hpp"
#include "spec/probe_shape.hpp"

namespace memtax {

struct ProbeKernel {
    std::string name;
    KernelClass cls = KernelClass::Stream;
    std::string dtype;  // the matrix rate's dtype (gemm, attention)
    u64 flops = 0;
    u64 bytes = 0;
    u64 steps = 0;  // allreduce: ring steps, 2(n−1)
};

struct ProbeModel {
    std::vector<std::pair<std::string, u64>> buffers;  // in allocation order
    u64 allocated = 0;
    std::vector<ProbeKernel> kernels;  // in launch order
};

// `gpu` gives the L2 size and SM count for the eager softmax's re-read (see the .cpp).
ProbeModel model_probe_case(const std::string& kind, const ProbeShape& s, const GpuSpec& gpu);

// The case's time on `gpu`: Σ kernel_time over its kernels.
struct ProbeTime {
    double seconds = 0;
    double overhead_s = 0, memory_s = 0, compute_s = 0;  // the dominant term of each kernel, summed
    std::string bound;                                   // the largest of the three
    std::vector<KernelTime> kernels;
};
ProbeTime probe_time(const ProbeModel& m, const GpuSpec& gpu);

}  // namespace memtax
