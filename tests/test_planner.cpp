// The capacity planner, the scenario reader, sweeps and the one-call answers. The best plans
// below are known by construction (stated in each test), not read off the planner.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli_run.hpp"
#include "model/serving_costs.hpp"
#include "planner/capacity.hpp"
#include "planner/planner.hpp"
#include "planner/sweep.hpp"
#include "planner/train_plan.hpp"
#include "report/plan_report.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

ScenarioSpec scenario(const std::string& yaml) { return load_scenario_yaml(yaml, "test.yaml"); }

const char* kBase = R"(
name: t
model: MODEL
workload:
  prompt_tokens: 1k
  output_tokens: 128
  concurrency: 1
constraints:
  gpus: [h100-sxm]
  max_gpus: 4
)";

std::string with_model(const std::string& model) {
    std::string s = kBase;
    s.replace(s.find("MODEL"), 5, model);
    return s;
}

}  // namespace

TEST(Scenario, ReadsEveryField) {
    const ScenarioSpec s = scenario(R"(
name: chat
description: "d"
model: llama-3.1-70b
runtime: vllm
runtime_settings: {max_num_seqs: 128, gpu_memory_utilization: "0.85"}
workload:
  prompt_tokens: {mean: 12k, max: 30k}
  output_tokens: 2k
  concurrency: 64
constraints:
  gpus: [h100-sxm, h200]
  max_gpus: 16
  gpus_per_node: 8
  memory_headroom_percent: 12.5
  ttft_s: 2
  tpot_s: 0.05
  kv_dtypes: [bf16, fp8_e4m3]
objective: lowest_cost
prices:
  per_gpu_hour: {h100-sxm: 2.5, h200: 3.5}
  source: "test"
gates: {must_fit: true, max_bytes_per_gpu: 140e9, min_headroom_percent: 5, max_tpot_s: 0.05}
)");
    EXPECT_EQ(s.prompt.mean, 12u * 1024);
    EXPECT_EQ(s.prompt.max, 30u * 1024);
    EXPECT_EQ(s.output.mean, 2048u);
    EXPECT_EQ(s.context, 30u * 1024 + 2048);  // the longest prompt plus the longest output
    EXPECT_EQ(s.memory_headroom_ppm, 125000u);
    EXPECT_EQ(s.engine.max_num_seqs, 128u);
    EXPECT_EQ(s.engine.gpu_memory_utilization_ppm, 850000u);
    EXPECT_FALSE(s.engine.block_size);
    EXPECT_EQ(s.objective, Objective::LowestCost);
    EXPECT_EQ(*s.gate_max_bytes_per_gpu, 140000000000u);
    EXPECT_EQ(*s.gate_min_headroom_ppm, 50000u);
    EXPECT_DOUBLE_EQ(s.price_per_gpu_hour.at("h200"), 3.5);
}

TEST(Scenario, MalformedFilesAreOneLineErrors) {
    struct Case {
        std::string file;
        int line;
        std::string text;
    };
    const std::vector<Case> cases = {
        {"scenario_unknown_key.yaml", 6, "workload.concurency: unknown key (did you mean \"concurrency\"?)"},
        {"scenario_both_rates.yaml", 6, "workload.concurrency: give exactly one of concurrency"},
        {"scenario_training.yaml", 5, "workload.prompt_tokens: an inference setting; a training workload takes sequence_length"},
        {"scenario_training_no_batch.yaml", 4, "workload.global_batch: required field is missing"},
        {"scenario_training_selective.yaml", 9, "constraints.recompute: selective: hf-train checkpoints whole layers"},
        {"scenario_training_zero.yaml", 9, "constraints.zero_stages[1]: \"4\"; valid: a whole number from 0 to 3"},
        {"scenario_training_ttft_gate.yaml", 11, "gates.max_ttft_s: a serving gate"},
        {"scenario_training_deadline.yaml", 9, "constraints.max_days: a deadline for the token budget; add workload.train_tokens"},
        {"scenario_inference_zero.yaml", 9, "constraints.zero_stages: a training constraint"},
        {"scenario_bad_tokens.yaml", 4, "workload.prompt_tokens.mean: expected a positive number of tokens"},
        {"scenario_mean_over_max.yaml", 4, "workload.prompt_tokens.mean: 32768 exceeds max 30720"},
        {"scenario_cost_no_price.yaml", 10, "prices: no per_gpu_hour price for \"h200\""},
        {"scenario_bad_percent.yaml", 9, "constraints.memory_headroom_percent: \"150\" must be a percentage from 0 to 99.9999"},
        {"scenario_no_gpus.yaml", 8, "constraints.gpus: required: a non-empty list"},
        // Names, dtypes and settings are checked as the file is read, at their own line.
        {"scenario_duplicate_key.yaml", 7, "workload.output_tokens: duplicate key (first given at line 5)"},
        {"scenario_bad_kv_dtype.yaml", 9, "constraints.kv_dtypes: unknown dtype \"fp9\""},
        {"scenario_unknown_gpu.yaml", 8, "constraints.gpus: unknown gpu \"h2000\""},
        {"scenario_unknown_model.yaml", 2, "model: unknown model \"llama-3.1-8c\" (did you mean \"llama-3.1-8b\"?)"},
        {"scenario_bad_utilization.yaml", 5, "runtime_settings.gpu_memory_utilization: \"1.5\" must be a decimal in (0, 1]"},
    };
    for (const auto& c : cases) {
        const std::string path = std::string(MEMTAX_TEST_DATA) + "/bad/" + c.file;
        Result r = run_command({"plan", path});
        EXPECT_EQ(r.code, 2) << c.file;
        EXPECT_EQ(r.err.rfind(fmt::format("memtax: error: {}:{}: {}", path, c.line, c.text), 0), 0u) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_TRUE(r.out.empty());
    }
}

TEST(Planner, OneGpuWhenOneHoldsIt) {
    // Llama-3.1-8B (16 GB of bf16 weights) with one 1k conversation fits one H100 (79 GiB): no plan
    // can use fewer GPUs, so the best is 1 GPU, TP 1, PP 1, DP 1.
    const PlanReport r = plan_scenario(scenario(with_model("llama-3.1-8b")));
    ASSERT_FALSE(r.ranked.empty());
    const Candidate& b = r.ranked.front();
    EXPECT_EQ(b.gpus, 1u);
    EXPECT_EQ(b.tp, 1u);
    EXPECT_EQ(b.dp, 1u);
    EXPECT_TRUE(r.gates_passed);
}

TEST(Planner, TwoGpusWhenWeightsNeedThem) {
    // Llama-3.1-70B: 70,553,706,496 parameters × 2 B = 141 GB of weights > one H100's 79.2 GiB usable;
    // over 2 GPUs 65.7 GiB each plus 0.7 GiB of context fits: the fewest is 2.
    const PlanReport r = plan_scenario(scenario(with_model("llama-3.1-70b")));
    ASSERT_FALSE(r.ranked.empty());
    EXPECT_EQ(r.ranked.front().gpus, 2u);
    for (const auto& c : r.ranked) EXPECT_GE(c.gpus, 2u);
    // Every 1-GPU candidate was rejected for memory.
    bool memory_rejections = false;
    for (const auto& [kind, n] : r.rejected_by) memory_rejections |= kind == "memory" && n > 0;
    EXPECT_TRUE(memory_rejections);
}

