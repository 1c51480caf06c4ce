#pragma once
// Plain, validated description of a decoder-only model (dense or mixture-of-experts; attention,
// latent attention, state-space or hybrid layers), read from a memtax YAML profile or a Hugging
// Face config.json. No model logic lives here.
#include <map>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace memtax {

enum class NormKind { RMSNorm, LayerNorm };
const char* to_string(NormKind k);

// One decoder layer: a token mixer and a channel mixer, each named by its block variant
// (src/blocks/; the engine checks the names against its registry).
struct LayerSpec {
    std::string token_mixer = "full_attention";  // full_attention | sliding_attention | mla | sparse_attention | mamba2 | mamba
    std::string channel_mixer = "gated_mlp";     // gated_mlp | mlp | moe | none
    friend bool operator==(const LayerSpec&, const LayerSpec&) = default;
};

// Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434 §2.1): K and V are rebuilt from a
// compressed latent of kv_lora_rank channels plus one shared rotary key of qk_rope_head_dim.
struct MlaSpec {
    u64 q_lora_rank = 0;  // 0: queries are projected directly (DeepSeek-V2-Lite)
    u64 kv_lora_rank = 0;
    u64 qk_rope_head_dim = 0;
    u64 qk_nope_head_dim = 0;
    u64 v_head_dim = 0;
    bool enabled() const { return kv_lora_rank != 0; }
    u64 qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
    friend bool operator==(const MlaSpec&, const MlaSpec&) = default;
};

// Mixture of experts: each token is routed to experts_per_token of num_experts gated MLPs of
// intermediate_size; shared experts see every token.
struct MoeSpec {
    u64 num_experts = 0;
    u64 experts_per_token = 0;
    u64 intermediate_size = 0;             // per routed expert
    u64 shared_intermediate_size = 0;      // the shared expert MLP's width (DeepSeek: n_shared · moe width); 0 = none
    bool router_bias = false;              // gpt-oss
    bool expert_bias = false;              // gpt-oss: biases on every expert's projections
    bool score_correction_bias = false;    // DeepSeek-V3: e_score_correction_bias, fp32 [E]
    bool shared_expert_gate = false;       // Qwen2-MoE: a sigmoid gate [1, hidden] on the shared expert
    std::string router_score = "softmax";  // softmax | sigmoid
    // How transformers executes the routed experts: "loop" (a Python loop over the experts hit,
    // gathering their tokens) or "grouped" (one grouped GEMM over tokens sorted by expert).
    std::string dispatch = "grouped";
    // The dtype of the routing weights the experts are scaled by: fp32 (Mixtral, DeepSeek keep the
    // router's fp32 scores) or the compute dtype (Qwen3-MoE, Jamba, gpt-oss cast them back); the
    // weighted expert outputs take that dtype.
    bool fp32_routing_weights = true;
    // Which layers are MoE: from first_dense_layers on, those with index % layer_period ==
    // layer_offset (DeepSeek: first_k_dense_replace; Jamba: expert_layer_period/offset).
    u64 first_dense_layers = 0, layer_period = 1, layer_offset = 0;
    bool enabled() const { return num_experts != 0; }
    friend bool operator==(const MoeSpec&, const MoeSpec&) = default;
};

// A selective state-space mixer (Mamba-1: arXiv 2312.00752; Mamba-2: arXiv 2405.21060).
struct SsmSpec {
    std::string kind;     // "mamba2" | "mamba"
    u64 state_size = 0;   // d_state
    u64 conv_kernel = 0;  // d_conv
    u64 inner_size = 0;   // d_inner = expand · hidden
    u64 num_heads = 0;    // Mamba-2 heads (d_inner / head_dim)
    u64 head_dim = 0;
    u64 n_groups = 1;  // Mamba-2 B/C groups
    u64 chunk_size = 256;
    u64 dt_rank = 0;  // Mamba-1
    bool conv_bias = true, proj_bias = false;
    bool enabled() const { return !kind.empty(); }
    friend bool operator==(const SsmSpec&, const SsmSpec&) = default;
};

// Attention details that change tensors or parameters without changing what is cached.
struct AttentionExtras {
    bool qk_norm = false;           // an RMSNorm over head_dim on q and k (Qwen3, Gemma-3)
    u64 softcap = 0;                // tanh soft-capping of the scores, cap value (Gemma-2: 50); 0 = none
    u64 final_softcap = 0;          // of the logits (Gemma-2: 30)
    bool sinks = false;             // a learned sink logit per head joins the softmax (gpt-oss)
    bool sandwich_norm = false;     // norms after the mixers too: 4 per layer (Gemma-2/3)
    bool scale_embeddings = false;  // embeddings × sqrt(hidden) (Gemma)
    u64 rotary_tables = 1;          // cos/sin tables a forward builds: Gemma-3 keeps a local and a global one
    // Sparse attention (sparse_attention layers): each query attends `local` recent keys, the
    // first `global` keys, and `random_blocks` blocks of `block` keys (BigBird, Longformer).
    u64 sparse_local = 0, sparse_global = 0, sparse_random_blocks = 0, sparse_block = 64;
    friend bool operator==(const AttentionExtras&, const AttentionExtras&) = default;
};

