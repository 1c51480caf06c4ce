// Spec loaders and the built-in catalog, checked against published configs and counts.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <map>

#include "model/plan.hpp"
#include "spec/hf_family.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

using namespace memtax;

namespace {
std::string data(const std::string& f) { return std::string(MEMTAX_TEST_DATA) + "/" + f; }
}  // namespace

// Exact counts from the configs, computed independently in shared/reference/REFERENCE-DATA.md
// §2.2 (dense formula of §7; Qwen2.5 includes the q/k/v biases).
TEST(Catalog, ParameterCountsMatchReferenceArithmetic) {
    const std::map<std::string, u64> expected = {{"llama-2-7b", 6738415616ull},      {"llama-2-13b", 13015864320ull},
                                                 {"llama-2-70b", 68976648192ull},    {"llama-3.1-8b", 8030261248ull},
                                                 {"llama-3.1-70b", 70553706496ull},  {"llama-3.1-405b", 405853388800ull},
                                                 {"mistral-7b-v0.1", 7241732096ull}, {"qwen2.5-72b", 72706203648ull}};
    for (const auto& [name, count] : expected) EXPECT_EQ(parameter_count(resolve_model(name)), count) << name;
}

// Within half a percent, or within the stated figure's own precision when it is coarser ("3.8B"
// is 3.75B to 3.85B).
TEST(Catalog, EveryModelMatchesItsStatedCountToItsPrecision) {
    auto models = catalog_models();
    ASSERT_GE(models.size(), 18u);
    for (const auto& m : models) {
        ASSERT_GT(m.stated_parameter_count, 0u) << m.name << " has no stated count";
        u64 unit = 1;
        while (m.stated_parameter_count % (unit * 10) == 0) unit *= 10;
        const double diff = std::fabs(static_cast<double>(parameter_count(m)) - static_cast<double>(m.stated_parameter_count));
        const double allowed = std::max(0.005 * static_cast<double>(m.stated_parameter_count), static_cast<double>(unit) / 2);
        EXPECT_LE(diff, allowed) << m.name << ": " << parameter_count(m) << " vs stated " << m.stated_parameter_count;
        // Stated "active" counts differ in convention (with or without the input embedding); tests/test_arch.cpp
        // checks the derived ones.
        EXPECT_FALSE(m.source.empty()) << m.name;
    }
}

