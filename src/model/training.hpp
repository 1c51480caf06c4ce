#pragma once
// Training memory on one GPU: parameters, gradients and optimizer states under a precision
// policy and ZeRO stage over the data-parallel replicas; the activations autograd saves, from the
// runtime's op graphs (Plan::train), times the micro-batches a pipeline stage holds in flight;
// the backward pass's peak and the optimizer step's. Korthikanti et al. 2022's closed forms are
// here too, as the cross-check the field uses.
#include <optional>
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

// What the training loop holds through the backward: only the loss (`loss = model(...).loss`,
// as the Trainer does), or the whole output (`out = model(...); out.loss.backward()`: its
// logits, and its cache when use_cache is on).
enum class Loop : std::uint8_t { Loss, Outputs };
const char* to_string(Loop l);
Loop loop_from(const std::string& s, const std::string& field);
// Who shards under ZeRO: DeepSpeed (reduction buckets, a module's parameters gathered at a
// time) or PyTorch's FSDP2 (`fully_shard` on every decoder layer and the root: ZeRO-3 by
// another name, a layer gathered at a time).
enum class Sharder : std::uint8_t { DeepSpeed, Fsdp };

// ZeRO-Offload (DeepSpeed's offload_optimizer / offload_param with device cpu).
enum class Offload : std::uint8_t { None, Optimizer, All };

// LoRA fine-tuning (peft's LoraConfig): adapters of `rank` on the linear modules named in
// `targets`, the base frozen (QLoRA: the base in nf4/nf4-dq through the workload's weight dtype).
struct LoraSpec {
    u64 rank = 16, alpha = 32;
    std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
};

struct TrainSpec {
    Recompute recompute = Recompute::None;
    u64 zero = 0;           // ZeRO stage 0-3 over the data-parallel replicas
    u64 micro_batches = 1;  // per optimizer step (gradient accumulation, or the pipeline's micro-batches)
    Optimizer optimizer = Optimizer::AdamW;
    Precision precision = Precision::ModelDtype;
    bool sequence_parallel = false;  // Megatron's sequence parallelism over the TP group (runtimes that model it)
    Loop loop = Loop::Loss;
    bool use_cache = true;    // Loop::Outputs: the output carries the cache (transformers' configs default use_cache to true)
    bool set_to_none = true;  // optimizer.zero_grad(set_to_none=...): false keeps the gradients allocated between steps
    Sharder sharder = Sharder::DeepSpeed;
    // DeepSpeed's defaults below: deepspeed/runtime/zero/config.py (DeepSpeedZeroConfig).
    u64 reduce_bucket = 500'000'000;   // elements (DeepSpeed's reduce_bucket_size)
    std::optional<bool> overlap_comm;  // DeepSpeed's default: on for ZeRO-3 only (a second bucket under ZeRO-2)
    u64 prefetch_bucket = 50'000'000;  // elements (DeepSpeed's stage3_prefetch_bucket_size)
    u64 sub_group = 1'000'000'000;     // elements (DeepSpeed's sub_group_size: ZeRO-3 steps one at a time)
    std::optional<bool> fp32_grads;    // unset: the runtime profile's training.main_grads
    std::optional<LoraSpec> lora;      // set: LoRA fine-tuning
    Offload offload = Offload::None;
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
    u64 layer_saved_bytes = 0;     // one decoder layer, one micro-batch, no recomputation
    u64 trainable_parameters = 0;  // this GPU's (LoRA: the adapters')
    u64 host_bytes = 0;            // in host memory (ZeRO-Offload), not counted in the GPU's total
    u64 gradients_resident = 0;    // gradients allocated before the forward (fp32 main grads, set_to_none=False, ZeRO-3's partition)
    u64 gradient_buffers = 0;      // what the backward's sharding adds (ZeRO's buckets and gradient partition, FSDP's sharded gradients)
    u64 gathered_bytes = 0;        // parameters gathered while a module or layer runs (ZeRO-3, FSDP), prefetch included
    u64 prefetch_bytes = 0;        // of gathered_bytes: ZeRO-3's prefetch bucket
    u64 fp32_gradient_bytes = 0;   // the fp32 copy of the gradients the optimizer step updates the master weights from
    u64 outputs_kept = 0;          // the output the loop holds (logits, cache), included in the saved activations
    u64 runtime_overhead = 0, resident_before = 0, total = 0, capacity = 0;
    bool fits = false;
    std::string peak_at;                // where the step's peak is (the backward phase, or "optimizer step")
    std::string backward_peak_at;       // where the backward peak is
    std::vector<Component> components;  // each term with its formula
};

TrainEstimate estimate_train(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl, const TrainSpec& spec);

// The peers' own closed forms, as their code computes them (floor where they take int()):
// DeepSpeed's estimate_zero2_model_states_mem_needs / estimate_zero3_model_states_mem_needs
// without offload (deepspeed/runtime/zero/stage_1_and_2.py, stage3.py): 2P + 18P/N and
// 4L + 18P/N bytes per GPU (L: the largest module's parameters); Megatron-LM's
// theoretical_memory_usage.py: 18 bytes per parameter of the shard, 6 + 12/DP with the
// distributed optimizer.
u64 deepspeed_zero2_gpu_bytes(u64 params, u64 gpus);
u64 deepspeed_zero3_gpu_bytes(u64 params, u64 largest_layer_params, u64 gpus);
u64 megatron_weight_and_optimizer_bytes(u64 params, u64 dp, bool distributed_optimizer);

// Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
// (arXiv 2205.05198), Table 2: activation bytes per transformer layer with 16-bit activations,
// s tokens, micro-batch b, hidden h, a heads, tensor-parallel t: sbh(10 + 24/t + 5as/(ht))
// (t = 1: sbh(34 + 5as/h)); with sequence parallelism sbh(34/t + 5as/(ht)); selective
// recomputation drops the 5as/(ht) term. Exact when t divides the terms (else rounded down).
u64 korthikanti_layer_bytes(u64 s, u64 b, u64 h, u64 a, u64 t, bool sequence_parallel, bool selective);

}  // namespace memtax