TEST(Planner, CheapestFollowsThePrices) {
    // The same plans on two GPU kinds; the objective is the price of the tokens. With the H200 priced
    // 100× the H100 the cheapest plan is on H100s, and the other way round.
    auto best_gpu = [](const std::string& h100, const std::string& h200) {
        std::string y = with_model("llama-3.1-8b");
        y.replace(y.find("gpus: [h100-sxm]"), 16, "gpus: [h100-sxm, h200]");
        y += "objective: lowest_cost\nprices:\n  per_gpu_hour: {h100-sxm: " + h100 + ", h200: " + h200 + "}\n  source: test\n";
        const PlanReport r = plan_scenario(scenario(y));
        return r.ranked.front().gpu;
    };
    EXPECT_EQ(best_gpu("1", "100"), "h100-sxm");
    EXPECT_EQ(best_gpu("100", "1"), "h200");
}

TEST(Planner, InfeasibleNamesTheBindingConstraint) {
    // Llama-3.1-405B in bf16 is 811 GB of weights: two H100s (2 × 79.2 GiB) cannot hold it.
    std::string y = with_model("llama-3.1-405b");
    y.replace(y.find("max_gpus: 4"), 11, "max_gpus: 2");
    const PlanReport r = plan_scenario(scenario(y));
    EXPECT_TRUE(r.ranked.empty());
    ASSERT_TRUE(r.closest.has_value());
    EXPECT_EQ(r.closest->binding, "memory");
    EXPECT_GT(r.closest->binding_ratio, 2.0);  // 811 GB over at most 2 × 85 GB: more than twice the budget
    // The closest is the 2-GPU split (the least memory per GPU).
    EXPECT_EQ(r.closest->gpus, 2u);
    Result cl = run_command({"plan", "--check", std::string(MEMTAX_SOURCE_DIR) + "/tests/data/scenarios/tiny-8b.yaml"});
    EXPECT_EQ(cl.code, 0) << cl.err;
}

TEST(Planner, SlosRejectAndBind) {
    std::string y = with_model("llama-3.1-8b");
    y.replace(y.find("max_gpus: 4"), 11, "max_gpus: 2\n  tpot_s: 0.000001");
    const PlanReport r = plan_scenario(scenario(y));
    EXPECT_TRUE(r.ranked.empty());
    ASSERT_TRUE(r.closest);
    EXPECT_EQ(r.closest->binding, "TPOT");
    EXPECT_NE(r.closest->reason.find("exceeds the SLO"), std::string::npos);
}

TEST(Planner, TensorParallelStaysInANode) {
    std::string y = with_model("llama-3.1-70b");
    y.replace(y.find("max_gpus: 4"), 11, "max_gpus: 4\n  gpus_per_node: 2");
    const PlanReport r = plan_scenario(scenario(y));
    for (const auto& c : r.ranked) EXPECT_LE(c.tp, 2u);
    bool crossed = false;
    for (const auto& [kind, n] : r.rejected_by) crossed |= kind == "TP crosses a node";
    EXPECT_TRUE(crossed);
}

TEST(Planner, ClustersBringTheirNodesAndSize) {
    // dgx-h100-2x8-ib: 2 nodes of 8 H100s. A plan there never exceeds its 16 GPUs (even with max_gpus
    // 64) and keeps TP within a node of 8.
    const PlanReport r = plan_scenario(scenario(R"(
name: c
model: llama-3.1-70b
workload: {prompt_tokens: 4k, output_tokens: 256, concurrency: 8}
constraints: {clusters: [dgx-h100-2x8-ib], max_gpus: 64}
objective: highest_throughput
)"));
    ASSERT_FALSE(r.ranked.empty());
    for (const auto& c : r.ranked) {
        EXPECT_LE(c.gpus, 16u);
        EXPECT_LE(c.tp, 8u);
        EXPECT_EQ(c.cluster, "dgx-h100-2x8-ib");
        EXPECT_EQ(c.gpu, "h100-sxm");
    }
}

TEST(Planner, EveryShippedScenarioIsAnswered) {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(std::string(MEMTAX_SOURCE_DIR) + "/scenarios")) {
        if (e.path().extension() != ".yaml") continue;
        const ScenarioSpec s = load_scenario_file(e.path().string());
        ++n;
        if (s.training) {
            const TrainPlanReport r = plan_training(s);
            EXPECT_FALSE(r.ranked.empty()) << e.path();
            EXPECT_TRUE(r.gates_passed) << e.path();
            continue;
        }
        const PlanReport r = plan_scenario(s);
        EXPECT_FALSE(r.ranked.empty()) << e.path();
        EXPECT_TRUE(r.gates_passed) << e.path();
    }
    EXPECT_GE(n, 3);
    Result j = run_command({"plan", std::string(MEMTAX_SOURCE_DIR) + "/scenarios/rag-128k-8b.yaml", "--format", "json"});
    ASSERT_EQ(j.code, 0) << j.err;
    const auto doc = nlohmann::json::parse(j.out);
    EXPECT_EQ(doc["schema"], "memtax.plan/1");
    EXPECT_EQ(doc["sections"]["plans"]["rows"][0]["rank"], 1);
}

TEST(Planner, MaxBatchAndContextAreTheLastThatFit) {
    const ModelSpec m = resolve_model("llama-3.1-8b");
    const GpuSpec g = resolve_gpu("h100-sxm");
    Workload w;
    w.runtime = resolve_runtime("hf-sdpa");
    w.context = 32768;
    const Plan plan = Plan::compile(m, g, Deployment{1, 1, 1}, w);
    const u64 b = max_batch(plan, Mode::Prefill, 32768);
    ASSERT_GT(b, 0u);
    EXPECT_TRUE(plan.evaluate(Point{Mode::Prefill, b, 32768}).fits);
    EXPECT_FALSE(plan.evaluate(Point{Mode::Prefill, b + 1, 32768}).fits);
    const u64 c = max_context(plan, Mode::Prefill, 16, m.max_context);
    ASSERT_GT(c, 0u);
    EXPECT_TRUE(plan.evaluate(Point{Mode::Prefill, 16, c}).fits);
    EXPECT_FALSE(plan.evaluate(Point{Mode::Prefill, 16, c + 1}).fits);
    Result r = run_command({"max-batch", "--context", "32k"});
    EXPECT_EQ(r.out.rfind(fmt::format("largest batch at context 32,768: {} sequences", b), 0), 0u) << r.out;
}

