// Hugging Face config.json -> ModelSpec, using the field names transformers uses.
// One importer per model_type (HfFamily, hf_families.cpp) adds what its architecture has. Keys memtax does not need (rope_theta, token ids,
// ...) are ignored, as transformers itself keeps arbitrary attributes; a key that changes the memory model and that the declared model_type
// does not have (experts in a "llama", soft-capping in a "mistral", ...) is refused by name, never read as a dense Llama.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "spec/hf_family.hpp"
#include "spec/json_reader.hpp"
#include "spec/loaders.hpp"

namespace memtax {
namespace {

using json = nlohmann::json;

}  // namespace

HfReader::HfReader(const json& root, std::string file, std::map<std::string, int> lines)
    : root_(root), file_(std::move(file)), lines_(std::move(lines)) {}

SourcePos HfReader::pos(const std::string& key) const {
    auto it = lines_.find(key);
    // A missing key is reported at the object's opening line.
    return SourcePos{file_, it == lines_.end() ? 1 : it->second, 0};
}

void HfReader::fail(const std::string& key, const std::string& msg) const { throw InputError(pos(key), key, msg); }

bool HfReader::has(const std::string& key) const { return root_.contains(key) && !root_[key].is_null(); }

namespace {
std::string type_of(const json& v) { return v.is_string() ? fmt::format("\"{}\"", v.get<std::string>()) : v.dump(); }
}  // namespace

u64 HfReader::get_u64(const std::string& key) const {
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

std::optional<u64> HfReader::opt_u64(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return get_u64(key);
}

bool HfReader::get_bool(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!root_[key].is_boolean()) fail(key, fmt::format("expected true or false, got {}", type_of(root_[key])));
    return root_[key].get<bool>();
}

std::string HfReader::get_string(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!root_[key].is_string()) fail(key, fmt::format("expected a string, got {}", type_of(root_[key])));
    return root_[key].get<std::string>();
}

std::string HfReader::quant_method() const {
    if (!has("quantization_config")) return "";
    const json& q = root_["quantization_config"];
    return q.is_object() && q.contains("quant_method") && q["quant_method"].is_string() ? q["quant_method"].get<std::string>() : "";
}

