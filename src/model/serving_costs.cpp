#include "model/serving_costs.hpp"

#include <algorithm>

#include "model/time_internal.hpp"

namespace memtax {

u64 prefill_batch(const Plan& plan, u64 prompt, u64 max_running, u64 users) {
    const Scheduler sch = plan.runtime().scheduler();
    prompt = std::max<u64>(prompt, 1);
    return sch.continuous ? std::max<u64>(sch.step_tokens / prompt, 1) : std::min(std::max<u64>(users, 1), std::max<u64>(max_running, 1));
}

namespace {

Rates rates_of(const Estimate& e) {
    const Rates r = rates_for(e);
    if (r.bw <= 0 || r.act_rate <= 0)
        throw InputError(SourcePos{e.gpu().file, 0, 0}, "hbm_bandwidth_bytes_per_s",
                         "needs a bandwidth and a matrix rate for the time model");
    return r;
}

}  // namespace

double prefill_per_token_s(const Plan& plan, const Topology& topo, u64 prompt, u64 batch) {
    prompt = std::max<u64>(prompt, 1);
    // Steps are priced only from their graphs: nothing is formatted.
    const Estimate pre = plan.estimate(Point{Mode::Prefill, batch, prompt}, Detail::Steps);
    return step_time(pre, topo, rates_of(pre)).seconds / static_cast<double>(checked_mul(pre.batch_per_replica, prompt, "prefill tokens"));
}

StepCostTable step_costs(const Plan& plan, const Topology& topo, u64 prompt, u64 output, u64 max_running, u64 users) {
    prompt = std::max<u64>(prompt, 1);
    StepCostTable t;
    t.per_token_s = prefill_per_token_s(plan, topo, prompt, prefill_batch(plan, prompt, max_running, users));
    // Decode steps at the mean KV length over a request's decode.
    const u64 kv = checked_add(prompt, output / 2, "mean KV length");
    const u64 most = std::max<u64>(max_running, 1);
    for (u64 d = 1;; d = std::min(2 * d, most)) {
        const Estimate e = plan.estimate(Point{Mode::Decode, d, kv}, Detail::Steps);
        t.decode.emplace_back(d, step_time(e, topo, rates_of(e)).seconds);
        if (d == most) break;
    }
    return t;
}

}  // namespace memtax
