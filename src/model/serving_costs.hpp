#pragma once
// The step costs a runtime's scheduler is priced with under a steady load (runtimes/serving):
// decode steps of 1, 2, 4, … sequences up to the most a replica runs, at the load's mean KV
// length (a request decodes from its prompt's length to prompt + output, prompt + output/2 on
// average), and the seconds per token of a prefill step, all from the time model's step graphs.
#include "model/plan.hpp"
#include "runtimes/serving.hpp"
#include "topology/topology.hpp"

namespace memtax {

// The seconds per prefill token come from one forward of the prompts the runtime's scheduler
// prefills together: a continuous-batching step full of prompts (its token budget over the prompt
// length), or a static batch of `users` (at most max_running; 1 for an open loop's `users` 0).
// InputError / OverflowError as estimate_time.
StepCostTable step_costs(const Plan& plan, const Topology& topo, u64 prompt, u64 output, u64 max_running, u64 users);

// The prompts a runtime's scheduler prefills together (step_costs' rule above).
u64 prefill_batch(const Plan& plan, u64 prompt, u64 max_running, u64 users);
// The seconds per token of one forward of `batch` prompts of `prompt` tokens (step_costs' per_token_s).
double prefill_per_token_s(const Plan& plan, const Topology& topo, u64 prompt, u64 batch);

}  // namespace memtax
