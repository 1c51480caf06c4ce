#pragma once
// Blocks: the parts a decoder layer is made of. A layer is a token mixer (attention variants,
// latent attention, state-space layers) plus a channel mixer (dense MLP, mixture of experts, none). Each variant is
// one file in this folder that declares its parameters, its per-sequence cached state and its
// op graph (every op with its FLOPs, weights and temporaries, written where the op is
// created), for each runtime execution it supports; `registry.cpp` lists the built-in ones.
// The weights and cache bytes of a model are read back from these graphs (graph/op_graph.hpp:
// weight_bytes, cache_bytes), the same graphs the liveness pass and the time model use.
// TEMPLATE.md shows how to add one.
#include <string>
#include <string_view>
#include <vector>

#include "graph/op_graph.hpp"
#include "spec/model_spec.hpp"
#include "spec/runtime_spec.hpp"

namespace memtax {

// How a deployment splits a layer: the tensor- and expert-parallel degrees, and the vocabulary
// shard the embedding and LM head keep. Each variant derives its own per-GPU widths from these
// (its `check_split` says which degrees it can take).
struct ShardSizes {
    u64 tp = 1;
    u64 ep = 1;
    u64 vocab = 0;  // ceil(vocab_size / tp): vocab-parallel embedding and LM head
};

// Whose modules execute a block is an *execution*, named by the runtime family that runs it
// (runtimes/: "transformers" for eager PyTorch modules with a DynamicCache, "vllm" for vLLM's
// fused layers writing a paged KV pool). A variant declares one graph per execution it supports
// (`Execution` below); the engine never branches on which execution it is.
// What a block builder sees. The runtime's knobs (kernel, keep-alive references, GQA and mask
// handling) are in `runtime`.
struct BlockEnv {
    const ModelSpec& model;
    const ShardSizes& shard;
    const RuntimeSpec& runtime;
    std::string_view execution;  // the execution being built ("transformers", "vllm", ...)
    // The dtypes the graph is built with (constant conditions such as "the softmax is already
    // in the compute dtype" are decided when the graph is built).
    const std::array<DType, kDtypeRoles>& dtypes;
    const DType& dtype(DtypeRole r) const { return dtypes[static_cast<size_t>(r)]; }
};

// Where a mixer sits in its layer.
struct MixerIO {
    int x = -1;                           // its input: the normed hidden states [B, Sq, hidden]
    std::vector<int> holds_last;          // tensors the layer keeps referenced until the mixer's last op
    bool output_is_layer_output = false;  // its output is the layer's (persistent) output
};

// The state a token mixer keeps per sequence between steps. Its tensors in the graph have
// size elements_per_token · B · tokens; the runtime's cache layout decides the tokens.
struct CacheSpec {
    u64 elements_per_token = 0;  // per GPU, summed over its tensors (K and V: 2 · kv_dim)
    u64 tensors = 0;             // tensors sharing it evenly (K, V: 2)
    u64 window = 0;              // tokens kept; 0 = every token
    // A fixed state per sequence instead of per-token entries (state-space layers): elements
    // per GPU, summed over its tensors, whatever the context.
    u64 elements_per_sequence = 0;
    // Keys each query attends at most (sparse attention: local + global + random blocks); 0 =
    // every cached key. The cache still keeps every token.
    u64 attend_cap = 0;
    // How the cache is kept, for listings and vLLM's spec: "kv" (K and V per head), "latent"
    // (MLA's compressed latent + rotary key), "state" (conv + SSM state).
    const char* layout = "kv";
    // The window is a chunk (chunked_attention): a query attends only the keys of its own chunk
    // of `window` tokens, not the last `window` keys (vLLM's ChunkedLocalAttentionSpec).
    bool chunked = false;
};

// A parameter a variant reads, for its documentation and the check that the model has it.
struct ParamDecl {
    const char* name;
    const char* description;
    u64 (*value)(const ModelSpec&);  // 0 = missing
};

// A variant's graph under one execution.
struct Execution {
    const char* name;  // "transformers", "vllm", or a runtime family's own
    // Appends the mixer's ops to `g`; returns its output [B, Sq, hidden].
    int (*build)(OpGraph& g, const BlockEnv& env, const MixerIO& io);
    // Token mixers: the state kept per sequence under this execution (channel mixers: null).
    CacheSpec (*cache)(const BlockEnv&) = nullptr;
};

// A variant's own parameters: the keys of a mapping named `group` at the top of a model profile
// (e.g. `toy_recurrent: {state: 16}`), read as exact integers (true/false as 1/0). The engine
// checks them against this declaration when a model uses the variant: an undeclared key, a
// missing required one, or a group no layer of the model reads is refused at its line.
struct OwnParam {
    const char* key;
    const char* description;
    bool required = true;
    u64 fallback = 0;  // when not required and absent
};
struct OwnParams {
    const char* group = nullptr;  // null: the variant reads no subtree of its own
    std::vector<OwnParam> keys;
    // The value of `key` for model `m` (its fallback when absent); InternalError for an
    // undeclared key (a variant asking for what it never declared).
    u64 value(const ModelSpec& m, const char* key) const;
};

// A `compare` technique: a rewrite of a model so that its layers use a variant. Its name, with
// an optional "-N" argument (`argument` says what N is; null: it takes none).
struct Technique {
    const char* name;
    const char* argument = nullptr;
    u64 fallback = 0;  // the argument when not given
    // Rewrites `m` (a copy of the base model) and returns one line saying what it became;
    // InputError (field "compare.technique") when the model cannot take it.
    std::string (*apply)(ModelSpec& m, u64 argument) = nullptr;
    // As listed: "sliding[-W]".
    std::string syntax() const;
};

// What both kinds of variant declare besides their graphs: their own YAML parameters, their
// tensor-parallel rule, their label in model summaries, and the techniques that rewrite a model
// into them. All optional; a variant that leaves them out reads only ModelSpec's common fields,
// splits under any TP, is labelled by its name and has no technique.
struct VariantHooks {
    OwnParams own;
    // Refuses a TP (or EP) degree its per-GPU widths do not split into: InputError naming
    // deployment.tp / deployment.ep. Null: it splits under any degree.
    void (*check_split)(const ModelSpec& m, u64 tp, u64 ep) = nullptr;
    // How a model summary names it ("GQA", "sliding 4096", "MoE 58/61 layers, 256 experts
    // top-8"), given the model and the number of layers using it. Null: its name.
    std::string (*label)(const ModelSpec& m, u64 layers) = nullptr;
    std::vector<Technique> techniques;
};

struct TokenMixer {
    const char* name;  // as in model profiles and HF layer_types
    const char* summary;
    std::vector<ParamDecl> params;
    std::vector<Execution> executions;  // one entry per execution it has a graph for
    VariantHooks hooks = {};
    // Channels of the rotary cos/sin tables a forward builds for it (per position, each of cos
    // and sin); null: it uses none.
    u64 (*rotary_width)(const ModelSpec& m) = nullptr;
    // The entry for `execution`, or null.
    const Execution* under(std::string_view execution) const;
};

struct ChannelMixer {
    const char* name;
    const char* summary;
    std::vector<ParamDecl> params;
    std::vector<Execution> executions;
    VariantHooks hooks = {};
    // It spreads whole experts over an expert-parallel group (deployment.ep > 1 needs one).
    bool expert_parallel = false;
    const Execution* under(std::string_view execution) const;
};

// The variants an engine can build. `builtin()` holds every variant in this folder; a copy can
// be extended (a test's toy variant, a plug-in).
class BlockRegistry {
public:
    static const BlockRegistry& builtin();
    void add(TokenMixer m);
    void add(ChannelMixer m);
    // InputError naming `field` (e.g. "layers[3].token_mixer") with the valid names.
    const TokenMixer& token_mixer(const std::string& name, const std::string& field) const;
    const ChannelMixer& channel_mixer(const std::string& name, const std::string& field) const;
    const std::vector<TokenMixer>& token_mixers() const { return token_; }
    const std::vector<ChannelMixer>& channel_mixers() const { return channel_; }

private:
    std::vector<TokenMixer> token_;
    std::vector<ChannelMixer> channel_;
};

// A layer's two variants under one execution, checked: both exist, both have a graph for the
// execution (else InputError: "model.layers[i].token_mixer: ... has no vllm execution") and find
// their parameters in the model.
struct LayerBlocks {
    const Execution& token;
    const Execution& channel;
};
LayerBlocks layer_blocks(const BlockRegistry& reg, const ModelSpec& m, size_t layer, std::string_view execution);

// What the variants of a model say about it as a whole, checked once per model: every group of
// own parameters is read by a variant of its layers and holds only declared keys (required ones
// present), and every variant splits under `tp` and `ep` (InputError at the offending line or
// deployment field).
void check_variants(const BlockRegistry& reg, const ModelSpec& m, u64 tp, u64 ep);
// The widest rotary table any token mixer of the model builds (0: none).
u64 rotary_width(const BlockRegistry& reg, const ModelSpec& m);
// "2×GQA + 1×sliding 4096; MoE 2/3 layers, 8 experts top-2": the model's layers by variant label.
std::string architecture_summary(const BlockRegistry& reg, const ModelSpec& m);
// Every technique of every variant, in registry order (token mixers, then channel mixers).
std::vector<Technique> techniques(const BlockRegistry& reg);

// Helpers for variant files.
namespace blk {
// [B, Sq, width] activations.
inline Size tokens(u64 width) { return Size(width, {Sym::Batch, Sym::Sq}); }
inline TensorInfo act(const char* name, Size s, Category c = Category::Activation) { return TensorInfo{name, s, DtypeRole::Act, c}; }
// A projection [B, Sq, in] → [B, Sq, out]: 2 FLOPs per multiply-add, its matrix in the weight
// dtype and, when present, its bias in the model's dtype.
OpInfo linear(const char* name, OpGroup group, u64 in, u64 out, const char* weight, const char* bias = nullptr);
// transformers' RMSNorm over `width` channels of [B, Sq, rows·width] (fp32 upcast and a cast back
// live beside input and output), with its weight.
OpInfo rms_norm(const char* name, u64 rows, u64 width);
// The kernels of transformers' RMSNorm in eager PyTorch (LlamaRMSNorm.forward), over `rows` rows
// of `width` per token: the fp32 upcast (when `upcast`), pow, mean, + eps, rsqrt, × rsqrt
// (broadcast), the cast back (when `upcast`), × weight (broadcast).
void eager_rms_norm_launches(OpInfo& op, u64 rows, u64 width, bool upcast);
// The kernels of apply_rotary_pos_emb on [B, heads, Sq, head_dim] of `width` per token:
// x · cos (cos broadcast over the heads), −x2, cat(−x2, x1), · sin, the sum.
void eager_rotary_launches(OpInfo& op, u64 width);
// Attention heads under tensor parallelism, shared by the variants that attend: TP must divide
// the query heads, and TP and the KV heads must divide one another (InputError naming
// deployment.tp); fewer KV heads than GPUs leaves each GPU a replica of one (vLLM, Megatron).
void check_heads_split(const ModelSpec& m, u64 tp, u64 ep);
u64 heads_per_gpu(const ModelSpec& m, u64 tp);
u64 kv_heads_per_gpu(const ModelSpec& m, u64 tp);
// compare: a model about to be rewritten into a plain attention variant keeps its heads and
// drops an MLA or SSM description (InputError "compare.technique" when it has no heads).
void plain_attention_base(ModelSpec& m, const char* technique);
}  // namespace blk

// The variants in this folder (one function per file, called by BlockRegistry::builtin).
void register_attention(BlockRegistry& r);
void register_mla(BlockRegistry& r);
void register_ssm(BlockRegistry& r);
void register_mlp(BlockRegistry& r);
void register_moe(BlockRegistry& r);

}  // namespace memtax
