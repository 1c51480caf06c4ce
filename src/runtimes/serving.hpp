#pragma once
// Serving under a steady load, per replica: what a runtime's scheduler gives its users when
// requests keep coming, not when a batch arrives at once.
//
// Two loads, as benchmarks drive a server (vLLM's `bench serve`):
// - closed loop: `users` requests in flight, each answered request replaced at once by the same
//   user's next (`--max-concurrency`);
// - open loop: Poisson arrivals at `rate_per_s` (`--request-rate`, burstiness 1).
// Request lengths are spread uniformly between `lo` and `hi` (vLLM's random dataset draws
// lengths uniformly in [mean·(1−r), mean·(1+r)], `--random-range-ratio r`).
//
// Two answers for one scheduler, from the same step costs:
// - the steady state, in closed form (the planner's hot path): each step's time from the
//   running decodes and the prompt tokens it carries, Little's law for the sequences in each
//   phase, an M-server queue for admission, and the step a request arrives in;
// - a discrete-event simulation, step by step and request by request, of the same scheduler
//   (the reference the closed form is checked against; `memtax simulate`, docs/planning.md).
//
// A step with d running decodes and q prompt tokens takes max(decode(d), (d + q) · per_token_s):
// it is bound either by its reads (every weight, and the running sequences' caches: the decode
// step of d sequences) or by its compute (every token it processes at a full prefill step's cost
// per token). The time model gives both (model/serving_costs).
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.hpp"

namespace memtax {

// Lengths of requests: uniform integers in [lo, hi]; lo == hi: every request alike.
struct LengthSpread {
    u64 lo = 1, hi = 1;
    double mean() const { return (static_cast<double>(lo) + static_cast<double>(hi)) / 2.0; }
    double quantile(double u) const { return static_cast<double>(lo) + (static_cast<double>(hi) - static_cast<double>(lo)) * u; }
    // E[max of n draws] (a static batch pads to its longest prompt and runs to its longest output).
    double expected_max(double n) const;
};
// A spread with this mean that reaches at most `max`: [2·mean − max, max], narrowed to start at 1.
LengthSpread spread_of(u64 mean, u64 max);

struct ServingLoad {
    LengthSpread prompt, output;
    u64 users = 0;          // closed loop: requests in flight on this replica (0: open loop)
    double rate_per_s = 0;  // open loop: Poisson arrivals per second on this replica
    u64 max_running = 1;    // requests the replica runs at once (the runtime's limit, and memory's)
};

// The step costs of one replica, from which any step is priced.
struct StepCostTable {
    // A decode step of d sequences at the load's mean KV length: (d, seconds), d ascending from 1;
    // linear between the points, extended along the last two past the end.
    std::vector<std::pair<u64, double>> decode;
    double per_token_s = 0;  // a full prefill step's seconds per token processed
    double decode_s(double d) const;
    // A step with d decodes and q prompt tokens (d = 0: a prefill-only step, never faster than a
    // decode step of one sequence, which reads every weight).
    double step_s(double d, double q) const;
};

// How the runtime schedules: a static batch (all prompts in one forward, then decode until the
// longest output) or continuous batching with chunked prefill (vLLM: running requests first, one
// decode token each, then prompt chunks in arrival order, at most `step_tokens` tokens a step).
struct Scheduler {
    bool continuous = false;
    u64 step_tokens = 0;  // 0: no limit
    std::string name() const { return continuous ? "continuous batching, chunked prefill" : "static batch"; }
};

struct ServingSlo {
    std::optional<double> ttft_s, tpot_s;
};

struct ServingResult {
    std::string method;  // "steady state" | "simulation of N requests"
    bool stable = true;  // the replica keeps up with its arrivals (open loop)
    std::string unstable_reason;
    double ttft_mean_s = 0, ttft_p50_s = 0, ttft_p90_s = 0, ttft_p99_s = 0;
    double tpot_mean_s = 0, tpot_p90_s = 0;  // of requests' own time per output token (bench serve's TPOT)
    // Token-weighted: the time between output tokens over every token after a first (bench serve's
    // mean ITL). A request with a short output weighs less here than in the mean TPOT, so this is
    // what a user's reading speed and the throughput follow.
    double itl_mean_s = 0;
    double requests_per_s = 0, tokens_per_s = 0;  // completed requests, output tokens
    double running_mean = 0, waiting_mean = 0;    // requests admitted, requests queued
    double step_mean_s = 0;
    double slo_attained = 1;  // of requests, the share meeting every SLO given (1 when none)
    double goodput_tokens_per_s() const { return tokens_per_s * slo_attained; }
};

// The steady state in closed form.
ServingResult serve_steady(const Scheduler& sched, const ServingLoad& load, const StepCostTable& cost, const ServingSlo& slo = {});

// The same scheduler simulated: `requests` completions measured after `warmup` (default: twice
// the users or 200), with a fixed seed (the same inputs give the same answer on every machine
// with the same standard library).
struct SimulationOptions {
    u64 requests = 4000, warmup = 0, seed = 1;
};
ServingResult serve_simulated(const Scheduler& sched, const ServingLoad& load, const StepCostTable& cost, const ServingSlo& slo = {},
                              const SimulationOptions& opt = {});

}  // namespace memtax
