#include "planner/planner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <tuple>

#include "core/number.hpp"
#include "planner/load.hpp"
#include "spec/loaders.hpp"
#include "topology/topology.hpp"

namespace memtax {
namespace {

DType dtype_named(const std::string& field, const std::string& name, const ScenarioSpec& s) {
    DType d;
    if (!parse_dtype(name, d)) throw InputError(SourcePos{s.file, 0, 0}, field, unknown_dtype_message(name));
    return d;
}

// The weights as shipped: "bf16", or "fp8_e4m3" / "bf16 + mxfp4 experts" from the checkpoint.
std::string shipped_label(const ModelSpec& m, const Workload& wl) {
    const std::string w = wl.weight_dtype ? wl.weight_dtype->name : m.dtype.name;
    return m.shipped_expert_dtype.empty() || m.shipped_expert_dtype == w ? w : fmt::format("{} + {} experts", w, m.shipped_expert_dtype);
}

std::vector<u64> powers_of_two_upto(u64 limit) {
    std::vector<u64> v;
    for (u64 x = 1; x <= limit; x *= 2) v.push_back(x);
    return v;
}

// Of two steps, the one that decides the verdict: a failed status, else one that does not fit,
// else the larger.
const PointResult& worse(const PointResult& a, const PointResult& b) {
    if (a.status != PointStatus::Ok) return a;
    if (b.status != PointStatus::Ok) return b;
    if (a.fits != b.fits) return a.fits ? b : a;
    return a.total >= b.total ? a : b;
}

// "TTFT p90" / "mean TTFT": the statistic the scenario's TTFT SLO holds to.
std::string ttft_label(const ScenarioSpec& s) {
    return s.ttft_percentile ? fmt::format("TTFT p{}", s.ttft_percentile) : std::string("mean TTFT");
}

}  // namespace

void check_gates(const ScenarioSpec& s, const GatedPlan* best, std::vector<GateResult>& gates, bool& passed) {
    auto gate = [&](const std::string& name, bool ok, const std::string& detail) {
        gates.push_back({name, detail, ok});
        passed &= ok;
    };
    if (s.gate_must_fit) gate("must_fit", best != nullptr, best ? "a plan meets every constraint" : "no candidate meets the constraints");
    if (s.gate_max_bytes_per_gpu)
        gate("max_bytes_per_gpu", best && best->bytes <= *s.gate_max_bytes_per_gpu,
             best ? fmt::format("{} B per GPU, at most {} B", group_digits(best->bytes), group_digits(*s.gate_max_bytes_per_gpu))
                  : "no plan");
    if (s.gate_min_headroom_ppm) {
        const double h = best ? 1.0 - static_cast<double>(best->bytes) / static_cast<double>(best->capacity) : 0;
        gate(
            "min_headroom_percent", best && h * 1e6 >= static_cast<double>(*s.gate_min_headroom_ppm),
            best ? fmt::format("{:.1f}% free, at least {:.1f}%", h * 100, static_cast<double>(*s.gate_min_headroom_ppm) / 1e4) : "no plan");
    }
    if (s.gate_max_tpot_s)
        gate("max_tpot_s", best && best->tpot_s <= *s.gate_max_tpot_s,
             best ? fmt::format("TPOT {:.4f} s, at most {:.4f} s", best->tpot_s, *s.gate_max_tpot_s) : "no plan");
    if (s.gate_max_ttft_s)
        gate("max_ttft_s", best && best->ttft_s <= *s.gate_max_ttft_s,
             best ? fmt::format("TTFT {:.3f} s, at most {:.3f} s", best->ttft_s, *s.gate_max_ttft_s) : "no plan");
}

u64 budget_of(u64 capacity, const ScenarioSpec& s) { return capacity - mul_frac(capacity, s.memory_headroom_ppm, 1000000); }

void count_reason(std::vector<std::pair<std::string, u64>>& tally, const std::string& kind) {
    for (auto& [k, n] : tally)
        if (k == kind) {
            ++n;
            return;
        }
    tally.emplace_back(kind, 1);
}

long long rank_units(double v, double unit) {
    if (!std::isfinite(v)) return v > 0 ? LLONG_MAX : LLONG_MIN;
    const double q = std::round(v / unit);
    return q >= 9.2e18 ? LLONG_MAX : q <= -9.2e18 ? LLONG_MIN : static_cast<long long>(q);
}

bool ranks_before(const Candidate& a, const Candidate& b, Objective o) {
    // Costs to a millionth of a dollar per million tokens, throughput to a millionth of a token a
    // second (more is better: ~t reverses the order without overflow); the objective's figure
    // first, then the other two, then the layout itself, so equal plans always list in one order.
    auto figures = [o](const Candidate& c) -> std::array<long long, 3> {
        const long long cost = rank_units(c.cost_per_million_tokens, 1e-6), more = ~rank_units(c.tokens_per_s, 1e-6);
        const auto gpus = static_cast<long long>(c.gpus);
        if (o == Objective::LowestCost) return {cost, gpus, more};
        if (o == Objective::HighestThroughput) return {more, gpus, cost};
        return {gpus, more, cost};
    };
    const auto fa = figures(a), fb = figures(b);
    if (fa != fb) return fa < fb;
    return std::tie(a.gpu, a.tp, a.pp, a.dp, a.ep, a.kv_dtype, a.weight_dtype, a.cluster) <
           std::tie(b.gpu, b.tp, b.pp, b.dp, b.ep, b.kv_dtype, b.weight_dtype, b.cluster);
}

std::vector<Candidate> pareto_front(const std::vector<Candidate>& plans) {
    std::vector<const Candidate*> v;
    for (const Candidate& c : plans) v.push_back(&c);
    // Fastest per user first, then most per GPU; a stable sort keeps the ranked order among equals.
    std::stable_sort(v.begin(), v.end(), [](const Candidate* a, const Candidate* b) {
        const long long ua = rank_units(a->tokens_per_s_per_user, 1e-6), ub = rank_units(b->tokens_per_s_per_user, 1e-6);
        if (ua != ub) return ua > ub;
        return rank_units(a->tokens_per_s_per_gpu, 1e-6) > rank_units(b->tokens_per_s_per_gpu, 1e-6);
    });
    // Walking down in speed per user, a plan joins the front only if it earns more per GPU than
    // every faster one.
    std::vector<Candidate> front;
    long long best = LLONG_MIN;
    for (const Candidate* c : v) {
        const long long g = rank_units(c->tokens_per_s_per_gpu, 1e-6);
        if (g > best) {
            front.push_back(*c);
            best = g;
        }
    }
    return front;
}

namespace {

// What binds an infeasible scenario. Only candidates that fit in memory were timed; among them,
// for each SLO, the value the limit must be relaxed to, alone, for one to meet the other SLOs.
// The SLO needing the least relaxation binds (and names the closest candidate); when no candidate
// fits in memory, memory binds. Under a request rate, the rate is a constraint like the SLOs: its
// factor is the rate over the most any candidate sustains.
void explain_infeasible(PlanReport& rep, const std::vector<Candidate>& rejected, const ScenarioSpec& s) {
    struct Slo {
        const char* name;
        std::optional<double> limit;
        double Candidate::*value;
    };
    const Slo slos[] = {{"TTFT", s.ttft_s, &Candidate::ttft_s}, {"TPOT", s.tpot_s, &Candidate::tpot_s}};
    double least_factor = 0;
    for (const Slo& k : slos) {
        if (!k.limit) continue;
        PlanReport::Relaxation r;
        r.constraint = k.name;
        r.limit = *k.limit;
        bool any = false;
        for (const Candidate& c : rejected) {
            if (!c.timed) continue;
            r.best = any ? std::min(r.best, c.*k.value) : c.*k.value;
            any = true;
            bool others = true;  // every other SLO met
            for (const Slo& o : slos)
                if (&o != &k && o.limit && c.*o.value > *o.limit) others = false;
            if (others && (!r.example || c.*k.value < r.needed)) {
                r.needed = c.*k.value;
                r.example = c;
            }
        }
        if (!any) continue;
        if (r.example) {
            const double factor = r.needed / r.limit;
            if (rep.binding.empty() || factor < least_factor) {
                rep.binding = r.constraint;
                least_factor = factor;
                rep.closest = r.example;
                rep.closest->binding = r.constraint;
                rep.closest->binding_ratio = factor;
            }
        }
        rep.relaxations.push_back(std::move(r));
    }
    // A request rate no candidate that fits in memory keeps up with: the most any sustains is what
    // the rate must be lowered to (its SLOs at that rate are not known until re-planned).
    if (s.request_rate_per_s) {
        PlanReport::Relaxation r;
        r.constraint = "request rate";
        r.limit = *s.request_rate_per_s;
        for (const Candidate& c : rejected)
            if (c.sustainable_rate_per_s > r.best) {
                r.best = r.needed = c.sustainable_rate_per_s;
                r.example = c;
            }
        if (r.example) {
            const double factor = r.limit / r.needed;
            if (rep.binding.empty() || factor < least_factor) {
                rep.binding = r.constraint;
                least_factor = factor;
                rep.closest = r.example;
                rep.closest->binding_ratio = factor;
            }
            rep.relaxations.push_back(std::move(r));
        }
    }
    // Memory, for the record: the least any candidate over its memory needs of its budget.
    {
        PlanReport::Relaxation r;
        r.constraint = "memory";
        r.limit = 1;
        for (const Candidate& c : rejected)
            if (c.binding == "memory" && (!r.example || c.binding_ratio < r.best)) {
                r.best = r.needed = c.binding_ratio;
                r.example = c;
            }
        if (r.example) rep.relaxations.push_back(std::move(r));
    }
    if (rep.binding.empty()) rep.binding = rep.closest ? rep.closest->binding : "memory";
}

// Stage 1, the candidates' axes. Runtimes: the scenario's, or one per attention kernel allowed
// (transformers).
std::vector<RuntimeSpec> scenario_runtimes(const ScenarioSpec& s) {
    std::vector<RuntimeSpec> runtimes;
    const RuntimeSpec base = scenario_runtime(s, s.runtime);
    if (s.attention.empty()) {
        runtimes.push_back(base);
    } else {
        // The family names the profile that runs each kernel.
        const auto& kernels = RuntimeRegistry::builtin().family(base).kernel_profiles;
        for (const auto& a : s.attention) {
            const auto k = std::find_if(kernels.begin(), kernels.end(), [&](const auto& x) { return x.first == a; });
            if (k == kernels.end())
                throw InputError(SourcePos{s.file, 0, 0}, "constraints.attention",
                                 fmt::format("{} (family {}) has no profile per attention kernel; {} is not one of its choices", base.name,
                                             base.family, a));
            runtimes.push_back(scenario_runtime(s, k->second));
        }
    }
    return runtimes;
}

// Where GPUs come from: a GPU kind in nodes of gpus_per_node (joined by its interconnect, nodes by
// InfiniBand), or a cluster profile with its own nodes, fabric and size.
struct Pool {
    GpuSpec gpu;
    u64 per_node, max_gpus;
    std::optional<ClusterSpec> cluster;
};

std::vector<Pool> scenario_pools(const ScenarioSpec& s) {
    std::vector<Pool> pools;
    for (const auto& g : s.gpus) pools.push_back({resolve_gpu(g), s.gpus_per_node, s.max_gpus, std::nullopt});
    for (const auto& name : s.clusters) {
        ClusterSpec c = resolve_cluster(name);
        pools.push_back({resolve_gpu(c.gpu), c.gpus_per_node, std::min(s.max_gpus, c.gpus()), c});
    }
    return pools;
}

// Stage 2, memory: whether a replica holds the `b` sequences it runs. vLLM sizes its pool at
// start-up for sequences of the promised context (and admits at most max_num_seqs); a static
// batch must hold the longest prompts' prefill and the decode at the context; either within the
// usable capacity less the scenario's headroom.
struct MemoryCheck {
    PointResult memory;  // the step that decides it
    u64 budget_bytes = 0;
    double ratio = 0;  // what is used over what is allowed: bytes, or under a pool the sequences it holds
    bool overflow = false;
    std::string reason;  // empty: it fits
};

MemoryCheck check_memory(const Plan& plan, const ScenarioSpec& s, bool pooled, u64 b, double held, u64 running) {
    MemoryCheck m;
    m.memory = plan.evaluate(Point{pooled ? Mode::Prefill : Mode::Decode, b, s.context});
    if (!pooled) m.memory = worse(m.memory, plan.evaluate(Point{Mode::Prefill, b, s.prompt.max}));
    const PointResult& mem = m.memory;
    if (mem.status != PointStatus::Ok) {
        m.overflow = true;
        m.reason = "a count exceeds 64 bits";
        return m;
    }
    m.budget_bytes = budget_of(mem.capacity, s);
    // A pooled runtime's pool always fills its share: its use is the sequences against those it holds.
    double ratio = static_cast<double>(mem.total) / static_cast<double>(m.budget_bytes);
    if (pooled) ratio = mem.max_concurrency_milli ? static_cast<double>(b) * 1000.0 / static_cast<double>(mem.max_concurrency_milli) : 2.0;
    m.ratio = mem.fits ? ratio : std::max(ratio, 1.0 + 1e-9);
    if (!mem.fits || mem.total > m.budget_bytes)
        m.reason = running && b > running ? fmt::format("{} sequences per replica exceed max_num_seqs {}", b, running)
                   : pooled               ? fmt::format("the KV pool holds {:.2f} sequences of {} tokens, {} wanted", held, s.context, b)
                            : fmt::format("{} per GPU, {} allowed", format_bytes_gib(mem.total), format_bytes_gib(m.budget_bytes));
    return m;
}

// Stage 5, what the answer hands on. The best plan as its runtime's launcher takes it (vLLM: the
// `vllm serve` line); "" when the runtime has none.
std::string launch_line(const ScenarioSpec& s, const ModelSpec& model, const Candidate& best) {
    const RuntimeSpec rt = scenario_runtime(s, best.runtime);
    const auto& family = RuntimeRegistry::builtin().family(rt);
    if (!family.launch) return "";
    ServeLaunch l;
    l.model = model.name;  // the checkpoint's Hugging Face id where the profile lists one
    for (const auto& a : model.aliases)
        if (a.find('/') != std::string::npos) {
            l.model = a;
            break;
        }
    l.tp = best.tp;
    l.pp = best.pp;
    l.dp = best.dp;
    l.expert_parallel = best.ep > 1;
    l.kv_dtype = best.kv_dtype == model.dtype.name ? "" : best.kv_dtype;
    l.max_model_len = s.context;
    return family.launch(rt, l);
}

}  // namespace

RuntimeSpec scenario_runtime(const ScenarioSpec& s, const std::string& name) {
    RuntimeSpec r = resolve_runtime(name);
    try {
        apply_engine_args(r, s.engine);
    } catch (const InputError& e) {
        throw InputError(SourcePos{s.file, 0, 0}, e.field(), e.message());  // where the scenario gives them
    }
    return r;
}

u64 max_batch(const Plan& plan, Mode mode, u64 context, u64 limit) {
    auto fits = [&](u64 b) {
        const PointResult r = plan.evaluate(Point{mode, b, context});
        return r.status == PointStatus::Ok && r.fits;
    };
    if (limit == 0 || !fits(1)) return 0;
    u64 lo = 1, hi = 2;  // fits(lo), hi unknown
    while (hi <= limit && fits(hi)) {
        lo = hi;
        if (hi > limit / 2) {
            hi = limit + 1;
            break;
        }
        hi *= 2;
    }
    hi = std::min(hi, limit + 1);
    while (hi - lo > 1) {
        const u64 mid = lo + (hi - lo) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo;
}

double sequences_held(const Plan& plan, u64 context) {
    if (plan.runtime().sizes_pool_at_startup())
        return static_cast<double>(plan.evaluate(Point{Mode::Prefill, 1, context}).max_concurrency_milli) / 1000.0;
    return static_cast<double>(max_batch(plan, Mode::Decode, context, u64{1} << 16));
}

u64 max_context(const Plan& plan, Mode mode, u64 batch, u64 limit) {
    auto fits = [&](u64 c) {
        const PointResult r = plan.evaluate(Point{mode, batch, c});
        return r.status == PointStatus::Ok && r.fits;
    };
    if (limit == 0 || !fits(1)) return 0;
    u64 lo = 1, hi = limit + 1;
    if (fits(limit)) return limit;
    hi = limit;
    while (hi - lo > 1) {
        const u64 mid = lo + (hi - lo) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo;
}

Topology replica_topology(const GpuSpec& g, u64 gpus, u64 per_node) {
    if (gpus <= per_node) return Topology(single_node_cluster(g, gpus));
    ClusterSpec c = single_node_cluster(g, per_node);
    c.name = fmt::format("{}x {} in nodes of {}", gpus, g.name, per_node);
    c.nodes = (gpus + per_node - 1) / per_node;
    c.inter_node = Link{"infiniband", 50e9, 6.0e-6};
    c.sources["inter_node"] = "assumed: one 400 Gb/s InfiniBand NIC per GPU, 6 µs (the dgx-h100-2x8-ib cluster profile)";
    return Topology(c);
}

PlanReport plan_scenario(const ScenarioSpec& s, const std::function<void(u64, u64)>& progress) {
    if (s.training)
        throw InputError(SourcePos{s.file, 0, 0}, "workload.mode", "training: the training planner answers it (planner/train_plan.hpp)");
    PlanReport rep;
    rep.scenario = s;
    const ModelSpec model = resolve_model(s.model);
    rep.model_name = model.name;
    if (s.context > model.max_context)
        throw InputError(SourcePos{s.file, 0, 0}, "workload.context",
                         fmt::format("{} tokens exceed {}'s max context {}", s.context, model.name, model.max_context));
    const std::vector<RuntimeSpec> runtimes = scenario_runtimes(s);
    const std::vector<Pool> pools = scenario_pools(s);
    // Prices by the GPU profile's own name (a scenario may write an alias).
    std::map<std::string, double> price;
    for (const auto& [name, v] : s.price_per_gpu_hour) price[resolve_gpu(name).name] = v;
    if (s.objective == Objective::LowestCost)
        for (const auto& p : pools)
            if (!price.count(p.gpu.name))
                throw InputError(SourcePos{s.file, 0, 0}, "prices",
                                 fmt::format("no per_gpu_hour price for \"{}\"{}", p.gpu.name,
                                             p.cluster ? fmt::format(" (the GPU of cluster {})", p.cluster->name) : ""));
    // The checkpoint's own weights ("": as `estimate` takes them, gpt-oss's mxfp4 experts and
    // DeepSeek's fp8 included) unless the scenario lists precisions.
    std::vector<std::string> weight_dtypes = s.weight_dtypes.empty() ? std::vector<std::string>{""} : s.weight_dtypes;
    for (const auto& w : weight_dtypes)
        if (!w.empty()) (void)dtype_named("constraints.weight_dtypes", w, s);
    for (const auto& k : s.kv_dtypes) (void)dtype_named("constraints.kv_dtypes", k, s);

    u64 total = 0;
    for (const Pool& p : pools)
        for (u64 tp : powers_of_two_upto(p.max_gpus))
            for (u64 pp : powers_of_two_upto(std::min<u64>(p.max_gpus, model.num_layers)))
                if (tp * pp <= p.max_gpus) total += p.max_gpus / (tp * pp);
    total *= runtimes.size() * weight_dtypes.size() * s.kv_dtypes.size();
    u64 done = 0;
    auto tick = [&](u64 n) {
        done += n;
        if (progress) progress(done, total);
    };

    std::vector<Candidate> rejected;
    for (const Pool& pool : pools)
        for (const RuntimeSpec& rt : runtimes)
            for (const auto& wd : weight_dtypes)
                for (const auto& kv : s.kv_dtypes)
                    for (u64 tp : powers_of_two_upto(pool.max_gpus))
                        for (u64 pp : powers_of_two_upto(std::min<u64>(pool.max_gpus, model.num_layers))) {
                            if (tp * pp > pool.max_gpus) continue;
                            const GpuSpec& g = pool.gpu;
                            const u64 replicas_max = pool.max_gpus / (tp * pp);
                            Candidate base_proto;
                            base_proto.gpu = g.name;
                            base_proto.cluster = pool.cluster ? pool.cluster->name : "";
                            base_proto.kv_dtype = kv;
                            base_proto.weight_dtype = wd;
                            base_proto.runtime = rt.name;
                            base_proto.tp = tp;
                            base_proto.pp = pp;
                            if (tp > pool.per_node && !s.tp_across_nodes) {
                                rep.considered += replicas_max;
                                for (u64 i = 0; i < replicas_max; ++i) count_reason(rep.rejected_by, "TP crosses a node");
                                tick(replicas_max);
                                continue;
                            }
                            Workload wl;
                            wl.runtime = rt;
                            if (!wd.empty()) wl.weight_dtype = dtype_named("constraints.weight_dtypes", wd, s);
                            wl.kv_dtype = dtype_named("constraints.kv_dtypes", kv, s);
                            wl.context = s.context;
                            // One layout's candidates: a plan compiled for replicas of TP × PP, evaluated for DP from
                            // dp_lo to dp_hi. Expert parallelism over ep GPUs spans DP replicas when ep > tp (wide EP:
                            // each ep is its own plan, for the one DP it needs).
                            bool expert_parallel = false;  // the runtime spreads experts (known once a plan is compiled)
                            auto layout = [&](u64 ep, u64 dp_lo, u64 dp_hi) {
                                const u64 count = dp_hi - dp_lo + 1;
                                auto reject_all = [&](const std::string& kind) {
                                    rep.considered += count;
                                    for (u64 i = 0; i < count; ++i) count_reason(rep.rejected_by, kind);
                                    tick(count);
                                };
                                Candidate proto = base_proto;
                                proto.ep = ep;
                                const u64 plan_gpus = ep > tp ? tp * pp * dp_hi : tp * pp;
                                std::optional<Plan> plan;
                                try {
                                    plan.emplace(Plan::compile(model, g, Deployment{plan_gpus, tp, pp, ep}, wl));
                                } catch (const InputError&) {
                                    reject_all("deployment not valid for the model");
                                    return;
                                }
                                expert_parallel = plan->runtime().expert_parallel();
                                if (wd.empty()) proto.weight_dtype = shipped_label(model, plan->workload());
                                // A runtime that sizes its pool at start-up (vLLM) is bounded by the sequences its pool
                                // holds; one that does not (a static batch) by each step's peak.
                                const RuntimePlan& family = plan->runtime();
                                const bool pooled = family.sizes_pool_at_startup();
                                proto.pool_sized = pooled;
                                // A GPU kind or layout that cannot be timed (no interconnect figure for TP) is rejected
                                // with its reason, counted; the other candidates are still planned.
                                std::optional<Topology> topo;
                                try {
                                    topo.emplace(pool.cluster ? Topology(*pool.cluster) : replica_topology(g, plan_gpus, pool.per_node));
                                } catch (const InputError&) {
                                    reject_all("cannot be timed");
                                    return;
                                }
                                // Sequences at the promised context one replica holds: the pool's concurrency, or the largest
                                // static batch whose steps fit; the runtime's own limit on running requests caps both.
                                const double held = sequences_held(*plan, s.context);
                                // One request at the promised context: what a replica needs to start at all.
                                const PointResult start = plan->evaluate(Point{pooled ? Mode::Prefill : Mode::Decode, 1, s.context});
                                const u64 running = family.max_running();
                                const u64 serve_cap =
                                    std::min<u64>(static_cast<u64>(held), running ? running : std::numeric_limits<u64>::max());
                                const bool users = !s.request_rate_per_s;  // a fixed number of sequences, not a rate
                                ReplicaLoad load(*plan, *topo, s, serve_cap);
                                for (u64 dp = dp_lo; dp <= dp_hi; ++dp) {
                                    ++rep.considered;
                                    tick(1);
                                    Candidate c = proto;
                                    c.dp = dp;
                                    c.gpus = tp * pp * dp;
                                    c.concurrency_held = held;
                                    // Replicas the load cannot fill serve nothing: with `concurrency` sequences, more
                                    // replicas than sequences leave some idle (their GPUs would count as cost, not throughput).
                                    if (users && dp > s.concurrency) {
                                        count_reason(rep.rejected_by, "idle replicas");
                                        continue;
                                    }
                                    // Users each have a sequence running: the fullest replica holds ceil(concurrency / dp).
                                    // Under a rate, a replica must hold one request of the promised context to start; what
                                    // it runs follows from the serving model below.
                                    c.batch_per_replica = users ? (s.concurrency + dp - 1) / dp : 1;
                                    std::optional<LoadResult> served;
                                    if (!users && serve_cap >= 1) {
                                        served = load.serve(dp);
                                        if (served->verdict == LoadResult::Verdict::Untimed) {
                                            c.reason = served->reason;
                                            count_reason(rep.rejected_by, "cannot be timed");
                                            continue;
                                        }
                                        if (served->verdict == LoadResult::Verdict::Unstable) {
                                            c.memory = start;
                                            c.budget_bytes = budget_of(c.memory.capacity, s);
                                            c.sustainable_rate_per_s = static_cast<double>(dp) * load.max_rate();
                                            c.binding = "request rate";
                                            c.binding_ratio = c.sustainable_rate_per_s > 0
                                                                  ? std::max(*s.request_rate_per_s / c.sustainable_rate_per_s, 1.0 + 1e-9)
                                                                  : 1e9;
                                            c.reason = served->reason;
                                            count_reason(rep.rejected_by, "unstable");
                                            rejected.push_back(std::move(c));
                                            continue;
                                        }
                                        c.batch_per_replica = served->sequences;
                                    }
                                    // Memory: does a replica hold the sequences it runs?
                                    const MemoryCheck m = check_memory(*plan, s, pooled, c.batch_per_replica, held, running);
                                    c.memory = m.memory;
                                    c.budget_bytes = m.budget_bytes;
                                    c.binding = m.overflow ? "arithmetic" : "memory";
                                    c.binding_ratio = m.ratio;
                                    c.reason = m.reason;
                                    if (m.overflow) {
                                        count_reason(rep.rejected_by, "overflow");
                                        continue;
                                    }
                                    if (!m.reason.empty()) {
                                        count_reason(rep.rejected_by, "memory");
                                        rejected.push_back(std::move(c));
                                        continue;
                                    }
                                    // Time: the runtime's scheduler under the scenario's load.
                                    if (!served) served = load.serve(dp);
                                    if (served->verdict != LoadResult::Verdict::Served) {
                                        c.reason = served->reason;
                                        count_reason(rep.rejected_by, "cannot be timed");
                                        continue;
                                    }
                                    const LoadResult& t = *served;
                                    if (!users) {
                                        // How close the rate is to what the replicas sustain: a binding like the others.
                                        c.sustainable_rate_per_s = static_cast<double>(dp) * load.max_rate();
                                        const double use =
                                            c.sustainable_rate_per_s > 0 ? *s.request_rate_per_s / c.sustainable_rate_per_s : 1.0;
                                        if (use > c.binding_ratio) {
                                            c.binding = "request rate";
                                            c.binding_ratio = std::min(use, 1.0);
                                        }
                                    }
                                    c.timed = true;
                                    c.load_method = t.method;
                                    c.ttft_s = t.ttft_at(s.ttft_percentile);
                                    c.ttft_mean_s = t.ttft_mean_s;
                                    c.ttft_p90_s = t.ttft_p90_s;
                                    c.ttft_p99_s = t.ttft_p99_s;
                                    c.tpot_s = t.tpot_s;
                                    // Throughput from the requests that exist: the users' (not every slot of every replica),
                                    // or under a rate what arrives (a stable replica serves its arrivals).
                                    c.tokens_per_s = t.tokens_per_s;
                                    c.goodput_tokens_per_s = t.goodput_tokens_per_s;
                                    c.requests_per_s = t.requests_per_s;
                                    c.tokens_per_s_per_gpu = c.tokens_per_s / static_cast<double>(c.gpus);
                                    c.itl_s = t.itl_s;
                                    c.tokens_per_s_per_user = t.itl_s > 0 ? 1.0 / t.itl_s : 0;
                                    if (auto p = price.find(g.name); p != price.end() && c.tokens_per_s > 0)
                                        c.cost_per_million_tokens =
                                            static_cast<double>(c.gpus) * p->second / (c.tokens_per_s * 3600.0) * 1e6;
                                    std::vector<std::tuple<std::string, double, double>> slos;
                                    if (s.ttft_s) slos.emplace_back("TTFT", c.ttft_s, *s.ttft_s);
                                    if (s.tpot_s) slos.emplace_back("TPOT", c.tpot_s, *s.tpot_s);
                                    for (const auto& [name, v, limit] : slos) {
                                        const double ratio = v / limit;
                                        if (ratio > c.binding_ratio) {
                                            c.binding = name;
                                            c.binding_ratio = ratio;
                                        }
                                        if (ratio > 1 && c.reason.empty()) {
                                            c.reason = fmt::format("{} {:.3f} s exceeds the SLO {:.3f} s",
                                                                   name == "TTFT" ? ttft_label(s) : name, v, limit);
                                            count_reason(rep.rejected_by, name);
                                        }
                                    }
                                    if (!c.reason.empty()) {
                                        rejected.push_back(std::move(c));
                                        continue;
                                    }
                                    c.feasible = true;
                                    rep.ranked.push_back(std::move(c));
                                }
                            };
                            layout(1, 1, replicas_max);
                            // Expert parallelism where the runtime spreads experts (vLLM: EP = TP × DP, whole experts
                            // on every GPU of the replicas), for every DP whose EP divides the experts.
                            if (model.moe.enabled() && expert_parallel)
                                for (u64 dp = 1; dp <= replicas_max; ++dp)
                                    if (const u64 ep = tp * dp; ep > 1 && model.moe.num_experts % ep == 0) layout(ep, dp, dp);
                        }
    std::stable_sort(rep.ranked.begin(), rep.ranked.end(),
                     [&](const Candidate& a, const Candidate& b) { return ranks_before(a, b, s.objective); });
    rep.pareto = pareto_front(rep.ranked);
    if (rep.ranked.empty() && !rejected.empty()) {
        rep.closest = *std::min_element(rejected.begin(), rejected.end(),
                                        [](const Candidate& a, const Candidate& b) { return a.binding_ratio < b.binding_ratio; });
        explain_infeasible(rep, rejected, s);
    }

    // The best plan as its runtime launches it, and the CI gates on it.
    if (!rep.ranked.empty()) rep.launch = launch_line(s, model, rep.ranked.front());
    std::optional<GatedPlan> gated;
    if (!rep.ranked.empty()) {
        const Candidate& b = rep.ranked.front();
        gated = GatedPlan{b.memory.total, b.memory.capacity, b.tpot_s, b.ttft_s};
    }
    check_gates(s, gated ? &*gated : nullptr, rep.gates, rep.gates_passed);
    return rep;
}

}  // namespace memtax
