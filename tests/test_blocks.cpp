// Blocks: the registry, a toy variant added the way src/blocks/TEMPLATE.md says (one definition,
// one registry entry, these tests), and the built-in variants' bytes derived by hand.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

// ---- The toy variant: what a new token mixer file holds. ------------------------------------
// A gated linear-recurrence mixer: one projection hidden → hidden and a recurrent state of
// `toy_state` elements per sequence (constant in context: no KV growth), updated each step.
int build_toy(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const u64 h = env.model.hidden_size;
    const u64 state = 16 * h / env.shard.tp;  // toy_state: 16 elements per channel on this GPU
    int old = g.input(TensorInfo{"toy_state_old", Size(state, {Sym::Batch}), DtypeRole::Kv, Category::KvCache});
    int y = g.op1(blk::linear("toy_proj", OpGroup::Projection, h, h, "toy_proj"), {io.x}, blk::act("toy_out", blk::tokens(h)));
    // The state is rewritten in place each step (a recurrent update): no second copy.
    g.op1({"toy_state_update", OpKind::Elementwise, OpGroup::KvCache, Size(3 * state, {Sym::Batch, Sym::Sq}), {}, {}}, {old, y},
          TensorInfo{"toy_state", Size(state, {Sym::Batch}), DtypeRole::Kv, Category::KvCache, Lifetime::Persistent, AliasRule::Always});
    return y;
}

TokenMixer toy_mixer() {
    return TokenMixer{"toy_recurrent",
                      "test-only recurrent mixer: hidden² weights, 16·hidden state per sequence",
                      {{"hidden_size", "channels", [](const ModelSpec& m) { return m.hidden_size; }}},
                      {{"transformers", build_toy, [](const BlockEnv& env) {
                            return CacheSpec{16 * env.model.hidden_size / env.shard.tp, 1, 0};
                        }}}};
}

// ---- A second toy variant with a vertical slice of its own: what src/blocks/TEMPLATE.md's
// "Its own parameters, TP rule, label and technique" adds to the file. A gated state of
// `state_per_channel` elements per channel, split over `heads` groups that TP divides; its own
// keys are the profile's `toy_gated_state:` mapping.
const OwnParams kToyOwn{
    "toy_gated_state",
    {{"state_per_channel", "state elements per hidden channel"}, {"heads", "state groups (tensor parallelism splits them)", false, 4}}};

int build_gated_state(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const u64 h = env.model.hidden_size;
    const u64 state = kToyOwn.value(env.model, "state_per_channel") * h / env.shard.tp;
    int old = g.input(TensorInfo{"gated_state_old", Size(state, {Sym::Batch}), DtypeRole::Kv, Category::KvCache});
    int y = g.op1(blk::linear("gated_proj", OpGroup::Projection, h, h, "gated_proj"), {io.x}, blk::act("gated_out", blk::tokens(h)));
    g.op1({"gated_state_update", OpKind::Elementwise, OpGroup::KvCache, Size(3 * state, {Sym::Batch, Sym::Sq}), {}, {}}, {old, y},
          TensorInfo{"gated_state", Size(state, {Sym::Batch}), DtypeRole::Kv, Category::KvCache, Lifetime::Persistent, AliasRule::Always});
    return y;
}

TokenMixer gated_state_mixer() {
    TokenMixer t{"toy_gated_state",
                 "test-only gated state: hidden² weights, state_per_channel · hidden state per sequence",
                 {{"hidden_size", "channels", [](const ModelSpec& m) { return m.hidden_size; }}},
                 {{"transformers", build_gated_state, [](const BlockEnv& env) {
                       return CacheSpec{0, 1, 0, kToyOwn.value(env.model, "state_per_channel") * env.model.hidden_size / env.shard.tp};
                   }}}};
    t.hooks.own = kToyOwn;
    t.hooks.check_split = [](const ModelSpec& m, u64 tp, u64) {
        const u64 heads = kToyOwn.value(m, "heads");
        if (heads % tp != 0)
            throw InputError(SourcePos{}, "deployment.tp", fmt::format("{} does not divide toy_gated_state.heads = {}", tp, heads));
    };
    t.hooks.label = [](const ModelSpec& m, u64) { return fmt::format("toy({}/ch)", kToyOwn.value(m, "state_per_channel")); };
    t.hooks.techniques = {{"toy", "S", 8, [](ModelSpec& m, u64 s) {
                               for (auto& l : m.layers) l.token_mixer = "toy_gated_state";
                               m.own_params["toy_gated_state"].values["state_per_channel"] = {s, SourcePos{}};
                               return fmt::format("every token mixer a gated state of {} per channel", s);
                           }}};
    return t;
}
// ---------------------------------------------------------------------------------------------

