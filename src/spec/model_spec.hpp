#pragma once
// Plain, validated description of a dense decoder-only transformer, read from a memtax YAML
// profile or a Hugging Face config.json. No model logic lives here.
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
    std::string token_mixer = "full_attention";  // full_attention | sliding_attention | ...
    std::string channel_mixer = "gated_mlp";     // gated_mlp | mlp | ...
    friend bool operator==(const LayerSpec&, const LayerSpec&) = default;
};

struct ModelSpec {
    std::string name;          // catalog key, e.g. "llama-3.1-8b"
    std::string display_name;  // e.g. "Llama-3.1-8B"
    std::vector<std::string> aliases;  // other names it resolves from (HF ids, older spellings)
    std::string family;        // llama | mistral | qwen2
    std::string source;        // where the config values come from

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
    bool qkv_bias = false;   // biases on q/k/v projections (Qwen2)
    bool o_bias = false;
    bool mlp_bias = false;
    u64 sliding_window = 0;  // tokens; 0 = none
    std::vector<LayerSpec> layers;  // one per layer, in order
    DType dtype;

    u64 stated_parameter_count = 0;  // the officially stated count (0 = not given)
    std::string stated_parameter_source;

    // Where each field came from, so a later check (e.g. --tp vs heads) can cite file:line.
    std::string file;
    std::map<std::string, SourcePos> positions;
    SourcePos pos_of(const std::string& field) const;
};

// The engine walks layers one by one; no real model is within a thousandth of this.
constexpr u64 kMaxLayers = 1'000'000;
// Throws InputError unless 0 < num_layers <= kMaxLayers (checked before per-layer lists are built).
void check_layer_count(u64 num_layers, const SourcePos& pos, const std::string& field);

// Cross-field checks shared by every loader: heads divide hidden when head_dim is implied,
// kv heads divide heads, layers match num_layers, window only with sliding layers.
void validate_model(const ModelSpec& m);

}  // namespace memtax
