#include "planner/train_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <tuple>

#include "core/format.hpp"
#include "model/train_time.hpp"
#include "spec/loaders.hpp"

namespace memtax {
namespace {

// The search space's axes into the report: the scenario's lists (sorted, each value once) or
// their defaults.
void set_axes(TrainPlanReport& r, const ScenarioSpec& s, const RuntimeSpec& rt, const ModelSpec& m) {
    const TrainingScenario& t = *s.training;
    r.tp = t.tp;
    if (r.tp.empty())
        for (u64 v = 1; v <= s.gpus_per_node; v *= 2) r.tp.push_back(v);
    r.pp = t.pp.empty() ? std::vector<u64>{1} : t.pp;
    r.micro_batch_sizes = t.micro_batch_sizes.empty() ? std::vector<u64>{1, 2, 4} : t.micro_batch_sizes;
    // ZeRO-2/3 shard the gradients; a runtime that keeps fp32 main gradients (Megatron) keeps
    // them whole, so its default stages stop at its distributed optimizer (ZeRO-1).
    r.zero_stages = t.zero_stages;
    if (r.zero_stages.empty()) r.zero_stages = rt.training.fp32_main_grads ? std::vector<u64>{0, 1} : std::vector<u64>{0, 1, 2, 3};
    if (t.recompute.empty()) {
        r.recompute = {Recompute::None, Recompute::Full};
        if (rt.training.selective_recompute) r.recompute.insert(r.recompute.begin() + 1, Recompute::Selective);
    } else {
        for (const auto& rc : t.recompute) r.recompute.push_back(recompute_from(rc, "constraints.recompute"));
    }
    for (std::vector<u64>* values : {&r.tp, &r.pp, &r.micro_batch_sizes, &r.zero_stages}) {
        std::sort(values->begin(), values->end());
        values->erase(std::unique(values->begin(), values->end()), values->end());
    }
    if (std::all_of(r.pp.begin(), r.pp.end(), [&](u64 p) { return p > m.num_layers; }))
        throw InputError(SourcePos{s.file, 0, 0}, "constraints.pp",
                         fmt::format("every value exceeds {}'s {} layers", m.name, m.num_layers));
}

}  // namespace

bool ranks_before(const TrainCandidate& a, const TrainCandidate& b, Objective o) {
    // Dollars to the cent, days to a millionth, throughput to a millionth of a token a second
    // (more is better: ~t reverses the order without overflow); the objective's figure first,
    // then the other two, then the layout and settings, so equal plans always list in one order.
    auto figures = [o](const TrainCandidate& c) -> std::array<long long, 3> {
        const long long cost = rank_units(c.dollars, 1e-2), faster = ~rank_units(c.tokens_per_s, 1e-6);
        const auto gpus = static_cast<long long>(c.gpus);
        if (o == Objective::LowestCost) return {cost, gpus, faster};
        if (o == Objective::HighestThroughput) return {faster, gpus, cost};
        return {gpus, faster, cost};
    };
    const auto fa = figures(a), fb = figures(b);
    if (fa != fb) return fa < fb;
    return std::tie(a.gpu, a.tp, a.pp, a.dp, a.zero, a.recompute, a.micro_batch) <
           std::tie(b.gpu, b.tp, b.pp, b.dp, b.zero, b.recompute, b.micro_batch);
}

TrainPlanReport plan_training(const ScenarioSpec& s, const std::function<void(u64, u64)>& progress) {
    if (!s.training)
        throw InputError(SourcePos{s.file, 0, 0}, "workload.mode", "an inference scenario; plan_training takes mode: training");
    const TrainingScenario& t = *s.training;
    TrainPlanReport rep;
    rep.scenario = s;
    const ModelSpec model = resolve_model(s.model);
    const RuntimeSpec rt = resolve_runtime(s.runtime);
    if (!RuntimeRegistry::builtin().family(rt).trains)
        throw InputError(
            SourcePos{s.file, 0, 0}, "runtime",
            fmt::format("{} serves inference; a training scenario runs under hf-train, hf-train-eager or megatron-train", rt.name));
    rep.model_name = model.name;
    rep.runtime_name = rt.name;
    rep.parameters = parameter_count(model);
    set_axes(rep, s, rt, model);

    std::map<std::string, double> price;  // by the GPU profile's own name (a scenario may write an alias)
    for (const auto& [name, v] : s.price_per_gpu_hour) price[resolve_gpu(name).name] = v;

    TrainSpec base;
    base.optimizer = optimizer_from(t.optimizer, "workload.optimizer");
    base.precision = t.precision == "bf16" ? Precision::ModelDtype : Precision::Mixed;

    // The layouts to try, known before any is evaluated, so progress has a total.
    struct Layout {
        const GpuSpec* gpu;
        u64 tp, pp, micro, dp;
    };
    std::vector<GpuSpec> gpus;
    for (const auto& g : s.gpus) gpus.push_back(resolve_gpu(g));
    std::vector<Layout> layouts;
    for (const GpuSpec& g : gpus)
        for (u64 tp : rep.tp) {
            if (tp > s.gpus_per_node) continue;  // TP stays inside a node's NVLink domain
            for (u64 pp : rep.pp) {
                if (pp > model.num_layers) continue;
                for (u64 mb : rep.micro_batch_sizes) {
                    if (t.global_batch % mb != 0) continue;
                    const u64 per_step = t.global_batch / mb;  // micro-batches an optimizer step, over every replica
                    for (u64 dp = 1; dp <= per_step; ++dp)
                        if (per_step % dp == 0 && tp * pp * dp <= s.max_gpus) layouts.push_back({&g, tp, pp, mb, dp});
                }
            }
        }
    const u64 per_layout = rep.zero_stages.size() * rep.recompute.size();
    const u64 total = layouts.size() * per_layout;
    if (total == 0)
        throw InputError(
            SourcePos{s.file, 0, 0}, "workload.global_batch",
            fmt::format("no layout makes up {} sequences a step from micro_batch_sizes within max_gpus {}", t.global_batch, s.max_gpus));

    std::vector<TrainCandidate> rejected;
    // Per GPU kind and count, the best candidate that fits in memory (the chart of days against GPUs).
    std::map<std::pair<std::string, u64>, TrainCandidate> best_at;
    u64 done = 0;
    for (const Layout& l : layouts) {
        const GpuSpec& g = *l.gpu;
        const u64 n = l.tp * l.pp * l.dp;
        std::optional<Topology> topo;
        for (Recompute rc : rep.recompute)
            for (u64 zero : rep.zero_stages) {
                ++rep.considered;
                if (progress) progress(++done, total);
                TrainCandidate c;
                c.gpu = g.name;
                c.gpus = n;
                c.tp = l.tp;
                c.pp = l.pp;
                c.dp = l.dp;
                c.zero = zero;
                c.recompute = rc;
                c.micro_batch = l.micro;
                c.accumulation = t.global_batch / l.micro / l.dp;
                c.sequence_parallel = rt.training.sequence_parallel && l.tp > 1;
                if (zero > 0 && l.dp == 1) {  // nothing to shard over: ZeRO-0's plan
                    count_reason(rep.rejected_by, "ZeRO without data parallelism");
                    continue;
                }
                TrainSpec spec = base;
                spec.recompute = rc;
                spec.zero = zero;
                spec.micro_batches = c.accumulation;
                spec.sequence_parallel = c.sequence_parallel;
                Workload w;
                w.runtime = rt;
                w.batch = l.micro;
                w.context = t.sequence_length;
                std::optional<TrainEstimate> e;
                try {
                    e = estimate_train(model, g, Deployment{n, l.tp, l.pp, 1}, w, spec);
                } catch (const InputError& err) {
                    count_reason(rep.rejected_by, "invalid: " + err.message());
                    continue;
                }
                c.bytes_per_gpu = e->total;
                c.capacity = e->capacity;
                c.budget_bytes = budget_of(e->capacity, s);
                c.peak_at = e->peak_at;
                if (c.bytes_per_gpu > c.budget_bytes) {
                    c.binding = "memory";
                    c.binding_ratio = static_cast<double>(c.bytes_per_gpu) / static_cast<double>(c.budget_bytes);
                    c.reason = fmt::format("needs {} per GPU, {} usable{}", format_bytes_gib(c.bytes_per_gpu),
                                           format_bytes_gib(c.budget_bytes), s.memory_headroom_ppm ? " less the headroom" : "");
                    count_reason(rep.rejected_by, "over memory");
                    rejected.push_back(c);
                    continue;
                }
                if (!topo) topo.emplace(replica_topology(g, n, s.gpus_per_node));
                const auto pit = price.find(g.name);
                const TrainTime tt = estimate_train_time(*e, *topo, t.train_tokens, pit == price.end() ? 0.0 : pit->second);
                c.timed = true;
                c.step_s = tt.step_s;
                c.tokens_per_s = tt.tokens_per_s;
                c.mfu = tt.mfu;
                c.days = tt.days;
                c.gpu_hours = tt.gpu_hours;
                c.dollars = tt.dollars;
                const bool late = t.max_days && c.days > *t.max_days;
                if (late) {
                    c.binding = "deadline";
                    c.binding_ratio = c.days / *t.max_days;
                    c.reason = fmt::format("{:.1f} days for the budget, at most {:.1f}", c.days, *t.max_days);
                }
                c.feasible = !late;
                // The best at each GPU count, over every candidate that fits (past the deadline too:
                // the chart shows what each count would take).
                auto [at, fresh] = best_at.try_emplace({c.gpu, c.gpus}, c);
                if (!fresh && ranks_before(c, at->second, s.objective)) at->second = c;
                if (late) {
                    count_reason(rep.rejected_by, "over the deadline");
                    rejected.push_back(std::move(c));
                    continue;
                }
                rep.ranked.push_back(std::move(c));
            }
    }
    std::sort(rep.ranked.begin(), rep.ranked.end(),
              [&](const TrainCandidate& a, const TrainCandidate& b) { return ranks_before(a, b, s.objective); });
    for (auto& [key, c] : best_at) rep.by_gpus.push_back(c);
    if (rep.ranked.empty() && !rejected.empty()) {
        // The least violation: a candidate over the deadline (it fits) before one over memory.
        rep.closest = *std::min_element(rejected.begin(), rejected.end(), [](const TrainCandidate& a, const TrainCandidate& b) {
            if ((a.binding == "deadline") != (b.binding == "deadline")) return a.binding == "deadline";
            return a.binding_ratio < b.binding_ratio;
        });
        rep.binding = rep.closest->binding;
    }

    std::optional<GatedPlan> gated;
    if (!rep.ranked.empty()) gated = GatedPlan{rep.ranked.front().bytes_per_gpu, rep.ranked.front().capacity, 0, 0};
    check_gates(s, gated ? &*gated : nullptr, rep.gates, rep.gates_passed);
    return rep;
}

}  // namespace memtax