ModelSpec good_model(const std::string& extra = "") {
    std::ifstream in(std::string(MEMTAX_TEST_DATA) + "/good_model.yaml");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return load_model_yaml(text + extra, "good_model.yaml");
}

Workload at(const char* runtime, u64 batch, u64 context, Mode mode = Mode::Prefill) {
    Workload w;
    w.runtime = resolve_runtime(runtime);
    w.batch = batch;
    w.context = context;
    w.mode = mode;
    return w;
}

}  // namespace

TEST(Blocks, BuiltinRegistryListsEveryVariant) {
    const BlockRegistry& r = BlockRegistry::builtin();
    std::vector<std::string> tokens, channels;
    for (const auto& t : r.token_mixers()) tokens.push_back(t.name);
    for (const auto& c : r.channel_mixers()) channels.push_back(c.name);
    EXPECT_EQ(tokens, (std::vector<std::string>{"full_attention", "sliding_attention", "chunked_attention", "sparse_attention", "mla",
                                                "mamba2", "mamba"}));
    EXPECT_EQ(channels, (std::vector<std::string>{"gated_mlp", "mlp", "none", "moe"}));
    try {
        r.token_mixer("full_atention", "model.layers[0].token_mixer");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "model.layers[0].token_mixer: unknown token mixer \"full_atention\" (did you mean \"full_attention\"?); valid: "
                  "full_attention, sliding_attention, chunked_attention, sparse_attention, mla, mamba2, mamba");
    }
}

TEST(Blocks, UnknownVariantInAModelNamesTheLayer) {
    ModelSpec m = good_model();
    m.layers[1].token_mixer = "toy_recurrent";
    try {
        Plan::compile(m, resolve_gpu("h100-sxm"), {}, at("hf-sdpa", 1, 128));
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "model.layers[1].token_mixer");
    }
}

// Adding a variant: the toy mixer goes into a copy of the registry and a model uses it. Its
// weights and its state come out of its own graph; nothing else in the engine knows it.
TEST(Blocks, ToyVariantIsOneDefinitionAndARegistryEntry) {
    BlockRegistry reg = BlockRegistry::builtin();
    reg.add(toy_mixer());
    ModelSpec m = good_model();  // hidden 256, intermediate 512, vocab 1000, 2 layers, bf16
    for (auto& l : m.layers) l.token_mixer = "toy_recurrent";
    Workload w = at("hf-sdpa", 3, 1000);
    const Plan plan = Plan::compile(m, resolve_gpu("h100-sxm"), {}, w, reg);
    const Estimate e = plan.estimate(plan.point_of(w));
    // Weights: per layer toy_proj 256² + gate/up/down 3 · 256 · 512 + 2 norms · 256, in bf16;
    // embedding and LM head 1000 · 256 each, final norm 256.
    const u64 layer = 2 * (256 * 256 + 3 * 256 * 512 + 2 * 256);
    EXPECT_EQ(e.weights, 2 * layer + 2 * (2 * 1000 * 256) + 2 * 256);
    EXPECT_EQ(e.parameters, 2 * (256 * 256 + 3 * 256 * 512 + 2 * 256) + 2 * 1000 * 256 + 256);
    // State: 16 · 256 bf16 elements per sequence and layer, whatever the context.
    EXPECT_EQ(e.kv_cache, 2u * 3 * 16 * 256 * 2);
    const Estimate longer = plan.estimate(Point{Mode::Prefill, 3, 4000});
    EXPECT_EQ(longer.kv_cache, e.kv_cache);
    ASSERT_EQ(e.layers.size(), 1u);
    EXPECT_EQ(e.layers[0].token_mixer, "toy_recurrent");
    EXPECT_EQ(e.layers[0].weights_bytes, layer);
    // The time model prices its ops like any other: 2 · tokens · 256² FLOPs for the projection.
    const TimeEstimate t = estimate_time(plan, plan.point_of(w), Topology(single_node_cluster(resolve_gpu("h100-sxm"), 1)));
    EXPECT_GT(t.ttft_s, 0);
    // It declared no vLLM execution: vLLM refuses it by name.
    try {
        Plan::compile(m, resolve_gpu("h100-sxm"), {}, at("vllm", 1, 1000), reg);
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "model.layers[0].token_mixer");
        EXPECT_NE(e.message().find("no vllm execution"), std::string::npos) << e.message();
    }
}

