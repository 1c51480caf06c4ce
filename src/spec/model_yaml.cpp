// memtax model profile (YAML) -> ModelSpec.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "spec/hf_family.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

const std::vector<std::string> kModelKeys = {"name",
                                             "display_name",
                                             "aliases",
                                             "family",
                                             "source",
                                             "num_layers",
                                             "hidden_size",
                                             "num_attention_heads",
                                             "num_key_value_heads",
                                             "head_dim",
                                             "intermediate_size",
                                             "vocab_size",
                                             "max_context",
                                             "tie_word_embeddings",
                                             "norm",
                                             "activation",
                                             "mlp",
                                             "qkv_bias",
                                             "o_bias",
                                             "mlp_bias",
                                             "sliding_window",
                                             "attention_chunk_size",
                                             "layer_types",
                                             "dtype",
                                             "stated_parameter_count",
                                             "stated_parameter_source",
                                             "mla",
                                             "moe",
                                             "vision_encoder",
                                             "ssm",
                                             "attention",
                                             "shipped_weights",
                                             "stated_active_parameter_count",
                                             "fused_projections",
                                             "fp32_logits"};

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
    // A mapping under a key of its own is a layer variant's parameters (the engine checks them
    // against the variant that declares the group); anything else unknown is refused here.
    std::vector<std::string> known = kModelKeys;
    for (const auto& k : map.keys()) {
        if (std::find(kModelKeys.begin(), kModelKeys.end(), k) != kModelKeys.end() || !map.node(k).IsMap()) continue;
        known.push_back(k);
        YamlMap g(map.node(k), file, k);
        ParamGroup& group = m.own_params[k];
        group.pos = map.pos(k);
        for (const auto& key : g.keys()) {
            const YAML::Node v = g.node(key);
            const bool flag = v.IsScalar() && (v.Scalar() == "true" || v.Scalar() == "false");
            const u64 value = flag ? (*g.optional_bool(key) ? 1 : 0) : g.required_u64(key);
            group.values[key] = {value, g.pos(key)};
        }
    }
    map.finish(known);

    m.name = map.required_string("name");
    m.display_name = map.optional_string("display_name").value_or(m.name);
    m.aliases = map.optional_strings("aliases");
    // The architecture family (what transformers calls model_type), for listings and reports.
    // The Hugging Face families memtax imports, or "custom".
    std::vector<std::string> families = HfFamilyRegistry::builtin().names();
    families.push_back("custom");
    m.family = map.required_choice("family", families);
    m.source = map.required_string("source");
    m.num_layers = map.required_u64("num_layers");
    check_layer_count(m.num_layers, map.pos("num_layers"), "num_layers");
    m.hidden_size = map.required_u64("hidden_size");
    // A pure state-space model has no attention heads.
    const bool ssm_only = !map.has("num_attention_heads") && map.has("ssm");
    m.num_attention_heads = ssm_only ? 0 : map.required_u64("num_attention_heads");
    m.num_key_value_heads = map.optional_u64("num_key_value_heads").value_or(m.num_attention_heads);
    if (!ssm_only && m.num_attention_heads == 0) map.fail("num_attention_heads", "must be a positive integer, got 0");
    if (auto hd = map.optional_u64("head_dim")) {
        m.head_dim = *hd;
    } else if (!ssm_only) {
        if (m.hidden_size % m.num_attention_heads != 0)
            map.fail("num_attention_heads",
                     fmt::format("{} does not divide hidden_size = {}; give head_dim explicitly", m.num_attention_heads, m.hidden_size));
        m.head_dim = m.hidden_size / m.num_attention_heads;
    }
    m.intermediate_size = map.optional_u64("intermediate_size").value_or(0);
    m.vocab_size = map.required_u64("vocab_size");
    m.max_context = map.required_u64("max_context");
    m.tie_word_embeddings = map.optional_bool("tie_word_embeddings").value_or(false);
    m.norm = map.required_choice("norm", {"rmsnorm", "layernorm"}) == "rmsnorm" ? NormKind::RMSNorm : NormKind::LayerNorm;
    m.activation = map.required_choice("activation", {"silu", "gelu", "gelu_tanh", "relu"});
    const std::string mlp_kind = map.required_choice("mlp", {"gated", "plain", "none"});
    m.gated_mlp = mlp_kind == "gated";
    m.qkv_bias = map.optional_bool("qkv_bias").value_or(false);
    m.o_bias = map.optional_bool("o_bias").value_or(false);
    m.mlp_bias = map.optional_bool("mlp_bias").value_or(false);
    m.fused_projections = map.optional_bool("fused_projections").value_or(false);
    m.fp32_logits = map.optional_bool("fp32_logits").value_or(false);
    m.sliding_window = map.optional_u64("sliding_window").value_or(0);
    if (map.has("sliding_window") && m.sliding_window == 0)
        map.fail("sliding_window", "must be a positive number of tokens (omit it for none)");
    m.attention_chunk_size = map.optional_u64("attention_chunk_size").value_or(0);
    if (map.has("attention_chunk_size") && m.attention_chunk_size == 0)
        map.fail("attention_chunk_size", "must be a positive number of tokens (omit it for none)");
    m.dtype = read_dtype(map, "dtype");
    m.stated_parameter_count = map.optional_u64("stated_parameter_count").value_or(0);
    m.stated_parameter_source = map.optional_string("stated_parameter_source").value_or("");
    if (m.stated_parameter_count != 0 && m.stated_parameter_source.empty())
        map.fail("stated_parameter_source", "required when stated_parameter_count is given (cite it)");

    m.stated_active_parameter_count = map.optional_u64("stated_active_parameter_count").value_or(0);

    if (auto mla = map.optional_map("mla")) {
        mla->finish({"q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"});
        m.mla.q_lora_rank = mla->optional_u64("q_lora_rank").value_or(0);
        m.mla.kv_lora_rank = mla->required_u64("kv_lora_rank");
        m.mla.qk_rope_head_dim = mla->required_u64("qk_rope_head_dim");
        m.mla.qk_nope_head_dim = mla->required_u64("qk_nope_head_dim");
        m.mla.v_head_dim = mla->required_u64("v_head_dim");
        for (const char* k : {"kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"})
            m.positions[std::string("mla.") + k] = mla->pos(k);
    }
    if (auto v = map.optional_map("vision_encoder")) {
        v->finish({"parameters", "source"});
        m.vision_encoder_parameters = v->required_u64("parameters");
        m.vision_encoder_source = v->required_string("source");
        if (m.vision_encoder_parameters == 0) v->fail("parameters", "must be a positive integer (omit vision_encoder for none)");
    }
    if (auto moe = map.optional_map("moe")) {
        moe->finish({"num_experts", "experts_per_token", "intermediate_size", "shared_intermediate_size", "router_bias", "expert_bias",
                     "score_correction_bias", "shared_expert_gate", "router_score", "dispatch", "first_dense_layers", "layer_period",
                     "layer_offset", "routing_weights"});
        m.moe.num_experts = moe->required_u64("num_experts");
        m.moe.experts_per_token = moe->required_u64("experts_per_token");
        m.moe.intermediate_size = moe->required_u64("intermediate_size");
        m.moe.shared_intermediate_size = moe->optional_u64("shared_intermediate_size").value_or(0);
        m.moe.router_bias = moe->optional_bool("router_bias").value_or(false);
        m.moe.expert_bias = moe->optional_bool("expert_bias").value_or(false);
        m.moe.score_correction_bias = moe->optional_bool("score_correction_bias").value_or(false);
        m.moe.shared_expert_gate = moe->optional_bool("shared_expert_gate").value_or(false);
        m.moe.router_score = moe->has("router_score") ? moe->required_choice("router_score", {"softmax", "sigmoid"}) : "softmax";
        m.moe.dispatch = moe->has("dispatch") ? moe->required_choice("dispatch", {"loop", "grouped"}) : "grouped";
        m.moe.first_dense_layers = moe->optional_u64("first_dense_layers").value_or(0);
        m.moe.fp32_routing_weights = !moe->has("routing_weights") || moe->required_choice("routing_weights", {"fp32", "compute"}) == "fp32";
        m.moe.layer_period = moe->optional_u64("layer_period").value_or(1);
        m.moe.layer_offset = moe->optional_u64("layer_offset").value_or(0);
        if (m.moe.layer_period == 0) moe->fail("layer_period", "must be a positive integer, got 0");
        if (m.moe.num_experts == 0) moe->fail("num_experts", "must be a positive integer, got 0");
        m.positions["moe.experts_per_token"] = moe->pos("experts_per_token");
        m.positions["moe.intermediate_size"] = moe->pos("intermediate_size");
    }
    if (auto ssm = map.optional_map("ssm")) {
        ssm->finish({"kind", "state_size", "conv_kernel", "inner_size", "num_heads", "head_dim", "n_groups", "chunk_size", "dt_rank",
                     "conv_bias", "proj_bias"});
        m.ssm.kind = ssm->required_choice("kind", {"mamba2", "mamba"});
        m.ssm.state_size = ssm->required_u64("state_size");
        m.ssm.conv_kernel = ssm->required_u64("conv_kernel");
        m.ssm.inner_size = ssm->required_u64("inner_size");
        m.ssm.num_heads = ssm->optional_u64("num_heads").value_or(0);
        m.ssm.head_dim = ssm->optional_u64("head_dim").value_or(0);
        m.ssm.n_groups = ssm->optional_u64("n_groups").value_or(1);
        m.ssm.chunk_size = ssm->optional_u64("chunk_size").value_or(256);
        m.ssm.dt_rank = ssm->optional_u64("dt_rank").value_or(0);
        m.ssm.conv_bias = ssm->optional_bool("conv_bias").value_or(true);
        m.ssm.proj_bias = ssm->optional_bool("proj_bias").value_or(false);
        m.positions["ssm"] = map.pos("ssm");
        for (const char* k : {"num_heads", "n_groups", "dt_rank"})
            m.positions[std::string("ssm.") + k] = ssm->has(k) ? ssm->pos(k) : map.pos("ssm");
    }
    if (auto a = map.optional_map("attention")) {
        a->finish({"qk_norm", "softcap", "final_softcap", "sinks", "sandwich_norm", "scale_embeddings", "sparse_local", "sparse_global",
                   "sparse_random_blocks", "sparse_block", "rotary_tables"});
        m.attn.qk_norm = a->optional_bool("qk_norm").value_or(false);
        m.attn.softcap = a->optional_u64("softcap").value_or(0);
        m.attn.final_softcap = a->optional_u64("final_softcap").value_or(0);
        m.attn.sinks = a->optional_bool("sinks").value_or(false);
        m.attn.sandwich_norm = a->optional_bool("sandwich_norm").value_or(false);
        m.attn.scale_embeddings = a->optional_bool("scale_embeddings").value_or(false);
        m.attn.rotary_tables = a->optional_u64("rotary_tables").value_or(1);
        if (m.attn.rotary_tables == 0 || m.attn.rotary_tables > 8)
            a->fail("rotary_tables", fmt::format("{}; valid: 1 to 8", m.attn.rotary_tables));
        m.attn.sparse_local = a->optional_u64("sparse_local").value_or(0);
        m.attn.sparse_global = a->optional_u64("sparse_global").value_or(0);
        m.attn.sparse_random_blocks = a->optional_u64("sparse_random_blocks").value_or(0);
        m.attn.sparse_block = a->optional_u64("sparse_block").value_or(64);
        if (m.attn.sparse_block == 0) a->fail("sparse_block", "must be a positive integer, got 0");
        m.positions["attention.sparse_local"] = a->has("sparse_local") ? a->pos("sparse_local") : map.pos("attention");
    }
    if (auto w = map.optional_map("shipped_weights")) {
        w->finish({"linear", "experts"});
        for (const char* k : {"linear", "experts"}) {
            if (!w->has(k)) continue;
            DType d;
            const std::string v = w->required_string(k);
            if (!parse_dtype(v, d)) w->fail(k, unknown_dtype_message(v));
            (std::string(k) == "linear" ? m.shipped_linear_dtype : m.shipped_expert_dtype) = d.name;
        }
    }

    const std::string dense = mlp_kind == "gated" ? "gated_mlp" : mlp_kind == "plain" ? "mlp" : "none";
    YAML::Node types = map.node("layer_types");
    if (types.IsDefined() && !types.IsNull()) {
        // Names only: the engine's block registry knows the token mixers (and refuses an unknown
        // one at this entry's line, naming the valid ones).
        if (!types.IsSequence()) map.fail("layer_types", "expected a list of token mixer names, one per layer");
        for (size_t i = 0; i < types.size(); ++i) {
            const YAML::Node& t = types[i];
            const std::string field = fmt::format("layer_types[{}]", i);
            if (!t.IsScalar() || t.Scalar().empty()) throw InputError(map.pos_of(t), field, "expected a token mixer name");
            m.positions[field] = map.pos_of(t);
            m.layers.push_back({t.Scalar(), channel_mixer_for(m, i, dense)});
        }
    } else {
        // Without layer_types, a sliding_window applies to every layer (Mistral-7B-v0.1); an MLA
        // or SSM model has that mixer everywhere.
        const std::string tm = m.mla.enabled()    ? "mla"
                               : m.ssm.enabled()  ? m.ssm.kind
                               : m.sliding_window ? "sliding_attention"
                                                  : "full_attention";
        for (u64 i = 0; i < m.num_layers; ++i) m.layers.push_back({tm, channel_mixer_for(m, i, dense)});
    }
    validate_model(m);
    return m;
}

}  // namespace memtax
