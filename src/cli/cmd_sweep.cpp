// memtax sweep: one model on one GPU over contexts (1k..1M, doubling), batches and TP degrees,
// with each component's growth fitted: the memory tax as coefficients.
#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "planner/sweep.hpp"
#include "report/plan_report.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

class SweepCommand final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* s = app.add_subcommand("sweep", "memory over contexts, batches and TP degrees, with each component's growth fitted");
        add_workload_options(s, a_);
        s->add_option("--contexts", contexts_, "contexts: a doubling range 1k..1M or a list 1k,8k,32k")->capture_default_str();
        s->add_option("--batches", batches_, "batch sizes")->delimiter(',')->transform(positive_int());
        s->add_option("--tps", tps_, "tensor-parallel degrees")->delimiter(',')->transform(positive_int());
        add_format_option(s, a_.format);
        s->add_option("--output,-o", a_.output, "write the report to this file (atomically)");
        return s;
    }
    int run(std::ostream& out, std::ostream& err) override {
        const Printer& print = printer(a_.format);
        SweepSpec spec{model_from(a_.model, a_.dtype),
                       resolve_gpu(a_.gpu),
                       {},
                       parse_context_range(contexts_),
                       batches_.empty() ? std::vector<u64>{a_.batch} : batches_,
                       tps_.empty() ? std::vector<u64>{a_.tp} : tps_};
        a_.context = spec.contexts.front();
        spec.workload = workload_from(a_, spec.model);
        if (!a_.allow_long_context)
            for (u64 c : spec.contexts)
                if (c > spec.model.max_context)
                    throw InputError(SourcePos{}, "--contexts",
                                     fmt::format("{} exceeds {}'s max_context {} (add --allow-long-context)", c, spec.model.name,
                                                 spec.model.max_context));
        Progress bar(err, "sweeping");
        const SweepReport r = run_sweep(spec, bar.callback());
        bar.done();
        emit(print.document(sweep_document(r), tool_info()), a_.output, out, {a_.model, a_.gpu, a_.runtime});
        return 0;
    }

private:
    EstimateArgs a_;
    std::string contexts_ = "1k..128k";
    std::vector<u64> batches_, tps_;
};

}  // namespace

std::unique_ptr<Command> make_sweep() { return std::make_unique<SweepCommand>(); }

}  // namespace memtax::cli