TEST(Catalog, ShipsTheRequiredProfiles) {
    for (const char* m : {"llama-2-7b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b-v0.1", "qwen2.5-72b"})
        EXPECT_NO_THROW(resolve_model(m)) << m;
    for (const char* g : {"a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "b200", "l40s", "rtx-4090", "mi300x"})
        EXPECT_NO_THROW(resolve_gpu(g)) << g;
}

TEST(Catalog, H100MemoryIsWhatTheCardReports) {
    GpuSpec g = resolve_gpu("h100-sxm");
    EXPECT_EQ(g.memory_bytes, 81559ull << 20);         // nvidia-smi: 81,559 MiB
    EXPECT_EQ(g.usable_memory_bytes, 81079ull << 20);  // cudaMemGetInfo total: 81,079 MiB
    EXPECT_EQ(resolve_gpu("h200").memory_bytes, 143771ull << 20);
}

TEST(Catalog, EveryGpuNumberCitesASource) {
    for (const auto& g : catalog_gpus()) {
        for (const char* key : {"memory_bytes", "hbm_bandwidth_bytes_per_s"})
            EXPECT_TRUE(g.sources.count(key) && !g.sources.at(key).empty()) << g.name << " " << key;
        // A figure without a source is left out, not guessed (the A10G states no tensor rate).
        if (!g.peak_flops.empty()) EXPECT_TRUE(g.sources.count("peak_flops_per_s")) << g.name;
        if (g.usable_memory_bytes != g.memory_bytes) EXPECT_TRUE(g.sources.count("usable_memory_bytes")) << g.name;
        // Public documents or this repository's measurements, never a file outside the repository.
        for (const auto& [field, src] : g.sources) EXPECT_EQ(src.find("REFERENCE-DATA"), std::string::npos) << g.name << " " << field;
    }
}

TEST(Catalog, RuntimesStateTheirMechanismsAndCiteThem) {
    std::map<std::string, RuntimeSpec> rt;
    for (const auto& r : catalog_runtimes()) rt[r.name] = r;
    ASSERT_EQ(rt.size(), 6u);
    // The training profiles execute as the inference ones (same kernels, masks and GQA handling).
    EXPECT_EQ(rt.at("hf-train").attention, AttentionKernel::Fused);
    EXPECT_EQ(rt.at("hf-train-eager").attention, AttentionKernel::Eager);
    EXPECT_EQ(rt.at("hf-train-eager").mask, MaskKind::Additive);
    EXPECT_TRUE(rt.at("megatron-train").training.dropout && rt.at("megatron-train").training.selective_recompute);
    EXPECT_FALSE(rt.at("hf-train").training.dropout);
    const RuntimeSpec& eager = rt.at("hf-eager");
    const RuntimeSpec& sdpa = rt.at("hf-sdpa");
    const RuntimeSpec& vllm = rt.at("vllm");
    EXPECT_EQ(eager.attention, AttentionKernel::Eager);
    EXPECT_EQ(eager.mask, MaskKind::Additive);
    EXPECT_EQ(eager.gqa, GqaKind::Repeat);
    EXPECT_TRUE(eager.keeps.attn_weights);
    EXPECT_EQ(sdpa.attention, AttentionKernel::Fused);
    EXPECT_EQ(sdpa.gqa, GqaKind::NativeUnlessMasked);
    EXPECT_FALSE(sdpa.keeps.attn_weights);
    for (const auto* r : {&eager, &sdpa}) {
        EXPECT_EQ(r->kv_layout, KvLayout::Concat);
        EXPECT_EQ(r->sliding_window_drop, 1u);
        EXPECT_EQ(r->allocator_round_bytes, 512u);
        // The calibrated number is one per GPU and runtime: measured on H100 and H200.
        EXPECT_EQ(r->overhead_for("h100-sxm").bytes, 760020992u);
        EXPECT_EQ(r->overhead_for("h200").bytes, 760020992u);
        EXPECT_NE(r->overhead_for("h100-sxm").source.find("measured"), std::string::npos);
        EXPECT_NE(r->overhead_for("a100-80gb").source.find("assumed"), std::string::npos);
    }
    ASSERT_TRUE(vllm.vllm.has_value());
    EXPECT_EQ(vllm.vllm->block_size, 16u);
    EXPECT_EQ(vllm.vllm->gpu_memory_utilization_ppm, 900000u);
    for (const auto& [name, r] : rt)
        for (const char* key : {"mask", "gqa", "kv_cache", "allocator_round_bytes"})
            EXPECT_TRUE(r.sources.count(key) && !r.sources.at(key).empty()) << name << " " << key;
}

TEST(Catalog, SlidingWindowAndBiases) {
    ModelSpec mistral = resolve_model("mistral-7b-v0.1");
    EXPECT_EQ(mistral.sliding_window, 4096u);
    for (const auto& l : mistral.layers) EXPECT_EQ(l.token_mixer, "sliding_attention");
    ModelSpec qwen = resolve_model("qwen2.5-72b");
    EXPECT_TRUE(qwen.qkv_bias);
    EXPECT_EQ(qwen.head_dim, 128u);  // implied: 8192 / 64
}

TEST(HfConfig, ReadsTheFieldsTransformersUses) {
    ModelSpec m = load_hf_config(read_input_file(data("good_hf.config.json")), "good_hf.config.json");
    EXPECT_EQ(m.family, "llama");
    EXPECT_EQ(m.num_layers, 2u);
    EXPECT_EQ(m.hidden_size, 256u);
    EXPECT_EQ(m.num_attention_heads, 4u);
    EXPECT_EQ(m.num_key_value_heads, 2u);
    EXPECT_EQ(m.head_dim, 64u);
    EXPECT_EQ(m.intermediate_size, 512u);
    EXPECT_EQ(m.vocab_size, 1000u);
    EXPECT_EQ(m.max_context, 4096u);
    EXPECT_EQ(m.dtype.name, "bf16");
    EXPECT_FALSE(m.tie_word_embeddings);
}

TEST(HfConfig, Llama31ConfigEqualsTheYamlProfile) {
    // The fields of meta-llama/Llama-3.1-8B config.json (REFERENCE-DATA.md §2.1).
    const std::string json = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
  "eos_token_id": 128001, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
  "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256
})";
    ModelSpec hf = load_hf_config(json, "config.json");
    EXPECT_EQ(parameter_count(hf), parameter_count(resolve_model("llama-3.1-8b")));
    EXPECT_EQ(hf.num_key_value_heads, 8u);
    EXPECT_EQ(hf.pos_of("num_key_value_heads").line, 5);
    EXPECT_EQ(hf.pos_of("rope_scaling.factor").line, 7);
}

