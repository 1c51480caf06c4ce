#include "report/capacity_report.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "report/plan_report.hpp"
#include "report/svg.hpp"

namespace memtax {
namespace {

using ojson = nlohmann::ordered_json;

std::string tokens_label(double v) {
    const u64 n = ceil_to_u64_saturating(std::round(v));
    if (n >= (u64{1} << 20) && n % (u64{1} << 20) == 0) return fmt::format("{}M", n >> 20);
    if (n >= 1024 && n % 1024 == 0) return fmt::format("{}k", n >> 10);
    return std::to_string(n);
}

std::string gib_label(double v) { return v >= 1 ? fmt::format("{:.0f}", v) : fmt::format("{:.2g}", v); }

}  // namespace

const char* const kGateNote =
    "Writing this report does not fail on a gate (memtax report exits 0 when it wrote every page); run memtax check on the "
    "scenario to fail a pipeline when a gate fails (exit 1).";

std::string html_table(const Table& t) {
    std::string out = "<table>\n<tr>";
    for (const auto& c : t.columns) out += fmt::format("<th class=\"{}\">{}</th>", c.right ? "r" : "l", svg::escape(c.title));
    out += "</tr>\n";
    for (const auto& row : t.text) {
        out += "<tr>";
        for (size_t c = 0; c < t.columns.size(); ++c)
            out += fmt::format("<td class=\"{}\">{}</td>", t.columns[c].right ? "r" : "l", svg::escape(c < row.size() ? row[c] : ""));
        out += "</tr>\n";
    }
    return out + "</table>\n";
}

std::string report_html_head(const std::string& name, const std::string& description) {
    return fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>memtax capacity report: {0}</title>\n<style>\n"
        "body{{font-family:sans-serif;margin:24px;max-width:1180px;color:#222}} h1{{font-size:22px}} h2{{font-size:17px;margin-top:28px}}\n"
        "table{{border-collapse:collapse;font-size:12px}} th,td{{border:1px solid #ccc;padding:3px 6px}} th{{background:#f4f4f4}}\n"
        ".r{{text-align:right}} .l{{text-align:left}} .pass{{color:#070;font-weight:bold}} .fail{{color:#b00;font-weight:bold}} "
        ".chart{{margin:12px 0}}\n"
        "</style>\n</head>\n<body>\n<h1>memtax capacity report: {0}</h1>\n<p>{1}</p>\n<ul>\n",
        svg::escape(name), svg::escape(description));
}

std::string gates_junit(const std::string& scenario, bool feasible, const std::vector<GateResult>& gates) {
    size_t failures = 0;
    std::string cases;
    auto testcase = [&](const std::string& name, bool passed, const std::string& detail) {
        failures += !passed;
        cases += fmt::format("    <testcase classname=\"memtax.{}\" name=\"{}\">{}</testcase>\n", svg::escape(scenario), svg::escape(name),
                             passed ? "" : fmt::format("<failure message=\"{}\"/>", svg::escape(detail)));
    };
    testcase("feasible", feasible, feasible ? "" : "no candidate meets the constraints");
    for (const auto& g : gates) testcase(g.gate, g.passed, g.detail);
    const size_t tests = 1 + gates.size();
    return fmt::format(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"memtax\" tests=\"{0}\" failures=\"{1}\">\n"
        "  <testsuite name=\"{2}\" tests=\"{0}\" failures=\"{1}\">\n{3}  </testsuite>\n</testsuites>\n",
        tests, failures, svg::escape(scenario), cases);
}

