// Adding a runtime family, as docs/engine.md "Adding a runtime" says: a toy third family is one
// class behind RuntimePlan (its memory, its scheduler, its admission rule, its wording) and one
// entry in a copy of the RuntimeRegistry. A runtime profile names it by `family:`; the engine,
// the time model and the planner's rules reach it only through RuntimePlan.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "cli_run.hpp"
#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "runtimes/shared.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

using namespace memtax;

namespace {

// ---- The toy family: what a new runtime file holds. -----------------------------------------
// "fifo_pool": a server that reserves, at start-up, a KV slot of the full context for each of
// its kSlots running requests, runs vLLM's fused layer graphs (the "vllm" execution of every
// block), and prefills one prompt at a time in arrival order.
constexpr u64 kSlots = 4;

// Its decoder layer: norm → token mixer → norm → channel mixer, no residual copies kept.
OpGraph toy_layer(const BlockEnv& env, const LayerSpec& layer, const LayerBlocks& blocks, u64 round_to) {
    OpGraph g("fifo_layer/" + layer.token_mixer + "+" + layer.channel_mixer, env.dtypes, round_to);
    const u64 h = env.model.hidden_size;
    int x = g.input(blk::act("hidden", blk::tokens(h)));
    int xn = g.op1(blk::rms_norm("input_norm", 1, h), {x}, blk::act("x_normed", blk::tokens(h)));
    int o = blocks.token.build(g, env, MixerIO{xn, {}, false});
    int on = g.op1(blk::rms_norm("post_attention_norm", 1, h), {o}, blk::act("o_normed", blk::tokens(h)));
    blocks.channel.build(g, env, MixerIO{on, {}, true});
    g.finalize();
    return g;
}

class FifoPoolPlan final : public RuntimePlan {
public:
    explicit FifoPoolPlan(const CompileInput& in)
        : model_(in.model),
          rt_(in.runtime),
          shard_(in.shard),
          dtypes_(graph_dtypes(in.model, in.dtypes, in.model.dtype)),
          kv_(in.dtypes.kv),
          embedding_(build_embedding_graph(in, dtypes_)),
          head_(build_head_graph(in, dtypes_, false, false)),
          capacity_(in.gpu.usable_memory_bytes) {
        const BlockEnv env{model_, shard_, rt_, "vllm", dtypes_};
        types_ = build_layer_types(in, env, toy_layer);
        const StageWeights w = stage_weights(model_, types_, &embedding_, &head_);
        weights_ = w.bytes;
        parameters_ = w.parameters;
        active_ = w.active_parameters;
        for (const auto& t : types_) per_token_ = checked_add(per_token_, kv_.bytes(t.cache.elements_per_token * t.count, "kv"), "kv");
    }
    void evaluate(const Point& p, PointResult& r) const noexcept override {
        r.weights = weights_;
        r.kv_cache = per_token_ * p.context * kSlots;  // the pool: every slot at the full context
        r.kv_cache_visible = r.kv_cache;
        r.total = r.weights + r.kv_cache;
        r.capacity = capacity_;
        r.fits = r.total <= capacity_ && p.batch <= kSlots;
        r.batch_per_replica = p.batch;
        r.resident_before = r.total;
    }
    void describe(const Point&, const PointResult& r, Breakdown& out) const override {
        out.components = {{"weights", "weights", r.weights, "the blocks' weight tensors"},
                          {"kv_cache", "kv_cache", r.kv_cache, "slots × context × KV bytes per token"},
                          {"total", "total", r.total, "weights + kv_cache"}};
        out.verdict = sum_verdict(r);
    }
    u64 weights() const override { return weights_; }
    u64 parameters() const override { return parameters_; }
    u64 active_parameters() const override { return active_; }
    std::string overflow_term(const PointResult&) const override { return "fifo_pool.kv_cache"; }
    // One prompt at a time: request i's first token after i single-prompt prefills.
    FirstToken first_tokens(const StepCosts& c) const override {
        const double one = c.batch_prefill_s / static_cast<double>(c.batch);
        const double n = static_cast<double>(c.batch);
        return FirstToken{"one prompt at a time", c.batch, c.prompt_tokens, c.batch, one, one * (n + 1) / 2, one * n, {}};
    }
    u64 max_running() const override { return kSlots; }
    bool sizes_pool_at_startup() const override { return true; }
    std::string ttft_meaning(u64 batch, u64) const override {
        return "time to first token: " + std::to_string(batch) + " prompts prefilled one after another";
    }

private:
    ModelSpec model_;
    RuntimeSpec rt_;
    ShardSizes shard_;
    std::array<DType, kDtypeRoles> dtypes_;
    DType kv_;
    std::vector<LayerType> types_;
    OpGraph embedding_, head_;
    u64 capacity_ = 0, weights_ = 0, parameters_ = 0, active_ = 0, per_token_ = 0;
};

std::unique_ptr<RuntimePlan> compile_fifo_pool(const CompileInput& in) { return std::make_unique<FifoPoolPlan>(in); }

Section fifo_settings(const RuntimeSpec&) { return Section{"fifo_pool", "FIFO pool", {{"slots", kSlots, "slots"}}}; }

// The registry entry: a copy of the built-in registry plus this line.
RuntimeRegistry with_fifo_pool() {
    RuntimeRegistry r = RuntimeRegistry::builtin();
    r.add(RuntimeRegistry::Family{"fifo_pool", compile_fifo_pool, fifo_settings, false});
    return r;
}
// ---------------------------------------------------------------------------------------------

std::string read(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ModelSpec good_model() { return load_model_yaml(read(std::string(MEMTAX_TEST_DATA) + "/good_model.yaml"), "good_model.yaml"); }

// A runtime profile naming the toy family: hf-sdpa's profile with its family line changed.
RuntimeSpec fifo_profile() {
    std::string text = read(std::string(MEMTAX_SOURCE_DIR) + "/runtimes/hf-sdpa.yaml");
    const std::string from = "family: transformers";
    text.replace(text.find(from), from.size(), "family: fifo_pool");
    return load_runtime_yaml(text, "fifo.yaml");
}

}  // namespace

TEST(RuntimeFamily, ToyFamilyIsOneClassAndARegistryEntry) {
    const RuntimeRegistry reg = with_fifo_pool();
    EXPECT_EQ(reg.names(), (std::vector<std::string>{"transformers", "vllm", "megatron", "fifo_pool"}));
    const ModelSpec m = good_model();  // hidden 256, 4 heads (head_dim 64), 2 KV heads, intermediate 512, vocab 1000, 2 layers, bf16
    Workload w;
    w.runtime = fifo_profile();
    w.batch = 3;
    w.context = 1000;
    const GpuSpec gpu = resolve_gpu("h100-sxm");
    const Plan plan = Plan::compile(m, gpu, {}, w, BlockRegistry::builtin(), reg);
    const Estimate e = plan.estimate(plan.point_of(w));
    // Weights, from the model: per layer q 256·256, k and v 256·128 each, o 256·256, gate/up/down
    // 3·256·512, two norms 256 each; embedding and untied head 1000·256 each, final norm 256; bf16.
    const u64 layer = 256 * 256 + 2 * 256 * 128 + 256 * 256 + 3 * 256 * 512 + 2 * 256;
    EXPECT_EQ(e.parameters, 2 * layer + 2 * 1000 * 256 + 256);
    EXPECT_EQ(e.weights, 2 * e.parameters);
    // Its pool: 4 slots × 1,000 tokens × 2 layers × (K and V of 2 heads × 64) × 2 B.
    EXPECT_EQ(e.kv_cache, 4u * 1000 * 2 * (2 * 2 * 64) * 2);
    EXPECT_EQ(e.total, e.weights + e.kv_cache);
    // Its scheduler, through the time model: 3 prompts one after another, each a third of the
    // whole batch's prefill: first at 1/3, mean at 2/3, last at the whole.
    const TimeEstimate t = estimate_time(plan, plan.point_of(w), Topology(single_node_cluster(gpu, 1)));
    ASSERT_GT(t.ttft_s, 0);
    EXPECT_EQ(t.first_token.schedule, "one prompt at a time");
    EXPECT_DOUBLE_EQ(t.first_token.first_s, t.ttft_s / 3);
    EXPECT_DOUBLE_EQ(t.first_token.mean_s, t.ttft_s * 2 / 3);
    EXPECT_DOUBLE_EQ(t.first_token.last_s, t.ttft_s);
    EXPECT_EQ(t.ttft_meaning, "time to first token: 3 prompts prefilled one after another");
    // Its admission rule, as the planner reads it.
    EXPECT_EQ(plan.runtime().max_running(), 4u);
    EXPECT_TRUE(plan.runtime().sizes_pool_at_startup());
    EXPECT_FALSE(plan.evaluate(Point{Mode::Prefill, 5, 1000}).fits);
}

TEST(RuntimeFamily, UnknownFamilyIsRefusedAtItsLineWithTheValidNames) {
    const RuntimeSpec r = fifo_profile();
    EXPECT_EQ(r.family, "fifo_pool");  // the reader takes any name: runtimes/ knows the families
    Workload w;
    w.runtime = r;
    w.context = 100;
    try {
        Plan::compile(good_model(), resolve_gpu("h100-sxm"), {}, w);
        FAIL();
    } catch (const InputError& e) {
        // hf-sdpa.yaml's family is on line 5.
        EXPECT_EQ(std::string(e.what()),
                  "fifo.yaml:5: family: unknown runtime family \"fifo_pool\" in hf-sdpa; valid: transformers, vllm, megatron");
    }
}

// Each profile names the family that executes it: Megatron-style training is its own family
// (listings say "megatron", not "transformers"); a serving family refuses a training block.
TEST(RuntimeFamily, MegatronIsItsOwnFamilyAndVllmRefusesTraining) {
    EXPECT_EQ(resolve_runtime("megatron-train").family, "megatron");
    Result r = run_command({"runtimes", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("\"family\": \"megatron\""), std::string::npos) << r.out;
    std::string text = read_input_file(std::string(MEMTAX_SOURCE_DIR) + "/runtimes/vllm.yaml");
    text += "training: {dropout: true}\n";
    const RuntimeSpec v = load_runtime_yaml(text, "vllm-train.yaml");
    Workload w;
    w.runtime = v;
    w.context = 100;
    try {
        Plan::compile(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), {}, w);
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("vllm-train.yaml:"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("vLLM serves; training is modelled for the transformers and megatron families"),
                  std::string::npos)
            << e.what();
    }
}

// The built-in families keep their schedulers behind the same interface: a static batch's
// requests all get their first token with the batch's one prefill.
TEST(RuntimeFamily, TransformersSchedulesAStaticBatch) {
    Workload w;
    w.runtime = resolve_runtime("hf-sdpa");
    w.batch = 4;
    w.context = 512;
    const GpuSpec gpu = resolve_gpu("h100-sxm");
    const Plan plan = Plan::compile(good_model(), gpu, {}, w);
    const TimeEstimate t = estimate_time(plan, plan.point_of(w), Topology(single_node_cluster(gpu, 1)));
    EXPECT_EQ(t.first_token.schedule, "static batch");
    EXPECT_EQ(t.first_token.step_tokens, 4u * 512);
    EXPECT_DOUBLE_EQ(t.first_token.first_s, t.ttft_s);
    EXPECT_DOUBLE_EQ(t.first_token.mean_s, t.ttft_s);
    EXPECT_EQ(plan.runtime().max_running(), 0u);
    EXPECT_FALSE(plan.runtime().sizes_pool_at_startup());
}

// vLLM's family starts a deployment with `vllm serve`: the layout and the engine arguments the
// profile (with a scenario's settings applied) holds, under vLLM's own flag names.
TEST(RuntimeFamily, VllmLaunchesWithItsOwnFlags) {
    RuntimeSpec rt = resolve_runtime("vllm");
    EngineArgs args;
    args.max_num_seqs = 64;
    args.gpu_memory_utilization_ppm = 850000;
    apply_engine_args(rt, args);
    const RuntimeRegistry::Family& f = RuntimeRegistry::builtin().family(rt);
    ASSERT_NE(f.launch, nullptr);
    ServeLaunch l;
    l.model = "meta-llama/Llama-3.1-70B";
    l.tp = 8;
    l.pp = 2;
    l.dp = 3;
    l.kv_dtype = "fp8_e4m3";
    l.max_model_len = 65536;
    // The profile's max_num_batched_tokens 8,192 and block size 16 (runtimes/vllm.yaml), the two
    // arguments given, the model's dtype written "auto".
    EXPECT_EQ(f.launch(rt, l),
              "vllm serve meta-llama/Llama-3.1-70B --tensor-parallel-size 8 --pipeline-parallel-size 2 --data-parallel-size 3 "
              "--kv-cache-dtype fp8_e4m3 --max-model-len 65536 --max-num-seqs 64 --max-num-batched-tokens 8192 "
              "--gpu-memory-utilization 0.85 --block-size 16");
    l.kv_dtype.clear();
    l.dp = 1;
    EXPECT_NE(f.launch(rt, l).find("--pipeline-parallel-size 2 --kv-cache-dtype auto"), std::string::npos);
    // A max_model_len given as an engine argument is the one the server starts with (the
    // workload's 64k requests run under it), and --enforce-eager and the pool size travel too.
    EngineArgs more;
    more.max_model_len = 131072;
    more.enforce_eager = true;
    more.kv_cache_memory_bytes = u64{20} << 30;
    apply_engine_args(rt, more);
    const std::string line = f.launch(rt, l);
    EXPECT_NE(line.find("--max-model-len 131072 "), std::string::npos) << line;
    EXPECT_NE(line.find(" --enforce-eager --kv-cache-memory-bytes 21474836480"), std::string::npos) << line;
    // transformers has no server to launch.
    EXPECT_EQ(RuntimeRegistry::builtin().family(resolve_runtime("hf-sdpa")).launch, nullptr);
}
