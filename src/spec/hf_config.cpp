// Hugging Face config.json -> ModelSpec, using the field names transformers uses.
// Dispatch on model_type: llama, mistral, qwen2. Keys memtax does not need (rope_theta,
// token ids, ...) are ignored, as transformers itself keeps arbitrary attributes; keys that
// change the memory model in ways memtax does not support yet (experts, MLA, quantisation)
// are refused rather than silently ignored.
#include <fmt/format.h>

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

}  // namespace

ModelSpec load_hf_config(const std::string& text, const std::string& file) {
    JsonDoc doc = parse_json(text, file);
    const json& root = doc.root;
    if (!root.is_object()) throw InputError(SourcePos{file, 1, 0}, "(document)", "expected a JSON object");
    HfReader r(root, file, doc.lines);

    if (!r.has("model_type")) r.fail("model_type", "required field is missing (valid: llama, mistral, qwen2)");
    std::string type = r.get_string("model_type", "");
    const std::vector<std::string> types = {"llama", "mistral", "qwen2"};
    if (std::find(types.begin(), types.end(), type) == types.end()) {
        r.fail("model_type", fmt::format("unsupported model_type \"{}\"{}; supported: llama, mistral, qwen2", type,
                                         did_you_mean(type, types)));
    }
    for (const char* unsupported : {"num_local_experts", "num_experts", "n_routed_experts", "kv_lora_rank",
                                    "quantization_config"}) {
        if (r.has(unsupported))
            r.fail(unsupported, std::string(unsupported) == "quantization_config"
                                    ? "pre-quantised checkpoints are not read from config.json; pass --weight-dtype"
                                    : "mixture-of-experts and MLA models are not supported yet (dense decoders only)");
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
    m.num_attention_heads = r.get_u64("num_attention_heads");
    if (m.num_attention_heads == 0) r.fail("num_attention_heads", "must be a positive integer, got 0");
    m.num_key_value_heads = r.opt_u64("num_key_value_heads").value_or(m.num_attention_heads);
    if (auto hd = r.opt_u64("head_dim")) {
        m.head_dim = *hd;
    } else {
        if (m.hidden_size % m.num_attention_heads != 0)
            r.fail("num_attention_heads", fmt::format("{} does not divide hidden_size = {} and head_dim is not given",
                                                      m.num_attention_heads, m.hidden_size));
        m.head_dim = m.hidden_size / m.num_attention_heads;
    }
    m.intermediate_size = r.get_u64("intermediate_size");
    m.vocab_size = r.get_u64("vocab_size");
    m.max_context = r.get_u64("max_position_embeddings");
    m.positions["max_context"] = r.pos("max_position_embeddings");
    m.positions["num_layers"] = r.pos("num_hidden_layers");
    m.tie_word_embeddings = r.get_bool("tie_word_embeddings", false);
    m.norm = NormKind::RMSNorm;  // all three families use RMSNorm
    m.activation = r.get_string("hidden_act", "silu");
    m.gated_mlp = true;
    // Qwen2 always has q/k/v biases (Qwen2Attention: bias=True); llama makes them optional.
    m.qkv_bias = type == "qwen2" ? true : r.get_bool("attention_bias", false);
    m.o_bias = type == "llama" ? r.get_bool("attention_bias", false) : false;
    m.mlp_bias = type == "llama" ? r.get_bool("mlp_bias", false) : false;
    // transformers 5 writes "dtype"; older files "torch_dtype".
    std::string dt = r.has("dtype") ? r.get_string("dtype", "") : r.get_string("torch_dtype", "bfloat16");
    const std::map<std::string, std::string> torch_names = {
        {"bfloat16", "bf16"}, {"float16", "fp16"}, {"float32", "fp32"}, {"half", "fp16"}, {"float", "fp32"}};
    auto it = torch_names.find(dt);
    if (it == torch_names.end())
        r.fail(r.has("dtype") ? "dtype" : "torch_dtype",
               fmt::format("unsupported dtype \"{}\"; valid: bfloat16, float16, float32", dt));
    parse_dtype(it->second, m.dtype);

    // Sliding window: mistral applies it to every layer when set; qwen2 only when
    // use_sliding_window is true (and then to layers from max_window_layers on).
    u64 window = 0;
    if (r.has("sliding_window")) {
        bool applies = type == "mistral" || (type == "qwen2" && r.get_bool("use_sliding_window", false)) ||
                       type == "llama";
        if (applies) window = r.get_u64("sliding_window");
        if (applies && window == 0) r.fail("sliding_window", "must be positive or null");
    }
    m.sliding_window = window;
    const std::string mlp = m.gated_mlp ? "gated_mlp" : "mlp";
    if (r.has("layer_types")) {
        const json& lt = r.root()["layer_types"];
        if (!lt.is_array()) r.fail("layer_types", "expected a list of \"full_attention\"|\"sliding_attention\"");
        for (size_t i = 0; i < lt.size(); ++i) {
            std::string s = lt[i].is_string() ? lt[i].get<std::string>() : lt[i].dump();
            if (s == "full_attention") m.layers.push_back({"full_attention", mlp});
            else if (s == "sliding_attention") m.layers.push_back({"sliding_attention", mlp});
            else r.fail("layer_types", fmt::format("entry {} is \"{}\"; valid: full_attention, sliding_attention", i, s));
        }
    } else if (type == "qwen2" && window) {
        u64 first_sliding = r.opt_u64("max_window_layers").value_or(m.num_layers);
        for (u64 i = 0; i < m.num_layers; ++i)
            m.layers.push_back({i >= first_sliding ? "sliding_attention" : "full_attention", mlp});
    } else {
        m.layers.assign(m.num_layers, LayerSpec{window ? "sliding_attention" : "full_attention", mlp});
    }
    validate_model(m);
    return m;
}

}  // namespace memtax
