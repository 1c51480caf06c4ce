#pragma once
// The per-GPU memory model of an inference step (prefill of a prompt, or one decode step at a
// KV length): weights, KV cache, attention matrix, activation peak, logits, runtime overhead,
// and the fit verdict. Built from plain specs; never sees YAML or JSON.
#include <optional>
#include <string>
#include <vector>

#include "graph/layer_graphs.hpp"
#include "spec/gpu_spec.hpp"
#include "spec/model_spec.hpp"
#include "spec/runtime_spec.hpp"

namespace memtax {

struct Deployment {
    u64 gpus = 1;  // GPUs in total; data-parallel replicas = gpus / (tp · pp)
    u64 tp = 1;    // tensor-parallel degree
    u64 pp = 1;    // pipeline stages (layers split evenly, ceil(L / pp) per stage)
};

struct Workload {
    Mode mode = Mode::Prefill;
    u64 batch = 1;    // sequences in total (split over data-parallel replicas)
    u64 context = 0;  // prefill: prompt tokens; decode: KV length after the step (vLLM: max_model_len)
    RuntimeSpec runtime;  // the inference stack (runtimes/*.yaml)
    std::optional<DType> weight_dtype;   // linear layers; default: the model's dtype
    std::optional<DType> kv_dtype;       // default: the model's dtype
    std::optional<DType> softmax_dtype;  // eager softmax; default: the runtime's (PyTorch upcasts to fp32)
    std::optional<DType> logits_dtype;   // default: the runtime's (transformers: the model's dtype)
    std::optional<u64> logits_kept;      // positions whose logits are computed; 0 = all; default 1
};

// One formula behind a number, for --explain.
struct Term {
    std::string name;
    std::string formula;  // symbols and numbers
    u64 bytes = 0;
};

struct LayerKindRow {
    LayerKind kind;
    u64 count = 0;
    u64 weights_bytes = 0;           // per layer
    u64 kv_cache_bytes = 0;          // per layer, after the step
    u64 attention_matrix_bytes = 0;  // most S×S bytes live at once in the layer
    u64 transient_peak_bytes = 0;    // the layer's own peak, excluding the KV it writes
    std::string peak_op;
};

// Per-GPU shard sizes under tensor parallelism (Megatron-style column/row splits).
struct ShardSizes {
    u64 heads_q = 0, heads_kv = 0, q_dim = 0, kv_dim = 0, inter = 0, vocab = 0;
};

// One GPU's weight bytes by part, and the parameters behind them.
struct WeightBreakdown {
    u64 embedding = 0, lm_head = 0, final_norm = 0;
    u64 attention = 0, mlp = 0, norms = 0;  // per layer
    u64 params_layer = 0, params_other = 0;
};

// Intermediate numbers behind the components, for --explain.
struct EstimateDetail {
    ShardSizes shard;
    WeightBreakdown weights;
    u64 mask_bytes = 0;  // attention masks, live for the whole forward
    u64 kv_excess = 0;   // KV held at the peak beyond the cache kept after the step
    u64 skv = 0;         // keys the first layer attends to
    std::string overhead_source;  // citation of the runtime's context overhead for this GPU
    // Pipeline parallelism: the stage this estimate describes (the one needing the most
    // memory: the first holds the embedding, the last the LM head) and its layers.
    u64 pp_stage = 0;
    u64 stage_first_layer = 0, stage_layers = 0;
};

// vLLM's start-up arithmetic (vllm/v1/worker/gpu_worker.py determine_available_memory,
// vllm/v1/core/kv_cache_utils.py, vllm/v1/kv_cache_interface.py), per GPU.
struct VllmPlan {
    u64 requested_bytes = 0;        // total memory × gpu_memory_utilization
    u64 profile_tokens = 0;         // max_num_batched_tokens of the dummy forward
    u64 sampler_requests = 0;       // rows sampled in the dummy sampler run
    u64 forward_peak_bytes = 0;     // activation peak of the dummy forward
    u64 sampler_peak_bytes = 0;     // activation peak of the dummy sampler run
    u64 cudagraph_pool_bytes = 0;   // activations of the largest captured decode batch
    u64 non_torch_bytes = 0;        // CUDA context, NCCL, library workspaces
    bool kv_memory_positive = false;
    u64 available_kv_bytes = 0;     // requested - weights - activation peak - non-torch - graphs
    u64 block_size = 0;
    u64 page_bytes = 0;             // one block of one layer: 2 · block · kv_heads · head_dim · dtype
    u64 layers_per_block = 0;       // KV tensors a block id spans (layers, or the group size)
    u64 num_blocks = 0;
    u64 blocks_per_request = 0;     // at max_model_len = the workload's context
    u64 max_concurrency_milli = 0;  // num_blocks / blocks_per_request, ×1000, floored
    u64 max_concurrency = 0;        // whole requests
};

struct GraphUse {
    const OpGraph* graph = nullptr;
    Bindings bindings;
    u64 count = 0;  // times the graph runs in the step (layers of that kind in this stage)
    bool is_layer = true;
    LayerKind kind = LayerKind::FullAttention;
};

struct Estimate {
    // Resolved inputs.
    ModelSpec model;
    GpuSpec gpu;
    Deployment deployment;
    Workload workload;  // all optionals filled
    u64 replicas = 1;
    u64 batch_per_replica = 1;
    u64 logits_kept = 1;

    // Per GPU, bytes.
    u64 weights = 0, kv_cache = 0, attention_matrix = 0, activation_peak = 0, logits = 0;
    // KV bytes the cache exposes (its tensors' sizes) — below kv_cache when a view keeps a
    // larger storage alive (transformers' sliding-window slice of the prompt's K/V).
    u64 kv_cache_visible = 0;
    u64 logits_output = 0;  // the logits tensor the step returns: batch · kept · vocab · dtype
    u64 runtime_overhead = 0, total = 0, forward_peak = 0;
    u64 resident_before = 0;  // allocated before the step: weights (+ the existing KV in decode)
    u64 capacity = 0;
    std::string peak_at;  // where the forward peak occurs
    bool fits = false;

    u64 parameters = 0;          // whole model
    u64 parameters_per_gpu = 0;

    std::vector<LayerKindRow> layer_kinds;
    EstimateDetail detail;
    std::optional<VllmPlan> vllm;
    // The graphs of the step as bound for this workload (per layer kind with its layer count,
    // then the head), for the traffic and time model. For vLLM: the step itself, not the
    // start-up profile run.
    std::vector<GraphUse> step_graphs;
};

// Throws InputError for an impossible deployment (TP not dividing heads, ...) and
// OverflowError when a count exceeds 64 bits.
Estimate estimate(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl);

// "KV 71.3 GiB + weights 16.1 GiB = ... exceeds 80.0 GiB usable by 7.4 GiB": the verdict with
// the numbers that decided it.
std::string fit_verdict(const Estimate& e);
// The formula behind every component, with its numbers (--explain).
std::vector<Term> explain_terms(const Estimate& e);

// Whole-model parameter count (no sharding), for golden tests against published counts.
u64 parameter_count(const ModelSpec& model);

std::string format_bytes_gib(u64 bytes);   // "71.3 GiB"
std::string group_digits(u64 v);           // "1,073,741,824" (locale-independent)

}  // namespace memtax
