#pragma once
// Compile, then evaluate. A Plan is one (model, GPU, runtime, deployment, dtype policy)
// compiled once: shards checked, every layer type's op graph built from its blocks, the
// runtime family's fixed costs (start-up pools, weights) computed. Evaluating a (mode, batch,
// context) point returns plain numbers and a status: no exceptions, no allocations, no strings.
// The full Estimate (named components with formulas, family sections, where the peak is, the
// step's graphs for the time model) is built only for rows someone prints, and its numbers are
// the point's own.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtimes/runtime.hpp"

namespace memtax {

// The workload and runtime choices of an estimate. Engine errors name these fields by path
// (`workload.context`, `deployment.tp`), so a scenario file and the command line share them.
struct Workload {
    Mode mode = Mode::Prefill;
    u64 batch = 1;                       // sequences in total (split over data-parallel replicas)
    u64 context = 0;                     // prefill: prompt tokens; decode: KV length after the step (vLLM: max_model_len)
    u64 decode_step = 1;                 // decode: 1 = the first step after the prefill, ≥ 2 = a later one (Point)
    RuntimeSpec runtime;                 // the inference stack (runtimes/*.yaml)
    std::optional<DType> weight_dtype;   // linear layers; default: the model's dtype
    std::optional<DType> kv_dtype;       // default: the model's dtype
    std::optional<DType> softmax_dtype;  // eager softmax; default: the runtime's (PyTorch upcasts to fp32)
    std::optional<DType> logits_dtype;   // default: the runtime's (transformers: the model's dtype)
    std::optional<u64> logits_kept;      // positions whose logits are computed; 0 = all; default 1
    bool allow_long_context = false;     // size a context beyond the model's max_context
};

// Every per-GPU number of a point, and the description of it.
struct Estimate : PointResult, Breakdown {
    // Resolved inputs (the model and GPU are the plan's, shared rather than copied per row).
    const ModelSpec& model() const { return *model_spec; }
    const GpuSpec& gpu() const { return *gpu_spec; }
    std::shared_ptr<const ModelSpec> model_spec;
    std::shared_ptr<const GpuSpec> gpu_spec;
    Deployment deployment;
    Workload workload;  // all optionals filled
    u64 replicas = 1;
    u64 parameters = 0;          // whole model
    u64 parameters_per_gpu = 0;  // this GPU's stage and shards
    // Pipeline parallelism: the stage described (the one needing the most memory: the first
    // holds the embedding, the last the LM head) and its layers.
    u64 pp_stage = 0, stage_first_layer = 0, stage_layers = 0;
    ShardSizes shard;
    std::shared_ptr<const void> plan;  // keeps the graphs of step_graphs alive
};

class Plan {
public:
    // Throws InputError (naming the field path) for an impossible deployment or dtype policy.
    // The workload's mode, batch and context are not part of a plan.
    static Plan compile(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl,
                        const BlockRegistry& blocks = BlockRegistry::builtin(),
                        const RuntimeRegistry& runtimes = RuntimeRegistry::builtin());

    // One point: plain numbers and a status. Never throws, never allocates.
    PointResult evaluate(const Point& p) const noexcept;
    // The full description of a point (throws InputError/OverflowError where evaluate returns a
    // bad status, naming the field or the term).
    // Detail::Steps describes only what the time model reads (runtimes/runtime.hpp: Detail).
    Estimate estimate(const Point& p, Detail detail = Detail::Full) const;

    const Workload& workload() const;  // the resolved choices (dtypes filled)

    // Training: each pipeline stage compiled (one, or the first and last: a middle stage has the
    // first's layers and neither end), with one micro-batch's activation memory.
    struct StageTrain {
        u64 stage = 0, first_layer = 0, layers = 0;
        u64 parameters = 0, weights = 0;  // this GPU's shard of the stage
        bool has_embedding = false, has_head = false;
        TrainActivations act;
    };
    std::vector<StageTrain> train(const TrainPoint& micro_batch) const;
    u64 replicas() const;
    const GpuSpec& gpu() const;
    const Deployment& deployment() const;
    // The runtime family's plan of the first stage: its scheduler, admission and wording.
    const RuntimePlan& runtime() const;
    Point point_of(const Workload& wl) const { return Point{wl.mode, wl.batch, wl.context, wl.decode_step}; }

private:
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

// compile + estimate of the workload's own point.
Estimate estimate(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl);

// Whole-model parameter count (no sharding), read off the blocks' graphs.
u64 parameter_count(const ModelSpec& model, const BlockRegistry& blocks = BlockRegistry::builtin());
// Parameters one token uses: the routed experts count experts_per_token of num_experts (the
// embedding and head count whole, as model cards state "active" counts).
u64 active_parameter_count(const ModelSpec& model, const BlockRegistry& blocks = BlockRegistry::builtin());

}  // namespace memtax
