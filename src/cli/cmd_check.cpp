// memtax check SCENARIO... [--baseline DIR|FILE]: the CI gate. Evaluates each scenario's gates
// and compares its best plan with a baseline report (the JSON `memtax report` writes); prints
// what changed. Exit 0 when every gate holds and nothing regressed past the tolerance, 1
// otherwise, 2 for bad input.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "core/format.hpp"
#include "planner/planner.hpp"
#include "planner/train_plan.hpp"
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
const Figure kFigures[] = {{"gpus", "GPUs", -1},
                           {"total_bytes", "bytes per GPU", -1},
                           {"ttft_s", "TTFT (s)", -1},
                           {"tpot_s", "TPOT (s)", -1},
                           {"tokens_per_s", "tokens/s", +1},
                           {"cost_per_million_tokens", "$ per million tokens", -1},
                           {"days", "days for the budget", -1},
                           {"dollars", "$ for the budget", -1}};

// A figure as people read it: bytes in GiB with the exact count, times in s or ms, tokens/s
// and dollars with grouped digits; never exponent notation.
std::string human(const std::string& key, double v) {
    if (key == "total_bytes" && v >= 0 && v < 1.8e19) {
        const u64 b = static_cast<u64>(std::llround(v));
        return fmt::format("{} ({} B)", format_bytes_gib(b), group_digits(b));
    }
    if (key == "ttft_s" || key == "tpot_s") return v < 1 ? fmt::format("{:.2f} ms", v * 1e3) : fmt::format("{:.3f} s", v);
    if (key == "cost_per_million_tokens") return fmt::format("${:.4f}", v);
    if (key == "days") return fmt::format("{:.2f} days", v);
    if (key == "dollars") return fmt::format("${:.0f}", v);
    if (key == "tokens_per_s" && v >= 0 && v < 1e15) {
        const u64 whole = static_cast<u64>(v);
        return fmt::format("{}.{:02d}", group_digits(whole), static_cast<int>(std::llround((v - static_cast<double>(whole)) * 100)) % 100);
    }
    if (v >= 0 && v < 1e15 && v == std::floor(v)) return group_digits(static_cast<u64>(v));
    return fmt::format("{:.6g}", v);
}

// The deployment a plan row describes: what must match before its figures compare.
struct Layout {
    std::string gpu, runtime, weight_dtype, kv_dtype;
    u64 tp = 0, pp = 0, dp = 0;
    std::string shape() const { return fmt::format("TP {} × PP {} × DP {}", tp, pp, dp); }
};
Layout layout_of(const nlohmann::json& row) {
    auto str = [&](const char* k) { return row.contains(k) && row[k].is_string() ? row[k].get<std::string>() : std::string(); };
    auto num = [&](const char* k) { return row.contains(k) && row[k].is_number_unsigned() ? row[k].get<u64>() : u64{0}; };
    return {str("gpu"), str("runtime"), str("weight_dtype"), str("kv_dtype"), num("tp"), num("pp"), num("dp")};
}

// A scenario's best plan as check compares it: its layout and its figures by report column.
struct Best {
    Layout layout;
    std::map<std::string, double> figures;
    bool pool_sized = false;  // its bytes per GPU are a pool the runtime asked for (vLLM)
};
Best best_of(const Candidate& c) {
    return {{c.gpu, c.runtime, c.weight_dtype, c.kv_dtype, c.tp, c.pp, c.dp},
            {{"gpus", static_cast<double>(c.gpus)},
             {"total_bytes", static_cast<double>(c.memory.total)},
             {"ttft_s", c.ttft_s},
             {"tpot_s", c.tpot_s},
             {"tokens_per_s", c.tokens_per_s},
             {"cost_per_million_tokens", c.cost_per_million_tokens}},
            c.pool_sized};
}
Best best_of(const TrainCandidate& c) {
    Best b{{c.gpu, "", "", "", c.tp, c.pp, c.dp},
           {{"gpus", static_cast<double>(c.gpus)}, {"total_bytes", static_cast<double>(c.bytes_per_gpu)}, {"tokens_per_s", c.tokens_per_s}},
           false};
    if (c.days > 0) b.figures["days"] = c.days;
    if (c.dollars > 0) b.figures["dollars"] = c.dollars;
    return b;
}

