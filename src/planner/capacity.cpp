#include "planner/capacity.hpp"

#include "spec/loaders.hpp"
#include "topology/topology.hpp"

namespace memtax {

CapacityReport build_capacity_report(const ScenarioSpec& s, const std::function<void(u64, u64)>& progress) {
    CapacityReport r;
    r.plan = plan_scenario(s, progress);
    if (!r.plan.ranked.empty())
        r.charted = r.plan.ranked.front();
    else if (r.plan.closest && !r.plan.closest->gpu.empty() && r.plan.closest->batch_per_replica > 0)
        r.charted = *r.plan.closest;
    if (!r.charted) return r;
    const Candidate& best = *r.charted;
    const ModelSpec model = resolve_model(s.model);
    const GpuSpec gpu = resolve_gpu(best.gpu);
    DType wd, kv;
    parse_dtype(best.weight_dtype, wd);
    parse_dtype(best.kv_dtype, kv);
    std::vector<u64> contexts;
    for (u64 c = 1024; c <= model.max_context; c *= 2) contexts.push_back(c);
    // The best plan's steps, as the planner timed them.
    Workload w;
    w.runtime = scenario_runtime(s, best.runtime);
    w.weight_dtype = wd;
    w.kv_dtype = kv;
    w.context = s.context;
    // Wide expert parallelism spans the replicas of a stage: the plan holds them all.
    const u64 plan_gpus = best.tp * best.pp * (best.ep > best.tp ? best.dp : 1);
    const Plan plan = Plan::compile(model, gpu, Deployment{plan_gpus, best.tp, best.pp, best.ep}, w);
    if (contexts.size() >= 3 && plan.runtime().sizes_pool_at_startup()) {
        SweepSpec sw;
        sw.model = model;
        sw.gpu = gpu;
        sw.contexts = contexts;
        sw.batches = {1};
        sw.tps = {best.tp};
        sw.pp = best.pp;
        sw.ep = best.ep;
        sw.replicas = best.dp;
        sw.workload = w;
        r.serving = run_sweep(sw);
        r.max_running = plan.runtime().max_running();
    } else if (contexts.size() >= 3) {
        for (const char* rt : {"hf-sdpa", "hf-eager"}) {
            SweepSpec sw;
            sw.model = model;
            sw.gpu = gpu;
            sw.contexts = contexts;
            sw.batches = {best.batch_per_replica};
            sw.tps = {best.tp};
            sw.pp = best.pp;
            sw.ep = best.ep;
            sw.replicas = best.dp;
            sw.workload.runtime = resolve_runtime(rt);
            sw.workload.weight_dtype = wd;
            sw.workload.kv_dtype = kv;
            (rt == std::string("hf-sdpa") ? r.fused : r.eager) = run_sweep(sw);
        }
    }
    r.time =
        estimate_time(plan, Point{Mode::Prefill, best.batch_per_replica, s.prompt.mean}, replica_topology(gpu, plan_gpus, s.gpus_per_node));
    return r;
}

}  // namespace memtax
