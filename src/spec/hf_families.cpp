// The built-in Hugging Face model families: one importer per transformers model_type, each
// stating the architecture keys its config class has, its defaults and what it adds to the
// common reading (hf_config.cpp). Field names and defaults are those of transformers'
// configuration_<type>.py and modeling_<type>.py; docs/engine.md, "Adding a model family",
// shows how to add one.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "spec/hf_family.hpp"

namespace memtax {
namespace {

using json = nlohmann::json;

bool always(const HfReader&) { return true; }
// Qwen2/Qwen3 configs carry a sliding_window that applies only with use_sliding_window.
bool qwen_window(const HfReader& r) { return r.get_bool("use_sliding_window", false); }

// Layers from max_window_layers on slide (Qwen2DecoderLayer), when no layer_types is given.
std::vector<std::string> qwen_layers(const HfReader& r, const ModelSpec& m) {
    if (r.has("layer_types")) return hf::read_layer_types(r, m.num_layers);
    if (!m.sliding_window) return {};
    const u64 first_sliding = r.opt_u64("max_window_layers").value_or(m.num_layers);
    std::vector<std::string> out;
    for (u64 i = 0; i < m.num_layers; ++i) out.push_back(i >= first_sliding ? "sliding_attention" : "full_attention");
    return out;
}

// Even layers slide, odd layers attend globally (Gemma2Config's and GptOssConfig's default).
std::vector<std::string> alternating_layers(const HfReader& r, const ModelSpec& m) {
    if (r.has("layer_types")) return hf::read_layer_types(r, m.num_layers);
    std::vector<std::string> out;
    for (u64 i = 0; i < m.num_layers; ++i) out.push_back(i % 2 == 0 && m.sliding_window ? "sliding_attention" : "full_attention");
    return out;
}

const std::vector<std::string> kQwenWindowKeys = {"sliding_window", "use_sliding_window", "max_window_layers", "layer_types"};

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Gemma-2/3: four norms per layer, embeddings scaled by sqrt(hidden), GeLU-tanh, tied embeddings.
HfFamily gemma(const std::string& type, std::vector<std::string> keys) {
    HfFamily f;
    f.model_type = type;
    f.keys = std::move(keys);
    f.tie_word_embeddings = true;
    f.activation_key = "hidden_activation";
    f.activation_default = "gelu_pytorch_tanh";
    f.window_applies = always;
    f.read = [](const HfReader& r, ModelSpec& m) {
        m.qkv_bias = m.o_bias = r.get_bool("attention_bias", false);
        m.attn.sandwich_norm = true;
        m.attn.scale_embeddings = true;
    };
    return f;
}

// DeepSeek-V2/V3: latent attention on every layer, routed + shared experts after the first dense layers.
HfFamily deepseek(const std::string& type) {
    HfFamily f;
    f.model_type = type;
    f.keys = {"q_lora_rank",
              "kv_lora_rank",
              "qk_rope_head_dim",
              "qk_nope_head_dim",
              "v_head_dim",
              "n_routed_experts",
              "n_shared_experts",
              "num_experts_per_tok",
              "moe_intermediate_size",
              "first_k_dense_replace",
              "moe_layer_freq",
              "n_group",
              "topk_group",
              "topk_method",
              "routed_scaling_factor",
              "norm_topk_prob",
              "scoring_func",
              "aux_loss_alpha",
              "seq_aux",
              "attention_bias",
              "ep_size"};
    if (type == "deepseek_v3") f.keys.insert(f.keys.end(), {"num_nextn_predict_layers"});
    const bool v3 = type == "deepseek_v3";
    f.read = [v3](const HfReader& r, ModelSpec& m) {
        m.qkv_bias = r.get_bool("attention_bias", false);
        m.mla.q_lora_rank = r.u64_or_zero("q_lora_rank");
        m.mla.kv_lora_rank = r.get_u64("kv_lora_rank");
        m.mla.qk_rope_head_dim = r.get_u64("qk_rope_head_dim");
        m.mla.qk_nope_head_dim = r.get_u64("qk_nope_head_dim");
        m.mla.v_head_dim = r.get_u64("v_head_dim");
        // The config's head_dim is the rotary slice; the attention width is the MLA's.
        m.head_dim = m.mla.qk_head_dim();
        m.num_key_value_heads = m.num_attention_heads;
        for (const char* k : {"kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"})
            m.positions[std::string("mla.") + k] = r.pos(k);
        hf::read_experts(r, m, "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size");
        m.moe.shared_intermediate_size = checked_mul(r.u64_or_zero("n_shared_experts"), m.moe.intermediate_size, "shared experts");
        m.moe.first_dense_layers = r.opt_u64("first_k_dense_replace").value_or(0);
        m.moe.layer_period = r.opt_u64("moe_layer_freq").value_or(1);
        if (m.moe.layer_period == 0) r.fail("moe_layer_freq", "must be a positive integer, got 0");
        m.moe.layer_offset = 0;
        m.moe.router_score = r.get_string("scoring_func", v3 ? "sigmoid" : "softmax");
        m.moe.score_correction_bias = v3 && r.get_string("topk_method", "noaux_tc") == "noaux_tc";
        m.moe.fp32_routing_weights = true;
    };
    f.layers = [](const HfReader&, const ModelSpec& m) { return hf::uniform(m, "mla"); };
    return f;
}

// Qwen3 dense and MoE: q/k RMSNorm, optional attention biases, Qwen's window rule.
HfFamily qwen3(const std::string& type, bool moe) {
    HfFamily f;
    f.model_type = type;
    f.keys = plus(kQwenWindowKeys, {"attention_bias"});
    if (moe)
        f.keys = plus(f.keys, {"num_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size", "decoder_sparse_step",
                               "mlp_only_layers", "norm_topk_prob", "router_aux_loss_coef", "output_router_logits"});
    f.window_applies = qwen_window;
    f.layers = qwen_layers;
    f.read = [moe](const HfReader& r, ModelSpec& m) {
        m.qkv_bias = m.o_bias = r.get_bool("attention_bias", false);
        m.attn.qk_norm = true;
        if (!moe) return;
        // transformers 5 writes num_local_experts; Qwen's own configs num_experts.
        hf::read_experts(r, m, r.has("num_local_experts") ? "num_local_experts" : "num_experts", "num_experts_per_tok",
                         "moe_intermediate_size");
        m.moe.layer_period = r.opt_u64("decoder_sparse_step").value_or(1);
        if (m.moe.layer_period == 0) r.fail("decoder_sparse_step", "must be a positive integer, got 0");
        // Qwen3MoeDecoderLayer: layer i is MoE when (i + 1) % decoder_sparse_step == 0.
        m.moe.layer_offset = m.moe.layer_period - 1;
        if (r.has("mlp_only_layers") && !(r.root()["mlp_only_layers"].is_array() && r.root()["mlp_only_layers"].empty()))
            r.fail("mlp_only_layers", "dense layers inside a Qwen3-MoE stack are not read; valid: []");
        m.moe.fp32_routing_weights = false;  // cast back to the compute dtype
    };
    return f;
}

}  // namespace

void register_hf_families(HfFamilyRegistry& reg) {
    {  // LlamaForCausalLM: attention_bias covers q/k/v and o; mlp_bias the MLP.
        HfFamily f;
        f.model_type = "llama";
        f.keys = {"attention_bias", "mlp_bias", "sliding_window", "layer_types"};
        f.window_applies = always;
        f.read = [](const HfReader& r, ModelSpec& m) {
            m.qkv_bias = m.o_bias = r.get_bool("attention_bias", false);
            m.mlp_bias = r.get_bool("mlp_bias", false);
        };
        reg.add(std::move(f));
    }
    {  // Mistral: no biases; a sliding window on every layer when set.
        HfFamily f;
        f.model_type = "mistral";
        f.keys = {"sliding_window", "layer_types"};
        f.window_applies = always;
        reg.add(std::move(f));
    }
    {  // Qwen2: q/k/v always carry biases (Qwen2Attention: bias=True).
        HfFamily f;
        f.model_type = "qwen2";
        f.keys = kQwenWindowKeys;
        f.window_applies = qwen_window;
        f.layers = qwen_layers;
        f.read = [](const HfReader&, ModelSpec& m) { m.qkv_bias = true; };
        reg.add(std::move(f));
    }
    reg.add(qwen3("qwen3", false));
    reg.add(qwen3("qwen3_moe", true));
    {  // Mixtral: Mistral's attention, every layer's MLP routed over num_local_experts.
        HfFamily f;
        f.model_type = "mixtral";
        f.keys = {"sliding_window",       "layer_types",          "num_local_experts",  "num_experts_per_tok",
                  "router_aux_loss_coef", "output_router_logits", "router_jitter_noise"};
        f.window_applies = always;
        f.read = [](const HfReader& r, ModelSpec& m) {
            hf::read_experts(r, m, "num_local_experts", "num_experts_per_tok", "intermediate_size");
            m.moe.fp32_routing_weights = true;
        };
        reg.add(std::move(f));
    }
    reg.add(deepseek("deepseek_v2"));
    reg.add(deepseek("deepseek_v3"));
    {
        HfFamily f = gemma("gemma2", {"sliding_window", "layer_types", "attn_logit_softcapping", "final_logit_softcapping",
                                      "query_pre_attn_scalar", "hidden_activation", "attention_bias"});
        f.layers = alternating_layers;
        reg.add(std::move(f));
    }
    {  // Gemma-3 text: q/k norm, two rotary tables (local and global), every sliding_window_pattern-th layer global.
        HfFamily f = gemma("gemma3_text",
                           {"sliding_window", "layer_types", "sliding_window_pattern", "attn_logit_softcapping", "final_logit_softcapping",
                            "query_pre_attn_scalar", "hidden_activation", "rope_local_base_freq", "attention_bias"});
        f.aliases = {"gemma3"};
        f.nested_config = "text_config";  // Gemma3ForConditionalGeneration
        auto base = f.read;
        f.read = [base](const HfReader& r, ModelSpec& m) {
            base(r, m);
            m.attn.qk_norm = true;
            m.attn.rotary_tables = 2;
        };
        f.layers = [](const HfReader& r, const ModelSpec& m) {
            if (r.has("layer_types")) return hf::read_layer_types(r, m.num_layers);
            const u64 pattern = r.opt_u64("sliding_window_pattern").value_or(6);
            if (pattern == 0) r.fail("sliding_window_pattern", "must be a positive integer, got 0");
            std::vector<std::string> out;
            for (u64 i = 0; i < m.num_layers; ++i)
                out.push_back((i + 1) % pattern != 0 && m.sliding_window ? "sliding_attention" : "full_attention");
            return out;
        };
        reg.add(std::move(f));
    }
    {  // Llama-4 text (Llama4TextConfig, modeling_llama4.py): RoPE layers attend within chunks of
       // attention_chunk_size, every no_rope_layer_interval-th layer (NoPE) attends globally;
       // routed experts (top-1, sigmoid scores) + a shared expert, on every interleave_moe_layer_step-th
       // layer; the other layers' MLP is intermediate_size_mlp wide.
        HfFamily f;
        f.model_type = "llama4_text";
        f.aliases = {"llama4"};
        f.nested_config = "text_config";  // Llama4ForConditionalGeneration
        f.keys = {"attention_chunk_size", "no_rope_layers",       "layer_types",          "num_local_experts",
                  "num_experts_per_tok",  "router_aux_loss_coef", "output_router_logits", "router_jitter_noise"};
        f.read = [](const HfReader& r, ModelSpec& m) {
            m.qkv_bias = m.o_bias = r.get_bool("attention_bias", false);
            m.attention_chunk_size = r.opt_u64("attention_chunk_size").value_or(8192);
            if (m.attention_chunk_size == 0) r.fail("attention_chunk_size", "must be positive or null");
            hf::read_experts(r, m, "num_local_experts", "num_experts_per_tok", "intermediate_size");
            m.moe.shared_intermediate_size = m.moe.intermediate_size;  // Llama4TextMLP(config): intermediate_size
            m.moe.router_score = "sigmoid";
            m.intermediate_size = r.opt_u64("intermediate_size_mlp").value_or(16384);
            const u64 step = r.opt_u64("interleave_moe_layer_step").value_or(1);
            if (step == 0) r.fail("interleave_moe_layer_step", "must be a positive integer, got 0");
            m.moe.layer_period = step;
            m.moe.layer_offset = step - 1;  // moe_layers = range(step - 1, layers, step)
            if (r.has("moe_layers")) {
                const auto& ml = r.root()["moe_layers"];
                bool same = ml.is_array();
                for (size_t i = 0; same && i < ml.size(); ++i) same = ml[i].is_number_unsigned() && ml[i].get<u64>() == step - 1 + i * step;
                if (!same || ml.size() != m.num_layers / step)  // range(step - 1, layers, step)
                    r.fail("moe_layers", fmt::format("memtax models MoE on every {}-th layer from layer {} (interleave_moe_layer_step); "
                                                     "an irregular list is not supported",
                                                     step, step - 1));
            }
        };
        f.layers = [](const HfReader& r, const ModelSpec& m) {
            if (r.has("layer_types")) return hf::read_layer_types(r, m.num_layers);
            // no_rope_layers[i] = 1: layer i uses RoPE (chunked); 0: NoPE (global). Default: every
            // no_rope_layer_interval-th layer is NoPE.
            std::vector<std::string> out;
            const u64 interval = r.opt_u64("no_rope_layer_interval").value_or(4);
            const auto& nr = r.root().contains("no_rope_layers") ? r.root()["no_rope_layers"] : nlohmann::json();
            const bool listed = nr.is_array() && !nr.empty();
            if (listed && nr.size() != m.num_layers)
                r.fail("no_rope_layers", fmt::format("lists {} layers but num_hidden_layers = {}", nr.size(), m.num_layers));
            for (u64 i = 0; i < m.num_layers; ++i) {
                const bool rope = listed ? !(nr[i].is_number() && nr[i].get<double>() == 0) : interval == 0 || (i + 1) % interval != 0;
                out.push_back(rope ? "chunked_attention" : "full_attention");
            }
            return out;
        };
        reg.add(std::move(f));
    }
    {  // gpt-oss: attention sinks, biased router and experts (grouped), MXFP4 experts as shipped.
        HfFamily f;
        f.model_type = "gpt_oss";
        f.keys = {"sliding_window", "layer_types",          "num_local_experts",    "num_experts_per_tok", "experts_per_token",
                  "attention_bias", "router_aux_loss_coef", "output_router_logits", "swiglu_limit"};
        f.window_applies = always;
        f.layers = alternating_layers;
        f.read = [](const HfReader& r, ModelSpec& m) {
            m.qkv_bias = m.o_bias = r.get_bool("attention_bias", false);
            m.attn.sinks = true;
            hf::read_experts(r, m, "num_local_experts", "num_experts_per_tok", "intermediate_size");
            m.moe.router_bias = m.moe.expert_bias = true;
            m.moe.dispatch = "grouped";
            m.moe.fp32_routing_weights = false;
        };
        f.accepts_quantization = "mxfp4";
        f.quantization = [](const HfReader& r, ModelSpec& m) {
            if (r.quant_method() != "mxfp4") return false;
            m.shipped_expert_dtype = "mxfp4";
            return true;
        };
        reg.add(std::move(f));
    }
    {  // Phi-3: one fused qkv_proj and one fused gate_up_proj.
        HfFamily f;
        f.model_type = "phi3";
        f.keys = {"sliding_window", "attention_bias", "layer_types"};
        f.window_applies = always;
        f.read = [](const HfReader& r, ModelSpec& m) {
            m.qkv_bias = r.get_bool("attention_bias", false);
            m.fused_projections = true;
        };
        reg.add(std::move(f));
    }
    {  // Mamba-2: state-space layers only, no MLP, logits upcast to fp32 by the model.
        HfFamily f;
        f.model_type = "mamba2";
        f.keys = {"num_heads",
                  "state_size",
                  "expand",
                  "conv_kernel",
                  "n_groups",
                  "chunk_size",
                  "use_conv_bias",
                  "use_bias",
                  "time_step_rank",
                  "time_step_min",
                  "time_step_max",
                  "time_step_limit",
                  "rescale_prenorm_residual",
                  "residual_in_fp32"};
        f.attention = false;
        f.positions = false;
        f.tie_word_embeddings = true;
        f.dense_channel = "none";
        f.read = [](const HfReader& r, ModelSpec& m) {
            m.fp32_logits = true;
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
        };
        f.layers = [](const HfReader&, const ModelSpec& m) { return hf::uniform(m, "mamba2"); };
        reg.add(std::move(f));
    }
    {  // Jamba: Mamba-1 layers with one attention layer per attn_layer_period, experts every expert_layer_period.
        HfFamily f;
        f.model_type = "jamba";
        f.keys = {"num_experts",          "num_local_experts", "num_experts_per_tok", "expert_layer_period", "expert_layer_offset",
                  "attn_layer_period",    "attn_layer_offset", "mamba_d_state",       "mamba_d_conv",        "mamba_expand",
                  "mamba_dt_rank",        "mamba_conv_bias",   "mamba_proj_bias",     "use_mamba_kernels",   "router_aux_loss_coef",
                  "output_router_logits", "sliding_window"};
        f.read = [](const HfReader& r, ModelSpec& m) {
            m.qkv_bias = r.get_bool("attention_bias", false);
            hf::read_experts(r, m, r.has("num_local_experts") ? "num_local_experts" : "num_experts", "num_experts_per_tok",
                             "intermediate_size");
            m.moe.layer_period = r.opt_u64("expert_layer_period").value_or(2);
            m.moe.layer_offset = r.opt_u64("expert_layer_offset").value_or(1);
            if (m.moe.layer_period == 0) r.fail("expert_layer_period", "must be a positive integer, got 0");
            if (m.moe.num_experts == 1) m.moe = MoeSpec{};  // one expert: a dense MLP
            m.moe.fp32_routing_weights = false;
            m.ssm.kind = "mamba";
            m.ssm.state_size = r.opt_u64("mamba_d_state").value_or(16);
            m.ssm.conv_kernel = r.opt_u64("mamba_d_conv").value_or(4);
            m.ssm.inner_size = checked_mul(r.opt_u64("mamba_expand").value_or(2), m.hidden_size, "mamba inner size");
            if (r.has("mamba_dt_rank") && r.root()["mamba_dt_rank"].is_string()) {
                if (r.root()["mamba_dt_rank"].get<std::string>() != "auto") r.fail("mamba_dt_rank", "expected a whole number or \"auto\"");
                m.ssm.dt_rank = ceil_div(m.hidden_size, 16);
            } else {
                m.ssm.dt_rank = r.has("mamba_dt_rank") ? r.get_u64("mamba_dt_rank") : ceil_div(m.hidden_size, 16);
            }
            m.ssm.conv_bias = r.get_bool("mamba_conv_bias", true);
            m.ssm.proj_bias = r.get_bool("mamba_proj_bias", false);
            m.positions["ssm"] = r.pos("mamba_d_state");
            m.positions["ssm.dt_rank"] = r.pos("mamba_dt_rank");
        };
        f.layers = [](const HfReader& r, const ModelSpec& m) {
            const u64 period = r.opt_u64("attn_layer_period").value_or(8), offset = r.opt_u64("attn_layer_offset").value_or(4);
            if (period == 0) r.fail("attn_layer_period", "must be a positive integer, got 0");
            std::vector<std::string> out;
            for (u64 i = 0; i < m.num_layers; ++i) out.push_back(i % period == offset ? "full_attention" : "mamba");
            return out;
        };
        reg.add(std::move(f));
    }
}

}  // namespace memtax
