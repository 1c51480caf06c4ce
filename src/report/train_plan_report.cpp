#include "report/train_plan_report.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/format.hpp"
#include "report/plan_report.hpp"
#include "report/svg.hpp"

namespace memtax {
namespace {

using ojson = nlohmann::ordered_json;

std::string list(const std::vector<u64>& v) {
    std::string out;
    for (u64 x : v) out += (out.empty() ? "" : ", ") + std::to_string(x);
    return out;
}

std::string layout(const TrainCandidate& c) {
    return fmt::format("{}× {}, TP {} PP {} DP {}{}, ZeRO-{}, recompute {}, micro-batch {} × {} accumulated", c.gpus, c.gpu, c.tp, c.pp,
                       c.dp, c.sequence_parallel ? " (sequence parallel)" : "", c.zero, to_string(c.recompute), c.micro_batch,
                       c.accumulation);
}

std::string figures(const TrainCandidate& c, bool budget) {
    std::string out =
        fmt::format("{} per GPU (peak at {}), step {}, {} tokens/s, MFU {:.1f}%", format_bytes_gib(c.bytes_per_gpu), c.peak_at,
                    seconds_cell(c.step_s), group_digits(static_cast<u64>(std::llround(c.tokens_per_s))), c.mfu * 100);
    if (budget) out += fmt::format(", {:.1f} days, {} GPU-hours", c.days, group_digits(static_cast<u64>(std::llround(c.gpu_hours))));
    if (c.dollars > 0) out += fmt::format(", ${}", group_digits(static_cast<u64>(std::llround(c.dollars))));
    return out;
}

void candidate_columns(Table& t, bool with_reason) {
    for (auto [k, title, right] : std::initializer_list<std::tuple<const char*, const char*, bool>>{{"rank", "#", true},
                                                                                                    {"gpu", "gpu", false},
                                                                                                    {"gpus", "gpus", true},
                                                                                                    {"tp", "tp", true},
                                                                                                    {"pp", "pp", true},
                                                                                                    {"dp", "dp", true},
                                                                                                    {"zero", "zero", true},
                                                                                                    {"recompute", "recompute", false},
                                                                                                    {"micro_batch", "micro-batch", true},
                                                                                                    {"accumulation", "accum", true},
                                                                                                    {"total_bytes", "GiB/GPU", true},
                                                                                                    {"budget_bytes", "budget GiB", true},
                                                                                                    {"step_s", "step", true},
                                                                                                    {"tokens_per_s", "tokens/s", true},
                                                                                                    {"mfu", "MFU", true},
                                                                                                    {"days", "days", true},
                                                                                                    {"gpu_hours", "GPU-hours", true},
                                                                                                    {"dollars", "$", true}})
        t.add_column(k, title, right);
    if (with_reason) {
        t.add_column("binding", "binding");
        t.add_column("reason", "why not");
    }
}

void candidate_row(Table& t, const TrainCandidate& c, size_t rank, bool with_reason) {
    t.row();
    t.cell(rank ? std::to_string(rank) : "-");
    t.cell(c.gpu);
    for (u64 v : {c.gpus, c.tp, c.pp, c.dp, c.zero}) t.cell(std::to_string(v));
    t.cell(to_string(c.recompute));
    t.cell(std::to_string(c.micro_batch));
    t.cell(std::to_string(c.accumulation));
    t.cell(gib_cell(c.bytes_per_gpu), std::to_string(c.bytes_per_gpu));
    t.cell(gib_cell(c.budget_bytes), std::to_string(c.budget_bytes));
    t.cell(c.timed ? seconds_cell(c.step_s) : "-", c.timed ? exact_cell(c.step_s) : "");
    t.cell(c.timed ? group_digits(static_cast<u64>(std::llround(c.tokens_per_s))) : "-", c.timed ? exact_cell(c.tokens_per_s) : "");
    t.cell(c.timed ? fmt::format("{:.1f}%", c.mfu * 100) : "-", c.timed ? exact_cell(c.mfu) : "");
    t.cell(c.days > 0 ? fmt::format("{:.1f}", c.days) : "-", c.days > 0 ? exact_cell(c.days) : "");
    t.cell(c.gpu_hours > 0 ? group_digits(static_cast<u64>(std::llround(c.gpu_hours))) : "-",
           c.gpu_hours > 0 ? exact_cell(c.gpu_hours) : "");
    t.cell(c.dollars > 0 ? group_digits(static_cast<u64>(std::llround(c.dollars))) : "-", c.dollars > 0 ? exact_cell(c.dollars) : "");
    if (with_reason) {
        t.cell(c.binding);
        t.cell(c.reason);
    }
}

std::string count_label(double v) { return fmt::format("{:.0f}", v); }

}  // namespace

Document train_plan_document(const TrainPlanReport& r, u64 top) {
    const ScenarioSpec& s = r.scenario;
    const TrainingScenario& t = *s.training;
    const bool budget = t.train_tokens > 0;
    Document d;
    d.schema = "memtax.train-plan/1";
    d.title = fmt::format("memtax training plan: {}", s.name);
    const u64 step_tokens = checked_mul(t.global_batch, t.sequence_length, "tokens a step");
    d.notes.push_back(
        fmt::format("{} ({} parameters) under {}: {} sequences of {} tokens an optimizer step ({} tokens), {} optimizer, {} "
                    "precision{}{}",
                    r.model_name, group_digits(r.parameters), r.runtime_name, group_digits(t.global_batch), group_digits(t.sequence_length),
                    group_digits(step_tokens), t.optimizer, t.precision,
                    budget ? fmt::format("; a budget of {} tokens", group_digits(t.train_tokens)) : "",
                    t.max_days ? fmt::format(", within {:g} days", *t.max_days) : ""));
    std::string rejected;
    for (const auto& [k, n] : r.rejected_by) rejected += fmt::format("{}{} {}", rejected.empty() ? "" : ", ", n, k);
    std::string gpus;
    for (const auto& g : s.gpus) gpus += (gpus.empty() ? "" : ", ") + g;
    std::string recompute;
    for (Recompute rc : r.recompute) recompute += (recompute.empty() ? "" : ", ") + std::string(to_string(rc));
    d.notes.push_back(fmt::format(
        "searched {} in nodes of {} up to {} GPUs, TP {}, PP {}, micro-batches of {}, ZeRO {}, recompute {}: {} "
        "candidates, {} feasible{}",
        gpus, s.gpus_per_node, s.max_gpus, list(r.tp), list(r.pp), list(r.micro_batch_sizes), list(r.zero_stages), recompute,
        group_digits(r.considered), group_digits(r.ranked.size()), rejected.empty() ? "" : fmt::format(" (rejected: {})", rejected)));
    d.notes.push_back(fmt::format("objective: {}; the global batch is exact: micro-batch × accumulation × DP = {} sequences",
                                  to_string(s.objective), t.global_batch));
    if (!r.ranked.empty()) {
        const TrainCandidate& b = r.ranked.front();
        d.notes.push_back(fmt::format("best: {}: {}", layout(b), figures(b, budget)));
    } else if (r.closest) {
        d.notes.push_back(
            fmt::format("nothing meets the constraints; {} binds. The closest: {}: {}", r.binding, layout(*r.closest), r.closest->reason));
    } else {
        d.notes.push_back("nothing meets the constraints");
    }

    Document::Section plans{
        "plans", fmt::format("Plans, best first (top {} of {})", std::min<size_t>(top, r.ranked.size()), r.ranked.size()), {}, {}};
    candidate_columns(plans.table, false);
    for (size_t i = 0; i < r.ranked.size() && i < top; ++i) candidate_row(plans.table, r.ranked[i], i + 1, false);
    plans.notes.push_back(
        "GiB/GPU is the pipeline stage that needs most (the training estimate's total); the step is one optimizer step (accumulation × "
        "forward and backward, the optimizer, the gradient collectives, no overlap); MFU is three times the forward's FLOPs "
        "(recomputation not counted) over the step and the GPUs' peak matrix rate.");
    d.sections.push_back(std::move(plans));

    Document::Section by{"by_gpus", "The best plan at each GPU count", {}, {}};
    candidate_columns(by.table, true);
    for (const auto& c : r.by_gpus) candidate_row(by.table, c, 0, true);
    by.notes.push_back(
        "Per GPU kind and count, the candidate that fits in memory the objective ranks first there; one past the deadline says so.");
    d.sections.push_back(std::move(by));

    if (r.ranked.empty() && r.closest) {
        Document::Section cl{"closest", "The closest candidate", {}, {}};
        candidate_columns(cl.table, true);
        candidate_row(cl.table, *r.closest, 0, true);
        d.sections.push_back(std::move(cl));
    }
    if (!r.gates.empty()) d.sections.push_back(gates_section(r.gates, r.gates_passed));
    return d;
}

CapacityFiles render_training_report(const TrainPlanReport& r, const std::string& version) {
    CapacityFiles f;
    const ScenarioSpec& s = r.scenario;
    const bool budget = s.training->train_tokens > 0;
    const Document plan = train_plan_document(r, 10);

    // Days (over a budget) or tokens/s against GPUs, one line per GPU kind: what adding GPUs buys.
    std::map<std::string, std::vector<std::pair<double, double>>> lines;
    for (const auto& c : r.by_gpus) lines[c.gpu].emplace_back(static_cast<double>(c.gpus), budget ? c.days : c.tokens_per_s);
    const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
    std::vector<svg::Series> series;
    for (const auto& [gpu, pts] : lines) series.push_back({gpu, pts, colors[series.size() % 6], false});
    if (budget && s.training->max_days && !r.by_gpus.empty())
        series.push_back(
            {fmt::format("deadline, {:g} days", *s.training->max_days),
             {{static_cast<double>(r.by_gpus.front().gpus), *s.training->max_days},
              {static_cast<double>(std::max_element(r.by_gpus.begin(), r.by_gpus.end(),
                                                    [](const TrainCandidate& a, const TrainCandidate& b) { return a.gpus < b.gpus; })
                                       ->gpus),
               *s.training->max_days}},
             "#555555",
             true});
    const std::string chart_title = budget ? "Days to train the budget against GPUs (the best plan at each count)"
                                           : "Training tokens/s against GPUs (the best plan at each count)";
    const std::string chart =
        series.empty() ? ""
                       : svg::line_chart(chart_title, {"GPUs", true, &count_label}, {budget ? "days" : "tokens/s", true, nullptr}, series);

    std::string h = report_html_head(s.name, s.description);
    for (const auto& n : plan.notes) h += "<li>" + svg::escape(n) + "</li>\n";
    h += "</ul>\n";
    if (const auto* g = find_section(plan, "gates")) {
        h += fmt::format("<h2>Gates: <span class=\"{}\">{}</span></h2>\n", r.gates_passed ? "pass" : "fail",
                         r.gates_passed ? "all pass" : "FAILED");
        h += html_table(g->table) + "<p>" + svg::escape(kGateNote) + "</p>\n";
    }
    for (const char* key : {"plans", "closest"})
        if (const auto* p = find_section(plan, key)) {
            h += "<h2>" + svg::escape(p->title) + "</h2>\n" + html_table(p->table);
            for (const auto& n : p->notes) h += "<p>" + svg::escape(n) + "</p>\n";
        }
    if (!chart.empty()) h += "<h2>" + svg::escape(chart_title) + "</h2>\n<div class=\"chart\">\n" + chart + "</div>\n<p>Log axes.</p>\n";
    if (const auto* p = find_section(plan, "by_gpus"); p && !p->table.text.empty())
        h += "<h2>" + svg::escape(p->title) + "</h2>\n" + html_table(p->table);
    h += fmt::format("<p><small>memtax {}</small></p>\n</body>\n</html>\n", svg::escape(version));
    f.html = std::move(h);

    std::string md = fmt::format("# memtax capacity report: {}\n\n{}\n\n", s.name, s.description);
    for (const auto& n : plan.notes) md += "- " + markdown_cell(n) + "\n";
    if (const auto* g = find_section(plan, "gates"))
        md += fmt::format("\n## Gates: {}\n\n{}\n{}\n", r.gates_passed ? "all pass" : "FAILED", table_markdown(g->table), kGateNote);
    for (const char* key : {"plans", "closest", "by_gpus"})
        if (const auto* p = find_section(plan, key); p && !p->table.text.empty()) {
            md += "\n## " + markdown_cell(p->title) + "\n\n" + table_markdown(p->table);
            for (const auto& n : p->notes) md += "\n" + markdown_cell(n) + "\n";
        }
    md += fmt::format("\n<sub>memtax {}</sub>\n", version);
    f.markdown = std::move(md);

    const std::string tool = fmt::format("{{\"name\": \"memtax\", \"version\": \"{}\"}}", version);
    ojson j = {{"schema", "memtax.report/1"}, {"tool", ojson::parse(tool)}, {"scenario", s.name}, {"mode", "training"}};
    j["plan"] = ojson::parse(document_json(plan, tool))["sections"];
    j["notes"] = plan.notes;
    ojson gates = ojson::array();
    for (const auto& g : r.gates) gates.push_back({{"gate", g.gate}, {"passed", g.passed}, {"detail", g.detail}});
    j["gates"] = gates;
    j["gates_passed"] = r.gates_passed;
    f.json = j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
    f.csv = document_csv(plan);
    f.junit = gates_junit(s.name, !r.ranked.empty(), r.gates);
    return f;
}

IndexEntry training_index_entry(const TrainPlanReport& r) {
    IndexEntry e;
    e.name = r.scenario.name;
    e.gates_passed = r.gates_passed;
    e.feasible = !r.ranked.empty();
    if (!e.feasible) {
        e.best = "none";
        e.gib_per_gpu = e.tokens_per_s = "-";
        return e;
    }
    const TrainCandidate& b = r.ranked.front();
    e.best = fmt::format("{}× {} (TP {}, PP {}, DP {}), ZeRO-{}, training", b.gpus, b.gpu, b.tp, b.pp, b.dp, b.zero);
    e.gib_per_gpu = gib_cell(b.bytes_per_gpu);
    e.tokens_per_s = fmt::format("{:.0f}", b.tokens_per_s);
    return e;
}

}  // namespace memtax
