// serve: what users see from one deployment under a steady load: TTFT (mean, p50, p90, p99),
// TPOT, throughput and goodput, from the runtime's scheduler in steady state; with --simulate,
// beside the same scheduler simulated request by request (runtimes/serving.hpp).
#include <fmt/format.h>

#include <cstdio>

#include "cli/common.hpp"
#include "core/number.hpp"
#include "model/serving_costs.hpp"
#include "planner/planner.hpp"
#include "report/document.hpp"
#include "spec/loaders.hpp"
#include "topology/topology.hpp"

namespace memtax::cli {
namespace {

// MEAN or MEAN:MAX tokens (k and M suffixes as elsewhere).
LengthSpread lengths_arg(const std::string& flag, const std::string& text) {
    const size_t colon = text.find(':');
    u64 mean = 0, max = 0;
    const std::string a = text.substr(0, colon), b = colon == std::string::npos ? a : text.substr(colon + 1);
    if (parse_token_count(a, mean) != NumberParse::Ok || parse_token_count(b, max) != NumberParse::Ok || mean == 0 || max < mean)
        throw InputError(SourcePos{}, flag,
                         fmt::format("expected MEAN or MEAN:MAX tokens with MAX ≥ MEAN ≥ 1 (1024, 1k:2k), got \"{}\"", text));
    return spread_of(mean, max);
}

class ServeCommand final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* s = app.add_subcommand("serve", "one deployment under a steady load: TTFT percentiles, TPOT, throughput and goodput");
        s->add_option("--model", a_.model, "built-in model (name, alias or HF id), a memtax YAML profile, or a HF config.json")
            ->capture_default_str();
        s->add_option("--gpu", a_.gpu, "built-in GPU (name or alias) or a GPU YAML profile")->capture_default_str();
        s->add_option("--gpus", a_.gpus, "GPUs in total (replicas = gpus / (tp · pp); default: tp · pp)")->transform(positive_int());
        s->add_option("--tp,--tensor-parallel-size", a_.tp, "tensor-parallel degree")->transform(positive_int())->capture_default_str();
        s->add_option("--pp,--pipeline-parallel-size", a_.pp, "pipeline stages")->transform(positive_int())->capture_default_str();
        s->add_option("--ep", a_.ep, "expert parallelism (MoE): over this many GPUs; beyond --tp it spans replicas (wide EP)")
            ->transform(positive_int())
            ->capture_default_str();
        s->add_option("--runtime", a_.runtime, "vllm (default) | hf-sdpa | hf-eager | a runtime YAML profile");
        s->add_option("--weight-dtype", a_.weight_dtype, "dtype of the linear layers' weights (default: the checkpoint's)");
        s->add_option("--kv-dtype", a_.kv_dtype, "KV cache dtype (default: the model's)");
        s->add_option("--prompt-tokens", prompt_, "prompt length: MEAN or MEAN:MAX (uniform, symmetric about the mean)")->required();
        s->add_option("--output-tokens", output_, "output length: MEAN or MEAN:MAX")->required();
        auto* users = s->add_option("--users", users_, "closed loop: requests in flight, each answered one replaced at once")
                          ->transform(positive_int());
        auto* rate = s->add_option("--request-rate", rate_, "open loop: Poisson arrivals per second over all replicas");
        users->excludes(rate);
        s->add_option("--ttft-slo", ttft_slo_, "seconds: goodput counts requests whose first token comes within it");
        s->add_option("--tpot-slo", tpot_slo_, "seconds: ... and whose time per output token is within it");
        s->add_flag("--simulate", simulate_,
                    "also simulate the scheduler request by request (the reference the steady state is checked against)");
        s->add_option("--requests", requests_, "requests the simulation measures after its warm-up")
            ->transform(positive_int())
            ->capture_default_str();
        s->add_option("--cluster", a_.cluster, "cluster profile for communication (default: nodes of 8 joined by the GPU's interconnect)");
        add_vllm_options(s, a_.vllm);
        add_format_option(s, a_.format);
        s->add_option("--output,-o", a_.output, "write the report to this file (atomically)");
        return s;
    }
    int run(std::ostream& out, std::ostream&) override {
        const Printer& print = printer(a_.format);
        if (!users_ && !(rate_ > 0))
            throw InputError(SourcePos{}, "--users", "give the load: --users N (closed loop) or --request-rate R (open loop)");
        for (const auto& [flag, v] : {std::pair{"--ttft-slo", ttft_slo_}, std::pair{"--tpot-slo", tpot_slo_}})
            if (v < 0) throw InputError(SourcePos{}, flag, "expected seconds ≥ 0");
        if (a_.runtime.empty()) a_.runtime = "vllm";
        const LengthSpread prompt = lengths_arg("--prompt-tokens", prompt_), output = lengths_arg("--output-tokens", output_);
        const ModelSpec m = model_from(a_.model, "");
        const GpuSpec g = resolve_gpu(a_.gpu);
        a_.context = checked_add(prompt.hi, output.hi, "--prompt-tokens + --output-tokens");
        const Workload w = workload_from(a_, m);
        const Deployment dep{a_.gpus ? a_.gpus : a_.tp * a_.pp, a_.tp, a_.pp, 1};
        if (dep.gpus % (dep.tp * dep.pp))
            throw InputError(SourcePos{}, "--gpus",
                             fmt::format("{} GPUs are not whole replicas of tp · pp = {}", dep.gpus, dep.tp * dep.pp));
        const u64 replicas = dep.gpus / (dep.tp * dep.pp);
        // One replica's plan: the load splits evenly over the replicas.
        // Wide expert parallelism spans replicas: the plan holds the GPUs it spans.
        const u64 plan_gpus = a_.ep > dep.tp ? dep.gpus : dep.tp * dep.pp;
        const Plan plan = Plan::compile(m, g, Deployment{plan_gpus, dep.tp, dep.pp, a_.ep}, w);
        const RuntimePlan& rt = plan.runtime();
        const Scheduler sch = rt.scheduler();
        // Requests one replica runs at once: the runtime's limit, and what memory holds of the
        // longest request (the KV pool's sequences, or the largest static batch that fits).
        const auto held = static_cast<u64>(sequences_held(plan, a_.context));
        const u64 limit = rt.max_running() ? std::min(rt.max_running(), held) : held;
        if (limit == 0)
            throw InputError(
                SourcePos{}, "--prompt-tokens",
                fmt::format("not one request of {} + {} tokens fits a replica", group_digits(prompt.hi), group_digits(output.hi)));
        ServingLoad load;
        load.prompt = prompt;
        load.output = output;
        load.max_running = limit;
        load.users = users_ ? (users_ + replicas - 1) / replicas : 0;  // the fullest replica
        load.rate_per_s = users_ ? 0 : rate_ / static_cast<double>(replicas);
        const Topology topo = a_.cluster.empty() ? replica_topology(g, plan_gpus, 8) : Topology(cluster_arg(a_.cluster, g));
        const StepCostTable cost =
            step_costs(plan, topo, static_cast<u64>(prompt.mean()), static_cast<u64>(output.mean()), limit, load.users);
        ServingSlo slo;
        if (ttft_slo_ > 0) slo.ttft_s = ttft_slo_;
        if (tpot_slo_ > 0) slo.tpot_s = tpot_slo_;
        std::vector<ServingResult> results{rt.serve(load, cost, slo)};
        if (simulate_) results.push_back(rt.simulate(load, cost, slo, SimulationOptions{requests_, 0, 1}));

        Document d;
        d.schema = "memtax.serve/1";
        d.title = fmt::format("memtax serve: {} on {} × {} ({}), {}", m.name, dep.gpus, g.name, plan.workload().runtime.name,
                              users_ ? fmt::format("{} users", users_) : fmt::format("{:g} requests/s", rate_));
        d.notes.push_back(fmt::format(
            "{}; {} replica{} of TP {} × PP {}, each running at most {} requests (the runtime's limit and the "
            "KV memory for {} + {} tokens)",
            sch.name(), replicas, replicas == 1 ? "" : "s", dep.tp, dep.pp, limit, group_digits(prompt.hi), group_digits(output.hi)));
        d.notes.push_back(fmt::format("requests: prompts of {}–{} tokens, outputs of {}–{}, uniform; {} per replica", prompt.lo, prompt.hi,
                                      output.lo, output.hi,
                                      users_ ? fmt::format("{} in flight (closed loop)", load.users)
                                             : fmt::format("{:g} arriving a second (Poisson)", load.rate_per_s)));
        d.notes.push_back(
            "TTFT percentiles of requests; TPOT a request's mean over its output, averaged over requests; ITL the time between "
            "output tokens over every token (token-weighted: what a user's reading speed and the throughput follow); tokens/s and goodput "
            "(tokens/s of requests meeting "
            "every SLO given) for the whole deployment");
        Table& t = d.sections.emplace_back(Document::Section{"serving", "Serving under load", {}, {}}).table;
        for (auto [k, title] : std::initializer_list<std::pair<const char*, const char*>>{{"method", "method"},
                                                                                          {"ttft_mean_s", "TTFT mean"},
                                                                                          {"ttft_p50_s", "p50"},
                                                                                          {"ttft_p90_s", "p90"},
                                                                                          {"ttft_p99_s", "p99"},
                                                                                          {"tpot_mean_s", "TPOT"},
                                                                                          {"itl_mean_s", "ITL"},
                                                                                          {"requests_per_s", "requests/s"},
                                                                                          {"tokens_per_s", "tokens/s"},
                                                                                          {"goodput_tokens_per_s", "goodput"},
                                                                                          {"running_mean", "running"},
                                                                                          {"waiting_mean", "waiting"}})
            t.add_column(k, title, std::string(k) != "method");
        for (const ServingResult& r : results) {
            t.row();
            t.cell(r.method);
            if (!r.stable) {
                t.cell("unstable: " + r.unstable_reason, "");
                for (int i = 0; i < 10; ++i) t.cell("-", "");
                continue;
            }
            auto sec = [&](double v) {
                t.cell(v < 1 ? fmt::format("{:.1f} ms", v * 1e3) : fmt::format("{:.3f} s", v), fmt::format("{:.9g}", v));
            };
            for (double v : {r.ttft_mean_s, r.ttft_p50_s, r.ttft_p90_s, r.ttft_p99_s, r.tpot_mean_s, r.itl_mean_s}) sec(v);
            const double n = static_cast<double>(replicas);
            for (double v : {r.requests_per_s * n, r.tokens_per_s * n, r.goodput_tokens_per_s() * n})
                t.cell(fmt::format("{:.1f}", v), fmt::format("{:.9g}", v));
            for (double v : {r.running_mean, r.waiting_mean}) t.cell(fmt::format("{:.1f}", v), fmt::format("{:.9g}", v));
        }
        emit(print.document(d, tool_info()), a_.output, out);
        return 0;
    }

private:
    EstimateArgs a_;
    std::string prompt_, output_;
    u64 users_ = 0, requests_ = 4000;
    double rate_ = 0, ttft_slo_ = 0, tpot_slo_ = 0;
    bool simulate_ = false;
};

}  // namespace

std::unique_ptr<Command> make_serve() { return std::make_unique<ServeCommand>(); }

}  // namespace memtax::cli
