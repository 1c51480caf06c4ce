#pragma once
// The capacity planner, in stages (planner.cpp unless named):
//   1. candidates: the scenario's runtimes, GPU pools (kinds or clusters), dtypes, TP × PP
//      layouts, DP counts, and expert parallelism for MoE models under a runtime that spreads
//      experts; a plan is compiled once per layout and evaluated for every DP it serves;
//   2. memory (check_memory): whether a replica holds the sequences it runs;
//   3. load (planner/load.cpp): each candidate served by its runtime's own scheduler under the
//      scenario's load — users in steady state, a burst, or a request rate (unstable counted);
//   4. ranking by the objective and the Pareto front of tokens/s per user against per GPU;
//   5. the explanation of what binds an infeasible scenario (explain_infeasible), the best plan's
//      launch line and the CI gates.
// The rejected are counted by reason. Also the one-call answers: the largest batch or context
// that fits, and setups side by side.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "spec/scenario_spec.hpp"
#include "topology/topology.hpp"

namespace memtax {

struct Candidate {
    std::string gpu, kv_dtype, weight_dtype, runtime;
    std::string cluster;  // the cluster profile the GPUs belong to, if the scenario named one
    u64 gpus = 0, tp = 1, pp = 1, dp = 1;
    u64 ep = 1;  // expert-parallel degree: 1, or TP × DP (the runtime's experts spread over every GPU of a stage)
    // Sequences the fullest replica runs at once: ceil(concurrency / dp), or under a request rate
    // its mean running requests, rounded up.
    u64 batch_per_replica = 0;
    // Memory, per GPU, of the step that needs most (transformers: the prefill of the longest
    // prompt or the decode at the promised context; vLLM: its start-up sizing).
    PointResult memory;
    // Its runtime sizes a memory pool at start-up (vLLM): memory.total is then what it asks for
    // (utilisation × the card), not what the workload uses.
    bool pool_sized = false;
    u64 budget_bytes = 0;         // usable capacity less the scenario's headroom
    double concurrency_held = 0;  // sequences at the promised context one replica holds
    bool timed = false;
    // Under the scenario's load (planner/load.hpp): ttft_s is the statistic the SLO holds to
    // (the scenario's ttft_statistic), beside the mean and percentiles; TPOT the requests' mean.
    std::string load_method;  // "steady state" | "burst"
    double ttft_s = 0, ttft_mean_s = 0, ttft_p90_s = 0, ttft_p99_s = 0, tpot_s = 0;
    double itl_s = 0;  // the mean time between output tokens, token-weighted
    // The whole deployment's output tokens a second (busy replicas only), those of requests that
    // meet every SLO (goodput), and completed requests a second.
    double tokens_per_s = 0, goodput_tokens_per_s = 0, requests_per_s = 0;
    double tokens_per_s_per_gpu = 0, tokens_per_s_per_user = 0;  // per user: 1 / ITL, the speed a user reads at
    double cost_per_million_tokens = 0;
    double sustainable_rate_per_s = 0;  // under a request rate: the most its replicas keep up with
    bool feasible = false;
    std::string binding;       // the constraint that rejects it (or binds it most, when feasible)
    double binding_ratio = 0;  // what / limit for that constraint: > 1 is over
    std::string reason;        // one line: why it is rejected
};

struct GateResult {
    std::string gate, detail;
    bool passed = false;
};

struct PlanReport {
    ScenarioSpec scenario;
    std::string model_name;
    u64 considered = 0;
    std::vector<Candidate> ranked;                         // feasible, best first
    std::vector<std::pair<std::string, u64>> rejected_by;  // reason kind -> count, in order of appearance
    std::optional<Candidate> closest;                      // when nothing is feasible: the least violation
    // The feasible plans no other beats on both tokens/s per user (1 / ITL: how fast one user
    // reads) and tokens/s per GPU (what the hardware earns), fastest per user first: the
    // trade-off AIConfigurator draws for serving configurations.
    std::vector<Candidate> pareto;
    // When nothing is feasible, per service-level constraint (TTFT, TPOT): the best value any
    // candidate that fits in memory reaches, and the least the limit must be relaxed to, alone,
    // for a candidate to meet every other constraint (`example` is that candidate). Memory is not
    // relaxed: more GPUs are already in the search.
    struct Relaxation {
        std::string constraint;  // "TTFT" | "TPOT"
        double limit = 0;        // the scenario's, seconds
        double best = 0;         // the best value of any candidate that fits in memory
        double needed = 0;       // the limit that makes `example` feasible; 0: relaxing it alone does not
        std::optional<Candidate> example;
    };
    std::vector<Relaxation> relaxations;
    std::string binding;  // when nothing is feasible: the constraint that binds ("memory", "TTFT", ...)
    // The best plan as its runtime's launcher takes it (vLLM: the `vllm serve` line); "" when the
    // runtime has none or nothing is feasible.
    std::string launch;
    std::vector<GateResult> gates;
    bool gates_passed = true;
};

// The runtime a scenario names, with its vLLM engine settings applied (InputError naming
// runtime_settings.* when they are bad or the runtime is not vLLM).
RuntimeSpec scenario_runtime(const ScenarioSpec& s, const std::string& name);

// The GPUs of one replica: one node joined by the GPU's interconnect, or nodes of `per_node`
// joined by one 400 Gb/s InfiniBand NIC per GPU (assumed, as the dgx-h100-2x8-ib profile).
Topology replica_topology(const GpuSpec& g, u64 gpus, u64 per_node);

// `progress(done, total)` is called as candidates are evaluated (may be empty).
PlanReport plan_scenario(const ScenarioSpec& s, const std::function<void(u64, u64)>& progress = {});

// The largest batch (mode at `context`) or context (at `batch`) that fits the plan, by
// bisection over Plan::evaluate (memory grows with both). 0 when even 1 does not fit.
u64 max_batch(const Plan& plan, Mode mode, u64 context, u64 limit = u64{1} << 20);
u64 max_context(const Plan& plan, Mode mode, u64 batch, u64 limit);
// Sequences of `context` tokens one replica holds: its KV pool's (vLLM, fractional), or the largest
// static batch whose decode step fits (at most 2^16).
double sequences_held(const Plan& plan, u64 context);

// The planner's order: whether `a` ranks before `b` under the objective. Figures are compared
// in whole units (a millionth of a dollar per million tokens, of a token a second), then fewer
// GPUs, then the layout (GPU, TP, PP, DP, dtypes, cluster): float noise never orders a tie.
bool ranks_before(const Candidate& a, const Candidate& b, Objective o);
// A figure for ranking, in whole units of `unit`: two plans whose costs differ by float noise
// (the same figures summed in another order) tie, and the tie falls to the next key, not to the
// noise. Quantising keeps the order a strict weak ordering, which a tolerance would not.
long long rank_units(double v, double unit);
// Usable capacity less the scenario's headroom, exactly.
u64 budget_of(u64 capacity, const ScenarioSpec& s);
// The scenario's CI gates on its best plan (null: nothing is feasible), appended to `gates`;
// `passed` falls when one fails. Each planner's best plan as the gates read it:
struct GatedPlan {
    u64 bytes = 0, capacity = 0;    // per GPU
    double tpot_s = 0, ttft_s = 0;  // serving plans; a training scenario has no such gates
};
void check_gates(const ScenarioSpec& s, const GatedPlan* best, std::vector<GateResult>& gates, bool& passed);
// One more rejection of `kind` in a plan's tally (reason kind -> count, in order of appearance).
void count_reason(std::vector<std::pair<std::string, u64>>& tally, const std::string& kind);

// The candidates no other beats on both tokens/s per user and per GPU (figures compared in
// millionths, ties kept once, by `ranked` order), fastest per user first.
std::vector<Candidate> pareto_front(const std::vector<Candidate>& ranked);

}  // namespace memtax
