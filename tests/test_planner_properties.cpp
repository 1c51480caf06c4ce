// The planner's invariants over randomly generated scenarios (issue: "planner invariants as
// tests"). Each scenario is written as YAML and read by the scenario loader, so the generator
// cannot build what a user could not. MEMTAX_PROPERTY_CASES sets how many (default 16; the test
// job's fuzzing stage runs 150 more with another seed, as it runs the fuzzers).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdlib>
#include <random>
#include <set>
#include <tuple>

#include "core/dtype.hpp"
#include "planner/planner.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

u64 cases() {
    const char* v = std::getenv("MEMTAX_PROPERTY_CASES");
    return v ? std::strtoull(v, nullptr, 10) : 16;
}
unsigned seed() {
    const char* v = std::getenv("MEMTAX_PROPERTY_SEED");
    return v ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : 2026u;
}

struct Generated {
    std::string yaml;
    ScenarioSpec spec;
};

Generated generate(std::mt19937_64& rng) {
    auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
    auto coin = [&] { return rng() % 2 == 0; };
    const std::string model = pick({"llama-3.1-8b", "qwen2.5-7b", "llama-3.2-3b", "mistral-7b-v0.1", "qwen3-30b-a3b", "gpt-oss-20b",
                                    "llama-3.1-70b", "mixtral-8x7b", "deepseek-v2-lite", "gemma-2-27b"});
    const std::string runtime = pick({"vllm", "vllm", "hf-sdpa", "hf-eager"});
    const u64 prompt = u64{1} << (8 + rng() % 7), output = u64{1} << (5 + rng() % 5);  // 256..16k, 32..512
    std::string y = fmt::format(
        "name: prop\nmodel: {}\nruntime: {}\nworkload:\n  prompt_tokens: {{mean: {}, max: {}}}\n  output_tokens: {{mean: {}, max: {}}}\n",
        model, runtime, prompt, prompt * (1 + rng() % 2), output, output * (1 + rng() % 2));
    if (rng() % 3 == 0)
        y += fmt::format("  request_rate_per_s: {}\n", 0.25 * static_cast<double>(1 + rng() % 40));
    else
        y += fmt::format("  concurrency: {}\n{}", 1 + rng() % 48, rng() % 4 == 0 ? "  arrivals: burst\n" : "");
    const std::vector<std::string> all = {"l40s", "a100-80gb", "h100-sxm", "h200"};
    std::string gpus;
    for (const auto& g : all)
        if (coin() || (gpus.empty() && &g == &all.back())) gpus += (gpus.empty() ? "" : ", ") + g;
    y +=
        fmt::format("constraints:\n  gpus: [{}]\n  max_gpus: {}\n  memory_headroom_percent: {}\n", gpus, u64{1} << (rng() % 4), rng() % 10);
    if (coin()) y += fmt::format("  ttft_s: {}\n", 0.05 * static_cast<double>(1 << (rng() % 8)));
    if (coin()) y += fmt::format("  tpot_s: {}\n", 0.005 * static_cast<double>(1 << (rng() % 5)));
    if (coin()) y += fmt::format("  ttft_statistic: {}\n", pick({"mean", "p50", "p90", "p99"}));
    y += fmt::format("  kv_dtypes: [{}]\n", pick({"bf16", "fp8_e4m3", "bf16, fp8_e4m3"}));
    const std::string objective = pick({"fewest_gpus", "lowest_cost", "highest_throughput"});
    y += fmt::format(
        "objective: {}\nprices:\n  per_gpu_hour: {{l40s: 1.0, a100-80gb: 1.8, h100-sxm: 2.5, h200: 3.5}}\n  source: \"test\"\n", objective);
    return {y, load_scenario_yaml(y, "generated.yaml")};
}

using Key = std::tuple<std::string, std::string, std::string, std::string, u64, u64, u64>;
Key key(const Candidate& c) { return {c.gpu, c.runtime, c.kv_dtype, c.weight_dtype, c.tp, c.pp, c.dp}; }

// The candidate's replica compiled again, as `estimate` would: the same model, GPU, layout and dtypes.
Plan recompile(const ScenarioSpec& s, const Candidate& c, const GpuSpec& gpu) {
    Workload w;
    w.runtime = scenario_runtime(s, c.runtime);
    DType kv;
    EXPECT_TRUE(parse_dtype(c.kv_dtype, kv)) << c.kv_dtype;
    w.kv_dtype = kv;
    w.context = s.context;
    // Expert parallelism beyond TP spans the replicas of a stage: the plan holds them all.
    return Plan::compile(resolve_model(s.model), gpu, Deployment{c.tp * c.pp * (c.ep > c.tp ? c.dp : 1), c.tp, c.pp, c.ep}, w);
}

}  // namespace

