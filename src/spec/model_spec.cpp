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
    if (num_layers > kMaxLayers) throw InputError(pos, field, fmt::format("{} layers is beyond the supported {}", num_layers, kMaxLayers));
}

std::string channel_mixer_for(const ModelSpec& m, u64 i, const std::string& dense) {
    const MoeSpec& e = m.moe;
    if (e.enabled() && i >= e.first_dense_layers && e.layer_period && i % e.layer_period == e.layer_offset) return "moe";
    return dense;
}

bool ModelSpec::uses_channel(const std::string& name) const {
    for (const auto& l : layers)
        if (l.channel_mixer == name) return true;
    return false;
}

void validate_model(const ModelSpec& m) {
    auto fail = [&](const std::string& field, const std::string& msg) { throw InputError(m.pos_of(field), field, msg); };
    if (m.layers.size() != m.num_layers)
        fail("layer_types", fmt::format("lists {} layers but num_layers = {}", m.layers.size(), m.num_layers));
    // Each size must be positive where a layer uses it; the loaders already reject negatives and
    // non-integers. Heads and head_dim are required by the variants that read them (their
    // ParamDecl, checked when the engine builds the layer); a model without heads (a pure
    // state-space model) has none to check here.
    const bool attention = m.num_attention_heads != 0;
    const bool dense_mlp = m.uses_channel("gated_mlp") || m.uses_channel("mlp");
    const std::pair<const char*, u64> sizes[] = {{"num_layers", m.num_layers},
                                                 {"hidden_size", m.hidden_size},
                                                 {"num_attention_heads", attention ? m.num_attention_heads : 1},
                                                 {"num_key_value_heads", attention ? m.num_key_value_heads : 1},
                                                 {"head_dim", attention ? m.head_dim : 1},
                                                 {"intermediate_size", dense_mlp ? m.intermediate_size : 1},
                                                 {"vocab_size", m.vocab_size},
                                                 {"max_context", m.max_context}};
    for (const auto& [field, v] : sizes)
        if (v == 0) fail(field, "must be a positive integer, got 0");
    if (attention) {
        if (m.num_key_value_heads > m.num_attention_heads)
            fail("num_key_value_heads", fmt::format("{} exceeds num_attention_heads = {}", m.num_key_value_heads, m.num_attention_heads));
        if (m.num_attention_heads % m.num_key_value_heads != 0)
            fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads = {} (grouped-query attention needs "
                                                    "a whole number of query heads per KV head)",
                                                    m.num_key_value_heads, m.num_attention_heads));
    }
    bool any_sliding = false;
    for (const auto& l : m.layers) any_sliding |= (l.token_mixer == "sliding_attention");
    if (any_sliding && m.sliding_window == 0) fail("sliding_window", "sliding_attention layers need a positive sliding_window");
    bool any_chunked = false;
    for (const auto& l : m.layers) any_chunked |= (l.token_mixer == "chunked_attention");
    if (any_chunked && m.attention_chunk_size == 0)
        fail("attention_chunk_size", "chunked_attention layers need a positive attention_chunk_size");
    if (m.moe.enabled()) {
        if (m.moe.experts_per_token == 0 || m.moe.experts_per_token > m.moe.num_experts)
            fail("moe.experts_per_token", fmt::format("{} must be from 1 to num_experts = {}", m.moe.experts_per_token, m.moe.num_experts));
        if (m.moe.intermediate_size == 0) fail("moe.intermediate_size", "must be a positive integer, got 0");
    }
    if (m.ssm.enabled()) {
        if (m.ssm.state_size == 0 || m.ssm.conv_kernel == 0 || m.ssm.inner_size == 0)
            fail("ssm", "state_size, conv_kernel and inner_size must be positive");
        if (m.ssm.kind == "mamba2" && (m.ssm.num_heads == 0 || m.ssm.head_dim == 0 || m.ssm.num_heads * m.ssm.head_dim != m.ssm.inner_size))
            fail("ssm.num_heads",
                 fmt::format("num_heads {} × head_dim {} must equal inner_size {}", m.ssm.num_heads, m.ssm.head_dim, m.ssm.inner_size));
        if (m.ssm.kind == "mamba2" && (m.ssm.n_groups == 0 || m.ssm.num_heads % m.ssm.n_groups != 0))
            fail("ssm.n_groups", fmt::format("{} must divide num_heads = {}", m.ssm.n_groups, m.ssm.num_heads));
        if (m.ssm.kind == "mamba" && m.ssm.dt_rank == 0) fail("ssm.dt_rank", "must be a positive integer, got 0");
    }
    if (m.mla.enabled() && (m.mla.qk_rope_head_dim == 0 || m.mla.qk_nope_head_dim == 0 || m.mla.v_head_dim == 0))
        fail("mla", "qk_rope_head_dim, qk_nope_head_dim and v_head_dim must be positive");
}

}  // namespace memtax
