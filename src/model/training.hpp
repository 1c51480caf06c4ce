#pragma once
// Training memory on one GPU: parameters, gradients and optimizer states under a precision
// policy and ZeRO stage over the data-parallel replicas; the activations autograd saves, from the
// runtime's op graphs (Plan::train), times the micro-batches a pipeline stage holds in flight;
// the backward pass's peak and the optimizer step's. Korthikanti et al. 2022's closed forms are
// here too, as the cross-check the field uses.
#include <string>
#include <vector>

#include "model/plan.hpp"

namespace memtax {

enum class Optimizer : std::uint8_t { AdamW, Adam, Sgd, SgdMomentum };
const char* to_string(Optimizer o);
// "bf16": parameters, gradients and optimizer states in the model's dtype (a bf16 model trained
// as PyTorch does by default). "mixed": the model's dtype for parameters and gradients, fp32
// master weights and fp32 optimizer states (Adam: 2 + 2 + 4 + 4 + 4 = 16 bytes per parameter).
enum class Precision : std::uint8_t { ModelDtype, Mixed };
const char* to_string(Precision p);

// "none" | "selective" | "full"; "adamw" | "adam" | "sgd" | "sgd-momentum" (InputError naming
// `field` otherwise).
Recompute recompute_from(const std::string& s, const std::string& field);
Optimizer optimizer_from(const std::string& s, const std::string& field);

struct TrainSpec {
    Recompute recompute = Recompute::None;
    u64 zero = 0;           // ZeRO stage 0-3 over the data-parallel replicas
    u64 micro_batches = 1;  // per optimizer step (gradient accumulation, or the pipeline's micro-batches)
    Optimizer optimizer = Optimizer::AdamW;
    Precision precision = Precision::ModelDtype;
    bool sequence_parallel = false;  // Megatron's sequence parallelism over the TP group (runtimes that model it)
};

// Per GPU, bytes; the stage reported is the one needing the most memory.
struct TrainEstimate {
    std::shared_ptr<const ModelSpec> model_spec;
    GpuSpec gpu;
    Deployment deployment;
    Workload workload;  // runtime and dtypes; batch = sequences per micro-batch, context = tokens each
    TrainSpec spec;
    u64 dp = 1, stage = 0, stage_layers = 0, in_flight = 1;
    u64 parameters = 0, parameters_per_gpu = 0;
    u64 weight_bytes = 0, gradient_bytes = 0, optimizer_bytes = 0, master_weight_bytes = 0;
    u64 saved_activation_bytes = 0, forward_peak_bytes = 0, backward_peak_bytes = 0, optimizer_step_bytes = 0, train_peak_bytes = 0;
    u64 layer_saved_bytes = 0;  // one decoder layer, one micro-batch, no recomputation
    u64 runtime_overhead = 0, resident_before = 0, total = 0, capacity = 0;
    bool fits = false;
    std::string peak_at;                // where the step's peak is (the backward phase, or "optimizer step")
    std::string backward_peak_at;       // where the backward peak is
    std::vector<Component> components;  // each term with its formula
};

TrainEstimate estimate_train(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl, const TrainSpec& spec);

// Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
// (arXiv 2205.05198), Table 2: activation bytes per transformer layer with 16-bit activations,
// s tokens, micro-batch b, hidden h, a heads, tensor-parallel t: sbh(10 + 24/t + 5as/(ht))
// (t = 1: sbh(34 + 5as/h)); with sequence parallelism sbh(34/t + 5as/(ht)); selective
// recomputation drops the 5as/(ht) term. Exact when t divides the terms (else rounded down).
u64 korthikanti_layer_bytes(u64 s, u64 b, u64 h, u64 a, u64 t, bool sequence_parallel, bool selective);

}  // namespace memtax
