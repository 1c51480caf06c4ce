// memtax sweep: one model on one GPU over contexts (1k..1M, doubling), batches and TP degrees,
// with each component's growth fitted: the memory tax as coefficients.
#include "cli/atomic_file.hpp"
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
        SweepSpec spec;
        spec.model = model_from(a_.model, a_.dtype);
        spec.gpu = resolve_gpu(a_.gpu);
        spec.contexts = parse_context_range(contexts_);
        spec.batches = batches_.empty() ? std::vector<u64>{a_.batch} : batches_;
        spec.tps = tps_.empty() ? std::vector<u64>{a_.tp} : tps_;
        a_.context = spec.contexts.front();
        spec.workload = workload_from(a_, spec.model);
        if (!a_.allow_long_context)
            for (u64 c : spec.contexts)
                if (c > spec.model.max_context)
                    throw InputError(SourcePos{}, "--contexts",
                                     fmt::format("{} exceeds {}'s max_context {} (add --allow-long-context)", c, spec.model.name,
                                                 spec.model.max_context));
        // The points stream to the output as they are evaluated (a million points in constant
        // memory); a file is written atomically, so a failed sweep leaves no partial report.
        std::unique_ptr<AtomicFile> file;
        if (!a_.output.empty()) {
            refuse_overwriting_inputs(a_.output, {a_.model, a_.gpu, a_.runtime});
            file = std::make_unique<AtomicFile>(a_.output);
        }
        auto doc = print.stream(
            [&](std::string_view s) {
                if (file)
                    file->write(s);
                else
                    out.write(s.data(), static_cast<std::streamsize>(s.size()));
            },
            tool_info());
        SweepReport head;
        head.model = spec.model.name;
        head.gpu = spec.gpu.name;
        head.runtime = spec.workload.runtime.name;
        head.mode = spec.workload.mode;
        doc->begin(sweep_head(head));
        // Text columns as wide as the largest context, batch and TP asked for.
        std::vector<StreamColumn> columns = sweep_columns();
        for (auto [c, list] : {std::pair{0, &spec.contexts}, std::pair{1, &spec.batches}, std::pair{2, &spec.tps}})
            columns[static_cast<size_t>(c)].width = group_digits(*std::max_element(list->begin(), list->end())).size();
        doc->rows_begin("points", "Points", columns);
        u64 values[kSweepColumns];
        Progress bar(err, "sweeping");
        const SweepReport r = run_sweep(spec, bar.callback(), [&](const SweepPoint& p) {
            sweep_values(p, values);
            doc->row(values);
        });
        bar.done();
        doc->rows_end();
        if (auto growth = sweep_growth(r)) doc->section(*growth);
        doc->end();
        if (file) file->commit();
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
