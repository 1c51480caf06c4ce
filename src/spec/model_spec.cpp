#include "spec/model_spec.hpp"

#include <fmt/format.h>

namespace memtax {

const char* to_string(NormKind k) { return k == NormKind::RMSNorm ? "rmsnorm" : "layernorm"; }

SourcePos ModelSpec::pos_of(const std::string& field) const {
    auto it = positions.find(field);
    if (it != positions.end()) return it->second;
    return SourcePos{file, 0, 0};
}

void check_layer_count(u64 num_layers, const SourcePos& pos, const std::string& field) {
    if (num_layers == 0) throw InputError(pos, field, "must be a positive integer, got 0");
    if (num_layers > kMaxLayers)
        throw InputError(pos, field, fmt::format("{} layers is beyond the supported {}", num_layers, kMaxLayers));
}

void validate_model(const ModelSpec& m) {
    auto fail = [&](const std::string& field, const std::string& msg) {
        throw InputError(m.pos_of(field), field, msg);
    };
    // Each size must be positive; the loaders already reject negatives and non-integers.
    const std::pair<const char*, u64> sizes[] = {
        {"num_layers", m.num_layers},         {"hidden_size", m.hidden_size},
        {"num_attention_heads", m.num_attention_heads}, {"num_key_value_heads", m.num_key_value_heads},
        {"head_dim", m.head_dim},             {"intermediate_size", m.intermediate_size},
        {"vocab_size", m.vocab_size},         {"max_context", m.max_context}};
    for (const auto& [field, v] : sizes)
        if (v == 0) fail(field, "must be a positive integer, got 0");
    if (m.num_key_value_heads > m.num_attention_heads)
        fail("num_key_value_heads", fmt::format("{} exceeds num_attention_heads = {}",
                                                m.num_key_value_heads, m.num_attention_heads));
    if (m.num_attention_heads % m.num_key_value_heads != 0)
        fail("num_key_value_heads",
             fmt::format("{} does not divide num_attention_heads = {} (grouped-query attention needs "
                         "a whole number of query heads per KV head)",
                         m.num_key_value_heads, m.num_attention_heads));
    if (m.layers.size() != m.num_layers)
        fail("layer_types", fmt::format("lists {} layers but num_layers = {}", m.layers.size(),
                                        m.num_layers));
    bool any_sliding = false;
    for (const auto& l : m.layers) any_sliding |= (l.token_mixer == "sliding_attention");
    if (any_sliding && m.sliding_window == 0)
        fail("sliding_window", "sliding_attention layers need a positive sliding_window");
}

}  // namespace memtax
