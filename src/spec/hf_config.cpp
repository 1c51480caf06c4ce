// Hugging Face config.json -> ModelSpec, using the field names transformers uses.
// Dispatch on model_type (kTypes). Keys memtax does not need (rope_theta, token ids, ...) are
// ignored, as transformers itself keeps arbitrary attributes; a key that changes the memory
// model and that the declared model_type does not have (experts in a "llama", soft-capping in a
// "mistral", ...) is refused by name, never read as a dense Llama.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <cmath>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iterator>
#include <map>

#include "spec/json_reader.hpp"
#include "spec/loaders.hpp"

namespace memtax {
namespace {

using json = nlohmann::json;

class HfReader {
public:
    HfReader(const json& root, std::string file, std::map<std::string, int> lines)
        : root_(root), file_(std::move(file)), lines_(std::move(lines)) {}

    SourcePos pos(const std::string& key) const {
        auto it = lines_.find(key);
        // A missing key is reported at the object's opening line.
        return SourcePos{file_, it == lines_.end() ? 1 : it->second, 0};
    }
    [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
        throw InputError(pos(key), key, msg);
    }
    bool has(const std::string& key) const { return root_.contains(key) && !root_[key].is_null(); }
    std::string type_of(const json& v) const { return v.is_string() ? fmt::format("\"{}\"", v.get<std::string>()) : v.dump(); }