TEST(HfConfig, Qwen2AndMistralDispatch) {
    const std::string qwen = R"({"model_type": "qwen2", "hidden_size": 8192, "intermediate_size": 29568,
      "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8, "vocab_size": 152064,
      "max_position_embeddings": 131072, "sliding_window": 131072, "use_sliding_window": false,
      "max_window_layers": 80, "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";
    ModelSpec q = load_hf_config(qwen, "qwen.json");
    EXPECT_TRUE(q.qkv_bias);
    EXPECT_EQ(q.sliding_window, 0u);  // use_sliding_window is false
    EXPECT_EQ(parameter_count(q), 72706203648ull);
    const std::string mistral = R"({"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
      "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 32000,
      "max_position_embeddings": 32768, "sliding_window": 4096, "torch_dtype": "bfloat16"})";
    ModelSpec m = load_hf_config(mistral, "mistral.json");
    EXPECT_EQ(m.sliding_window, 4096u);
    EXPECT_EQ(m.layers.front().token_mixer, "sliding_attention");
    EXPECT_EQ(m.layers.front().channel_mixer, "gated_mlp");
    EXPECT_EQ(parameter_count(m), 7241732096ull);
}

TEST(YamlSpec, UnknownKeyNamesLineAndSuggestion) {
    std::string text = read_input_file(data("good_model.yaml"));
    text += "num_atention_heads: 4\n";
    try {
        load_model_yaml(text, "m.yaml");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(std::string(e.what()), "m.yaml:15: num_atention_heads: unknown key (did you mean \"num_attention_heads\"?)");
    }
}

TEST(YamlSpec, GoodProfileLoads) {
    ModelSpec m = load_model_yaml(read_input_file(data("good_model.yaml")), "good_model.yaml");
    EXPECT_EQ(m.head_dim, 64u);
    EXPECT_EQ(m.layers.size(), 2u);
}

TEST(InputFiles, MissingDirectoryAndBinary) {
    EXPECT_THROW(read_input_file(data("no-such-file.yaml")), InputError);
    EXPECT_THROW(read_input_file(MEMTAX_TEST_DATA), InputError);
    EXPECT_THROW(read_input_file(data("bad/model_empty.yaml")), InputError);
}

// A CLI call parses only the profile it names: every built-in profile is found by the name it
// declares, and the profile it resolves to carries that name.
TEST(Catalog, EveryProfileResolvesByItsDeclaredName) {
    for (const auto& m : catalog_models()) EXPECT_EQ(resolve_model(m.name).name, m.name);
    for (const auto& g : catalog_gpus()) EXPECT_EQ(resolve_gpu(g.name).name, g.name);
    for (const auto& r : catalog_runtimes()) EXPECT_EQ(resolve_runtime(r.name).name, r.name);
    for (const auto& c : catalog_clusters()) EXPECT_EQ(resolve_cluster(c.name).name, c.name);
}

// The runtime's measured kernel and host rates: out-of-range values are one-line errors naming
// the file, line and field.
TEST(YamlSpec, RuntimeKernelAndHostRatesAreChecked) {
    const std::string base = read_input_file(std::string(MEMTAX_SOURCE_DIR) + "/runtimes/hf-sdpa.yaml");
    auto error_of = [&](const std::string& from, const std::string& to) -> std::string {
        std::string text = base;
        const size_t at = text.find(from);
        if (at == std::string::npos) return "fragment not found: " + from;
        text.replace(at, from.size(), to);
        try {
            load_runtime_yaml(text, "rt.yaml");
        } catch (const InputError& e) {
            return e.what();
        }
        return "loaded";
    };
    EXPECT_EQ(load_runtime_yaml(base, "rt.yaml").kernels->masked_attention, 0.5099);
    std::string e = error_of("masked_attention: 0.5099", "masked_attention: 1.5");
    EXPECT_NE(e.find("rt.yaml:"), std::string::npos) << e;
    EXPECT_NE(e.find("kernels.masked_attention: 1.5 is not a fraction of the fused attention rate; valid: above 0, up to 1"),
              std::string::npos)
        << e;
    e = error_of("masked_attention: 0.5099", "masked_attention: -1");
    EXPECT_NE(e.find("kernels.masked_attention"), std::string::npos) << e;
    e = error_of("per_step_s: 0.646e-3", "per_step_s: 2");
    EXPECT_NE(e.find("host.per_step_s: 2 s per step is implausible"), std::string::npos) << e;
    e = error_of("cat: 0.0380", "cta: 0.0380");
    EXPECT_NE(e.find("did you mean \"cat\""), std::string::npos) << e;
}