namespace {

std::vector<svg::Series> memory_series(const CapacityReport& r) {
    std::vector<svg::Series> out;
    auto series = [&](const SweepReport& sw, const std::string& name, u64 PointResult::*m, const char* color, bool dashed) {
        svg::Series s{name, {}, color, dashed};
        for (const auto& p : sw.points) s.points.emplace_back(static_cast<double>(p.context), to_gib(p.r.*m));
        out.push_back(std::move(s));
    };
    const SweepReport& f = *r.fused;
    const SweepReport& e = *r.eager;
    series(f, "weights", &PointResult::weights, "#7f7f7f", false);
    series(f, "KV cache (linear)", &PointResult::kv_cache, "#1f77b4", false);
    series(f, "activations, fused attention", &PointResult::activation_peak, "#2ca02c", false);
    series(e, "attention matrix, eager (quadratic)", &PointResult::attention_matrix, "#d62728", false);
    series(f, "total, fused attention", &PointResult::total, "#000000", false);
    series(e, "total, eager attention", &PointResult::total, "#d62728", true);
    series(f, "usable capacity", &PointResult::capacity, "#9467bd", true);
    return out;
}

// vLLM as it serves: sequences of each context the KV pool holds (log), against the
// admission limit and the sequences each replica is asked to run.
std::vector<svg::Series> serving_series(const CapacityReport& r, u64 wanted) {
    svg::Series held{"sequences the KV pool holds", {}, "#1f77b4", false};
    svg::Series limit{"max_num_seqs", {}, "#7f7f7f", true};
    svg::Series want{"sequences a replica runs (the plan)", {}, "#d62728", true};
    for (const auto& p : r.serving->points) {
        const double x = static_cast<double>(p.context);
        held.points.emplace_back(x, static_cast<double>(p.r.max_concurrency_milli) / 1000.0);
        limit.points.emplace_back(x, static_cast<double>(r.max_running));
        want.points.emplace_back(x, static_cast<double>(wanted));
    }
    return {held, limit, want};
}

std::string count_label(double v) { return v >= 1 ? fmt::format("{:.0f}", v) : fmt::format("{:.2g}", v); }

std::vector<svg::RoofPoint> roof_points(const TimeEstimate& t) {
    std::vector<svg::RoofPoint> out;
    for (const auto* st : {&t.prefill, &t.decode})
        for (const auto& k : st->kinds)
            if (k.flops > 0 && k.bytes > 0 && k.seconds > 0)
                out.push_back({fmt::format("{} {}", st == &t.prefill ? "prefill" : "decode", k.kind),
                               static_cast<double>(k.flops) / static_cast<double>(k.bytes), static_cast<double>(k.flops) / k.seconds});
    return out;
}

// The top plans' per-GPU components, GiB.
const std::vector<std::string> kParts = {"weights", "KV cache", "attention matrix", "activations", "logits", "runtime overhead"};
const std::vector<std::string> kPartColors = {"#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#8c564b"};

std::vector<svg::Stack> stacks(const PlanReport& p) {
    std::vector<svg::Stack> out;
    for (size_t i = 0; i < p.ranked.size() && i < 5; ++i) {
        const Candidate& c = p.ranked[i];
        const PointResult& m = c.memory;
        out.push_back({fmt::format("#{} {}× {} TP{} PP{} DP{}", i + 1, c.gpus, c.gpu, c.tp, c.pp, c.dp),
                       {to_gib(m.weights), to_gib(m.kv_cache), to_gib(m.attention_matrix), to_gib(m.activation_peak), to_gib(m.logits),
                        to_gib(m.runtime_overhead)},
                       to_gib(m.capacity)});
    }
    return out;
}

ojson sweep_json(const SweepReport& s) {
    ojson pts = ojson::array();
    for (const auto& p : s.points)
        pts.push_back({{"context", p.context},
                       {"weights_bytes", p.r.weights},
                       {"kv_cache_bytes", p.r.kv_cache},
                       {"attention_matrix_bytes", p.r.attention_matrix},
                       {"activation_peak_bytes", p.r.activation_peak},
                       {"logits_bytes", p.r.logits},
                       {"total_bytes", p.r.total},
                       {"capacity_bytes", p.r.capacity},
                       {"fits", p.r.fits}});
    ojson fits = ojson::array();
    for (const auto& f : s.fits)
        fits.push_back({{"component", f.component},
                        {"c2_bytes_per_token2", f.c2},
                        {"c1_bytes_per_token", f.c1},
                        {"c0_bytes", f.c0},
                        {"per_doubling", std::isfinite(f.per_doubling) ? ojson(f.per_doubling) : ojson(nullptr)}});
    return {{"runtime", s.runtime}, {"points", pts}, {"growth", fits}};
}

}  // namespace

