#pragma once
// A runtime profile: how one inference stack (PyTorch + transformers eager or SDPA, vLLM)
// turns a model and a workload into live tensors. Declarative; read from runtimes/*.yaml.
// The op graphs and the memory model interpret it; no number in it is fitted per case.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace memtax {

enum class AttentionKernel { Eager, Fused };
// How the attention mask reaches the kernel.
enum class MaskKind {
    None,            // causal flag only; no mask tensor
    Additive,        // one [B,1,Sq,Skv] tensor per attention kind in the compute dtype (eager)
    BoolWhenNeeded,  // a bool [B,1,Sq,Skv] only when is_causal cannot express it (a sliding
                     // window shorter than the keys), which SDPA converts to the compute dtype
};
// GQA in the attention kernel.
enum class GqaKind {
    Repeat,              // K and V are copied per query head (repeat_kv) before the kernel
    Native,              // the kernel reads KV heads directly
    NativeUnlessMasked,  // native, but repeat_kv when a mask tensor is passed
};
enum class KvLayout {
    Concat,   // each step torch.cat's the new tokens onto the layer's cache (HF DynamicCache)
    InPlace,  // preallocated per sequence, written in place (static cache)
    Paged,    // fixed-size blocks from a pool sized at start-up (vLLM)
};

// Which Python-level references keep tensors alive past their last reader (transformers).
struct KeepsAlive {
    bool layer_input = false;   // the decoder loop variable, until the layer returns
    bool normed_input = false;  // the layer's normed input, until self_attn returns
    bool query_states = false;  // the rotated queries, until self_attn returns
    bool attn_weights = false;  // eager probabilities, returned to the layer
    bool mlp_input = false;     // the MLP's input, until the MLP returns
    bool model_locals = false;  // masks, rotary tables, positions, inputs_embeds, until the final norm
};

// vLLM's start-up parameters (engine arguments) that decide the KV pool.
struct VllmParams {
    u64 block_size = 16;
    u64 gpu_memory_utilization_ppm = 900000;  // parts per million of total device memory
    u64 max_num_batched_tokens = 8192;
    u64 max_num_seqs = 256;
    u64 cudagraph_max_capture_size = 512;  // 0 = CUDA graphs off (enforce_eager)
    std::string sampler_dtype = "fp32";
    // The longest request the engine admits (--max-model-len); 0 = the workload's context.
    u64 max_model_len = 0;
    // --kv-cache-memory-bytes: the KV pool's size, given; 0 = what gpu_memory_utilization leaves.
    u64 kv_cache_memory_bytes = 0;
    // --attention-backend for MLA models (FLASHMLA, FLASHINFER_MLA, CUTLASS_MLA, TRITON_MLA);
    // "" = vLLM's choice for the GPU (vllm/platforms/cuda.py).
    std::string attention_backend;
};

// vLLM's engine arguments as a deployment gives them (a scenario's runtime_settings, the CLI's
// flags); an unset one keeps the runtime profile's. runtimes/ applies them (apply_engine_args).
struct EngineArgs {
    std::optional<u64> gpu_memory_utilization_ppm, max_num_seqs, max_num_batched_tokens, block_size;
    std::optional<u64> max_model_len, kv_cache_memory_bytes;
    std::optional<bool> enforce_eager;
    std::optional<std::string> attention_backend;
    // The field path of the first one given ("runtime_settings.max_num_seqs"), or "".
    std::string first_given() const;
};
// "0.9" -> 900,000 parts per million; nullopt unless a decimal in (0, 1] with at most 6 digits.
std::optional<u64> utilization_ppm(const std::string& text);

struct ContextOverhead {
    u64 bytes = 0;
    std::string source;
};