TEST(Sweep, EagerAttentionIsQuadraticWithTheHandCoefficient) {
    // Llama-3.1-8B under eager attention: at the peak the S×S tensors are the bf16 scores (2 B), their
    // fp32 copy (4 B) and the fp32 probabilities (4 B) for 32 heads, plus the bf16 additive mask
    // [1,1,S,S] (2 B): 10 · 32 + 2 = 322 bytes per token². The KV cache: 2 · 32 layers · 8 heads · 128 ·
    // 2 B = 131,072 bytes per token.
    SweepSpec s{resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), {}, parse_context_range("1k..32k"), {1}, {1}};
    s.workload.runtime = resolve_runtime("hf-eager");
    const SweepReport r = run_sweep(s);
    EXPECT_EQ(r.points.size(), 6u);  // 1k, 2k, 4k, 8k, 16k, 32k
    std::map<std::string, GrowthFit> f;
    for (const auto& x : r.fits) f[x.component] = x;
    EXPECT_NEAR(f.at("attention_matrix").c2, 322.0, 1e-6);
    EXPECT_NEAR(f.at("attention_matrix").per_doubling, 4.0, 1e-9);
    EXPECT_NEAR(f.at("kv_cache").c1, 131072.0, 1e-6);
    EXPECT_EQ(f.at("kv_cache").c2, 0.0);
    EXPECT_NEAR(f.at("kv_cache").per_doubling, 2.0, 1e-12);
    EXPECT_EQ(f.at("weights").c1, 0.0);
    EXPECT_THROW(parse_context_range("32k..1k"), InputError);
    EXPECT_EQ(parse_context_range("1k,3k"), (std::vector<u64>{1024, 3072}));
    // Contexts that are not doublings (1k, 3k, 10k): the factor is still per doubling, from the
    // fit (a linear KV cache: ×2; the S×S term: ×4), not 10k over 3k (×3.33, ×11.1).
    s.contexts = parse_context_range("1k,3k,10k");
    std::map<std::string, GrowthFit> g;
    for (const auto& x : run_sweep(s).fits) g[x.component] = x;
    EXPECT_NEAR(g.at("kv_cache").per_doubling, 2.0, 1e-9);
    EXPECT_NEAR(g.at("attention_matrix").per_doubling, 4.0, 1e-6);
    EXPECT_NEAR(g.at("weights").per_doubling, 1.0, 1e-12);
}

// `memtax sweep` streams its points as they are evaluated; what it writes is the document the
// collected sweep renders (CSV: the same bytes), and the points hold the hand-derived KV bytes:
// Llama-3.1-8B keeps 2 · 32 layers · 8 KV heads · 128 · 2 B = 131,072 bytes per token.
TEST(Sweep, StreamedPointsAreTheCollectedDocument) {
    const std::vector<std::string> args = {"sweep",  "--model",   "llama-3.1-8b", "--gpu", "h100-sxm", "--contexts",
                                           "1k..8k", "--batches", "1,3",          "--tps", "1,2"};
    SweepSpec s;
    s.model = resolve_model("llama-3.1-8b");
    s.gpu = resolve_gpu("h100-sxm");
    s.contexts = parse_context_range("1k..8k");
    s.batches = {1, 3};
    s.tps = {1, 2};
    s.workload.runtime = resolve_runtime("hf-sdpa");
    const SweepReport collected = run_sweep(s);
    ASSERT_EQ(collected.points.size(), 16u);
    std::vector<std::string> csv = args;
    csv.insert(csv.end(), {"--format", "csv"});
    const Result streamed = run_command(csv);
    ASSERT_EQ(streamed.code, 0) << streamed.err;
    EXPECT_EQ(streamed.out, document_csv(sweep_document(collected)));
    // JSON: every point a row, in order, numbers as numbers.
    std::vector<std::string> js = args;
    js.insert(js.end(), {"--format", "json"});
    const Result j = run_command(js);
    ASSERT_EQ(j.code, 0) << j.err;
    const auto doc = nlohmann::json::parse(j.out);
    const auto& rows = doc["sections"]["points"]["rows"];
    ASSERT_EQ(rows.size(), 16u);
    EXPECT_EQ(rows[0]["context"], 1024);
    EXPECT_EQ(rows[0]["kv_cache_bytes"], 131072ull * 1024);
    EXPECT_EQ(rows[5]["batch"], 3);  // TP 1, batch 3, 2k
    EXPECT_EQ(rows[5]["kv_cache_bytes"], 131072ull * 2048 * 3);
    EXPECT_EQ(rows[8]["tp"], 2);
    EXPECT_EQ(rows[8]["kv_cache_bytes"], 131072ull * 1024 / 2);  // KV heads split over TP 2
    EXPECT_EQ(rows[0]["fits"], true);
    EXPECT_EQ(doc["sections"]["growth"]["rows"].size(), 6u);
    // Text and Markdown show the same points (16 rows after the header).
    for (const char* f : {"table", "markdown"}) {
        std::vector<std::string> a = args;
        a.insert(a.end(), {"--format", f});
        const Result t = run_command(a);
        ASSERT_EQ(t.code, 0) << t.err;
        EXPECT_NE(t.out.find("8,192"), std::string::npos) << f;  // contexts grouped by thousands
        size_t yes = 0;
        for (size_t at = 0; (at = t.out.find(" yes", at)) != std::string::npos; ++at) ++yes;
        EXPECT_EQ(yes, 16u) << f << t.out;  // every point fits an 80 GB H100
    }
}

TEST(Setup, LayoutIsExplicitPastANode) {
    const cli::SetupArg a = cli::parse_setup("llama-3.1-70b@4xh200");
    EXPECT_EQ(a.tp, 4u);
    const cli::SetupArg b = cli::parse_setup("llama-3.1-405b@16xh100-sxm:tp8:pp2");
    EXPECT_EQ(b.tp, 8u);
    EXPECT_EQ(b.pp, 2u);
    EXPECT_THROW(cli::parse_setup("llama-3.1-70b@16xh200"), InputError);  // TP 16 would cross a node
    EXPECT_THROW(cli::parse_setup("llama-3.1-70b@6xh200:tp4"), InputError);
    Result w = run_command({"whatif", "--setup", "llama-3.1-70b@16xh200:tp8", "--tps", "4,8", "--contexts", "8k", "--batches", "1",
                            "--kv-dtypes", "bf16", "--modes", "decode", "--format", "csv"});
    ASSERT_EQ(w.code, 0) << w.err;
    EXPECT_NE(w.out.find("llama-3.1-70b,h200,16,4,"), std::string::npos) << w.out;
    EXPECT_NE(w.out.find("llama-3.1-70b,h200,16,8,"), std::string::npos) << w.out;
    Result v = run_command({"vs", "--setup", "llama-3.1-8b@1xh100-sxm", "--setup", "llama-3.1-8b@1xh200", "--format", "json"});
    ASSERT_EQ(v.code, 0) << v.err;
    const auto rows = nlohmann::json::parse(v.out)["sections"]["setups"]["rows"];
    ASSERT_EQ(rows.size(), 2u);
    // The same model and workload: the H200's larger memory holds a larger batch.
    EXPECT_GT(rows[1]["max_batch"].get<u64>(), rows[0]["max_batch"].get<u64>());
}

// ---- Serving plans under load (the planner's rules, each expected answer derived here). -----

