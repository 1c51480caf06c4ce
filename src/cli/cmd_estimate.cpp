// memtax estimate: per-GPU memory of one step, with the fit verdict; --time adds the roofline of
// both steps of the workload.
#include <optional>

#include "cli/common.hpp"
#include "model/time_model.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

class Estimate final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* est = app.add_subcommand("estimate", "per-GPU memory of one inference step, with the fit verdict");
        add_workload_options(est, a_);
        est->add_option("--batch", a_.batch, "sequences (split over replicas)")->transform(positive_int())->capture_default_str();
        est->add_option("--context", a_.context,
                        "prefill: prompt tokens; decode: KV length after the step; 32k = 32,768, 1M = 1,048,576 "
                        "(default: 8192, or the model's max context if smaller)")
            ->transform(token_count());
        add_format_option(est, a_.format);
        est->add_option("--output,-o", a_.output, "write the report to this file (atomically) instead of stdout");
        est->add_flag("--explain", a_.explain, "print each term's formula with its numbers");
        est->add_flag("--require-fit", a_.require_fit, "exit 1 when the step does not fit (for CI gates)");
        est->add_flag("--time", a_.time, "add the roofline: TTFT, TPOT, tokens/s and the bound per op kind");
        est->add_option("--cluster", a_.cluster, "cluster profile for communication (--time): built-in name or YAML path; "
                                                 "default: one node joined by the GPU's interconnect");
        return est;
    }

    int run(std::ostream& out, std::ostream& err) override {
        const EstimateArgs& a = a_;
        const Printer& print = printer(a.format);
        const ModelSpec m = model_from(a.model, a.dtype);
        const GpuSpec g = resolve_gpu(a.gpu);
        const Deployment dep{a.gpus ? a.gpus : a.tp * a.pp, a.tp, a.pp, a.ep};
        const Workload w = workload_from(a, m);
        const Plan plan = Plan::compile(m, g, dep, w);
        const memtax::Estimate e = plan.estimate(plan.point_of(w));
        std::optional<TimeEstimate> time;
        if (a.time) {
            warn_about(g, err);
            const Topology topo(a.cluster.empty() ? single_node_cluster(g, a.tp * a.pp) : resolve_cluster(a.cluster));
            time = estimate_time(plan, plan.point_of(w), topo);
        } else if (!a.cluster.empty()) {
            throw InputError(SourcePos{}, "--cluster", "only used by --time; add --time");
        }
        emit(print.estimate(e, tool_info(), a.explain, time ? &*time : nullptr), a.output, out, {a.model, a.gpu, a.runtime, a.cluster});
        return a.require_fit && !e.fits ? 1 : 0;
    }

private:
    EstimateArgs a_;
};

}  // namespace

std::unique_ptr<Command> make_estimate() { return std::make_unique<Estimate>(); }

}  // namespace memtax::cli
