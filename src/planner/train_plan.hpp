#pragma once
// The training planner: a training scenario (`workload.mode: training`) answered as a plan. For
// each GPU kind it searches TP (within a node) × PP × DP layouts, ZeRO stages, recomputation and
// micro-batch sizes, with gradient accumulation making up the global batch exactly
// (global_batch = micro-batch × accumulation × DP). Each candidate is sized by estimate_train
// (model/training.hpp) and, when it fits, timed by estimate_train_time (model/train_time.hpp) on
// nodes of gpus_per_node: its step time, tokens/s, MFU and, over the token budget, days,
// GPU-hours and dollars. A candidate is rejected by memory (over the usable capacity less the
// headroom), by the deadline (max_days), or as invalid (a combination the runtime refuses, named).
// Ranked by the objective: fewest GPUs, lowest cost of the budget, or highest tokens/s.
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "planner/planner.hpp"
#include "runtimes/runtime.hpp"

namespace memtax {

struct TrainCandidate {
    std::string gpu;
    u64 gpus = 0, tp = 1, pp = 1, dp = 1;
    u64 zero = 0;
    Recompute recompute = Recompute::None;
    u64 micro_batch = 1;   // sequences per micro-batch on each replica
    u64 accumulation = 1;  // micro-batches per optimizer step on each replica
    bool sequence_parallel = false;
    u64 bytes_per_gpu = 0, capacity = 0, budget_bytes = 0;  // budget: usable capacity less the headroom
    std::string peak_at;
    bool timed = false;
    double step_s = 0, tokens_per_s = 0, mfu = 0;
    double days = 0, gpu_hours = 0, dollars = 0;  // over the token budget (0: none)
    bool feasible = false;
    std::string binding;       // "memory" | "deadline" when rejected
    double binding_ratio = 0;  // what / limit for that constraint: > 1 is over
    std::string reason;        // one line: why it is rejected
};

struct TrainPlanReport {
    ScenarioSpec scenario;
    std::string model_name, runtime_name;
    u64 parameters = 0;
    // The axes searched: the scenario's lists or their defaults.
    std::vector<u64> tp, pp, micro_batch_sizes, zero_stages;
    std::vector<Recompute> recompute;
    u64 considered = 0;
    std::vector<TrainCandidate> ranked;                    // feasible, best first
    std::vector<std::pair<std::string, u64>> rejected_by;  // reason kind -> count, in order of appearance
    std::optional<TrainCandidate> closest;                 // when nothing is feasible: the least violation
    std::string binding;                                   // when nothing is feasible: "memory" or "deadline"
    // Per GPU kind and GPU count, the candidate that fits in memory the objective ranks first there
    // (past the deadline too, marked by `feasible`): how days and dollars (or tokens/s) move as GPUs
    // are added. GPU kind, then count ascending.
    std::vector<TrainCandidate> by_gpus;
    std::vector<GateResult> gates;
    bool gates_passed = true;
};

// InputError naming the scenario's field when the model, runtime or a setting cannot be trained.
TrainPlanReport plan_training(const ScenarioSpec& s, const std::function<void(u64, u64)>& progress = {});

bool ranks_before(const TrainCandidate& a, const TrainCandidate& b, Objective o);

}  // namespace memtax