// A request rate is solved per candidate; a candidate it overwhelms is rejected as unstable and
// counted, never aborting the plan (70B at 20 requests/s once overflowed 64 bits).
TEST(PlannerLoad, RequestRateNeverAbortsAndUnstableCandidatesAreCounted) {
    const ScenarioSpec s = scenario(R"(
name: rate
model: llama-3.1-70b
runtime: vllm
workload:
  prompt_tokens: {mean: 12k, max: 30k}
  output_tokens: {mean: 512, max: 2k}
  request_rate_per_s: 20
constraints:
  gpus: [h100-sxm, h200, b200]
  max_gpus: 16
  kv_dtypes: [bf16, fp8_e4m3]
objective: highest_throughput
)");
    const PlanReport r = plan_scenario(s);
    u64 unstable = 0;
    for (const auto& [kind, n] : r.rejected_by)
        if (kind == "unstable") unstable = n;
    EXPECT_GT(unstable, 0u);
    // 20 prompts of 12,288 tokens a second need 20 × 12,288 × 2 × 70.6e9 ≈ 3.5e16 FLOP/s of
    // prefill alone: more than 16 B200s' dense bf16 peak (16 × 2.25e15 = 3.6e16) can give at the
    // efficiency any kernel reaches. Nothing keeps up, the rate binds, and the most any candidate
    // sustains is below what even the peak would allow.
    EXPECT_TRUE(r.ranked.empty());
    EXPECT_EQ(r.binding, "request rate");
    const PlanReport::Relaxation* rate = nullptr;
    for (const auto& x : r.relaxations)
        if (x.constraint == "request rate") rate = &x;
    ASSERT_NE(rate, nullptr);
    const double params = 70.6e9, peak = 16 * resolve_gpu("b200").peak_flops.at("bf16").value;
    EXPECT_GT(rate->needed, 0.0);
    EXPECT_LT(rate->needed, peak / (2 * params * 12288));
    // Memory's standing is named too: the closest candidate that does not fit is over its budget.
    const PlanReport::Relaxation* memory = nullptr;
    for (const auto& x : r.relaxations)
        if (x.constraint == "memory") memory = &x;
    ASSERT_NE(memory, nullptr);
    EXPECT_GT(memory->best, 1.0);

    // At 4 requests/s some candidates keep up.
    ScenarioSpec slower = s;
    slower.request_rate_per_s = 4.0;
    const PlanReport q = plan_scenario(slower);
    ASSERT_FALSE(q.ranked.empty());
    for (const Candidate& c : q.ranked) {
        // A stable deployment completes what arrives, 4 requests/s, and emits 4 × 512 tokens/s
        // (outputs are uniform about their mean of 512).
        EXPECT_NEAR(c.requests_per_s, 4.0, 1e-9);
        EXPECT_NEAR(c.tokens_per_s, 4.0 * 512, 1e-6);
        EXPECT_EQ(c.load_method, "steady state");
        // The SLO statistic defaults to p90; the percentiles are ordered.
        EXPECT_EQ(c.ttft_s, c.ttft_p90_s);
        EXPECT_LE(c.ttft_p90_s, c.ttft_p99_s);
        // A replica runs at least one request, never more than its pool holds; the rate is within
        // what the replicas sustain.
        EXPECT_GE(c.batch_per_replica, 1u);
        EXPECT_LE(static_cast<double>(c.batch_per_replica), std::ceil(c.concurrency_held));
        EXPECT_LE(4.0, c.sustainable_rate_per_s);
    }
}

// Throughput counts the sequences that exist: 4 users keep at most 4 replicas busy, and the
// tokens/s of 4 sequences is 4 / TPOT, whatever the replicas could hold.
TEST(PlannerLoad, IdleReplicasAreNotThroughput) {
    const ScenarioSpec s = scenario(R"(
name: idle
model: llama-3.1-8b
runtime: vllm
workload:
  prompt_tokens: 1k
  output_tokens: 128
  concurrency: 4
constraints:
  gpus: [h100-sxm]
  max_gpus: 16
objective: highest_throughput
prices:
  per_gpu_hour: {h100-sxm: 2.5}
  source: "a round test price"
)");
    const PlanReport r = plan_scenario(s);
    ASSERT_FALSE(r.ranked.empty());
    u64 idle = 0;
    for (const auto& [kind, n] : r.rejected_by)
        if (kind == "idle replicas") idle = n;
    EXPECT_GT(idle, 0u);
    for (const Candidate& c : r.ranked) {
        EXPECT_LE(c.dp, 4u);
        // 4 sequences decode at most one token each per TPOT.
        EXPECT_LE(c.tokens_per_s, 4.0 / c.tpot_s * (1 + 1e-9));
        // Little's law of a closed loop: each user always has a request in flight, which takes its
        // TTFT and then 127 more tokens at TPOT; split evenly (4 % DP = 0), 4 users complete
        // 4 / (TTFT + 127 · TPOT) requests a second, of 128 tokens each.
        if (4 % c.dp == 0) EXPECT_NEAR(c.tokens_per_s, 4.0 * 128 / (c.ttft_mean_s + 127 * c.tpot_s), 1e-6 * c.tokens_per_s) << c.dp;
        // $/Mtok = price × GPUs / (tokens/s × 3,600 s/h) × 10^6.
        EXPECT_NEAR(c.cost_per_million_tokens, 2.5 * static_cast<double>(c.gpus) / (c.tokens_per_s * 3600) * 1e6,
                    1e-9 * c.cost_per_million_tokens);
    }
}

// Concurrency means users in steady state: each answered request is replaced by its user's next,
// which joins a running batch. 64 users of 1,024-token prompts on one H100 (vLLM, 8,192 tokens a
// step): in a burst the 65,536 prompt tokens take 8 full steps, 8 prompts finishing in each, so
// the mean first token comes after 4.5 of them (at least 4 × 8,192 tokens' compute); in steady
// state a prompt meets the others mid-decode and is prefilled within one step of at most 64
// decodes and the budget's 8,192 tokens, so even its p99 is at most that step.
TEST(PlannerLoad, ConcurrencyIsSteadyUsersAndABurstIsNamed) {
    std::string yaml = R"(
name: users
model: llama-3.1-8b
runtime: vllm
workload:
  prompt_tokens: 1k
  output_tokens: 128
  concurrency: 64
constraints:
  gpus: [h100-sxm]
  max_gpus: 1
)";
    const PlanReport steady = plan_scenario(scenario(yaml));
    yaml.replace(yaml.find("  concurrency: 64\n"), 18, "  concurrency: 64\n  arrivals: burst\n");
    const PlanReport burst = plan_scenario(scenario(yaml));
    ASSERT_EQ(steady.ranked.size(), 1u);
    ASSERT_EQ(burst.ranked.size(), 1u);
    const Candidate &a = steady.ranked[0], &b = burst.ranked[0];
    EXPECT_EQ(a.load_method, "steady state");
    EXPECT_EQ(b.load_method, "burst");

    const ModelSpec m = resolve_model("llama-3.1-8b");
    const GpuSpec g = resolve_gpu("h100-sxm");
    Workload w;
    w.runtime = resolve_runtime("vllm");
    w.context = 1024 + 128;
    const Plan plan = Plan::compile(m, g, Deployment{1, 1, 1}, w);
    const StepCostTable c = step_costs(plan, replica_topology(g, 1, 8), 1024, 128, 64, 64);
    EXPECT_GE(b.ttft_mean_s, 4 * 8192 * c.per_token_s);
    EXPECT_LE(a.ttft_p99_s, c.step_s(64, 8192) * (1 + 1e-9));
    EXPECT_LT(a.ttft_mean_s, b.ttft_mean_s / 2);

    // A burst is of users; a request rate is a steady stream by definition.
    EXPECT_THROW(scenario(R"(
name: bad
model: llama-3.1-8b
workload:
  prompt_tokens: 1k
  output_tokens: 128
  request_rate_per_s: 2
  arrivals: burst
constraints:
  gpus: [h100-sxm]
)"),
                 InputError);
}

