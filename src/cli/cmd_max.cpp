// One-call answers: the largest batch at a context (max-batch), the largest context at a batch
// (max-context), and setups side by side (vs: more VRAM or more GPUs?).
#include <fmt/format.h>

#include "cli/common.hpp"
#include "model/time_model.hpp"
#include "planner/planner.hpp"
#include "report/document.hpp"
#include "spec/loaders.hpp"
#include "topology/topology.hpp"

namespace memtax::cli {
namespace {

// max-batch / max-context: bisection over Plan::evaluate, then the full estimate of the answer.
class MaxCommand final : public Command {
public:
    explicit MaxCommand(bool batch) : batch_(batch) {}
    CLI::App* add(CLI::App& app) override {
        auto* m = app.add_subcommand(batch_ ? "max-batch" : "max-context",
                                     batch_ ? "the largest batch that fits at a context" : "the largest context that fits at a batch");
        add_workload_options(m, a_);
        if (batch_)
            m->add_option("--context", a_.context, "context (default: 8192, or the model's max if smaller)")->transform(token_count());
        else
            m->add_option("--batch", a_.batch, "sequences")->transform(positive_int())->capture_default_str();
        add_format_option(m, a_.format);
        m->add_option("--output,-o", a_.output, "write the report to this file (atomically)");
        m->add_flag("--explain", a_.explain, "print each term's formula with its numbers");
        return m;
    }
    int run(std::ostream& out, std::ostream&) override {
        const Printer& print = printer(a_.format);
        const ModelSpec m = model_from(a_.model, a_.dtype);
        const GpuSpec g = resolve_gpu(a_.gpu);
        const Deployment dep{a_.gpus ? a_.gpus : a_.tp * a_.pp, a_.tp, a_.pp, a_.ep};
        Workload w = workload_from(a_, m);
        const Plan plan = Plan::compile(m, g, dep, w);
        const u64 replicas = dep.gpus / (dep.tp * dep.pp);
        u64 answer = 0;
        if (batch_) {
            answer = max_batch(plan, w.mode, w.context, u64{1} << 24);
        } else {
            answer = max_context(plan, w.mode, w.batch, a_.allow_long_context ? u64{1} << 32 : m.max_context);
        }
        if (answer == 0) {
            // Nothing fits even at one sequence of one token: the weights (and the runtime's
            // fixed costs) are what does not fit, not the workload.
            const PointResult least = plan.evaluate(Point{w.mode, 1, 1});
            if (least.status == PointStatus::Ok && !least.fits)
                throw InputError(
                    SourcePos{}, "deployment.tp",
                    fmt::format("the weights alone do not fit: {} of weights per GPU, {} with the runtime's fixed costs, "
                                "{} usable; shard over more GPUs (--tp, --pp) or store smaller weights (--weight-dtype)",
                                format_bytes_gib(least.weights), format_bytes_gib(least.total), format_bytes_gib(least.capacity)));
            throw InputError(SourcePos{}, batch_ ? "--context" : "--batch",
                             batch_ ? fmt::format("not even one sequence of {} tokens fits", w.context)
                                    : fmt::format("not even a 1-token context fits a batch of {}", w.batch));
        }
        const Estimate e = plan.estimate(Point{w.mode, batch_ ? answer : w.batch, batch_ ? w.context : answer});
        std::string head = batch_ ? fmt::format("largest batch at context {}: {} sequences{}\n\n", group_digits(w.context), answer,
                                                replicas > 1 ? fmt::format(" ({} replicas)", replicas) : "")
                                  : fmt::format("largest context at batch {}: {} tokens{}\n\n", w.batch, group_digits(answer),
                                                answer == m.max_context ? " (the model's maximum)" : "");
        if (a_.format == "json" || a_.format == "csv") head.clear();  // the estimate itself carries the answer
        emit(head + print.estimate(e, tool_info(), a_.explain, nullptr), a_.output, out, {a_.model, a_.gpu, a_.runtime});
        return 0;
    }

private:
    bool batch_;
    EstimateArgs a_;
};

// vs: one workload over several setups, side by side.
class VsCommand final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* v =
            app.add_subcommand("vs", "one workload on several setups side by side: does it fit, how much room, how fast, at what cost");
        v->add_option("--setup", setups_, "MODEL@NxGPU[:tpT][:ppP][:epE], two or more")->required();
        v->add_option("--context", a_.context, "context (default: 8192, or the model's max if smaller)")->transform(token_count());
        v->add_option("--batch", a_.batch, "sequences at once")->transform(positive_int())->capture_default_str();
        v->add_option("--mode", a_.mode, "prefill | decode")->check(CLI::IsMember({"prefill", "decode"}))->capture_default_str();
        v->add_option("--runtime", a_.runtime, "hf-sdpa (default) | hf-eager | vllm | a runtime YAML profile");
        v->add_option("--kv-dtype", a_.kv_dtype, "KV cache dtype (default: the model's)");
        v->add_option("--weight-dtype", a_.weight_dtype, "linear layers' dtype (default: the model's)");
        v->add_option("--price", prices_, "GPU=$ per GPU-hour, e.g. h200=3.5 (for cost per million tokens)");
        v->add_option("--cluster", a_.cluster,
                      "cluster profile for communication: built-in name or YAML path (its GPU must be each setup's); "
                      "default: nodes of 8 joined by the GPU's interconnect, InfiniBand between them");
        add_vllm_options(v, a_.vllm);
        add_format_option(v, a_.format);
        v->add_option("--output,-o", a_.output, "write the report to this file (atomically)");
        return v;
    }
    int run(std::ostream& out, std::ostream&) override {
        const Printer& print = printer(a_.format);
        std::map<std::string, double> price;
        for (const auto& p : prices_) {
            const size_t eq = p.find('=');
            double v = 0;
            if (eq == std::string::npos || eq == 0 || std::sscanf(p.c_str() + eq + 1, "%lf", &v) != 1 || !(v > 0))
                throw InputError(SourcePos{}, "--price", fmt::format("expected GPU=dollars per GPU-hour (h200=3.5), got \"{}\"", p));
            price[p.substr(0, eq)] = v;
        }
        Document d;
        d.schema = "memtax.vs/1";
        Table& t = d.sections.emplace_back(Document::Section{"setups", "Setups", {}, {}}).table;
        for (auto [k, title, right] :
             std::initializer_list<std::tuple<const char*, const char*, bool>>{{"setup", "setup", false},
                                                                               {"gpus", "gpus", true},
                                                                               {"tp", "tp", true},
                                                                               {"pp", "pp", true},
                                                                               {"dp", "dp", true},
                                                                               {"total_bytes", "GiB/GPU", true},
                                                                               {"capacity_bytes", "usable GiB", true},
                                                                               {"fits", "fits", false},
                                                                               {"max_batch", "max batch", true},
                                                                               {"max_context", "max context", true},
                                                                               {"ttft_s", "TTFT", true},
                                                                               {"tpot_s", "TPOT", true},
                                                                               {"tokens_per_s", "tokens/s", true},
                                                                               {"cost_per_million_tokens", "$/Mtok", true}})
            t.add_column(k, title, right);
        std::string model_name;
        for (const auto& text : setups_) {
            const SetupArg s = parse_setup(text);
            const ModelSpec m = model_from(s.model, "");
            const GpuSpec g = resolve_gpu(s.gpu);
            EstimateArgs ea = a_;
            ea.tp = s.tp;
            ea.pp = s.pp;
            const Workload w = workload_from(ea, m);
            const Plan plan = Plan::compile(m, g, Deployment{s.gpus, s.tp, s.pp, s.ep}, w);
            const Point p = plan.point_of(w);
            const Estimate e = plan.estimate(p);
            std::optional<ClusterSpec> cluster;
            if (!a_.cluster.empty()) {
                cluster = resolve_cluster(a_.cluster);
                if (resolve_gpu(cluster->gpu).name != g.name)
                    throw InputError(
                        SourcePos{}, "--cluster",
                        fmt::format("{} is a cluster of {}, not of {} (setup \"{}\")", cluster->name, cluster->gpu, g.name, text));
            }
            const u64 mb = max_batch(plan, w.mode, w.context, u64{1} << 20);
            const u64 mc = max_context(plan, w.mode, w.batch, m.max_context);
            model_name = m.name;
            t.row();
            t.cell(text);
            for (u64 v : {s.gpus, s.tp, s.pp, e.replicas}) t.cell(std::to_string(v));
            t.cell(fmt::format("{:.2f}", to_gib(e.total)), std::to_string(e.total));
            t.cell(fmt::format("{:.2f}", to_gib(e.capacity)), std::to_string(e.capacity));
            t.cell(e.fits ? "yes" : "no", e.fits ? "true" : "false");
            t.cell(std::to_string(mb));
            t.cell(group_digits(mc), std::to_string(mc));
            if (!e.fits) {  // a setup that does not fit has no time or cost to show
                for (int i = 0; i < 4; ++i) t.cell("-", "");
                continue;
            }
            // Time and cost, only for a setup that fits.
            // Wide expert parallelism spans replicas: their GPUs carry its all-to-alls.
            const Topology topo = cluster ? Topology(*cluster) : replica_topology(g, s.ep > s.tp ? s.gpus : s.tp * s.pp, 8);
            const TimeEstimate tm = estimate_time(plan, Point{Mode::Prefill, w.batch, w.context}, topo);
            const auto pr = price.find(g.name);
            const double cost =
                pr != price.end() && tm.tokens_per_s > 0 ? static_cast<double>(s.gpus) * pr->second / (tm.tokens_per_s * 3600) * 1e6 : 0;
            t.cell(fmt::format("{:.3f} s", tm.first_token.mean_s), fmt::format("{:.9g}", tm.first_token.mean_s));
            t.cell(fmt::format("{:.1f} ms", tm.tpot_s * 1e3), fmt::format("{:.9g}", tm.tpot_s));
            t.cell(fmt::format("{:.0f}", tm.tokens_per_s), fmt::format("{:.9g}", tm.tokens_per_s));
            t.cell(cost > 0 ? fmt::format("{:.3f}", cost) : "-", cost > 0 ? fmt::format("{:.9g}", cost) : "");
        }
        d.title = fmt::format("memtax vs: {} {}, batch {}, context {}", model_name, a_.mode, a_.batch,
                              a_.context ? group_digits(a_.context) : std::string("default"));
        d.notes.push_back(
            "per GPU; max batch at the context and max context at the batch, by bisection; TTFT (mean over the batch under the "
            "runtime's scheduler) and TPOT from the roofline on the replica's GPUs (nodes of 8, or --cluster); none for a setup "
            "that does not fit");
        emit(print.document(d, tool_info()), a_.output, out);
        return 0;
    }

private:
    EstimateArgs a_;
    std::vector<std::string> setups_, prices_;
};

}  // namespace

std::unique_ptr<Command> make_max_batch() { return std::make_unique<MaxCommand>(true); }
std::unique_ptr<Command> make_max_context() { return std::make_unique<MaxCommand>(false); }
std::unique_ptr<Command> make_vs() { return std::make_unique<VsCommand>(); }

}  // namespace memtax::cli
