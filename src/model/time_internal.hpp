#pragma once
// The time model's own pieces, shared by its inference steps (time_model.cpp) and training steps
// (train_time.cpp); not an interface for other layers.
#include <string>
#include <vector>

#include "model/time_model.hpp"

namespace memtax {

// The peak matrix rate of a dtype on `g` (bf16/fp16 share), and its name in `name`.
double peak_rate(const GpuSpec& g, const std::string& dtype, std::string* name = nullptr);

// The rates one estimate's steps run at: the stream and matrix classes, the runtime's host
// dispatch and eager kernel classes.
struct Rates {
    double bw = 0, act_rate = 0, peak_act = 0, launch = 0;
    double host_op = 0, host_step = 0;  // the runtime's host dispatch (0: not modelled)
    bool host_per_launch = false;       // host_op is paid per kernel launched (training), not per op of the graph
    double queued = 0;                  // a kernel queued right behind another (declared launches)
    RuntimeSpec::EagerKernels eager;    // eager PyTorch's kernel classes (ratios 1 when the runtime has none)
    bool has_eager = false;
    std::string act_name;
};
Rates rates_for(const Estimate& e);
// One declared launch: the queued-kernel cost plus its bytes or elements at its class's rate.
double launch_seconds(const Rates& r, const LaunchTraffic& l);
KindTime& kind_row(std::vector<KindTime>& rows, const std::string& name);
KindTime& communication_row(std::vector<KindTime>& rows, const std::string& name);
// One forward step of an estimate's step graphs: GPU kernels, the host's dispatch as a second
// clock, TP/EP/PP communication. `op_seconds_out`: each step graph's ops' GPU seconds for one run
// (a mask read outside the graph joins its first op), in schedule order.
StepTime step_time(const Estimate& e, const Topology& topo, const Rates& r, std::vector<std::vector<double>>* op_seconds_out = nullptr);

}  // namespace memtax