CapacityFiles render_capacity_report(const CapacityReport& r, const std::string& version) {
    CapacityFiles f;
    const ScenarioSpec& s = r.plan.scenario;
    const Document plan = plan_document(r.plan, 10, true);
    const bool charts = r.fused && r.eager && r.charted;
    const bool serving = r.serving && r.charted && !r.serving->points.empty();
    const u64 batch = r.charted ? r.charted->batch_per_replica : 0;
    // What the charts show when nothing is feasible: the closest candidate, said so.
    const std::string whose = r.plan.ranked.empty() ? "closest candidate, infeasible" : "best plan";
    std::string serving_title, serving_svg, serving_note;
    if (serving) {
        const Candidate& best = *r.charted;
        const PointResult& p0 = r.serving->points.front().r;
        serving_title = fmt::format("vLLM: sequences the KV pool holds against context ({}: {} TP{} PP{}, {} per replica)", whose, best.gpu,
                                    best.tp, best.pp, batch);
        serving_svg = svg::line_chart(serving_title, {"context (tokens)", true, &tokens_label},
                                      {"sequences held at once", true, &count_label}, serving_series(r, batch));
        serving_note = fmt::format(
            "vLLM sizes one KV pool at start-up ({} per GPU, whatever the context); a sequence of c tokens takes "
            "ceil(c / block) blocks of every layer, so the sequences it holds fall as 1/c. Above max_num_seqs ({}) the scheduler, "
            "not memory, limits a replica.",
            format_bytes_gib(p0.kv_cache), r.max_running);
    }
    const std::string memory_title =
        charts ? fmt::format("Memory per GPU against context (layout of the {}, {} sequences a replica, prefill)", whose, batch) : "";
    const std::string memory_svg = charts ? svg::line_chart(memory_title, {"context (tokens)", true, &tokens_label},
                                                            {"GiB per GPU", true, &gib_label}, memory_series(r))
                                          : "";
    const std::string bars_svg =
        r.plan.ranked.empty() ? "" : svg::stacked_bars("Per GPU, the top plans", "GiB", kParts, kPartColors, stacks(r.plan));
    const std::string roof_svg =
        r.time ? svg::roofline(fmt::format("Op kinds against the roofline: achieved FLOP/s by arithmetic intensity ({} {})",
                                           r.time->rate_dtype, r.charted->gpu),
                               r.time->matmul_flops_per_s, r.time->bandwidth_bytes_per_s, roof_points(*r.time))
               : "";

    // --- HTML ---
    std::string h = report_html_head(s.name, s.description);
    for (const auto& n : plan.notes) h += "<li>" + svg::escape(n) + "</li>\n";
    h += "</ul>\n";
    if (const auto* g = find_section(plan, "gates")) {
        h += fmt::format("<h2>Gates: <span class=\"{}\">{}</span></h2>\n", r.plan.gates_passed ? "pass" : "fail",
                         r.plan.gates_passed ? "all pass" : "FAILED");
        h += html_table(g->table);
        h += "<p>" + svg::escape(kGateNote) + "</p>\n";
    }
    if (const auto* p = find_section(plan, "plans")) {
        h += "<h2>" + svg::escape(p->title) + "</h2>\n" + html_table(p->table);
        for (const auto& n : p->notes) h += "<p>" + svg::escape(n) + "</p>\n";
    }
    if (const auto* p = find_section(plan, "pareto")) {
        h += "<h2>" + svg::escape(p->title) + "</h2>\n" + html_table(p->table);
        for (const auto& n : p->notes) h += "<p>" + svg::escape(n) + "</p>\n";
    }
    if (serving) {
        h += "<h2>Sequences held against context (vLLM)</h2>\n<div class=\"chart\">\n" + serving_svg + "</div>\n";
        h += "<p>Log axes. " + svg::escape(serving_note) + "</p>\n";
    }
    if (charts) {
        h += "<h2>Memory against context</h2>\n<div class=\"chart\">\n" + memory_svg + "</div>\n";
        h += "<p>Log axes. The KV cache grows linearly with the context; eager attention's S×S tensors quadratically (×4 per doubling); "
             "fused attention keeps none.</p>\n";
        h += html_table(sweep_document(*r.eager).sections.back().table);
    }
    if (!bars_svg.empty()) h += "<h2>Per GPU, the top plans</h2>\n<div class=\"chart\">\n" + bars_svg + "</div>\n";
    if (!roof_svg.empty()) h += "<h2>Op kinds against the roofline</h2>\n<div class=\"chart\">\n" + roof_svg + "</div>\n";
    if (const auto* m = find_section(plan, "best_memory")) h += "<h2>" + svg::escape(m->title) + "</h2>\n" + html_table(m->table);
    h += fmt::format("<p><small>memtax {}</small></p>\n</body>\n</html>\n", svg::escape(version));
    f.html = std::move(h);

    // --- Markdown ---
    std::string md = fmt::format("# memtax capacity report: {}\n\n{}\n\n", s.name, s.description);
    for (const auto& n : plan.notes) md += "- " + markdown_cell(n) + "\n";
    if (const auto* g = find_section(plan, "gates"))
        md += fmt::format("\n## Gates: {}\n\n{}\n{}\n", r.plan.gates_passed ? "all pass" : "FAILED", table_markdown(g->table), kGateNote);
    if (const auto* p = find_section(plan, "plans")) md += "\n## " + markdown_cell(p->title) + "\n\n" + table_markdown(p->table);
    if (const auto* p = find_section(plan, "pareto")) {
        md += "\n## " + markdown_cell(p->title) + "\n\n" + table_markdown(p->table);
        for (const auto& n : p->notes) md += "\n" + markdown_cell(n) + "\n";
    }
    if (charts) {
        md += "\n## Memory against context\n\n" + markdown_cell(memory_title) + " (GiB per GPU).\n\n```mermaid\nxychart-beta\n";
        md += "    title \"GiB per GPU against context\"\n    x-axis [";
        for (size_t i = 0; i < r.fused->points.size(); ++i)
            md += (i ? ", " : "") + tokens_label(static_cast<double>(r.fused->points[i].context));
        // Mermaid's axis is linear: eager attention's quadratic total would flatten every line, so
        // the axis stops at twice the usable capacity and higher values sit on its top (the table
        // below has them all).
        double top = 0;
        for (const auto& p : r.eager->points) top = std::max(top, to_gib(p.r.total));
        const double cap = to_gib(r.fused->points.front().r.capacity);
        const bool clipped = top > 2 * cap;
        if (clipped) top = 2 * cap;
        md += fmt::format("]\n    y-axis \"GiB\" 0 --> {:.0f}\n", std::ceil(top));
        auto line = [&](const SweepReport& sw, u64 PointResult::*m) {
            std::string l = "    line [";
            for (size_t i = 0; i < sw.points.size(); ++i)
                l += fmt::format("{}{:.2f}", i ? ", " : "", std::min(std::ceil(top), to_gib(sw.points[i].r.*m)));
            return l + "]\n";
        };
        md += line(*r.fused, &PointResult::kv_cache) + line(*r.fused, &PointResult::total) + line(*r.eager, &PointResult::total);
        md +=
            "```\n\nLines: the KV cache, the total with fused attention, the total with eager attention (its S×S tensors grow ×4 per "
            "doubling).";
        if (clipped)
            md += fmt::format(" The axis stops at twice the usable capacity ({:.0f} GiB); values above it are drawn on its top.", 2 * cap);
        md += "\n\n";
        md += table_markdown(sweep_document(*r.eager).sections.back().table);
    }
    if (serving) {
        md += "\n## Sequences held against context (vLLM)\n\n" + markdown_cell(serving_title) + ".\n\n```mermaid\nxychart-beta\n";
        md += "    title \"Sequences the KV pool holds\"\n    x-axis [";
        for (size_t i = 0; i < r.serving->points.size(); ++i)
            md += (i ? ", " : "") + tokens_label(static_cast<double>(r.serving->points[i].context));
        // Linear axis: up to four times what a replica runs (or max_num_seqs, if lower), higher values
        // on its top; the table has them all.
        const double top =
            std::max<double>(1, static_cast<double>(std::min<u64>(std::max<u64>(batch, 1) * 4, std::max<u64>(r.max_running, 1))));
        md += fmt::format("]\n    y-axis \"sequences\" 0 --> {:.0f}\n    line [", top);
        for (size_t i = 0; i < r.serving->points.size(); ++i)
            md += fmt::format("{}{:.2f}", i ? ", " : "",
                              std::min(top, static_cast<double>(r.serving->points[i].r.max_concurrency_milli) / 1000.0));
        md += "]\n    line [";
        for (size_t i = 0; i < r.serving->points.size(); ++i) md += fmt::format("{}{}", i ? ", " : "", batch);
        md += fmt::format(
            "]\n```\n\nLines: the sequences the pool holds, the sequences a replica runs ({}); the axis stops at {:.0f}. {}\n\n", batch,
            top, serving_note);
        Table t;
        for (const char* c : {"context", "sequences held", "KV pool GiB"}) t.add_column(c, c, true);
        for (const auto& p : r.serving->points) {
            t.row();
            t.cell(group_digits(p.context));
            t.cell(fmt::format("{:.2f}", static_cast<double>(p.r.max_concurrency_milli) / 1000.0));
            t.cell(fmt::format("{:.2f}", to_gib(p.r.kv_cache)));
        }
        md += table_markdown(t);
    }
    if (!r.plan.ranked.empty()) {
        md += "\n## Per GPU, the top plans\n\n```mermaid\nxychart-beta\n    title \"GiB per GPU\"\n    x-axis [";
        const size_t n = std::min<size_t>(5, r.plan.ranked.size());
        for (size_t i = 0; i < n; ++i) md += fmt::format("{}\"#{}\"", i ? ", " : "", i + 1);
        md += "]\n    bar [";
        for (size_t i = 0; i < n; ++i) md += fmt::format("{}{:.2f}", i ? ", " : "", to_gib(r.plan.ranked[i].memory.total));
        md += "]\n```\n";
    }
    if (const auto* m = find_section(plan, "best_memory")) md += "\n## " + markdown_cell(m->title) + "\n\n" + table_markdown(m->table);
    md += fmt::format("\n<sub>memtax {}</sub>\n", version);
    f.markdown = std::move(md);

    // --- JSON ---
    const std::string tool = fmt::format("{{\"name\": \"memtax\", \"version\": \"{}\"}}", version);
    ojson j = {{"schema", "memtax.report/1"}, {"tool", ojson::parse(tool)}, {"scenario", s.name}};
    j["plan"] = ojson::parse(document_json(plan, tool))["sections"];
    j["notes"] = plan.notes;
    ojson gates = ojson::array();
    for (const auto& g : r.plan.gates) gates.push_back({{"gate", g.gate}, {"passed", g.passed}, {"detail", g.detail}});
    j["gates"] = gates;
    j["gates_passed"] = r.plan.gates_passed;
    if (charts) j["memory_vs_context"] = {{"batch_per_replica", batch}, {"fused", sweep_json(*r.fused)}, {"eager", sweep_json(*r.eager)}};
    if (serving) {
        ojson pts = ojson::array();
        for (const auto& p : r.serving->points)
            pts.push_back({{"context", p.context},
                           {"sequences_held", static_cast<double>(p.r.max_concurrency_milli) / 1000.0},
                           {"kv_pool_bytes", p.r.kv_cache}});
        j["sequences_vs_context"] = {
            {"runtime", r.serving->runtime}, {"max_running", r.max_running}, {"batch_per_replica", batch}, {"points", pts}};
    }
    if (r.time) {
        ojson steps = ojson::object();
        for (const auto* st : {&r.time->prefill, &r.time->decode}) {
            ojson kinds = ojson::array();
            for (const auto& k : st->kinds)
                kinds.push_back({{"kind", k.kind},
                                 {"kernels", k.ops},
                                 {"flops", k.flops},
                                 {"bytes", k.bytes},
                                 {"seconds", k.seconds},
                                 {"bound", k.bound}});
            steps[st == &r.time->prefill ? "prefill" : "decode"] = {{"seconds", st->seconds}, {"kinds", kinds}};
        }
        j["roofline"] = {
            {"matmul_flops_per_s", r.time->matmul_flops_per_s}, {"bandwidth_bytes_per_s", r.time->bandwidth_bytes_per_s}, {"steps", steps}};
    }
    f.json = j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";

    // --- CSV ---
    f.csv = document_csv(plan);
    if (charts) f.csv += "\n" + document_csv(sweep_document(*r.fused)) + "\n" + document_csv(sweep_document(*r.eager));

    f.junit = gates_junit(s.name, !r.plan.ranked.empty(), r.plan.gates);
    return f;
}