TEST(PlannerProperties, InvariantsHoldOverRandomScenarios) {
    std::mt19937_64 rng(seed());
    const u64 n = cases();
    u64 feasible = 0;
    for (u64 i = 0; i < n; ++i) {
        const Generated g = generate(rng);
        SCOPED_TRACE(g.yaml);
        const ScenarioSpec& s = g.spec;
        // No input reaches an internal error: a plan, or a one-line InputError.
        PlanReport r;
        try {
            r = plan_scenario(s);
        } catch (const InputError&) {
            continue;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "internal error: " << e.what();
            continue;
        }
        if (r.ranked.empty()) continue;
        ++feasible;
        const Candidate& best = r.ranked.front();
        const GpuSpec gpu = resolve_gpu(best.gpu);
        const Plan plan = recompile(s, best, gpu);
        const bool pooled = plan.runtime().sizes_pool_at_startup();
        // Re-estimating the chosen candidate gives the same bytes.
        PointResult again = plan.evaluate(Point{pooled ? Mode::Prefill : Mode::Decode, best.batch_per_replica, s.context});
        if (!pooled) {
            const PointResult pre = plan.evaluate(Point{Mode::Prefill, best.batch_per_replica, s.prompt.max});
            if (pre.total > again.total) again = pre;
        }
        EXPECT_EQ(again.total, best.memory.total);
        for (const Candidate& c : r.ranked) {
            // Throughput: never more than the sequences that exist decode; under a rate, what arrives.
            if (s.request_rate_per_s)
                EXPECT_NEAR(c.tokens_per_s, *s.request_rate_per_s * static_cast<double>(s.output.mean), 1e-6 * c.tokens_per_s);
            else if (s.concurrency % c.dp == 0)
                // Each user's request emits its first token after TTFT and the rest one per ITL on
                // average (token-weighted), so no user emits faster than one per min(TTFT, ITL): with
                // the users split evenly, C users emit at most C / min(TTFT, ITL) tokens a second.
                EXPECT_LE(c.tokens_per_s, static_cast<double>(s.concurrency) / std::min(c.itl_s, c.ttft_mean_s) * (1 + 1e-9));
            // $/Mtok = price × GPUs / throughput.
            const double price = s.price_per_gpu_hour.at(c.gpu);
            EXPECT_NEAR(c.cost_per_million_tokens, price * static_cast<double>(c.gpus) / (c.tokens_per_s * 3600) * 1e6,
                        1e-9 * c.cost_per_million_tokens);
            EXPECT_TRUE(c.feasible);
            if (s.ttft_s) EXPECT_LE(c.ttft_s, *s.ttft_s);
            if (s.tpot_s) EXPECT_LE(c.tpot_s, *s.tpot_s);
        }
        // More memory per GPU never lowers the sequences held.
        GpuSpec bigger = gpu;
        bigger.memory_bytes += bigger.memory_bytes / 4;
        bigger.usable_memory_bytes += bigger.usable_memory_bytes / 4;
        const Plan roomier = recompile(s, best, bigger);
        if (pooled)
            EXPECT_GE(roomier.evaluate(Point{Mode::Prefill, 1, s.context}).max_concurrency_milli,
                      plan.evaluate(Point{Mode::Prefill, 1, s.context}).max_concurrency_milli);
        else
            EXPECT_GE(max_batch(roomier, Mode::Decode, s.context, 1 << 12), max_batch(plan, Mode::Decode, s.context, 1 << 12));
        // A stricter SLO never adds feasible plans.
        ScenarioSpec strict = s;
        strict.ttft_s = s.ttft_s ? *s.ttft_s / 2 : best.ttft_s;
        strict.tpot_s = s.tpot_s ? *s.tpot_s / 2 : best.tpot_s;
        std::set<Key> before;
        for (const Candidate& c : r.ranked) before.insert(key(c));
        for (const Candidate& c : plan_scenario(strict).ranked) EXPECT_TRUE(before.count(key(c))) << c.gpus << "x " << c.gpu;
    }
    // The generator reaches feasible plans often enough for the invariants to be exercised.
    EXPECT_GE(feasible * 4, n) << feasible << " of " << n << " scenarios had a feasible plan";
}
