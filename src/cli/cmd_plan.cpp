// memtax plan SCENARIO...: the capacity planner over a scenario's search space.
#include <fmt/format.h>

#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "planner/planner.hpp"
#include "report/plan_report.hpp"
#include "report/train_plan_report.hpp"

namespace memtax::cli {
namespace {

class PlanCommand final : public Command {
public:
    bool reads_scenarios() const override { return true; }
    CLI::App* add(CLI::App& app) override {
        auto* p = app.add_subcommand("plan", "rank the deployments that satisfy a scenario (scenarios/*.yaml), and check its gates");
        p->add_option("scenarios", files_, "scenario files")->required();
        p->add_option("--top", top_, "plans to print per scenario")->transform(positive_int())->capture_default_str();
        p->add_flag("--pareto", pareto_, "also print the Pareto front of tokens/s per user against tokens/s per GPU");
        p->add_flag("--check", check_, "exit 1 when a gate fails or nothing is feasible (for CI)");
        add_format_option(p, format_);
        p->add_option("--output,-o", output_, "write the report to this file (atomically)");
        return p;
    }
    int run(std::ostream& out, std::ostream& err) override {
        const Printer& print = printer(format_);
        std::string text;
        bool ok = true;
        std::vector<ScenarioSpec> scenarios;
        for (const auto& f : files_) scenarios.push_back(load_scenario_file(f));  // every file checked before any work
        for (const auto& s : scenarios) {
            Progress bar(err, "planning " + s.name);
            if (s.training) {
                const TrainPlanReport r = plan_training(s, bar.callback());
                bar.done();
                ok &= r.gates_passed && !r.ranked.empty();
                text += print.document(train_plan_document(r, top_), tool_info());
                continue;
            }
            const PlanReport r = plan_scenario(s, bar.callback());
            bar.done();
            ok &= r.gates_passed && !r.ranked.empty();
            text += print.document(plan_document(r, top_, pareto_), tool_info());
        }
        emit(text, output_, out, files_);
        return check_ && !ok ? 1 : 0;
    }

private:
    std::vector<std::string> files_;
    u64 top_ = 5;
    bool check_ = false, pareto_ = false;
    std::string format_ = "table", output_;
};

}  // namespace

std::unique_ptr<Command> make_plan() { return std::make_unique<PlanCommand>(); }

}  // namespace memtax::cli
