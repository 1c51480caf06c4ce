#pragma once
// What a capacity report shows for one scenario: the plan, the best plan's memory over context
// (fused and eager attention side by side: the linear and the quadratic terms), its step times
// per op kind (the roofline), and the top plans' components.
#include <functional>
#include <optional>

#include "planner/planner.hpp"
#include "planner/sweep.hpp"

namespace memtax {

struct CapacityReport {
    PlanReport plan;
    // The candidate the charts are drawn for: the best plan, or, when nothing is feasible, the
    // closest candidate (so an infeasible scenario's page still shows where it stands).
    std::optional<Candidate> charted;
    // The best plan's model, GPU and layout at its sequences per replica, prefill over contexts
    // 1k … the model's maximum (doubling): under fused attention (hf-sdpa) and eager (hf-eager).
    std::optional<SweepReport> fused, eager;
    // A runtime that sizes a KV pool at start-up (vLLM) is charted as it serves: the best plan's
    // layout under the scenario's runtime and engine arguments, one sequence a point, over the
    // same contexts; a point's max_concurrency_milli is the sequences the pool holds. Then
    // fused/eager above are not drawn (they are transformers' static batch).
    std::optional<SweepReport> serving;
    u64 max_running = 0;               // the runtime's admission limit (vLLM: max_num_seqs)
    std::optional<TimeEstimate> time;  // the best plan's prefill and decode steps
};

CapacityReport build_capacity_report(const ScenarioSpec& s, const std::function<void(u64, u64)>& progress = {});

}  // namespace memtax