// "Adding a model family" (docs/engine.md), followed: a toy model_type is one HfFamily — its
// architecture keys, its defaults, its fields and its layer pattern — added to a copy of the
// registry. Nothing else in memtax knows it.
TEST(HfConfig, ToyFamilyIsOneImporterAndARegistryEntry) {
    HfFamilyRegistry reg = HfFamilyRegistry::builtin();
    HfFamily toy;
    toy.model_type = "toyformer";
    toy.keys = {"sliding_window", "layer_types"};
    toy.tie_word_embeddings = false;
    toy.window_applies = [](const HfReader&) { return true; };
    toy.read = [](const HfReader& r, ModelSpec& m) { m.mlp_bias = r.get_bool("toy_mlp_bias", true); };
    // Every global_every-th layer attends globally, the others slide.
    toy.layers = [](const HfReader& r, const ModelSpec& m) {
        const u64 every = r.opt_u64("global_every").value_or(2);
        std::vector<std::string> out;
        for (u64 i = 0; i < m.num_layers; ++i) out.push_back((i + 1) % every == 0 ? "full_attention" : "sliding_attention");
        return out;
    };
    reg.add(std::move(toy));
    const std::string cfg = R"({"model_type": "toyformer", "hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 4, "vocab_size": 100,
      "max_position_embeddings": 4096, "sliding_window": 512, "global_every": 4, "torch_dtype": "bfloat16"})";
    const ModelSpec m = load_hf_config(cfg, "toy.json", reg);
    EXPECT_EQ(m.family, "toyformer");
    EXPECT_EQ(m.sliding_window, 512u);
    ASSERT_EQ(m.layers.size(), 4u);
    EXPECT_EQ(m.layers[0].token_mixer, "sliding_attention");
    EXPECT_EQ(m.layers[2].token_mixer, "sliding_attention");
    EXPECT_EQ(m.layers[3].token_mixer, "full_attention");
    EXPECT_TRUE(m.mlp_bias);
    // By hand: per layer q 64·64 + k, v 64·32 each + o 64·64 = 12,288; gate, up, down 3·64·128 =
    // 24,576 with biases 128 + 128 + 64 = 320; two norms 128: 37,312. Four layers 149,248;
    // embedding and head 100·64 each, final norm 64: 162,112.
    EXPECT_EQ(parameter_count(m), 162112u);
    // The built-in registry does not know it, and says which it does.
    try {
        load_hf_config(cfg, "toy.json");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "model_type");
        EXPECT_NE(e.message().find("unsupported model_type \"toyformer\""), std::string::npos) << e.message();
    }
    // A key of another architecture is still refused for it.
    try {
        load_hf_config(R"({"model_type": "toyformer", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 4,
          "vocab_size": 100, "max_position_embeddings": 4096, "num_local_experts": 8})",
                       "toy.json", reg);
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "num_local_experts");
    }
}

// Gemma-3 builds two rotary tables (local and global); the family says so, not the engine.
TEST(HfConfig, Gemma3RotaryTablesComeFromItsFamily) {
    const ModelSpec g =
        load_hf_config(read_input_file(std::string(MEMTAX_TEST_DATA) + "/measured/gemma3-2l.config.json"), "gemma3-2l.json");
    EXPECT_EQ(g.family, "gemma3_text");
    EXPECT_EQ(g.attn.rotary_tables, 2u);
    EXPECT_EQ(rotary_width(BlockRegistry::builtin(), g), 2 * g.head_dim);
    EXPECT_EQ(rotary_width(BlockRegistry::builtin(), resolve_model("gemma-3-27b")), 2u * 128);
    EXPECT_EQ(rotary_width(BlockRegistry::builtin(), resolve_model("llama-3.1-8b")), 128u);
}
