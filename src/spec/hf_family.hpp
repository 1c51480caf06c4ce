#pragma once
// Hugging Face config.json importers: one `HfFamily` per transformers `model_type`, in a registry.
// `load_hf_config` (hf_config.cpp) reads what every decoder config has (layers, widths, heads,
// vocabulary, positions, dtype, soft-capping) and hands the rest to the family: which
// architecture keys it has (any other one in kArchKeys is refused by name), its defaults, its
// biases and norms, its experts, latent attention or state-space layers, its layer pattern and
// the shipped quantization it reads. hf_families.cpp holds the built-in families; a test or a
// plug-in copies the registry and adds one (docs/engine.md, "Adding a model family").
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "spec/model_spec.hpp"

namespace memtax {

// Typed reads of one config object with file:line errors naming the key.
class HfReader {
public:
    HfReader(const nlohmann::json& root, std::string file, std::map<std::string, int> lines);
    SourcePos pos(const std::string& key) const;
    [[noreturn]] void fail(const std::string& key, const std::string& msg) const;
    // Present and not null.
    bool has(const std::string& key) const;
    u64 get_u64(const std::string& key) const;  // required; 1e5 and 131072.0 are whole numbers
    std::optional<u64> opt_u64(const std::string& key) const;
    u64 u64_or_zero(const std::string& key) const { return has(key) ? get_u64(key) : 0; }
    bool get_bool(const std::string& key, bool fallback) const;
    std::string get_string(const std::string& key, const std::string& fallback) const;
    // quantization_config.quant_method ("" when absent or not a string).
    std::string quant_method() const;
    const nlohmann::json& root() const { return root_; }

private:
    const nlohmann::json& root_;
    std::string file_;
    std::map<std::string, int> lines_;
};

// What one model_type contributes. Hooks left empty take the common behaviour.
struct HfFamily {
    std::string model_type;            // transformers' model_type, and ModelSpec::family
    std::vector<std::string> aliases;  // other model_type values read as this one ("gemma3")
    // A multimodal wrapper that nests the language model's config under this key ("text_config").
    std::string nested_config;
    // Architecture keys (kArchKeys) the type has; any other one present is refused.
    std::vector<std::string> keys;
    // Config-class defaults that the common reader needs.
    bool attention = true;             // false: no attention heads (pure state-space)
    bool positions = true;             // false: no position limit (max_position_embeddings optional)
    bool tie_word_embeddings = false;  // when the key is absent
    std::string activation_key = "hidden_act", activation_default = "silu";
    std::string dense_channel = "gated_mlp";  // the channel mixer of a layer without experts
    // Whether `sliding_window` applies to this config (Qwen: only with use_sliding_window).
    std::function<bool(const HfReader&)> window_applies = [](const HfReader&) { return false; };
    // The family's own fields: biases, norms, experts, latent attention, state-space layers.
    std::function<void(const HfReader&, ModelSpec&)> read;
    // Token mixer per layer; empty: the config's layer_types when given, else every layer full
    // (or sliding when the window applies). m.sliding_window is set before it is called.
    std::function<std::vector<std::string>(const HfReader&, const ModelSpec&)> layers;
    // quantization_config in a format of the family's own (gpt-oss: mxfp4 experts): sets m's
    // shipped dtypes, or returns false and the formats any decoder is saved in are read (AWQ,
    // GPTQ, fp8 with or without 128×128 blocks; hf_config.cpp), else it is refused naming both.
    std::function<bool(const HfReader&, ModelSpec&)> quantization;
    std::string accepts_quantization;  // for the refusal: e.g. "mxfp4"
};

class HfFamilyRegistry {
public:
    static const HfFamilyRegistry& builtin();
    void add(HfFamily f);  // InternalError if its model_type or an alias is taken
    // By model_type or alias; nullptr if none.
    const HfFamily* find(const std::string& model_type) const;
    std::vector<std::string> names() const;  // the model_types, in registration order
    const std::vector<HfFamily>& families() const { return families_; }

private:
    std::vector<HfFamily> families_;
};

// Helpers for family importers.
namespace hf {
// A layer_types list of full_attention / sliding_attention, one per layer.
std::vector<std::string> read_layer_types(const HfReader& r, u64 layers);
// Every layer `mixer`.
inline std::vector<std::string> uniform(const ModelSpec& m, const std::string& mixer) {
    return std::vector<std::string>(m.num_layers, mixer);
}
// Routed experts: count, top-k and width from the given keys (top-k falls back to experts_per_token).
void read_experts(const HfReader& r, ModelSpec& m, const std::string& count, const std::string& topk, const std::string& width);
}  // namespace hf

// The built-in families (hf_families.cpp), called by HfFamilyRegistry::builtin.
void register_hf_families(HfFamilyRegistry& r);

// load_hf_config with another registry (a test's or a plug-in's families).
ModelSpec load_hf_config(const std::string& text, const std::string& file, const HfFamilyRegistry& families);

}  // namespace memtax