// With no precision listed, a plan takes the checkpoint's own weights, as `estimate` does:
// gpt-oss-120b ships its experts in MXFP4 (4.25 bits a weight with its scales), so its ~117B
// parameters take about 61 GiB and one H100 holds them; in bf16 they would need 2 bytes each.
TEST(PlannerLoad, ShippedWeightsByDefault) {
    const ScenarioSpec s = scenario(R"(
name: shipped
model: gpt-oss-120b
runtime: vllm
workload:
  prompt_tokens: 1k
  output_tokens: 128
  concurrency: 1
constraints:
  gpus: [h100-sxm]
  max_gpus: 4
objective: fewest_gpus
)");
    const PlanReport r = plan_scenario(s);
    ASSERT_FALSE(r.ranked.empty());
    EXPECT_EQ(r.ranked.front().gpus, 1u);
    EXPECT_EQ(r.ranked.front().weight_dtype, "bf16 + mxfp4 experts");
}

// A GPU kind the time model cannot price (no interconnect figure for tensor parallelism) is
// rejected with a counted reason; the other kinds are still planned.
TEST(PlannerLoad, OneGpuKindCannotSinkThePlan) {
    // A GPU profile that states no interconnect (the MI300X's, its Infinity Fabric figures taken
    // out): its TP candidates cannot be timed, and are counted so.
    std::ifstream in(std::string(MEMTAX_SOURCE_DIR) + "/hardware/mi300x.yaml");
    std::string gpu((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), kept;
    std::istringstream lines(gpu);
    for (std::string l; std::getline(lines, l);)
        if (l.find("interconnect_bandwidth") == std::string::npos && l.find("interconnect_mesh") == std::string::npos)
            kept += (l.rfind("name: mi300x", 0) == 0 ? "name: no-fabric" : l) + "\n";
    const std::string path = (std::filesystem::temp_directory_path() / "memtax-no-fabric.yaml").string();
    std::ofstream(path) << kept;
    const ScenarioSpec s = scenario(fmt::format(R"(
name: mixed
model: llama-3.1-70b
runtime: vllm
workload:
  prompt_tokens: 4k
  output_tokens: 256
  concurrency: 8
constraints:
  gpus: [{}, h200]
  max_gpus: 8
objective: fewest_gpus
)",
                                                path));
    PlanReport r;
    ASSERT_NO_THROW(r = plan_scenario(s));
    ASSERT_FALSE(r.ranked.empty());
    u64 untimed = 0;
    for (const auto& [kind, n] : r.rejected_by)
        if (kind == "cannot be timed") untimed = n;
    EXPECT_GT(untimed, 0u);
    bool h200 = false;
    for (const Candidate& c : r.ranked) h200 |= c.gpu == "h200";
    EXPECT_TRUE(h200);
    std::filesystem::remove(path);
}

// AMD's Infinity Fabric is a full mesh, not a switch: on an 8-MI300X board each GPU has 7 x16
// links of 64 GB/s a direction (896 GB/s both ways together, AMD CDNA 3 white paper), one to each
// peer. Two GPUs talk over one link (64 GB/s), a collective over n GPUs of the board uses the
// n − 1 links among them: 4 GPUs 3 × 64 = 192 GB/s, all 8 the 7 links' 448 GB/s. The GPU profile
// alone (no cluster named) gives the same mesh.
TEST(Topology, InfinityFabricIsAMeshOfDirectLinks) {
    const Topology board(resolve_cluster("ubb-mi300x-8"));
    EXPECT_DOUBLE_EQ(board.path(0, 5).bandwidth_bytes_per_s, 64e9);
    EXPECT_DOUBLE_EQ(board.ring({0, 1}).bandwidth_bytes_per_s, 64e9);
    EXPECT_DOUBLE_EQ(board.ring({0, 1, 2, 3}).bandwidth_bytes_per_s, 192e9);
    EXPECT_DOUBLE_EQ(board.ring({0, 1, 2, 3, 4, 5, 6, 7}).bandwidth_bytes_per_s, 448e9);
    const Topology from_gpu(single_node_cluster(resolve_gpu("mi300x"), 8));
    EXPECT_DOUBLE_EQ(from_gpu.ring({0, 1, 2, 3}).bandwidth_bytes_per_s, 192e9);
    // NVSwitch is not a mesh: any group of H100s gets the GPU's 450 GB/s a direction.
    const Topology hgx(resolve_cluster("hgx-h100-8"));
    EXPECT_DOUBLE_EQ(hgx.ring({0, 1}).bandwidth_bytes_per_s, hgx.ring({0, 1, 2, 3, 4, 5, 6, 7}).bandwidth_bytes_per_s);
    // Every GPU of the catalog can now be planned at TP 8 without naming a cluster.
    for (const char* g : {"mi300x", "mi325x"}) EXPECT_NO_THROW((void)single_node_cluster(resolve_gpu(g), 8)) << g;
}

