// The training planner (planner/train_plan.hpp): a training scenario answered as a plan. Each
// expected value below is derived by hand in its test, from the model's parameter count, the
// GPU profile's datasheet figures and the scenario.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "cli_run.hpp"
#include "model/train_time.hpp"
#include "model/training.hpp"
#include "planner/train_plan.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

ScenarioSpec scenario(const std::string& yaml) { return load_scenario_yaml(yaml, "train.yaml"); }

// Llama-3.1-8B, 2k sequences, 64 a step, on H100s: small enough to search in a moment.
std::string base(const std::string& extra_workload, const std::string& extra_constraints, const std::string& tail = "") {
    return "name: t\nmodel: llama-3.1-8b\nworkload:\n  mode: training\n  sequence_length: 2k\n  global_batch: 64\n" + extra_workload +
           "constraints:\n  gpus: [h100-sxm]\n" + extra_constraints + tail;
}

}  // namespace

TEST(TrainPlan, ReadsATrainingScenario) {
    const ScenarioSpec s =
        scenario(base("  train_tokens: 1e11\n  optimizer: adam\n  precision: bf16\n",
                      "  max_gpus: 64\n  zero_stages: [1, 3]\n  recompute: [full]\n  micro_batch_sizes: [2]\n  tp: [1, 2]\n"
                      "  pp: [1, 2]\n  max_days: 7\n",
                      "objective: lowest_cost\nprices:\n  per_gpu_hour: {h100-sxm: 2}\n  source: test\n"));
    ASSERT_TRUE(s.training);
    EXPECT_EQ(s.runtime, "hf-train");  // a training scenario's default runtime
    EXPECT_EQ(s.training->sequence_length, 2048u);
    EXPECT_EQ(s.training->global_batch, 64u);
    EXPECT_EQ(s.training->train_tokens, 100'000'000'000u);
    EXPECT_EQ(s.training->optimizer, "adam");
    EXPECT_EQ(s.training->precision, "bf16");
    EXPECT_EQ(s.training->zero_stages, (std::vector<u64>{1, 3}));
    EXPECT_EQ(s.training->recompute, (std::vector<std::string>{"full"}));
    EXPECT_EQ(s.training->micro_batch_sizes, (std::vector<u64>{2}));
    EXPECT_EQ(s.training->tp, (std::vector<u64>{1, 2}));
    EXPECT_EQ(s.training->pp, (std::vector<u64>{1, 2}));
    EXPECT_EQ(*s.training->max_days, 7.0);
    EXPECT_EQ(s.max_gpus, 64u);
}

TEST(TrainPlan, EveryPlanMakesUpTheGlobalBatchAndIsItsOwnFreshEstimate) {
    const ScenarioSpec s = scenario(base("  train_tokens: 1e10\n", "  max_gpus: 16\n  micro_batch_sizes: [1, 2, 4]\n",
                                         "objective: lowest_cost\nprices:\n  per_gpu_hour: {h100-sxm: 2.5}\n  source: test\n"));
    const TrainPlanReport r = plan_training(s);
    ASSERT_FALSE(r.ranked.empty());
    for (const auto& c : r.ranked) {
        // global batch = micro-batch × accumulation × DP, exactly; the GPUs are the layout's.
        EXPECT_EQ(c.micro_batch * c.accumulation * c.dp, 64u);
        EXPECT_EQ(c.gpus, c.tp * c.pp * c.dp);
        EXPECT_LE(c.gpus, 16u);
        EXPECT_LE(c.bytes_per_gpu, c.budget_bytes);
        EXPECT_TRUE(c.zero == 0 || c.dp > 1);  // ZeRO with one replica has nothing to shard
        // A token budget over the deployment's tokens/s: days, GPU-hours and dollars.
        const double seconds = 1e10 / c.tokens_per_s;
        EXPECT_NEAR(c.days, seconds / 86400, 1e-9 * c.days);
        EXPECT_NEAR(c.gpu_hours, seconds / 3600 * static_cast<double>(c.gpus), 1e-9 * c.gpu_hours);
        EXPECT_NEAR(c.dollars, c.gpu_hours * 2.5, 1e-9 * c.dollars);
        // tokens/s: 64 sequences of 2,048 tokens a step.
        EXPECT_NEAR(c.tokens_per_s, 64.0 * 2048 / c.step_s, 1e-9 * c.tokens_per_s);
    }
    for (size_t i = 1; i < r.ranked.size(); ++i) EXPECT_LE(r.ranked[i - 1].dollars, r.ranked[i].dollars + 0.01);
    // The best plan, estimated afresh through the training model's own entry points, is the same.
    const TrainCandidate& b = r.ranked.front();
    TrainSpec spec;
    spec.precision = Precision::Mixed;
    spec.zero = b.zero;
    spec.recompute = b.recompute;
    spec.micro_batches = b.accumulation;
    Workload w;
    w.runtime = resolve_runtime("hf-train");
    w.batch = b.micro_batch;
    w.context = 2048;
    const GpuSpec g = resolve_gpu("h100-sxm");
    const TrainEstimate e = estimate_train(resolve_model("llama-3.1-8b"), g, Deployment{b.gpus, b.tp, b.pp, 1}, w, spec);
    EXPECT_EQ(e.total, b.bytes_per_gpu);
    const TrainTime t = estimate_train_time(e, replica_topology(g, b.gpus, 8), 10'000'000'000, 2.5);
    EXPECT_DOUBLE_EQ(t.step_s, b.step_s);
    EXPECT_DOUBLE_EQ(t.dollars, b.dollars);
}

TEST(TrainPlan, FewestGpusStartsWhereTheModelStatesFit) {
    // Mixed-precision AdamW keeps 16 B a parameter (2 weights + 2 gradients + 4 master + 8
    // states): 16 × 8,030,261,248 = 128,484,179,968 B, more than one H100's 85,017,493,504 B
    // (its profile's usable memory), so one GPU cannot train it; ZeRO-3 over two leaves
    // 64,242,089,984 B of model states a GPU, under 95% of the card with room for activations.
    const ScenarioSpec s = scenario(base("", "  max_gpus: 8\n  memory_headroom_percent: 5\n  micro_batch_sizes: [1]\n  recompute: [full]\n",
                                         "objective: fewest_gpus\n"));
    const TrainPlanReport r = plan_training(s);
    ASSERT_FALSE(r.ranked.empty());
    const TrainCandidate& b = r.ranked.front();
    EXPECT_EQ(b.gpus, 2u);
    EXPECT_EQ(b.zero, 3u);  // below ZeRO-3 a GPU keeps at least the whole 2 B of weights and more
    EXPECT_GT(b.bytes_per_gpu, 64'242'089'984u);
    for (const auto& c : r.ranked) EXPECT_GE(c.gpus, 2u);
}

TEST(TrainPlan, TheDeadlineBindsWhenNoLayoutIsFastEnough) {
    // 1e12 tokens on at most 8 H100s: a step needs at least 6 FLOPs a parameter a token, so even
    // at the dense bf16 peak (989.4e12 FLOP/s each) 8 GPUs train at most 8 × 989.4e12 /
    // (6 × 8,030,261,248) = 164,287 tokens/s: 70.4 days or more. A 30-day deadline cannot hold.
    const ScenarioSpec s = scenario(base("  train_tokens: 1e12\n", "  max_gpus: 8\n  max_days: 30\n"));
    const TrainPlanReport r = plan_training(s);
    EXPECT_TRUE(r.ranked.empty());
    EXPECT_EQ(r.binding, "deadline");
    ASSERT_TRUE(r.closest);
    const double bound_days = 1e12 / (8 * 989.4e12 / (6.0 * 8030261248.0)) / 86400;
    EXPECT_NEAR(bound_days, 70.45, 0.01);
    EXPECT_GT(r.closest->days, bound_days);
    EXPECT_EQ(r.closest->binding, "deadline");
}

TEST(TrainPlan, MemoryBindsWhenNoLayoutHoldsTheModel) {
    // Llama-3.1-405B's mixed-precision model states, 16 B × 405,853,388,800 parameters, over 8
    // H100s even fully sharded: 811,706,777,600 B a GPU against 85,017,493,504.
    const ScenarioSpec s = scenario(
        "name: t\nmodel: llama-3.1-405b\nworkload:\n  mode: training\n  sequence_length: 2k\n  global_batch: 8\nconstraints:\n  gpus: "
        "[h100-sxm]\n  max_gpus: 8\n  micro_batch_sizes: [1]\n  recompute: [full]\n");
    const TrainPlanReport r = plan_training(s);
    EXPECT_TRUE(r.ranked.empty());
    EXPECT_EQ(r.binding, "memory");
    ASSERT_TRUE(r.closest);
    EXPECT_GT(r.closest->bytes_per_gpu, 811'706'777'600u / 8);
    EXPECT_GT(r.closest->binding_ratio, 1.0);
}

TEST(TrainPlan, MfuCountsEveryTensorParallelRank) {
    // The same global step at TP 1 and TP 2 does the same model FLOPs: TP splits every matrix
    // product, so its ranks together do what one did (less the replicated norms' and adds' few).
    const ModelSpec m = resolve_model("llama-3.1-8b");
    const GpuSpec g = resolve_gpu("h100-sxm");
    Workload w;
    w.runtime = resolve_runtime("hf-train");
    w.batch = 1;
    w.context = 2048;
    TrainSpec spec;
    spec.recompute = Recompute::Full;
    spec.zero = 3;
    auto flops = [&](u64 tp) {
        const TrainEstimate e = estimate_train(m, g, Deployment{8, tp, 1, 1}, w, spec);
        return estimate_train_time(e, replica_topology(g, 8, 8)).model_flops_per_step / static_cast<double>(8 / tp);
    };
    const double one = flops(1), two = flops(2);  // per replica (8 / TP of them), one micro-batch
    EXPECT_NEAR(two / one, 1.0, 0.01);
    // And the 6 FLOPs a parameter a token of the matrix products is most of it: 6 × 8.03e9 × 2,048.
    EXPECT_GT(one, 6.0 * 8030261248.0 * 2048 * 0.9);
}

TEST(TrainPlan, PlanReportCheckAndIndexTakeTrainingScenarios) {
    const std::string file = std::string(MEMTAX_SOURCE_DIR) + "/scenarios/pretrain-8b.yaml";
    Result j = run_command({"plan", file, "--format", "json"});
    ASSERT_EQ(j.code, 0) << j.err;
    const auto doc = nlohmann::json::parse(j.out);
    EXPECT_EQ(doc["schema"], "memtax.train-plan/1");
    const auto& best = doc["sections"]["plans"]["rows"][0];
    EXPECT_EQ(best["micro_batch"].get<u64>() * best["accumulation"].get<u64>() * best["dp"].get<u64>(), 512u);
    // The committed report is the baseline `check` compares with: same plan, gates pass.
    Result c = run_command({"check", file, "--baseline", std::string(MEMTAX_SOURCE_DIR) + "/reports"});
    EXPECT_EQ(c.code, 0) << c.out << c.err;
    EXPECT_NE(c.out.find("days for the budget"), std::string::npos) << c.out;
    // An inference scenario's planner refuses a training scenario by its field.
    EXPECT_THROW((void)plan_scenario(load_scenario_file(file)), InputError);
}