class CheckCommand final : public Command {
public:
    bool reads_scenarios() const override { return true; }
    CLI::App* add(CLI::App& app) override {
        auto* c = app.add_subcommand("check", "CI gate: a scenario's gates, and its best plan against a baseline report");
        c->add_option("scenarios", files_, "scenario files (default: scenarios/*.yaml)");
        c->add_option("--baseline", baseline_, "a folder of `memtax report` JSON files (<scenario>.json), or one such file");
        c->add_option("--tolerance", tolerance_pct_, "percent a figure may worsen before it counts as a regression")->capture_default_str();
        c->add_flag("--allow-new", allow_new_, "a scenario with no baseline report is a warning, not an error");
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
            std::vector<GateResult> scenario_gates;
            std::optional<Best> best;
            try {
                if (s.training) {
                    const TrainPlanReport r = plan_training(s, bar.callback());
                    scenario_gates = r.gates;
                    if (!r.ranked.empty()) best = best_of(r.ranked.front());
                } else {
                    const PlanReport r = plan_scenario(s, bar.callback());
                    scenario_gates = r.gates;
                    if (!r.ranked.empty()) best = best_of(r.ranked.front());
                }
            } catch (const std::exception& e) {
                bar.done();
                gate_row("planned", false, fmt::format("could not be planned: {}", e.what()));
                continue;
            }
            bar.done();
            gate_row("feasible", best.has_value(), best ? "a plan meets every constraint" : "no candidate meets the constraints");
            for (const auto& g : scenario_gates) gate_row(g.gate, g.passed, g.detail);
            if (baseline_.empty() || !best) continue;
            auto change_row = [&](const std::string& figure, const std::string& was, const std::string& now, const std::string& change,
                                  const std::string& exact, const std::string& result) {
                changes.row();
                changes.cell(s.name);
                changes.cell(figure);
                changes.cell(was);
                changes.cell(now);
                changes.cell(change, exact);
                changes.cell(result);
            };
            const std::string path = baseline_path(s.name);
            std::error_code ec;
            if (!std::filesystem::exists(path, ec)) {
                if (!allow_new_)
                    throw InputError(SourcePos{path, 0, 0}, "--baseline",
                                     fmt::format("no baseline report for scenario {} (write one with `memtax report`, or pass --allow-new "
                                                 "to check a new scenario's gates only)",
                                                 s.name));
                err << fmt::format("memtax: warning: {}: no baseline report ({}); only its gates are checked\n", s.name, path);
                change_row("baseline", "none", "", "new", "", "new scenario: nothing to compare");
                continue;
            }
            const nlohmann::json base = read_baseline(s.name);
            const auto& row = base["plan"]["plans"]["rows"][0];
            // What the deployment is comes first: a changed GPU kind or layout explains the rest.
            const Layout was_l = layout_of(row), now_l = best->layout;
            const bool kind_changed = !was_l.gpu.empty() && was_l.gpu != now_l.gpu;
            if (kind_changed)
                change_row("GPU kind", was_l.gpu, now_l.gpu, "changed", "", "CHANGED: GPU counts and bytes per GPU do not compare");
            if (was_l.tp && (was_l.tp != now_l.tp || was_l.pp != now_l.pp || was_l.dp != now_l.dp))
                change_row("layout", was_l.shape(), now_l.shape(), "changed", "", "CHANGED");
            for (auto [label, a, b] : {std::tuple<const char*, std::string, std::string>{"runtime", was_l.runtime, now_l.runtime},
                                       {"weight dtype", was_l.weight_dtype, now_l.weight_dtype},
                                       {"KV dtype", was_l.kv_dtype, now_l.kv_dtype}})
                if (!a.empty() && a != b) change_row(label, a, b, "changed", "", "CHANGED");
            // Under a runtime that sizes its pool at start-up (vLLM), a plan's bytes per GPU is the
            // pool it asks for (gpu_memory_utilization × the card), not what the workload uses: shown,
            // never a regression (the runtime asked; the baseline's ran the same runtime).
            const bool pool_sized = best->pool_sized && was_l.runtime == now_l.runtime;
            for (const auto& f : kFigures) {
                const auto now_it = best->figures.find(f.key);
                if (!row.contains(f.key) || now_it == best->figures.end()) continue;
                if (row[f.key].is_null()) continue;
                if (!row[f.key].is_number())
                    throw InputError(SourcePos{baseline_path(s.name), 0, 0}, fmt::format("plan.plans.rows[0].{}", f.key),
                                     "expected a number");
                const double was = row[f.key].get<double>(), now = now_it->second;
                double change = was != 0 ? (now - was) / std::fabs(was) : (now == 0 ? 0 : INFINITY);
                if (std::fabs(change) < 1e-7) change = 0;  // the report keeps 9 significant digits
                const std::string key = f.key;
                const bool per_kind = key == "gpus" || key == "total_bytes";
                std::string result;
                bool worse = false;
                if (per_kind && kind_changed) {
                    result = "not comparable (GPU kind changed)";
                } else if (key == "total_bytes" && pool_sized) {
                    result = "info: vLLM's pool is gpu_memory_utilization × the card";
                } else {
                    worse = f.better * change < -tolerance_pct_ / 100.0;
                    result = worse ? "REGRESSED" : change == 0 ? "same" : f.better * change > 0 ? "better" : "within tolerance";
                }
                ok &= !worse;
                change_row(f.label, human(key, was), human(key, now), std::isfinite(change) ? fmt::format("{:+.2f}%", change * 100) : "new",
                           std::isfinite(change) ? fmt::format("{:.6g}", change) : "", result);
            }
        }
        if (baseline_.empty()) d.sections[1].notes.push_back("no --baseline given: only the gates are checked");
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
    bool allow_new_ = false;
};

}  // namespace

std::unique_ptr<Command> make_check() { return std::make_unique<CheckCommand>(); }

}  // namespace memtax::cli
