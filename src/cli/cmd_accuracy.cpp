// memtax accuracy: every recorded run of a manifest validated and summed up per GPU, kind and
// sample, each group against its bar (exit 1 when a bar is not met).
#include "cli/common.hpp"
#include "report/report.hpp"
#include "spec/recorded_runs.hpp"
#include "validate/accuracy.hpp"

namespace memtax::cli {
namespace {

class Accuracy final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* a = app.add_subcommand("accuracy",
                                     "the recorded evidence per GPU, kind and sample, distinct configurations counted once, each "
                                     "group against its bar (exit 1 when a bar is not met)");
        a->add_option("--runs", runs_, "the manifest of recorded runs (file, lease, sample, why)")->capture_default_str();
        a->add_flag("--no-runs", no_runs_, "leave out the list of runs (the evidence table alone)");
        a->add_flag("--summary", summary_, "one row per kind, a column per GPU and sample: median / worst (the README's view)");
        add_format_option(a, format_);
        a->add_option("--output,-o", output_, "write the report to this file (atomically)");
        return a;
    }

    int run(std::ostream& out, std::ostream&) override {
        const AccuracySummary s = accuracy_summary(load_recorded_runs(runs_));
        const Document d = summary_ ? accuracy_summary_document(s) : accuracy_document(s, !no_runs_);
        emit(printer(format_).document(d, tool_info()), output_, out, {runs_});
        for (const auto& r : s.rows)
            if (!r.bar_met) return 1;
        return 0;
    }

private:
    std::string runs_ = "tests/data/measured/runs.yaml", format_ = "table", output_;
    bool no_runs_ = false, summary_ = false;
};

}  // namespace

std::unique_ptr<Command> make_accuracy() { return std::make_unique<Accuracy>(); }

}  // namespace memtax::cli