    u64 get_u64(const std::string& key) const {
        if (!has(key)) fail(key, "required field is missing");
        const json& v = root_[key];
        // 1e5 or 131072.0: a float that is exactly a whole number below 2^53 is that integer.
        if (v.is_number_float()) {
            const double d = v.get<double>();
            if (std::isfinite(d) && d >= 0 && d <= 9007199254740992.0 && d == std::floor(d)) return static_cast<u64>(d);
            fail(key, fmt::format("expected a non-negative integer, got {} (not a whole number)", v.dump()));
        }
        if (!v.is_number_unsigned()) {
            if (v.is_number_integer()) fail(key, fmt::format("must be positive, got {}", v.dump()));
            fail(key, fmt::format("expected a non-negative integer, got {}", type_of(v)));
        }
        return v.get<u64>();
    }
    std::optional<u64> opt_u64(const std::string& key) const {
        if (!has(key)) return std::nullopt;
        return get_u64(key);
    }
    bool get_bool(const std::string& key, bool fallback) const {
        if (!has(key)) return fallback;
        if (!root_[key].is_boolean()) fail(key, fmt::format("expected true or false, got {}", type_of(root_[key])));
        return root_[key].get<bool>();
    }
    std::string get_string(const std::string& key, const std::string& fallback) const {
        if (!has(key)) return fallback;
        if (!root_[key].is_string()) fail(key, fmt::format("expected a string, got {}", type_of(root_[key])));
        return root_[key].get<std::string>();
    }
    const json& root() const { return root_; }

private:
    const json& root_;
    std::string file_;
    std::map<std::string, int> lines_;
};

// The model types read, and the architecture keys each understands. A key in kArchKeys present
// in a config whose type does not list it is refused.
struct TypeInfo {
    const char* type;
    std::vector<const char*> keys;
};
const std::vector<TypeInfo>& types() {
    static const std::vector<TypeInfo> t = {
        {"llama", {"attention_bias", "mlp_bias", "sliding_window", "layer_types"}},
        {"mistral", {"sliding_window", "layer_types"}},
        {"qwen2", {"sliding_window", "use_sliding_window", "max_window_layers", "layer_types"}},
        {"qwen3", {"sliding_window", "use_sliding_window", "max_window_layers", "layer_types", "attention_bias"}},
        {"qwen3_moe", {"sliding_window", "use_sliding_window", "max_window_layers", "num_experts", "num_local_experts", "num_experts_per_tok",
                       "moe_intermediate_size", "decoder_sparse_step", "mlp_only_layers", "norm_topk_prob", "attention_bias",
                       "router_aux_loss_coef", "output_router_logits"}},
        {"mixtral", {"sliding_window", "layer_types", "num_local_experts", "num_experts_per_tok", "router_aux_loss_coef", "output_router_logits",
                     "router_jitter_noise"}},
        {"deepseek_v2", {"q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "n_routed_experts",
                         "n_shared_experts", "num_experts_per_tok", "moe_intermediate_size", "first_k_dense_replace", "moe_layer_freq",
                         "n_group", "topk_group", "topk_method", "routed_scaling_factor", "norm_topk_prob", "scoring_func",
                         "aux_loss_alpha", "seq_aux", "attention_bias", "ep_size"}},
        {"deepseek_v3", {"q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "n_routed_experts",
                         "n_shared_experts", "num_experts_per_tok", "moe_intermediate_size", "first_k_dense_replace", "moe_layer_freq",
                         "n_group", "topk_group", "topk_method", "routed_scaling_factor", "norm_topk_prob", "scoring_func",
                         "aux_loss_alpha", "seq_aux", "attention_bias", "ep_size", "num_nextn_predict_layers", "quantization_config"}},
        {"gemma2", {"sliding_window", "layer_types", "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar",
                    "hidden_activation", "attention_bias"}},
        {"gemma3_text", {"sliding_window", "layer_types", "sliding_window_pattern", "attn_logit_softcapping", "final_logit_softcapping",
                         "query_pre_attn_scalar", "hidden_activation", "rope_local_base_freq", "attention_bias"}},
        {"gpt_oss", {"sliding_window", "layer_types", "num_local_experts", "num_experts_per_tok", "experts_per_token", "attention_bias",
                     "router_aux_loss_coef", "output_router_logits", "swiglu_limit", "quantization_config"}},
        {"phi3", {"sliding_window", "attention_bias", "layer_types"}},
        {"mamba2", {"num_heads", "state_size", "expand", "conv_kernel", "n_groups", "chunk_size", "use_conv_bias", "use_bias",
                    "time_step_rank", "time_step_min", "time_step_max", "time_step_limit", "rescale_prenorm_residual", "residual_in_fp32"}},
        {"jamba", {"num_experts", "num_local_experts", "num_experts_per_tok", "expert_layer_period", "expert_layer_offset", "attn_layer_period",
                   "attn_layer_offset", "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_dt_rank", "mamba_conv_bias",
                   "mamba_proj_bias", "use_mamba_kernels", "router_aux_loss_coef", "output_router_logits", "sliding_window"}},
    };
    return t;
}
// Keys that change what is stored or computed; absent from a type's list above, they are refused.
const std::vector<const char*> kArchKeys = {
    "num_local_experts", "num_experts", "n_routed_experts", "n_shared_experts", "moe_intermediate_size", "num_experts_per_tok",
    "experts_per_token", "shared_expert_intermediate_size", "first_k_dense_replace", "moe_layer_freq", "expert_layer_period",
    "decoder_sparse_step", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "attn_logit_softcapping",
    "final_logit_softcapping", "query_pre_attn_scalar", "sliding_window_pattern", "attn_layer_period", "attn_layer_offset",
    "mamba_d_state", "mamba_expand", "state_size", "ssm_cfg", "layer_types", "sliding_window", "use_sliding_window",
    "quantization_config", "num_nextn_predict_layers", "attention_chunk_size", "no_rope_layers", "linear_attn_config",
    "full_attn_idxs", "attn_layer_indices", "hybrid_override_pattern"};

u64 null_or_u64(const HfReader& r, const char* key) { return r.has(key) ? r.get_u64(key) : 0; }

// An architecture key counts as present when it says something: not null, false, 0 or [].
bool says_something(const json& v) {
    if (v.is_null()) return false;
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) return v.get<double>() != 0;
    if (v.is_array() || v.is_object()) return !v.empty();
    return true;
}

// A gpt-oss / Gemma layer_types list; the mixers it names must be attention kinds memtax knows.
std::vector<std::string> read_layer_types(const HfReader& r, u64 layers) {
    const json& lt = r.root()["layer_types"];
    if (!lt.is_array()) r.fail("layer_types", "expected a list of \"full_attention\"|\"sliding_attention\"");
    if (lt.size() != layers) r.fail("layer_types", fmt::format("lists {} layers but num_hidden_layers = {}", lt.size(), layers));
    std::vector<std::string> out;
    for (size_t i = 0; i < lt.size(); ++i) {
        std::string s = lt[i].is_string() ? lt[i].get<std::string>() : lt[i].dump();
        if (s != "full_attention" && s != "sliding_attention")
            r.fail("layer_types", fmt::format("entry {} is \"{}\"; valid: full_attention, sliding_attention", i, s));
        out.push_back(s);
    }
    return out;
}

}  // namespace