struct RuntimeSpec {
    std::string name;  // e.g. "hf-sdpa"
    std::string description;
    // The runtime family that executes it ("transformers", "vllm"): runtimes/ owns the list
    // (RuntimeRegistry) and refuses an unknown name at family_pos.
    std::string family = "transformers";
    SourcePos family_pos;
    AttentionKernel attention = AttentionKernel::Fused;
    DType softmax_dtype;                // eager softmax
    std::optional<DType> logits_dtype;  // nullopt: the model's dtype
    MaskKind mask = MaskKind::None;
    GqaKind gqa = GqaKind::Native;
    KvLayout kv_layout = KvLayout::Concat;
    u64 sliding_window_drop = 0;  // a sliding layer keeps window - this many tokens (HF: 1)
    KeepsAlive keeps;
    u64 allocator_round_bytes = 1;                            // the caching allocator's block granularity (PyTorch: 512)
    std::map<std::string, ContextOverhead> context_overhead;  // GPU profile name (or "default")
    std::optional<VllmParams> vllm;
    // The host's side of a step: eager PyTorch dispatches every op from Python (module call, ATen
    // dispatch, kernel launch) while the GPU runs the ones already queued, and prepares each
    // forward's inputs first. Calibrated per runtime and host; absent: the host is never the
    // bottleneck.
    struct HostCost {
        double per_op_s = 0, per_step_s = 0;
        std::string source;
    };
    std::optional<HostCost> host;
    // The host's side of a training step (autograd recording every forward op, the autograd
    // engine queueing the backward's kernels, the optimizer's Python and its launches); absent:
    // the host is never the bottleneck of training.
    struct TrainHostCost {
        double forward_per_step_s = 0;      // the forward's own Python before its first kernel (inputs, masks, rotary tables)
        double forward_per_op_s = 0;        // per forward kernel (a module's Python, autograd recording, the launch)
        double backward_per_op_s = 0;       // per backward kernel
        double optimizer_per_step_s = 0;    // optimizer.step()'s Python before its first launch
        double optimizer_per_launch_s = 0;  // per multi-tensor launch
        std::string source;
    };
    std::optional<TrainHostCost> train_host;
    // Eager PyTorch's own kernels (the time of the launches ops declare, graph/op_graph.hpp), as
    // ratios to the GPU's stream bandwidth: elements per second per byte per second for the
    // element-bound classes, bytes per second per byte per second for the others. Measured on
    // one GPU and taken at the same ratio on others. Absent: every launch streams at the copy
    // bandwidth.
    struct EagerKernels {
        double strided = 1, strided_copy = 1, cat = 1;  // elements/s ÷ stream B/s
        double reduce = 1, softmax = 1;                 // B/s ÷ stream B/s
        double gemv_unaligned = 1;    // cuBLAS's batched GEMV (decode's Q·Kᵀ and P·V) over a key count not a multiple of 8
        double masked_attention = 1;  // a fused prefill given an explicit mask: FLOP/s ÷ the GPU's attention_prefill FLOP/s
        double foreach = 1;           // torch.optim's multi-tensor (foreach) kernels: B/s ÷ stream B/s
        std::string source;
    };
    std::optional<EagerKernels> kernels;
    // Training execution (runtimes used by `estimate --mode train`): dropout masks kept for the
    // backward (attention probabilities and the two residual branches; 1 byte an element), a
    // fused LayerNorm that keeps only its input and fp32 mean and rstd, and recomputation of the
    // attention core (Megatron's selective recomputation) as an option.
    struct Training {
        bool dropout = false, fused_layernorm = false, selective_recompute = false;
        bool sequence_parallel = false;  // may shard the TP-replicated activations over the sequence
        // `main_grads: fp32`: gradients accumulate into an fp32 buffer allocated with the model
        // (Megatron's main_grad, the wgrad GEMM writing into it); `params`: autograd's .grad in
        // the parameters' dtype.
        bool fp32_main_grads = false;
        // `optimizer: fused`: one kernel updates parameters and states (Megatron's and DeepSpeed's
        // FusedAdam); `foreach` (default): torch.optim's multi-tensor ops, one pass each.
        bool fused_optimizer = false;
    };
    Training training;
    SourcePos training_pos;  // where `training:` is (for a family that does not train)
    std::map<std::string, std::string> sources;
    std::string file;

    // The overhead for a GPU profile name: its own entry, else "default".
    const ContextOverhead& overhead_for(const std::string& gpu) const;
};

const char* to_string(AttentionKernel k);
const char* to_string(KvLayout k);
const char* to_string(MaskKind k);
const char* to_string(GqaKind k);

}  // namespace memtax