IndexEntry capacity_index_entry(const CapacityReport& r) {
    IndexEntry e;
    e.name = r.plan.scenario.name;
    e.gates_passed = r.plan.gates_passed;
    e.feasible = !r.plan.ranked.empty();
    const Candidate* b = r.plan.ranked.empty() ? nullptr : &r.plan.ranked.front();
    e.best = b ? fmt::format("{}× {} (TP {}, PP {}, DP {})", b->gpus, b->gpu, b->tp, b->pp, b->dp) : "none";
    e.gib_per_gpu = b ? gib_cell(b->memory.total) : "-";
    e.tokens_per_s = b ? fmt::format("{:.0f}", b->tokens_per_s) : "-";
    return e;
}

std::string capacity_index_markdown(const std::vector<IndexEntry>& reports) {
    std::string md =
        "# memtax capacity reports\n\n| scenario | best plan | GiB per GPU | tokens/s | gates | files |\n| --- | --- | ---: | ---: | --- | "
        "--- |\n";
    for (const auto& r : reports) {
        const auto& n = r.name;
        md += fmt::format(
            "| {} | {} | {} | {} | {} | [html]({}.html) · [md]({}.md) · [json]({}.json) · [csv]({}.csv) · [junit]({}.junit.xml) |\n",
            markdown_cell(n), markdown_cell(r.best), r.gib_per_gpu, r.tokens_per_s, r.gates_passed ? "pass" : "FAIL", n, n, n, n, n);
    }
    return md;
}

std::string capacity_index_html(const std::vector<IndexEntry>& reports) {
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>memtax capacity reports</title>\n"
        "<style>body{font-family:sans-serif;margin:24px} table{border-collapse:collapse} th,td{border:1px solid #ccc;padding:4px "
        "8px}</style>\n"
        "</head>\n<body>\n<h1>memtax capacity reports</h1>\n<table>\n<tr><th>scenario</th><th>best plan</th><th>gates</th></tr>\n";
    for (const auto& r : reports)
        h += fmt::format("<tr><td><a href=\"{0}.html\">{0}</a></td><td>{1}</td><td>{2}</td></tr>\n", svg::escape(r.name),
                         svg::escape(r.best), r.gates_passed ? "pass" : "FAIL");
    return h + "</table>\n</body>\n</html>\n";
}

}  // namespace memtax
