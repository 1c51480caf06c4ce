// memtax check SCENARIO... [--baseline DIR|FILE]: the CI gate. Evaluates each scenario's gates
// and compares its best plan with a baseline report (the JSON `memtax report` writes); prints
// what changed. Exit 0 when every gate holds and nothing regressed past the tolerance, 1
// otherwise, 2 for bad input.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "planner/planner.hpp"
#include "report/document.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax::cli {

std::vector<std::string> scenario_files(const std::vector<std::string>& given);  // cmd_report.cpp

namespace {

struct Figure {
    const char* key;  // the column in the report's plans table
    const char* label;
    int better;  // -1: lower is better, +1: higher is better
};
const Figure kFigures[] = {
    {"gpus", "GPUs", -1},       {"total_bytes", "bytes per GPU", -1}, {"ttft_s", "TTFT (s)", -1},
    {"tpot_s", "TPOT (s)", -1}, {"tokens_per_s", "tokens/s", +1},     {"cost_per_million_tokens", "$ per million tokens", -1}};

double figure_now(const Candidate& c, const std::string& key) {
    if (key == "gpus") return static_cast<double>(c.gpus);
    if (key == "total_bytes") return static_cast<double>(c.memory.total);
    if (key == "ttft_s") return c.ttft_s;
    if (key == "tpot_s") return c.tpot_s;
    if (key == "tokens_per_s") return c.tokens_per_s;
    return c.cost_per_million_tokens;
}

class CheckCommand final : public Command {
public:
    bool reads_scenarios() const override { return true; }
    CLI::App* add(CLI::App& app) override {
        auto* c = app.add_subcommand("check", "CI gate: a scenario's gates, and its best plan against a baseline report");
        c->add_option("scenarios", files_, "scenario files (default: scenarios/*.yaml)");
        c->add_option("--baseline", baseline_, "a folder of `memtax report` JSON files (<scenario>.json), or one such file");
        c->add_option("--tolerance", tolerance_pct_, "percent a figure may worsen before it counts as a regression")->capture_default_str();
        add_format_option(c, format_);
        c->add_option("--output,-o", output_, "write the result to this file (atomically)");
        return c;
    }
    int run(std::ostream& out, std::ostream& err) override {
        const Printer& print = printer(format_);
        if (!(tolerance_pct_ >= 0 && tolerance_pct_ < 1000))
            throw InputError(SourcePos{}, "--tolerance", fmt::format("{} percent; valid: 0 to 1000", tolerance_pct_));
        const std::vector<std::string> files = scenario_files(files_);
        std::vector<ScenarioSpec> scenarios;
        for (const auto& f : files) scenarios.push_back(load_scenario_file(f));
        Document d;
        d.schema = "memtax.check/1";
        d.title = fmt::format("memtax check: {} scenario{}{}", scenarios.size(), scenarios.size() == 1 ? "" : "s",
                              baseline_.empty() ? "" : fmt::format(" against {} (tolerance {}%)", baseline_, tolerance_pct_));
        d.sections.push_back(Document::Section{"gates", "Gates", {}, {}});
        d.sections.push_back(Document::Section{"changes", "Against the baseline", {}, {}});
        Table& gates = d.sections[0].table;  // references taken once the vector no longer grows
        Table& changes = d.sections[1].table;
        for (const char* c : {"scenario", "gate", "result", "detail"}) gates.add_column(c, c);
        for (auto [k, right] : std::initializer_list<std::pair<const char*, bool>>{
                 {"scenario", false}, {"figure", false}, {"baseline", true}, {"now", true}, {"change", true}, {"result", false}})
            changes.add_column(k, k, right);
        bool ok = true;
        for (const auto& s : scenarios) {
            Progress bar(err, "checking " + s.name);
            auto gate_row = [&](const std::string& gate, bool passed, const std::string& detail) {
                gates.row();
                gates.cell(s.name);
                gates.cell(gate);
                gates.cell(passed ? "pass" : "FAIL", passed ? "true" : "false");
                gates.cell(detail);
                ok &= passed;
            };
            // A scenario that cannot be planned fails its own row; the others are still checked.
            PlanReport r;
            try {
                r = plan_scenario(s, bar.callback());
            } catch (const std::exception& e) {
                bar.done();
                gate_row("planned", false, fmt::format("could not be planned: {}", e.what()));
                continue;
            }
            bar.done();
            gate_row("feasible", !r.ranked.empty(),
                     r.ranked.empty() ? "no candidate meets the constraints" : "a plan meets every constraint");
            for (const auto& g : r.gates) gate_row(g.gate, g.passed, g.detail);
            if (baseline_.empty() || r.ranked.empty()) continue;
            const nlohmann::json base = read_baseline(s.name);
            const Candidate& best = r.ranked.front();
            for (const auto& f : kFigures) {
                const auto& row = base["plan"]["plans"]["rows"][0];
                if (!row.contains(f.key)) continue;
                if (row[f.key].is_null()) continue;
                if (!row[f.key].is_number())
                    throw InputError(SourcePos{baseline_path(s.name), 0, 0}, fmt::format("plan.plans.rows[0].{}", f.key),
                                     "expected a number");
                const double was = row[f.key].get<double>(), now = figure_now(best, f.key);
                double change = was != 0 ? (now - was) / std::fabs(was) : (now == 0 ? 0 : INFINITY);
                if (std::fabs(change) < 1e-7) change = 0;  // the report keeps 9 significant digits
                const bool worse = f.better * change < -tolerance_pct_ / 100.0;
                ok &= !worse;
                changes.row();
                changes.cell(s.name);
                changes.cell(f.label);
                changes.cell(fmt::format("{:.10g}", was));
                changes.cell(fmt::format("{:.10g}", now));
                changes.cell(std::isfinite(change) ? fmt::format("{:+.2f}%", change * 100) : "new",
                             std::isfinite(change) ? fmt::format("{:.6g}", change) : "");
                changes.cell(worse ? "REGRESSED" : change == 0 ? "same" : f.better * change > 0 ? "better" : "within tolerance");
            }
        }
        d.notes.push_back(ok ? "result: pass" : "result: FAIL (a gate failed or a figure regressed)");
        emit(print.document(d, tool_info()), output_, out, files);
        return ok ? 0 : 1;
    }

private:
    std::string baseline_path(const std::string& scenario) const {
        namespace fs = std::filesystem;
        return fs::is_directory(baseline_) ? (fs::path(baseline_) / (scenario + ".json")).string() : baseline_;
    }
    nlohmann::json read_baseline(const std::string& scenario) const {
        const std::string path = baseline_path(scenario);
        const std::string text = read_input_file(path);
        nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded() || !j.is_object() || j.value("schema", "") != "memtax.report/1")
            throw InputError(SourcePos{path, 0, 0}, "schema",
                             "not a memtax report (expected a JSON file of schema memtax.report/1 from `memtax report`)");
        if (j.value("scenario", "") != scenario)
            throw InputError(SourcePos{path, 0, 0}, "scenario", fmt::format("is \"{}\", not \"{}\"", j.value("scenario", ""), scenario));
        if (!j.contains("plan") || !j["plan"].contains("plans") || j["plan"]["plans"]["rows"].empty())
            throw InputError(SourcePos{path, 0, 0}, "plan.plans.rows", "the baseline has no plan to compare with");
        return j;
    }

    std::vector<std::string> files_;
    std::string baseline_, format_ = "table", output_;
    double tolerance_pct_ = 2.0;
};

}  // namespace

std::unique_ptr<Command> make_check() { return std::make_unique<CheckCommand>(); }

}  // namespace memtax::cli