// Llama-3.1-405B's 405.9B bf16 parameters are 756 GiB: one 80 GB H100 cannot hold its weights,
// whatever the workload, and max-batch says so instead of blaming the context.
TEST(PlannerLoad, MaxBatchSaysWhenTheWeightsAloneDoNotFit) {
    const Result r = run_command({"max-batch", "--model", "llama-3.1-405b", "--gpu", "h100-sxm"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--tp: the weights alone do not fit: 756.0 GiB of weights per GPU"), std::string::npos) << r.err;
}

// `vs` prints no time or cost for a setup that does not fit, and lays a 16-GPU replica over two
// nodes of 8 (TP 8 × PP 2): 405B in bf16 is 756 GiB of weights, 47 GiB per GPU, which fits an H100.
TEST(PlannerLoad, VsShowsNoTimeForASetupThatDoesNotFit) {
    const Result r = run_command({"vs", "--setup", "llama-3.1-405b@8xh100-sxm", "llama-3.1-405b@16xh100-sxm:tp8:pp2", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto rows = nlohmann::json::parse(r.out)["sections"]["setups"]["rows"];
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0]["fits"], false);
    EXPECT_TRUE(rows[0]["ttft_s"].is_null()) << rows[0];
    EXPECT_TRUE(rows[0]["tokens_per_s"].is_null()) << rows[0];
    EXPECT_EQ(rows[1]["fits"], true);
    EXPECT_GT(rows[1]["tpot_s"].get<double>(), 0);
}

// When nothing is feasible, the constraint that binds is the one whose relaxation alone makes a
// candidate feasible, not the candidate with the smallest overshoot. 70B with 32k-token prompts
// for 32 users and TTFT ≤ 2 s: every candidate that fits in memory misses TTFT, so TTFT binds,
// and re-planning with TTFT relaxed to the value named makes that candidate feasible.
TEST(PlannerLoad, TheBindingConstraintIsTheOneWhoseRelaxationAloneSuffices) {
    std::string yaml = R"(
name: ttft
model: llama-3.1-70b
runtime: vllm
workload:
  prompt_tokens: {mean: 32k, max: 60k}
  output_tokens: {mean: 512, max: 4k}
  concurrency: 32
constraints:
  gpus: [h200]
  max_gpus: 32
  ttft_s: 2
  tpot_s: 0.1
objective: fewest_gpus
)";
    const PlanReport r = plan_scenario(scenario(yaml));
    ASSERT_TRUE(r.ranked.empty());
    EXPECT_EQ(r.binding, "TTFT");
    ASSERT_TRUE(r.closest.has_value());
    EXPECT_EQ(r.closest->binding, "TTFT");
    const PlanReport::Relaxation* ttft = nullptr;
    for (const auto& x : r.relaxations)
        if (x.constraint == "TTFT") ttft = &x;
    ASSERT_NE(ttft, nullptr);
    ASSERT_TRUE(ttft->example.has_value());
    EXPECT_GT(ttft->needed, 2.0);
    EXPECT_LE(ttft->example->tpot_s, 0.1);
    yaml.replace(yaml.find("ttft_s: 2\n"), 10, fmt::format("ttft_s: {:.9f}\n", ttft->needed * (1 + 1e-6)));
    const PlanReport relaxed = plan_scenario(scenario(yaml));
    bool found = false;
    for (const Candidate& c : relaxed.ranked)
        found |= c.gpus == ttft->example->gpus && c.tp == ttft->example->tp && c.pp == ttft->example->pp &&
                 c.kv_dtype == ttft->example->kv_dtype;
    EXPECT_TRUE(found);
}

// Two plans whose costs differ only by float noise (the same figures summed in another order)
// tie on cost; the tie falls to fewer GPUs, then to the layout, in one fixed order.
TEST(PlannerOrder, CostTiesFallToGpusThenLayoutNotToFloatNoise) {
    Candidate a, b;
    a.gpu = b.gpu = "h200";
    a.cost_per_million_tokens = 1.15638436;
    b.cost_per_million_tokens = 1.15638436 * (1 + 1e-13);  // noise: b is "dearer" by 1e-13
    a.gpus = 8;
    b.gpus = 4;
    a.tokens_per_s = b.tokens_per_s = 3000;
    EXPECT_TRUE(ranks_before(b, a, Objective::LowestCost));  // fewer GPUs wins the tie
    EXPECT_FALSE(ranks_before(a, b, Objective::LowestCost));
    // Equal in every figure: the layout orders them (TP 2 before TP 4), whichever is given first.
    a.gpus = b.gpus = 4;
    a.tp = 4;
    b.tp = 2;
    EXPECT_TRUE(ranks_before(b, a, Objective::LowestCost));
    EXPECT_FALSE(ranks_before(a, b, Objective::LowestCost));
    // A real difference (a millionth of a dollar per million tokens and more) still decides.
    b.cost_per_million_tokens = a.cost_per_million_tokens + 2e-6;
    EXPECT_TRUE(ranks_before(a, b, Objective::LowestCost));
}

// constraints.attention picks profiles through the runtime family: transformers names hf-eager
// for "eager" and hf-sdpa for "fused", so both are planned; vLLM has no profile per kernel and
// says so.
TEST(Planner, AttentionKernelsComeFromTheRuntimeFamily) {
    std::string y = with_model("llama-3.1-8b");
    y += "  attention: [eager, fused]\n";
    const PlanReport r = plan_scenario(scenario(y));
    std::set<std::string> runtimes;
    for (const Candidate& c : r.ranked) runtimes.insert(c.runtime);
    EXPECT_EQ(runtimes, (std::set<std::string>{"hf-eager", "hf-sdpa"}));
    try {
        plan_scenario(scenario("runtime: vllm\n" + y));
        FAIL();
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "constraints.attention");
        EXPECT_NE(e.message().find("vllm (family vllm) has no profile per attention kernel"), std::string::npos) << e.message();
    }
}

// The front by hand: (per user, per GPU) = A (50, 100), B (40, 200), C (40, 150), D (30, 150),
// E (20, 250), F (50, 90). F is beaten by A on per GPU at equal speed; C by B; D by B on both.
// The front, fastest per user first, is A, B, E.
TEST(PlannerPareto, TheFrontIsThePlansNoOtherBeatsOnBoth) {
    auto plan = [](const char* name, double user, double gpu) {
        Candidate c;
        c.gpu = name;
        c.tokens_per_s_per_user = user;
        c.tokens_per_s_per_gpu = gpu;
        return c;
    };
    const std::vector<Candidate> v = {plan("A", 50, 100), plan("B", 40, 200), plan("C", 40, 150),
                                      plan("D", 30, 150), plan("E", 20, 250), plan("F", 50, 90)};
    std::vector<std::string> names;
    for (const Candidate& c : pareto_front(v)) names.push_back(c.gpu);
    EXPECT_EQ(names, (std::vector<std::string>{"A", "B", "E"}));

    // On a real plan: every feasible plan is on the front or beaten (or equalled) on both by one on it.
    const PlanReport r = plan_scenario(load_scenario_file(std::string(MEMTAX_SOURCE_DIR) + "/scenarios/long-context-chat-70b.yaml"));
    ASSERT_FALSE(r.pareto.empty());
    for (const Candidate& c : r.ranked) {
        bool covered = false;
        for (const Candidate& f : r.pareto)
            covered |= f.tokens_per_s_per_user >= c.tokens_per_s_per_user * (1 - 1e-12) &&
                       f.tokens_per_s_per_gpu >= c.tokens_per_s_per_gpu * (1 - 1e-12);
        EXPECT_TRUE(covered) << c.gpus << "x " << c.gpu << " TP " << c.tp << " DP " << c.dp;
    }
    for (size_t i = 1; i < r.pareto.size(); ++i) {
        EXPECT_LT(r.pareto[i].tokens_per_s_per_user, r.pareto[i - 1].tokens_per_s_per_user);
        EXPECT_GT(r.pareto[i].tokens_per_s_per_gpu, r.pareto[i - 1].tokens_per_s_per_gpu);
    }
}