// A variant owns its vertical slice: its own YAML keys, their checks, its TP rule, its label and
// its compare technique come with one definition and one registry line, and a profile names it.
// good_model.yaml: hidden 256, 4 heads of 64, 2 KV heads, intermediate 512, vocab 1000, bf16;
// its 14 lines are followed by these.
TEST(Blocks, VariantOwnsItsSliceThroughOneDefinitionAndOneRegistryLine) {
    BlockRegistry reg = BlockRegistry::builtin();
    reg.add(gated_state_mixer());
    const std::string types = "layer_types: [toy_gated_state, full_attention]\n";  // line 15
    const ModelSpec m = good_model(types + "toy_gated_state:\n  state_per_channel: 24\n  heads: 2\n");
    ASSERT_EQ(m.own_params.at("toy_gated_state").values.at("state_per_channel").first, 24u);
    Workload w = at("hf-sdpa", 3, 1000);
    const Plan plan = Plan::compile(m, resolve_gpu("h100-sxm"), {}, w, reg);
    const Estimate e = plan.estimate(plan.point_of(w));
    // Cache: the toy layer's 24 · 256 bf16 elements per sequence, whatever the context, plus the
    // attention layer's K and V of 2 heads × 64 per token: 3 · 24 · 256 · 2 + 3 · 1000 · 2 · 128 · 2.
    EXPECT_EQ(e.kv_cache, 3u * 24 * 256 * 2 + 3u * 1000 * 2 * 128 * 2);
    // Parameters: toy layer 256² + MLP 3 · 256 · 512 + 2 norms of 256 = 459,264; attention layer
    // q, o 256² each, k, v 256 · 128 each, + MLP + norms = 590,336; embedding and LM head
    // 1000 · 256 each; final norm 256.
    EXPECT_EQ(e.parameters, 459264u + 590336u + 2u * 1000 * 256 + 256);
    EXPECT_EQ(architecture_summary(reg, m), "1×GQA + 1×toy(24/ch)");
    // Its TP rule: TP 2 splits its 2 groups (and halves its state); TP 4 does not.
    Deployment tp2{2, 2, 1, 1};
    const Plan split = Plan::compile(m, resolve_gpu("h100-sxm"), tp2, w, reg);
    EXPECT_EQ(split.estimate(split.point_of(w)).kv_cache, 3u * 24 * 128 * 2 + 3u * 1000 * 2 * 64 * 2);
    try {
        Plan::compile(m, resolve_gpu("h100-sxm"), Deployment{4, 4, 1, 1}, w, reg);
        FAIL();
    } catch (const InputError& err) {
        EXPECT_EQ(std::string(err.what()), "deployment.tp: 4 does not divide toy_gated_state.heads = 2");
    }
    // Its keys are checked at their lines: an undeclared one, a missing required one.
    try {
        Plan::compile(good_model(types + "toy_gated_state:\n  state_per_channel: 24\n  head: 2\n"), resolve_gpu("h100-sxm"), {}, w, reg);
        FAIL();
    } catch (const InputError& err) {
        EXPECT_EQ(err.pos().line, 18);
        EXPECT_EQ(err.field(), "toy_gated_state.head");
        EXPECT_NE(err.message().find("(did you mean \"heads\"?); valid: state_per_channel, heads"), std::string::npos) << err.message();
    }
    try {
        Plan::compile(good_model(types + "toy_gated_state: {heads: 2}\n"), resolve_gpu("h100-sxm"), {}, w, reg);
        FAIL();
    } catch (const InputError& err) {
        EXPECT_EQ(err.pos().line, 16);
        EXPECT_EQ(err.field(), "toy_gated_state.state_per_channel");
    }
    // A group no layer of the model reads is refused where it stands (here: the registry has the
    // variant, but no layer uses it; and the built-in registry does not know it at all).
    for (const BlockRegistry* r : {static_cast<const BlockRegistry*>(&reg), &BlockRegistry::builtin()}) {
        try {
            Plan::compile(good_model("toy_gated_state: {state_per_channel: 24}\n"), resolve_gpu("h100-sxm"), {}, w, *r);
            FAIL();
        } catch (const InputError& err) {
            EXPECT_EQ(err.pos().line, 15);
            EXPECT_EQ(err.field(), "toy_gated_state");
            EXPECT_NE(err.message().find("no layer variant of bad reads a \"toy_gated_state\" group"), std::string::npos) << err.message();
        }
    }
    // Its compare technique rewrites a model into it: every layer holds 8 · 256 state elements.
    const std::vector<Technique> ts = techniques(reg);
    const auto toy = std::find_if(ts.begin(), ts.end(), [](const Technique& t) { return std::string(t.name) == "toy"; });
    ASSERT_NE(toy, ts.end());
    EXPECT_EQ(toy->syntax(), "toy[-S]");
    ModelSpec rewritten = good_model();
    EXPECT_EQ(toy->apply(rewritten, toy->fallback), "every token mixer a gated state of 8 per channel");
    const Plan tp = Plan::compile(rewritten, resolve_gpu("h100-sxm"), {}, w, reg);
    EXPECT_EQ(tp.estimate(tp.point_of(w)).kv_cache, 2u * 3 * 8 * 256 * 2);
}