namespace {

// Keys that change what is stored or computed; absent from a type's list above, they are refused.
const std::vector<const char*> kArchKeys = {"num_local_experts",
                                            "num_experts",
                                            "n_routed_experts",
                                            "n_shared_experts",
                                            "moe_intermediate_size",
                                            "num_experts_per_tok",
                                            "experts_per_token",
                                            "shared_expert_intermediate_size",
                                            "first_k_dense_replace",
                                            "moe_layer_freq",
                                            "expert_layer_period",
                                            "decoder_sparse_step",
                                            "q_lora_rank",
                                            "kv_lora_rank",
                                            "qk_rope_head_dim",
                                            "qk_nope_head_dim",
                                            "attn_logit_softcapping",
                                            "final_logit_softcapping",
                                            "query_pre_attn_scalar",
                                            "sliding_window_pattern",
                                            "attn_layer_period",
                                            "attn_layer_offset",
                                            "mamba_d_state",
                                            "mamba_expand",
                                            "state_size",
                                            "ssm_cfg",
                                            "layer_types",
                                            "sliding_window",
                                            "use_sliding_window",
                                            "num_nextn_predict_layers",
                                            "attention_chunk_size",
                                            "no_rope_layers",
                                            "linear_attn_config",
                                            "full_attn_idxs",
                                            "attn_layer_indices",
                                            "hybrid_override_pattern"};

// An architecture key counts as present when it says something: not null, false, 0 or [].
bool says_something(const json& v) {
    if (v.is_null()) return false;
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) return v.get<double>() != 0;
    if (v.is_array() || v.is_object()) return !v.empty();
    return true;
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
            if (c == '\\' && i + 1 < text.size())
                out += text[++i];
            else if (c == '"')
                in_string = false;
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

const HfFamilyRegistry& HfFamilyRegistry::builtin() {
    static const HfFamilyRegistry reg = [] {
        HfFamilyRegistry r;
        register_hf_families(r);
        return r;
    }();
    return reg;
}

void HfFamilyRegistry::add(HfFamily f) {
    std::vector<std::string> names = f.aliases;
    names.push_back(f.model_type);
    for (const auto& n : names)
        if (find(n)) throw InternalError(fmt::format("HF model_type {} registered twice", n));
    families_.push_back(std::move(f));
}

const HfFamily* HfFamilyRegistry::find(const std::string& type) const {
    for (const auto& f : families_) {
        if (f.model_type == type) return &f;
        for (const auto& a : f.aliases)
            if (a == type) return &f;
    }
    return nullptr;
}

std::vector<std::string> HfFamilyRegistry::names() const {
    std::vector<std::string> out;
    for (const auto& f : families_) out.push_back(f.model_type);
    return out;
}

namespace hf {
std::vector<std::string> read_layer_types(const HfReader& r, u64 layers) {
    const json& lt = r.root()["layer_types"];
    if (!lt.is_array()) r.fail("layer_types", "expected a list of \"full_attention\"|\"sliding_attention\"|\"chunked_attention\"");
    if (lt.size() != layers) r.fail("layer_types", fmt::format("lists {} layers but num_hidden_layers = {}", lt.size(), layers));
    std::vector<std::string> out;
    for (size_t i = 0; i < lt.size(); ++i) {
        std::string s = lt[i].is_string() ? lt[i].get<std::string>() : lt[i].dump();
        if (s != "full_attention" && s != "sliding_attention" && s != "chunked_attention")
            r.fail("layer_types", fmt::format("entry {} is \"{}\"; valid: full_attention, sliding_attention, chunked_attention", i, s));
        out.push_back(s);
    }
    return out;
}

void read_experts(const HfReader& r, ModelSpec& m, const std::string& count, const std::string& topk, const std::string& width) {
    m.moe.num_experts = r.get_u64(count);
    const std::string k = r.has(topk) ? topk : "experts_per_token";
    m.moe.experts_per_token = r.get_u64(k);
    m.moe.intermediate_size = r.get_u64(width);
    m.positions["moe.experts_per_token"] = r.pos(k);
    m.positions["moe.intermediate_size"] = r.pos(width);
}
}  // namespace hf

ModelSpec load_hf_config(const std::string& text, const std::string& file) {
    return load_hf_config(text, file, HfFamilyRegistry::builtin());
}

namespace {

// The checkpoint formats any decoder family is saved in, mapped to the dtype they store for
// every linear layer of the decoder (embeddings and the head stay in the model's dtype):
// - AWQ (AutoAWQ, `quant_method: awq`): 4-bit weights packed in int32 (`qweight`), an fp16
//   scale and a packed 4-bit zero point (`qzeros`) per group of `group_size` inputs of each
//   output: int4-gN-zp (int4-gN when `zero_point` is false).
// - GPTQ (AutoGPTQ / GPTQModel, `quant_method: gptq`): 4- or 8-bit weights, an fp16 scale and a
//   packed zero point per group; the format stores `qzeros` even for `sym: true`:
//   int4-gN-zp or int8-gN-zp. The int32 `g_idx` (one per input channel) is not counted: 4 bytes
//   per input feature, under 0.05% of a 4096-wide layer.
// - FP8 (`quant_method: fp8`): e4m3 weights; with `weight_block_size: [128, 128]` one fp32
//   scale per block (fp8-b128), otherwise one per tensor (fp8_e4m3; its 4 bytes are not counted).
// Anything else is refused by name with the formats read.
void read_common_quantization(const HfReader& r, ModelSpec& m, const HfFamily& f) {
    const json& q = r.root()["quantization_config"];
    const std::string method = r.quant_method();
    const std::string valid =
        fmt::format("awq (bits 4), gptq (bits 4 or 8), fp8{}",
                    f.accepts_quantization.empty() ? "" : fmt::format(", {} ({})", f.accepts_quantization, f.model_type));
    auto refuse = [&](const std::string& key, const std::string& why) {
        r.fail("quantization_config." + key,
               fmt::format("{}; memtax reads {}; or drop quantization_config and set workload.weight_dtype", why, valid));
    };
    if (!q.is_object()) refuse("quant_method", "expected an object");
    auto number = [&](const char* key, long long fallback) -> long long {
        if (!q.contains(key) || q[key].is_null()) return fallback;
        if (!q[key].is_number_integer()) refuse(key, fmt::format("expected an integer, got {}", q[key].dump()));
        return q[key].get<long long>();
    };
    auto group = [&](const char* key) -> u64 {
        const long long g = number(key, 128);
        if (g == -1) refuse(key, "-1 (one scale per output channel) is not modelled; a positive group size is");
        if (g <= 0 || g > (1 << 20)) refuse(key, fmt::format("{} is not a group size (1 to 1,048,576)", g));
        return static_cast<u64>(g);
    };
    std::string dtype;
    if (method == "awq") {
        const long long bits = number("bits", number("w_bit", 4));
        if (bits != 4) refuse("bits", fmt::format("AWQ stores 4-bit weights, got {}", bits));
        const u64 g = q.contains("group_size") ? group("group_size") : group("q_group_size");
        const bool zero = !q.contains("zero_point") || !q["zero_point"].is_boolean() || q["zero_point"].get<bool>();
        dtype = fmt::format("int4-g{}{}", g, zero ? "-zp" : "");
    } else if (method == "gptq") {
        const long long bits = number("bits", 4);
        if (bits != 4 && bits != 8) refuse("bits", fmt::format("{}-bit GPTQ is not modelled; 4 and 8 are", bits));
        dtype = fmt::format("int{}-g{}-zp", bits, group("group_size"));
    } else if (method == "fp8") {
        if (q.contains("weight_block_size") && !q["weight_block_size"].is_null()) {
            if (q["weight_block_size"] != json::array({128, 128}))
                refuse("weight_block_size", fmt::format("{} is not modelled; [128, 128] is", q["weight_block_size"].dump()));
            dtype = "fp8-b128";
        } else {
            dtype = "fp8_e4m3";
        }
    } else {
        refuse("quant_method", method.empty() ? std::string("missing") : fmt::format("\"{}\" is not read", method));
    }
    m.shipped_linear_dtype = dtype;
}

}  // namespace

ModelSpec load_hf_config(const std::string& text, const std::string& file, const HfFamilyRegistry& families) {
    JsonDoc doc = parse_json(python_json_literals(text), file);
    if (!doc.root.is_object()) throw InputError(SourcePos{file, 1, 0}, "(document)", "expected a JSON object");
    const std::vector<std::string> names = families.names();
    const json& top = doc.root;
    const bool typed = top.contains("model_type") && top["model_type"].is_string();
    const HfFamily* family = typed ? families.find(top["model_type"].get<std::string>()) : nullptr;
    // A multimodal wrapper (Gemma-3) nests the language model's config.
    const bool nested =
        family && !family->nested_config.empty() && top.contains(family->nested_config) && top[family->nested_config].is_object();
    const json& root = nested ? top[family->nested_config] : top;
    HfReader r(root, file, doc.lines);
    const HfReader outer(top, file, doc.lines);
    if (!outer.has("model_type")) r.fail("model_type", fmt::format("required field is missing (valid: {})", fmt::join(names, ", ")));
    const std::string type = outer.get_string("model_type", "");
    if (!family)
        r.fail("model_type",
               fmt::format("unsupported model_type \"{}\"{}; supported: {}", type, did_you_mean(type, names), fmt::join(names, ", ")));
    const HfFamily& f = *family;
    for (const char* key : kArchKeys) {
        if (!root.contains(key) || !says_something(root[key])) continue;
        if (std::find(f.keys.begin(), f.keys.end(), key) != f.keys.end()) continue;
        r.fail(key, fmt::format("model_type \"{}\" has no {}: this config is not a {} model (memtax never reads it as one); "
                                "set model_type to the architecture it was saved from",
                                f.model_type, key, f.model_type));
    }

    ModelSpec m;
    m.file = file;
    for (const auto& [k, line] : doc.lines) m.positions[k] = SourcePos{file, line, 0};
    m.family = f.model_type;
    m.name = std::filesystem::path(file).stem().string();
    m.display_name = r.get_string("_name_or_path", m.name);
    m.source = "Hugging Face config.json: " + file;
    m.num_layers = r.get_u64("num_hidden_layers");
    check_layer_count(m.num_layers, r.pos("num_hidden_layers"), "num_hidden_layers");
    m.hidden_size = r.get_u64("hidden_size");
    if (f.attention) {
        m.num_attention_heads = r.get_u64("num_attention_heads");
        if (m.num_attention_heads == 0) r.fail("num_attention_heads", "must be a positive integer, got 0");
        m.num_key_value_heads = r.opt_u64("num_key_value_heads").value_or(m.num_attention_heads);
        if (auto hd = r.opt_u64("head_dim")) {
            m.head_dim = *hd;
        } else {
            if (m.hidden_size % m.num_attention_heads != 0)
                r.fail("num_attention_heads",
                       fmt::format("{} does not divide hidden_size = {} and head_dim is not given", m.num_attention_heads, m.hidden_size));
            m.head_dim = m.hidden_size / m.num_attention_heads;
        }
    }
    m.intermediate_size = r.opt_u64("intermediate_size").value_or(0);
    m.vocab_size = r.get_u64("vocab_size");
    // A model without positions (state-space) has no limit; 1M tokens stands in for one.
    m.max_context = f.positions ? r.get_u64("max_position_embeddings") : r.opt_u64("max_position_embeddings").value_or(u64{1} << 20);
    m.positions["max_context"] = r.pos("max_position_embeddings");
    m.positions["num_layers"] = r.pos("num_hidden_layers");
    m.tie_word_embeddings = r.get_bool("tie_word_embeddings", f.tie_word_embeddings);
    m.norm = NormKind::RMSNorm;  // every family read here uses RMSNorm
    m.activation = r.get_string(f.activation_key, f.activation_default);
    m.gated_mlp = true;
    // transformers 5 writes "dtype"; older files "torch_dtype".
    std::string dt = top.contains("dtype") && top["dtype"].is_string()               ? top["dtype"].get<std::string>()
                     : r.has("dtype")                                                ? r.get_string("dtype", "")
                     : top.contains("torch_dtype") && top["torch_dtype"].is_string() ? top["torch_dtype"].get<std::string>()
                                                                                     : r.get_string("torch_dtype", "bfloat16");
    const std::map<std::string, std::string> torch_names = {
        {"bfloat16", "bf16"}, {"float16", "fp16"}, {"float32", "fp32"}, {"half", "fp16"}, {"float", "fp32"}};
    auto it = torch_names.find(dt);
    if (it == torch_names.end())
        r.fail(r.has("dtype") ? "dtype" : "torch_dtype", fmt::format("unsupported dtype \"{}\"; valid: bfloat16, float16, float32", dt));
    parse_dtype(it->second, m.dtype);
    // Soft-capping (only families that declare the keys get this far with them).
    for (auto [key, cap] : {std::pair<const char*, u64*>{"attn_logit_softcapping", &m.attn.softcap},
                            std::pair<const char*, u64*>{"final_logit_softcapping", &m.attn.final_softcap}}) {
        if (!r.has(key)) continue;
        const json& v = root[key];
        if (!v.is_number() || !(v.get<double>() > 0) || v.get<double>() > 1e6 || v.get<double>() != std::floor(v.get<double>()))
            r.fail(key, "expected a positive whole number up to 1,000,000, or null");
        *cap = static_cast<u64>(v.get<double>());
    }

    // The family's own fields. Routing weights stay in the compute dtype unless it says otherwise.
    m.moe.fp32_routing_weights = false;
    if (f.read) f.read(r, m);
    if (m.moe.enabled() && (m.moe.experts_per_token == 0 || m.moe.experts_per_token > m.moe.num_experts))
        r.fail("num_experts_per_tok", fmt::format("{} must be from 1 to the {} experts", m.moe.experts_per_token, m.moe.num_experts));

    // Token mixer per layer.
    if (r.has("sliding_window") && f.window_applies(r)) {
        m.sliding_window = r.get_u64("sliding_window");
        if (m.sliding_window == 0) r.fail("sliding_window", "must be positive or null");
    }
    std::vector<std::string> mixers;
    if (f.layers) mixers = f.layers(r, m);
    if (mixers.empty()) {
        if (r.has("layer_types"))
            mixers = hf::read_layer_types(r, m.num_layers);
        else
            mixers = hf::uniform(m, m.sliding_window ? "sliding_attention" : "full_attention");
    }
    // A sliding window no layer uses is dropped (Gemma-3 configs set it even for full layers).
    if (std::find(mixers.begin(), mixers.end(), "sliding_attention") == mixers.end()) m.sliding_window = 0;
    if (std::find(mixers.begin(), mixers.end(), "chunked_attention") == mixers.end()) m.attention_chunk_size = 0;
    for (u64 i = 0; i < m.num_layers; ++i) m.layers.push_back({mixers[i], channel_mixer_for(m, i, f.dense_channel)});

    // Weights as shipped: the family's own format first (gpt-oss's mxfp4 experts), then the
    // formats any decoder is saved in.
    if (r.has("quantization_config") && !(f.quantization && f.quantization(r, m))) read_common_quantization(r, m, f);
    validate_model(m);
    return m;
}

}  // namespace memtax