// docs/planning.md's worked example: generated here (MEMTAX_UPDATE_DOCS=1 rewrites it), every
// figure in it checked against the relations a reader can apply by hand: Little's law for the
// closed loop, per GPU, per user and $/Mtok.
TEST(PlannerDocs, TheWorkedExampleInPlanningMdIsCurrent) {
    const char* yaml = R"(
name: worked
model: llama-3.1-8b
runtime: vllm
workload:
  prompt_tokens: 1k
  output_tokens: 128
  concurrency: 4
constraints:
  gpus: [h100-sxm]
  max_gpus: 4
  tpot_s: 0.02
objective: lowest_cost
prices:
  per_gpu_hour: {h100-sxm: 2.5}
  source: "a round price"
)";
    const PlanReport r = plan_scenario(scenario(yaml));
    std::string burst_yaml = yaml;
    burst_yaml.replace(burst_yaml.find("  concurrency: 4\n"), 17, "  concurrency: 4\n  arrivals: burst\n");
    const PlanReport b = plan_scenario(scenario(burst_yaml));
    std::string out = "\n```yaml" + std::string(yaml) + "```\n\n";
    out += "| GPUs | TP | PP | DP | TTFT mean | TTFT p90 | TPOT | tokens/s | per GPU | per user | $/Mtok | on the front |\n";
    out += "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
    std::vector<Candidate> rows = r.ranked;
    std::sort(rows.begin(), rows.end(),
              [](const Candidate& x, const Candidate& y) { return std::tie(x.gpus, x.tp, x.pp) < std::tie(y.gpus, y.tp, y.pp); });
    ASSERT_GE(rows.size(), 3u);
    for (const Candidate& c : rows) {
        bool front = false;
        for (const Candidate& f : r.pareto) front |= f.gpus == c.gpus && f.tp == c.tp && f.pp == c.pp;
        out += fmt::format("| {} | {} | {} | {} | {:.1f} ms | {:.1f} ms | {:.3f} ms | {:.1f} | {:.1f} | {:.2f} | {:.4f} | {} |\n", c.gpus,
                           c.tp, c.pp, c.dp, c.ttft_mean_s * 1e3, c.ttft_p90_s * 1e3, c.tpot_s * 1e3, c.tokens_per_s,
                           c.tokens_per_s_per_gpu, c.tokens_per_s_per_user, c.cost_per_million_tokens, front ? "yes" : "no");
        // The relations the text asks the reader to check.
        if (4 % c.dp == 0) EXPECT_NEAR(c.tokens_per_s, 4.0 * 128 / (c.ttft_mean_s + 127 * c.tpot_s), 1e-6 * c.tokens_per_s);
        EXPECT_NEAR(c.tokens_per_s_per_gpu, c.tokens_per_s / static_cast<double>(c.gpus), 1e-9 * c.tokens_per_s);
        // Every output is 128 tokens: the token-weighted time between tokens is the requests' TPOT.
        EXPECT_NEAR(c.itl_s, c.tpot_s, 1e-9 * c.tpot_s);
        EXPECT_NEAR(c.tokens_per_s_per_user, 1 / c.itl_s, 1e-9 / c.itl_s);
        EXPECT_NEAR(c.cost_per_million_tokens, 2.5 * static_cast<double>(c.gpus) / (c.tokens_per_s * 3600) * 1e6,
                    1e-9 * c.cost_per_million_tokens);
    }
    const Candidate& one = rows.front();  // 1 GPU, TP 1, DP 1
    ASSERT_EQ(one.gpus, 1u);
    out += fmt::format(
        "\nCheck the first row by hand. Each of the 4 users always has a request in flight: it waits "
        "{:.1f} ms for its first token, then 127 more at {:.3f} ms, so a user completes a request every "
        "{:.1f} + 127 × {:.3f} = {:.1f} ms, and 4 users complete 4 × 128 tokens in that time: {:.1f} "
        "tokens/s (Little's law). Per user, 1 / the time between tokens (every output is 128 tokens, so it is TPOT) = {:.2f} tokens/s; on "
        "1 GPU at $2.50 an hour, "
        "$/Mtok = 2.50 / ({:.1f} × 3,600) × 10⁶ = {:.4f}.\n",
        one.ttft_mean_s * 1e3, one.tpot_s * 1e3, one.ttft_mean_s * 1e3, one.tpot_s * 1e3, (one.ttft_mean_s + 127 * one.tpot_s) * 1e3,
        one.tokens_per_s, one.tokens_per_s_per_user, one.tokens_per_s, one.cost_per_million_tokens);
    const Candidate* b1 = nullptr;
    for (const Candidate& c : b.ranked)
        if (c.gpus == 1) b1 = &c;
    ASSERT_NE(b1, nullptr);
    EXPECT_GT(b1->ttft_mean_s, one.ttft_mean_s);
    out += fmt::format(
        "\nWith `arrivals: burst` the same GPU answers the 4 prompts arriving together: their mean first token comes after "
        "{:.1f} ms, not {:.1f} ms, because all 4,096 prompt tokens are ahead of the last one; in steady state a prompt "
        "arrives while the other users decode and shares a step with them.\n",
        b1->ttft_mean_s * 1e3, one.ttft_mean_s * 1e3);

    const std::string path = std::string(MEMTAX_SOURCE_DIR) + "/docs/planning.md";
    std::ifstream in(path);
    std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string begin = "<!-- BEGIN worked example (tests/test_planner.cpp) -->", end = "<!-- END worked example -->";
    const size_t bpos = doc.find(begin), epos = doc.find(end);
    ASSERT_NE(bpos, std::string::npos);
    ASSERT_NE(epos, std::string::npos);
    const std::string have = doc.substr(bpos + begin.size(), epos - bpos - begin.size());
    if (have != out && std::getenv("MEMTAX_UPDATE_DOCS")) {
        doc.replace(bpos + begin.size(), epos - bpos - begin.size(), out);
        std::ofstream(path) << doc;
        return;
    }
    EXPECT_EQ(have, out) << "run MEMTAX_UPDATE_DOCS=1 build/tests/memtax_tests --gtest_filter=PlannerDocs.* to regenerate";
}

// ---- Expert parallelism as vLLM and Megatron lay it out (hand-derived). ---------------------

namespace {
u64 weights_per_gpu(const std::string& model, u64 gpus, u64 tp, u64 ep) {
    Workload w;
    w.runtime = resolve_runtime("vllm");
    w.context = 4096;
    return Plan::compile(resolve_model(model), resolve_gpu("h200"), Deployment{gpus, tp, 1, ep}, w)
        .evaluate(Point{Mode::Prefill, 1, 4096})
        .weights;
}
}  // namespace

// Mixtral-8x7B at TP 8: each GPU holds 1/8 of the expert bytes however the 8 experts are spread
// over the 8 GPUs — a TP slice of every expert (EP 1), 4 experts over the 2 GPUs of each pair
// with each expert's 14,336-wide MLP sliced over 4 (EP 2: expert TP = TP / EP), or one whole
// expert each (EP 8). EP below TP once kept whole experts on every GPU (4 of 8 at EP 2: 42.4 GiB
// against 10.9).
TEST(ExpertParallel, EveryEpThatDividesTpHoldsTheSameBytes) {
    const u64 ep1 = weights_per_gpu("mixtral-8x7b", 8, 8, 1);
    EXPECT_EQ(weights_per_gpu("mixtral-8x7b", 8, 8, 2), ep1);
    EXPECT_EQ(weights_per_gpu("mixtral-8x7b", 8, 8, 4), ep1);
    EXPECT_EQ(weights_per_gpu("mixtral-8x7b", 8, 8, 8), ep1);
    // 46.7B parameters in bf16 over 8 GPUs: under 12 GiB each (42 GiB is the old layout's).
    EXPECT_LT(ep1, u64{12} << 30);
}

