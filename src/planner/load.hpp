#pragma once
// The planner's serving stage: what one compiled candidate (a replica's plan on its topology)
// gives the scenario's load when the GPUs count DP replicas, from the runtime's own scheduler
// (RuntimePlan::serve, runtimes/serving.hpp).
//
// - `concurrency` users, steady (the default): a closed loop per replica, the users split as
//   evenly as whole users go (some replicas one more); TTFT is the fullest replica's, TPOT and
//   the time between tokens the users' harmonic means over the replicas, throughput the sum.
// - `concurrency` users in a burst: all arrive at once; TTFT is the burst's mean first token
//   (percentiles spread linearly between its first and last), TPOT the decode step of the batch.
// - `request_rate_per_s`: Poisson arrivals split evenly over the replicas, an open loop each; a
//   replica that cannot keep up is unstable.
#include <map>
#include <optional>
#include <string>

#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "runtimes/serving.hpp"
#include "spec/scenario_spec.hpp"
#include "topology/topology.hpp"

namespace memtax {

struct LoadResult {
    enum class Verdict { Served, Unstable, Untimed };
    Verdict verdict = Verdict::Served;
    std::string reason;  // Unstable / Untimed: one line
    std::string method;  // "steady state" | "burst"
    // Sequences the fullest replica runs at once: its users, or under a rate the mean running,
    // rounded up (the memory a start-up pool or a static batch must hold).
    u64 sequences = 0;
    double ttft_mean_s = 0, ttft_p50_s = 0, ttft_p90_s = 0, ttft_p99_s = 0;
    double tpot_s = 0;  // requests' mean time per output token
    double itl_s = 0;   // the mean time between output tokens, token-weighted (a user's reading speed is 1 / it)
    double requests_per_s = 0, tokens_per_s = 0, goodput_tokens_per_s = 0;  // the whole deployment
    double ttft_at(unsigned percentile) const;                              // 0: the mean; 50, 90, 99
};

class ReplicaLoad {
public:
    // `max_running`: requests one replica runs at once (the runtime's limit and what its memory
    // holds of the longest request); at least 1.
    ReplicaLoad(const Plan& plan, const Topology& topo, const ScenarioSpec& s, u64 max_running);
    // The load over `dp` replicas (dp ≤ concurrency for users).
    LoadResult serve(u64 dp);
    // The most requests a second one replica keeps up with (its open loop stable), to 0.1%:
    // what tells an unstable candidate how far it is from the rate, and what a rate could be
    // lowered to. 0 when its steps cannot be timed.
    double max_rate();

private:
    LoadResult closed(u64 dp);
    LoadResult open(u64 dp);
    LoadResult burst(u64 dp);
    const StepCostTable* costs(u64 users);  // nullptr: the steps cannot be timed
    const Plan& plan_;
    const Topology& topo_;
    const ScenarioSpec& s_;
    u64 max_running_;
    ServingLoad shape_;  // the scenario's lengths and the running limit; users or rate set per call
    ServingSlo slo_;
    std::map<u64, std::optional<StepCostTable>> costs_;  // by the users of a static batch (continuous: one key)
    std::map<u64, std::optional<TimeEstimate>> bursts_;  // by sequences per replica
    std::map<u64, ServingResult> closed_;                // by users per replica
    std::optional<double> max_rate_;
};

}  // namespace memtax