// Weights and cache bytes are read off the graphs: Llama-3.1-8B's published 8,030,261,248
// parameters (Meta's model card: 8.03B) and its KV of 2 · 8 · 128 · 2 B = 4 KiB per token and layer.
TEST(Blocks, WeightsAndKvComeFromTheGraphs) {
    const ModelSpec m = resolve_model("llama-3.1-8b");
    EXPECT_EQ(parameter_count(m), 8030261248ull);
    Workload w = at("hf-sdpa", 2, 1000);
    const Estimate e = estimate(m, resolve_gpu("h100-sxm"), {}, w);
    EXPECT_EQ(e.kv_cache, 32ull * 2 * 1000 * 4096);
    ASSERT_EQ(e.layers.size(), 1u);
    EXPECT_EQ(e.layers[0].kv_cache_bytes, 2ull * 1000 * 4096);
}

// Eager attention holds, at its softmax, the masked bf16 scores (2 B), the fp32 copy that
// softmax(dtype=fp32) makes of a bf16 input (4 B) and the fp32 probabilities (4 B): 10 bytes per
// score element. Batch 1, 4 heads, S = 4: 64 elements -> 640 bytes (allocator rounding off).
TEST(Blocks, EagerScoresBytesPerElement) {
    Workload w = at("hf-eager", 1, 4);
    w.runtime.allocator_round_bytes = 1;
    ModelSpec m = good_model();
    Estimate e = estimate(m, resolve_gpu("h100-sxm"), {}, w);
    ASSERT_EQ(e.layers.size(), 1u);
    EXPECT_EQ(e.layers[0].attention_matrix_bytes, 64u * (2 + 4 + 4));
    // fp16 takes ATen's fused half-to-float softmax: no input copy, so the peak S×S bytes are
    // masked (2) + fp32 probs (4), then at the cast masked (2) + fp32 (4) + fp16 (2) = 8.
    parse_dtype("fp16", m.dtype);
    e = estimate(m, resolve_gpu("h100-sxm"), {}, w);
    EXPECT_EQ(e.layers[0].attention_matrix_bytes, 64u * 8);
    w.runtime = resolve_runtime("hf-sdpa");
    w.runtime.allocator_round_bytes = 1;
    EXPECT_EQ(estimate(m, resolve_gpu("h100-sxm"), {}, w).layers[0].attention_matrix_bytes, 0u);
}

// A plain (non-gated) MLP has two matrices: up and down.
TEST(Blocks, PlainMlpHasTwoMatrices) {
    ModelSpec gated = good_model();
    ModelSpec plain = good_model();
    for (auto& l : plain.layers) l.channel_mixer = "mlp";
    EXPECT_EQ(parameter_count(gated) - parameter_count(plain), 2u * 256 * 512);
}

// Every ported variant keeps the pipeline's per-GPU parameters: a stage holds its own layers,
// the first the embedding, the last the final norm and the LM head.
TEST(Pipeline, ParametersAreTheStagesOwn) {
    const ModelSpec m = good_model();  // 2 layers: PP 2 puts one on each stage
    Workload w = at("hf-sdpa", 1, 128);
    const u64 layer = 256 * 256 + 2 * 128 * 256 + 256 * 256 + 3 * 256 * 512 + 2 * 256;  // q, k, v, o; MLP; norms
    const Estimate first = Plan::compile(m, resolve_gpu("h100-sxm"), Deployment{2, 1, 2}, w).estimate(Point{Mode::Prefill, 1, 128});
    if (first.pp_stage == 0)
        EXPECT_EQ(first.parameters_per_gpu, layer + 1000 * 256);
    else
        EXPECT_EQ(first.parameters_per_gpu, layer + 256 + 1000 * 256);
    EXPECT_EQ(first.parameters, 2 * layer + 2 * 1000 * 256 + 256);
}