// A layer variant's own parameters as a profile gives them: a top-level mapping of exact
// integers (true/false read as 1/0), each with its line. The engine checks them against the
// variant that declares the group (src/blocks/block.hpp: OwnParams).
struct ParamGroup {
    SourcePos pos;
    std::map<std::string, std::pair<u64, SourcePos>> values;
};

struct ModelSpec {
    std::string name;                  // catalog key, e.g. "llama-3.1-8b"
    std::string display_name;          // e.g. "Llama-3.1-8B"
    std::vector<std::string> aliases;  // other names it resolves from (HF ids, older spellings)
    std::string family;                // llama | mistral | qwen2
    std::string source;                // where the config values come from

    u64 num_layers = 0;
    u64 hidden_size = 0;
    u64 num_attention_heads = 0;
    u64 num_key_value_heads = 0;
    u64 head_dim = 0;
    u64 intermediate_size = 0;
    u64 vocab_size = 0;
    u64 max_context = 0;
    bool tie_word_embeddings = false;
    NormKind norm = NormKind::RMSNorm;
    std::string activation = "silu";
    bool gated_mlp = true;
    bool qkv_bias = false;  // biases on q/k/v projections (Qwen2)
    bool o_bias = false;
    bool mlp_bias = false;
    // One fused q/k/v projection and one fused gate/up projection (Phi-3): q, k, v (and gate, up)
    // are views of one output, which stays alive while any of them is referenced.
    bool fused_projections = false;
    // The LM head's output is upcast to fp32 by the model itself (Mamba2ForCausalLM: .float()).
    bool fp32_logits = false;
    u64 sliding_window = 0;  // tokens; 0 = none
    // chunked_attention layers (Llama-4): a query attends only the keys of its own chunk of this
    // many tokens (positions [⌊i/C⌋·C, i]); 0 = none.
    u64 attention_chunk_size = 0;
    std::vector<LayerSpec> layers;  // one per layer, in order
    DType dtype;
    MlaSpec mla;
    MoeSpec moe;
    SsmSpec ssm;
    AttentionExtras attn;
    // Weights as the checkpoint ships them, when not in `dtype`: the linear layers' (DeepSeek-V3:
    // fp8-b128) and the routed experts' (gpt-oss: mxfp4). Empty = dtype. --weight-dtype overrides.
    std::string shipped_linear_dtype, shipped_expert_dtype;
    // A multimodal checkpoint's vision encoder (and its projector): loaded with the model and held
    // in `dtype` on the first pipeline stage, split over TP as vLLM's default
    // mm_encoder_tp_mode "weights" does; a text request never runs it. 0 = none or not modelled.
    u64 vision_encoder_parameters = 0;
    std::string vision_encoder_source;
    // Parameters of layer variants that read a subtree of their own, by group name.
    std::map<std::string, ParamGroup> own_params;

    u64 stated_parameter_count = 0;  // the officially stated count (0 = not given)
    std::string stated_parameter_source;
    u64 stated_active_parameter_count = 0;  // MoE: parameters a token uses (same source)

    // Where each field came from, so a later check (e.g. --tp vs heads) can cite file:line.
    std::string file;
    std::map<std::string, SourcePos> positions;
    SourcePos pos_of(const std::string& field) const;
    bool uses_channel(const std::string& name) const;
};

// The engine walks layers one by one; no real model is within a thousandth of this.
constexpr u64 kMaxLayers = 1'000'000;
// Throws InputError unless 0 < num_layers <= kMaxLayers (checked before per-layer lists are built).
void check_layer_count(u64 num_layers, const SourcePos& pos, const std::string& field);

// The channel mixer of layer i: "moe" where the MoE placement says so, else the dense MLP
// (`dense`: gated_mlp | mlp | none).
std::string channel_mixer_for(const ModelSpec& m, u64 i, const std::string& dense);

// Cross-field checks shared by every loader: heads divide hidden when head_dim is implied,
// kv heads divide heads, layers match num_layers, window only with sliding layers.
void validate_model(const ModelSpec& m);

}  // namespace memtax