// Python's json module writes float('inf') and NaN as bare Infinity / -Infinity / NaN (transformers
// saves Mamba-2's time_step_limit so); standard JSON has no such literals. Outside strings they
// become null (same length kept short: line numbers stay right), which the fields memtax reads
// never hold.
static std::string python_json_literals(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            out += c;
            if (c == '\\' && i + 1 < text.size()) out += text[++i];
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        for (const char* lit : {"-Infinity", "Infinity", "NaN"}) {
            const size_t n = std::char_traits<char>::length(lit);
            if (text.compare(i, n, lit) == 0) {
                out += "null";
                i += n;
                break;
            }
        }
        if (i < text.size()) out += text[i];
    }
    return out;
}

ModelSpec load_hf_config(const std::string& text, const std::string& file) {
    JsonDoc doc = parse_json(python_json_literals(text), file);
    if (!doc.root.is_object()) throw InputError(SourcePos{file, 1, 0}, "(document)", "expected a JSON object");
    // Gemma-3 (multimodal) nests the language model's config in text_config.
    const bool nested = doc.root.contains("text_config") && doc.root["text_config"].is_object() && doc.root.contains("model_type") &&
                        doc.root["model_type"].is_string() && doc.root["model_type"].get<std::string>() == "gemma3";
    const json& root = nested ? doc.root["text_config"] : doc.root;
    HfReader r(root, file, doc.lines);

    std::vector<std::string> names;
    for (const auto& t : types()) names.push_back(t.type);
    if (!r.has("model_type") && !nested) r.fail("model_type", fmt::format("required field is missing (valid: {})", fmt::join(names, ", ")));
    std::string type = nested ? "gemma3_text" : r.get_string("model_type", "");
    if (type == "gemma3" ) type = "gemma3_text";
    auto info = std::find_if(types().begin(), types().end(), [&](const TypeInfo& t) { return type == t.type; });
    if (info == types().end())
        r.fail("model_type", fmt::format("unsupported model_type \"{}\"{}; supported: {}", type, did_you_mean(type, names), fmt::join(names, ", ")));
    for (const char* key : kArchKeys) {
        if (!root.contains(key) || !says_something(root[key])) continue;
        if (std::find_if(info->keys.begin(), info->keys.end(), [&](const char* k) { return std::string(k) == key; }) != info->keys.end()) continue;
        r.fail(key, fmt::format("model_type \"{}\" has no {}: this config is not a {} model (memtax never reads it as one); "
                                "set model_type to the architecture it was saved from", type, key, type));
    }

    ModelSpec m;
    m.file = file;
    for (const auto& [k, line] : doc.lines) m.positions[k] = SourcePos{file, line, 0};
    m.family = type;
    m.name = std::filesystem::path(file).stem().string();
    m.display_name = r.get_string("_name_or_path", m.name);
    m.source = "Hugging Face config.json: " + file;
    m.num_layers = r.get_u64("num_hidden_layers");
    check_layer_count(m.num_layers, r.pos("num_hidden_layers"), "num_hidden_layers");
    m.hidden_size = r.get_u64("hidden_size");
    const bool ssm_only = type == "mamba2";
    if (!ssm_only) {
        m.num_attention_heads = r.get_u64("num_attention_heads");
        if (m.num_attention_heads == 0) r.fail("num_attention_heads", "must be a positive integer, got 0");
        m.num_key_value_heads = r.opt_u64("num_key_value_heads").value_or(m.num_attention_heads);
        // DeepSeek configs carry head_dim = qk_rope_head_dim; the attention width is the MLA's.
        if (auto hd = r.opt_u64("head_dim"); hd && type.rfind("deepseek", 0) != 0) {
            m.head_dim = *hd;
        } else {
            if (m.hidden_size % m.num_attention_heads != 0)
                r.fail("num_attention_heads", fmt::format("{} does not divide hidden_size = {} and head_dim is not given",
                                                          m.num_attention_heads, m.hidden_size));
            m.head_dim = m.hidden_size / m.num_attention_heads;
        }
    }
    m.intermediate_size = r.opt_u64("intermediate_size").value_or(0);
    m.vocab_size = r.get_u64("vocab_size");
    // A state-space model has no position limit; 1M tokens stands in for one.
    m.max_context = ssm_only ? r.opt_u64("max_position_embeddings").value_or(u64{1} << 20) : r.get_u64("max_position_embeddings");
    m.positions["max_context"] = r.pos("max_position_embeddings");
    m.positions["num_layers"] = r.pos("num_hidden_layers");
    const bool gemma = type == "gemma2" || type == "gemma3_text";
    m.tie_word_embeddings = r.get_bool("tie_word_embeddings", gemma || ssm_only);
    m.norm = NormKind::RMSNorm;  // every family read here uses RMSNorm
    m.activation = r.get_string(gemma ? "hidden_activation" : "hidden_act", gemma ? "gelu_pytorch_tanh" : "silu");
    m.gated_mlp = true;
    // Qwen2 always has q/k/v biases (Qwen2Attention: bias=True); llama-style configs make them optional.
    const bool attention_bias = r.get_bool("attention_bias", false);
    m.qkv_bias = type == "qwen2" || (type != "mistral" && type != "mixtral" && attention_bias);
    m.o_bias = (type == "llama" || type == "gpt_oss" || type == "qwen3" || type == "qwen3_moe" || gemma) && attention_bias;
    m.mlp_bias = type == "llama" ? r.get_bool("mlp_bias", false) : false;
    m.fused_projections = type == "phi3";
    m.fp32_logits = type == "mamba2";
    // transformers 5 writes "dtype"; older files "torch_dtype".
    const json& dtroot = doc.root;
    std::string dt = dtroot.contains("dtype") && dtroot["dtype"].is_string() ? dtroot["dtype"].get<std::string>()
                     : r.has("dtype")                                          ? r.get_string("dtype", "")
                     : dtroot.contains("torch_dtype") && dtroot["torch_dtype"].is_string() ? dtroot["torch_dtype"].get<std::string>()
                                                                                          : r.get_string("torch_dtype", "bfloat16");
    const std::map<std::string, std::string> torch_names = {
        {"bfloat16", "bf16"}, {"float16", "fp16"}, {"float32", "fp32"}, {"half", "fp16"}, {"float", "fp32"}};
    auto it = torch_names.find(dt);
    if (it == torch_names.end())
        r.fail(r.has("dtype") ? "dtype" : "torch_dtype",
               fmt::format("unsupported dtype \"{}\"; valid: bfloat16, float16, float32", dt));
    parse_dtype(it->second, m.dtype);

    // Attention details.
    m.attn.qk_norm = type == "qwen3" || type == "qwen3_moe" || type == "gemma3_text";
    m.attn.sandwich_norm = gemma;
    m.attn.scale_embeddings = gemma;
    m.attn.sinks = type == "gpt_oss";
    if (r.has("attn_logit_softcapping")) {
        const json& v = root["attn_logit_softcapping"];
        if (!v.is_number() || !(v.get<double>() > 0) || v.get<double>() > 1e6 || v.get<double>() != std::floor(v.get<double>()))
            r.fail("attn_logit_softcapping", "expected a positive whole number up to 1,000,000, or null");
        m.attn.softcap = static_cast<u64>(v.get<double>());
    }
    if (r.has("final_logit_softcapping")) {
        const json& v = root["final_logit_softcapping"];
        if (!v.is_number() || !(v.get<double>() > 0) || v.get<double>() > 1e6 || v.get<double>() != std::floor(v.get<double>()))
            r.fail("final_logit_softcapping", "expected a positive whole number up to 1,000,000, or null");
        m.attn.final_softcap = static_cast<u64>(v.get<double>());
    }

    // MLA.
    if (type.rfind("deepseek", 0) == 0) {
        m.mla.q_lora_rank = null_or_u64(r, "q_lora_rank");
        m.mla.kv_lora_rank = r.get_u64("kv_lora_rank");
        m.mla.qk_rope_head_dim = r.get_u64("qk_rope_head_dim");
        m.mla.qk_nope_head_dim = r.get_u64("qk_nope_head_dim");
        m.mla.v_head_dim = r.get_u64("v_head_dim");
        m.head_dim = m.mla.qk_head_dim();
        m.num_key_value_heads = m.num_attention_heads;
        for (const char* k : {"kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"}) m.positions[std::string("mla.") + k] = r.pos(k);
    }

    // Mixture of experts.
    auto experts = [&](const char* count, const char* topk, const char* width) {
        m.moe.num_experts = r.get_u64(count);
        m.moe.experts_per_token = r.has(topk) ? r.get_u64(topk) : r.get_u64("experts_per_token");
        m.moe.intermediate_size = r.get_u64(width);
        m.positions["moe.experts_per_token"] = r.pos(r.has(topk) ? topk : "experts_per_token");
        m.positions["moe.intermediate_size"] = r.pos(width);
    };
    if (type == "mixtral") experts("num_local_experts", "num_experts_per_tok", "intermediate_size");
    if (type == "gpt_oss") {
        experts("num_local_experts", "num_experts_per_tok", "intermediate_size");
        m.moe.router_bias = m.moe.expert_bias = true;
        m.moe.dispatch = "grouped";
    }
    if (type == "qwen3_moe") {
        // transformers 5 writes num_local_experts; Qwen's own configs num_experts.
        experts(r.has("num_local_experts") ? "num_local_experts" : "num_experts", "num_experts_per_tok", "moe_intermediate_size");
        m.moe.layer_period = r.opt_u64("decoder_sparse_step").value_or(1);
        if (m.moe.layer_period == 0) r.fail("decoder_sparse_step", "must be a positive integer, got 0");
        // Qwen3MoeDecoderLayer: layer i is MoE when (i + 1) % decoder_sparse_step == 0.
        m.moe.layer_offset = m.moe.layer_period - 1;
        if (r.has("mlp_only_layers") && !(root["mlp_only_layers"].is_array() && root["mlp_only_layers"].empty()))
            r.fail("mlp_only_layers", "dense layers inside a Qwen3-MoE stack are not read; valid: []");
    }
    if (type.rfind("deepseek", 0) == 0) {
        experts("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size");
        m.moe.shared_intermediate_size = checked_mul(null_or_u64(r, "n_shared_experts"), m.moe.intermediate_size, "shared experts");
        m.moe.first_dense_layers = r.opt_u64("first_k_dense_replace").value_or(0);
        m.moe.layer_period = r.opt_u64("moe_layer_freq").value_or(1);
        if (m.moe.layer_period == 0) r.fail("moe_layer_freq", "must be a positive integer, got 0");
        m.moe.layer_offset = 0;
        const std::string scoring = r.get_string("scoring_func", type == "deepseek_v3" ? "sigmoid" : "softmax");
        m.moe.router_score = scoring;
        m.moe.score_correction_bias = type == "deepseek_v3" && r.get_string("topk_method", "noaux_tc") == "noaux_tc";
    }
    if (type == "jamba") {
        experts(r.has("num_local_experts") ? "num_local_experts" : "num_experts", "num_experts_per_tok", "intermediate_size");
        m.moe.layer_period = r.opt_u64("expert_layer_period").value_or(2);
        m.moe.layer_offset = r.opt_u64("expert_layer_offset").value_or(1);
        if (m.moe.layer_period == 0) r.fail("expert_layer_period", "must be a positive integer, got 0");
        if (m.moe.num_experts == 1) m.moe = MoeSpec{};  // one expert: a dense MLP
    }
    // Qwen3-MoE, Jamba and gpt-oss cast the routing weights to the compute dtype.
    m.moe.fp32_routing_weights = type == "mixtral" || type.rfind("deepseek", 0) == 0;
    if (m.moe.enabled() && (m.moe.experts_per_token == 0 || m.moe.experts_per_token > m.moe.num_experts))
        r.fail("num_experts_per_tok", fmt::format("{} must be from 1 to the {} experts", m.moe.experts_per_token, m.moe.num_experts));

    // State-space layers.
    if (type == "mamba2") {
        m.ssm.kind = "mamba2";
        m.ssm.state_size = r.get_u64("state_size");
        m.ssm.conv_kernel = r.opt_u64("conv_kernel").value_or(4);
        m.ssm.inner_size = checked_mul(r.opt_u64("expand").value_or(2), m.hidden_size, "mamba inner size");
        m.ssm.num_heads = r.get_u64("num_heads");
        m.ssm.head_dim = r.opt_u64("head_dim").value_or(64);
        m.ssm.n_groups = r.opt_u64("n_groups").value_or(1);
        m.ssm.chunk_size = r.opt_u64("chunk_size").value_or(256);
        m.ssm.conv_bias = r.get_bool("use_conv_bias", true);
        m.ssm.proj_bias = r.get_bool("use_bias", false);
        m.positions["ssm"] = r.pos("state_size");
        m.positions["ssm.num_heads"] = r.pos("num_heads");
        m.positions["ssm.n_groups"] = r.pos("n_groups");
    }
    if (type == "jamba") {
        m.ssm.kind = "mamba";
        m.ssm.state_size = r.opt_u64("mamba_d_state").value_or(16);
        m.ssm.conv_kernel = r.opt_u64("mamba_d_conv").value_or(4);
        m.ssm.inner_size = checked_mul(r.opt_u64("mamba_expand").value_or(2), m.hidden_size, "mamba inner size");
        if (r.has("mamba_dt_rank") && root["mamba_dt_rank"].is_string()) {
            if (root["mamba_dt_rank"].get<std::string>() != "auto") r.fail("mamba_dt_rank", "expected a whole number or \"auto\"");
            m.ssm.dt_rank = ceil_div(m.hidden_size, 16);
        } else {
            m.ssm.dt_rank = r.has("mamba_dt_rank") ? r.get_u64("mamba_dt_rank") : ceil_div(m.hidden_size, 16);
        }
        m.ssm.conv_bias = r.get_bool("mamba_conv_bias", true);
        m.ssm.proj_bias = r.get_bool("mamba_proj_bias", false);
        m.positions["ssm"] = r.pos("mamba_d_state");
        m.positions["ssm.dt_rank"] = r.pos("mamba_dt_rank");
    }

    // Token mixer per layer.
    u64 window = 0;
    std::vector<std::string> mixers;
    if (r.has("sliding_window")) {
        const bool applies = type == "mistral" || type == "mixtral" || type == "phi3" || type == "gpt_oss" || gemma || type == "llama" ||
                             ((type == "qwen2" || type == "qwen3" || type == "qwen3_moe") && r.get_bool("use_sliding_window", false));
        if (applies) window = r.get_u64("sliding_window");
        if (applies && window == 0) r.fail("sliding_window", "must be positive or null");
    }
    m.sliding_window = window;
    if (type == "mamba2") {
        mixers.assign(m.num_layers, "mamba2");
    } else if (type == "jamba") {
        const u64 period = r.opt_u64("attn_layer_period").value_or(8), offset = r.opt_u64("attn_layer_offset").value_or(4);
        if (period == 0) r.fail("attn_layer_period", "must be a positive integer, got 0");
        for (u64 i = 0; i < m.num_layers; ++i) mixers.push_back(i % period == offset ? (window ? "sliding_attention" : "full_attention") : "mamba");
    } else if (m.mla.enabled()) {
        mixers.assign(m.num_layers, "mla");
    } else if (r.has("layer_types")) {
        mixers = read_layer_types(r, m.num_layers);
    } else if (type == "gemma2") {
        // Gemma2Config's default: even layers slide, odd layers attend globally.
        for (u64 i = 0; i < m.num_layers; ++i) mixers.push_back(i % 2 == 0 && window ? "sliding_attention" : "full_attention");
    } else if (type == "gemma3_text") {
        const u64 pattern = r.opt_u64("sliding_window_pattern").value_or(6);
        if (pattern == 0) r.fail("sliding_window_pattern", "must be a positive integer, got 0");
        for (u64 i = 0; i < m.num_layers; ++i) mixers.push_back((i + 1) % pattern != 0 && window ? "sliding_attention" : "full_attention");
    } else if (type == "gpt_oss") {
        for (u64 i = 0; i < m.num_layers; ++i) mixers.push_back(i % 2 == 0 && window ? "sliding_attention" : "full_attention");
    } else if ((type == "qwen2" || type == "qwen3" || type == "qwen3_moe") && window) {
        u64 first_sliding = r.opt_u64("max_window_layers").value_or(m.num_layers);
        for (u64 i = 0; i < m.num_layers; ++i) mixers.push_back(i >= first_sliding ? "sliding_attention" : "full_attention");
    } else {
        mixers.assign(m.num_layers, window ? "sliding_attention" : "full_attention");
    }
    // A sliding window no layer uses is dropped (Gemma-3 configs set it even for full layers).
    if (std::find(mixers.begin(), mixers.end(), "sliding_attention") == mixers.end()) m.sliding_window = 0;
    const std::string dense = type == "mamba2" ? "none" : "gated_mlp";
    for (u64 i = 0; i < m.num_layers; ++i) m.layers.push_back({mixers[i], channel_mixer_for(m, i, dense)});

    // Weights as shipped.
    if (r.has("quantization_config")) {
        const json& q = root["quantization_config"];
        const std::string method = q.is_object() && q.contains("quant_method") && q["quant_method"].is_string() ? q["quant_method"].get<std::string>() : "";
        if (method == "mxfp4" && type == "gpt_oss") {
            m.shipped_expert_dtype = "mxfp4";
        } else if (method == "fp8" && type == "deepseek_v3" && q.contains("weight_block_size") && q["weight_block_size"] == json::array({128, 128})) {
            m.shipped_linear_dtype = "fp8-b128";
        } else {
            r.fail("quantization_config", fmt::format("quant_method \"{}\" is not read for {}; valid: mxfp4 (gpt_oss), fp8 with "
                                                      "128×128 blocks (deepseek_v3); or drop it and set workload.weight_dtype", method, type));
        }
    }
    validate_model(m);
    return m;
}

}  // namespace memtax
