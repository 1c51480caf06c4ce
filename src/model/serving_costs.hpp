#pragma once
// The step costs a runtime's scheduler is priced with under a steady load (runtimes/serving):
// decode steps of 1, 2, 4, … sequences up to the most a replica runs, at the load's mean KV
// length (a request decodes from its prompt's length to prompt + output, prompt + output/2 on
// average), and the seconds per token of a prefill step, all from the time model's step graphs.
#include "model/plan.hpp"
#include "runtimes/serving.hpp"
#include "topology/topology.hpp"

namespace memtax {

// `prefill_batch` prompts of `prompt` tokens as one forward give the seconds per prefill token
// (a continuous-batching step full of prompts: its token budget over the prompt length; a static
// batch: its batch). InputError / OverflowError as estimate_time.
StepCostTable step_costs(const Plan& plan, const Topology& topo, u64 prompt, u64 output, u64 max_running, u64 prefill_batch);

}  // namespace memtax
