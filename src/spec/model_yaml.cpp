// memtax model profile (YAML) -> ModelSpec.
#include <fmt/format.h>

#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

const std::vector<std::string> kModelKeys = {
    "name", "display_name", "aliases", "family", "source", "num_layers", "hidden_size", "num_attention_heads",
    "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size", "max_context",
    "tie_word_embeddings", "norm", "activation", "mlp", "qkv_bias", "o_bias", "mlp_bias",
    "sliding_window", "layer_types", "dtype", "stated_parameter_count", "stated_parameter_source"};

DType read_dtype(YamlMap& map, const std::string& key) {
    std::string s = map.required_string(key);
    DType d;
    if (!parse_dtype(s, d)) map.fail(key, unknown_dtype_message(s));
    return d;
}

}  // namespace

ModelSpec load_model_yaml(const std::string& text, const std::string& file) {
    YAML::Node root = parse_yaml(text, file);
    YamlMap map(root, file, "");
    ModelSpec m;
    m.file = file;
    for (const auto& k : map.keys()) m.positions[k] = map.pos(k);
    map.finish(kModelKeys);

    m.name = map.required_string("name");
    m.display_name = map.optional_string("display_name").value_or(m.name);
    m.aliases = map.optional_strings("aliases");
    m.family = map.required_choice("family", {"llama", "mistral", "qwen2"});
    m.source = map.required_string("source");
    m.num_layers = map.required_u64("num_layers");
    check_layer_count(m.num_layers, map.pos("num_layers"), "num_layers");
    m.hidden_size = map.required_u64("hidden_size");
    m.num_attention_heads = map.required_u64("num_attention_heads");
    m.num_key_value_heads = map.optional_u64("num_key_value_heads").value_or(m.num_attention_heads);
    if (m.num_attention_heads == 0) map.fail("num_attention_heads", "must be a positive integer, got 0");
    if (auto hd = map.optional_u64("head_dim")) {
        m.head_dim = *hd;
    } else {
        if (m.hidden_size % m.num_attention_heads != 0)
            map.fail("num_attention_heads",
                     fmt::format("{} does not divide hidden_size = {}; give head_dim explicitly",
                                 m.num_attention_heads, m.hidden_size));
        m.head_dim = m.hidden_size / m.num_attention_heads;
    }
    m.intermediate_size = map.required_u64("intermediate_size");
    m.vocab_size = map.required_u64("vocab_size");
    m.max_context = map.required_u64("max_context");
    m.tie_word_embeddings = map.optional_bool("tie_word_embeddings").value_or(false);
    m.norm = map.required_choice("norm", {"rmsnorm", "layernorm"}) == "rmsnorm" ? NormKind::RMSNorm
                                                                                 : NormKind::LayerNorm;
    m.activation = map.required_choice("activation", {"silu", "gelu", "gelu_tanh", "relu"});
    m.gated_mlp = map.required_choice("mlp", {"gated", "plain"}) == "gated";
    m.qkv_bias = map.optional_bool("qkv_bias").value_or(false);
    m.o_bias = map.optional_bool("o_bias").value_or(false);
    m.mlp_bias = map.optional_bool("mlp_bias").value_or(false);
    m.sliding_window = map.optional_u64("sliding_window").value_or(0);
    if (map.has("sliding_window") && m.sliding_window == 0)
        map.fail("sliding_window", "must be a positive number of tokens (omit it for none)");
    m.dtype = read_dtype(map, "dtype");
    m.stated_parameter_count = map.optional_u64("stated_parameter_count").value_or(0);
    m.stated_parameter_source = map.optional_string("stated_parameter_source").value_or("");
    if (m.stated_parameter_count != 0 && m.stated_parameter_source.empty())
        map.fail("stated_parameter_source", "required when stated_parameter_count is given (cite it)");

    const std::string mlp = m.gated_mlp ? "gated_mlp" : "mlp";
    YAML::Node types = map.node("layer_types");
    if (types.IsDefined() && !types.IsNull()) {
        if (!types.IsSequence()) map.fail("layer_types", "expected a list of full_attention|sliding_attention");
        for (size_t i = 0; i < types.size(); ++i) {
            const YAML::Node& t = types[i];
            std::string s = t.IsScalar() ? t.Scalar() : "";
            if (s == "full_attention") m.layers.push_back({"full_attention", mlp});
            else if (s == "sliding_attention") m.layers.push_back({"sliding_attention", mlp});
            else
                throw InputError(map.pos_of(t), fmt::format("layer_types[{}]", i),
                                 fmt::format("unknown layer type \"{}\"; valid: full_attention, sliding_attention", s));
        }
    } else {
        // Without layer_types, a sliding_window applies to every layer (Mistral-7B-v0.1).
        m.layers.assign(m.num_layers, LayerSpec{m.sliding_window ? "sliding_attention" : "full_attention", mlp});
    }
    validate_model(m);
    return m;
}

}  // namespace memtax