// Wide EP spreads the experts beyond a replica: per GPU, W(ep) = N + X / ep for ep ≥ TP, where N
// is what every GPU of a replica holds anyway (attention, shared expert, embeddings) and X the
// routed experts' bytes. DeepSeek-V3 at TP 8 with EP 8, 16 and 32 (1, 2 and 4 replicas, 256
// experts): W(8) − W(16) = X/16 and W(16) − W(32) = X/32, so the first step is twice the second.
TEST(ExpertParallel, WideEpSpansReplicasAndHalvesTheExpertsEachTime) {
    const u64 w8 = weights_per_gpu("deepseek-v3", 8, 8, 8), w16 = weights_per_gpu("deepseek-v3", 16, 8, 16),
              w32 = weights_per_gpu("deepseek-v3", 32, 8, 32);
    ASSERT_GT(w8, w16);
    ASSERT_GT(w16, w32);
    EXPECT_EQ(w8 - w16, 2 * (w16 - w32));
    // EP beyond TP needs the GPUs it spans: 16 experts' ranks on 8 GPUs is refused by name.
    Workload w;
    w.runtime = resolve_runtime("vllm");
    w.context = 4096;
    try {
        (void)Plan::compile(resolve_model("deepseek-v3"), resolve_gpu("h200"), Deployment{8, 8, 1, 16}, w);
        ADD_FAILURE() << "EP 16 on 8 GPUs compiled";
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "deployment.ep");
    }
}

// The planner searches EP for a MoE model under vLLM: DeepSeek-V3 (671B, fp8) on 8 H200s either
// slices every expert over TP 8 (EP off) or runs 8 data-parallel attention replicas sharing the
// 256 experts, 32 whole experts a GPU (TP 1, DP 8, EP 8); both are candidates, the EP layout says
// so in its `vllm serve` line, and a dense model gets no EP candidates.
TEST(ExpertParallel, PlanSearchesExpertParallelismForMoeModels) {
    const char* yaml = R"(
name: ep
model: deepseek-v3
runtime: vllm
workload:
  prompt_tokens: 2k
  output_tokens: 256
  concurrency: 32
constraints:
  gpus: [h200]
  max_gpus: 8
objective: highest_throughput
)";
    const PlanReport r = plan_scenario(scenario(yaml));
    bool off = false, wide = false;
    for (const Candidate& c : r.ranked) {
        if (c.ep == 1 && c.tp == 8) off = true;
        if (c.ep == 8 && c.tp == 1 && c.dp == 8) wide = true;
        EXPECT_TRUE(c.ep == 1 || c.ep == c.tp * c.dp) << c.tp << " " << c.dp << " " << c.ep;
    }
    EXPECT_TRUE(off);
    EXPECT_TRUE(wide);
    ASSERT_FALSE(r.ranked.empty());
    EXPECT_EQ(r.launch.find("--enable-expert-parallel") != std::string::npos, r.ranked.front().ep > 1) << r.launch;
    std::string dense = yaml;
    dense.replace(dense.find("deepseek-v3"), 11, "llama-3.1-8b");
    for (const Candidate& c : plan_scenario(scenario(dense)).ranked) EXPECT_EQ(c.ep, 1u);
}

// The capacity report charts the best plan as planned: DeepSeek-V3's is wide EP (32 whole experts
// on each of 8 H200s), whose KV pool holds the plan's sequences at its context; charted as TP 1
// with every expert on one GPU, the weights alone would not fit and the pool would hold none.
TEST(ExpertParallel, TheCapacityReportChartsTheWideEpPlan) {
    const CapacityReport r = build_capacity_report(load_scenario_file(std::string(MEMTAX_SOURCE_DIR) + "/scenarios/deepseek-v3-chat.yaml"));
    ASSERT_TRUE(r.charted.has_value());
    ASSERT_GT(r.charted->ep, r.charted->tp);
    ASSERT_TRUE(r.serving.has_value());
    for (const auto& p : r.serving->points)
        if (p.context == 8192) EXPECT_GE(p.r.max_concurrency_milli, r.charted->batch_per_replica * 1000);
}

// A setup names its expert parallelism: `:ep8` on 8 H200s at TP 1 is DeepSeek-V3 in wide EP
// (8 replicas sharing the 256 experts, 32 whole experts a GPU), and `vs` lays it out so.
TEST(ExpertParallel, SetupsTakeAnEpPart) {
    const cli::SetupArg s = cli::parse_setup("deepseek-v3@8xh200:tp1:ep8");
    EXPECT_EQ(s.gpus, 8u);
    EXPECT_EQ(s.tp, 1u);
    EXPECT_EQ(s.ep, 8u);
    EXPECT_THROW((void)cli::parse_setup("deepseek-v3@8xh200:xp8"), InputError);
    Result r = run_command(
        {"vs", "--setup", "deepseek-v3@8xh200:tp1:ep8", "--setup", "deepseek-v3@8xh200", "--context", "8k", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("deepseek-v3@8xh200:tp1:ep8"), std::string::npos);
}

// `serve` and `plan` price a deployment with one serving model: the planner's best plan for
// DeepSeek-V3 (wide EP, 64 users split evenly over its replicas), asked of `serve` with the same
// layout, gives the same throughput and TTFT.
TEST(ExpertParallel, ServeAndPlanAgreeOnTheWideEpPlan) {
    const PlanReport r = plan_scenario(load_scenario_file(std::string(MEMTAX_SOURCE_DIR) + "/scenarios/deepseek-v3-chat.yaml"));
    ASSERT_FALSE(r.ranked.empty());
    const Candidate& b = r.ranked.front();
    ASSERT_EQ(64 % b.dp, 0u);
    Result out = run_command({"serve",
                              "--model",
                              "deepseek-v3",
                              "--gpu",
                              b.gpu,
                              "--gpus",
                              std::to_string(b.gpus),
                              "--tp",
                              std::to_string(b.tp),
                              "--pp",
                              std::to_string(b.pp),
                              "--ep",
                              std::to_string(b.ep),
                              "--kv-dtype",
                              b.kv_dtype,
                              "--prompt-tokens",
                              "4k:8k",
                              "--output-tokens",
                              "1k:2k",
                              "--users",
                              "64",
                              "--format",
                              "json"});
    ASSERT_EQ(out.code, 0) << out.err;
    const auto row = nlohmann::json::parse(out.out)["sections"]["serving"]["rows"][0];
    EXPECT_NEAR(row["tokens_per_s"].get<double>(), b.tokens_per_s, 1e-6 * b.tokens_per_s);
    EXPECT_NEAR(row["ttft_mean_s"].get<double>(), b.ttft_mean_s, 1e-6 * b.ttft_mean_s);
}
