#include "model/serving_costs.hpp"

#include <algorithm>

#include "model/time_internal.hpp"

namespace memtax {

StepCostTable step_costs(const Plan& plan, const Topology& topo, u64 prompt, u64 output, u64 max_running, u64 users) {
    prompt = std::max<u64>(prompt, 1);
    const Scheduler sch = plan.runtime().scheduler();
    const u64 prefill_batch =
        sch.continuous ? std::max<u64>(sch.step_tokens / prompt, 1) : std::min(std::max<u64>(users, 1), std::max<u64>(max_running, 1));
    StepCostTable t;
    // Steps are priced only from their graphs: nothing is formatted.
    const Estimate pre = plan.estimate(Point{Mode::Prefill, prefill_batch, prompt}, Detail::Steps);
    const Rates r = rates_for(pre);
    if (r.bw <= 0 || r.act_rate <= 0)
        throw InputError(SourcePos{pre.gpu().file, 0, 0}, "hbm_bandwidth_bytes_per_s",
                         "needs a bandwidth and a matrix rate for the time model");
    t.per_token_s = step_time(pre, topo, r).seconds / static_cast<double>(checked_mul(pre.batch_per_replica, prompt, "prefill tokens"));
    // Decode steps at the mean KV length over a request's decode.
    const u64 kv = checked_add(prompt, output / 2, "mean KV length");
    const u64 most = std::max<u64>(max_running, 1);
    for (u64 d = 1;; d = std::min(2 * d, most)) {
        t.decode.emplace_back(d, step_time(plan.estimate(Point{Mode::Decode, d, kv}, Detail::Steps), topo, r).seconds);
        if (d == most) break;
    }
    return t;
}

}  // namespace memtax
