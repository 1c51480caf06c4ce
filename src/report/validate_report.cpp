// Printers of validation and calibration results (memtax validate, calibrate, probe).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "report/report.hpp"
#include "report/table.hpp"

#include <initializer_list>
#include <tuple>

namespace memtax {

namespace {

std::string secs(double s) {
    if (s >= 1e-3) return fmt::format("{:.3f} ms", s * 1e3);
    return fmt::format("{:.1f} us", s * 1e6);
}

// A validation as data: a header, the probe's table and notes, the forward cases' table and
// notes. The text and Markdown printers render the same document.
struct ValidationDoc {
    std::vector<std::string> header;
    std::string probe_title;
    Table probe;
    std::vector<std::string> probe_notes;
    Table cases;
    std::vector<std::string> notes;
    Table steps;
    std::vector<std::string> step_notes;
    Table train;
    std::vector<std::string> train_notes;
};

ValidationDoc validation_doc(const Validation& v) {
    ValidationDoc d;
    d.header.push_back(fmt::format("memtax validate: {} ({}; source {})", v.file, v.schema, v.source));
    d.header.push_back(fmt::format("measured on {} (driver {}), {}; predicted with GPU profile {}", v.provenance.at("gpu"),
                                   v.provenance.count("driver") ? v.provenance.at("driver") : "?", v.provenance.at("date"), v.gpu));
    if (!v.probe.empty() || !v.checks.empty()) {
        d.probe_title = fmt::format(
            "probe cases (time predicted with {} rates of {}; memory-bound and overhead-bound within {:.0f}%, compute-bound within "
            "{:.0f}%)",
            v.gpu_calibrated ? "calibrated" : "ASSUMED (uncalibrated)", v.gpu, v.bandwidth_tolerance * 100, v.compute_tolerance * 100);
        Table& t = d.probe;
        for (auto [k, title, right] :
             std::initializer_list<std::tuple<const char*, const char*, bool>>{{"case", "case", false},
                                                                               {"predicted_allocated_bytes", "bytes predicted", true},
                                                                               {"measured_allocated_bytes", "asked (bookkeeping)", true},
                                                                               {"device_used_bytes", "device used", true},
                                                                               {"memory", "memory", false},
                                                                               {"predicted_s", "time pred", true},
                                                                               {"measured_s", "time meas", true},
                                                                               {"time_error", "error", true},
                                                                               {"bound", "bound", false},
                                                                               {"result", "result", false}})
            t.add_column(k, title, right);
        size_t exact = 0, n = 0, worst = 0, device_n = 0, device_exact = 0;
        std::map<std::string, std::pair<size_t, size_t>> by_bound;
        for (size_t i = 0; i < v.probe.size(); ++i) {
            const auto& r = v.probe[i];
            const auto& p = *r.c.probe;
            ++n;
            exact += r.allocated_exact && !r.allocated_within_workspace;
            device_n += r.device_measured;
            device_exact += r.device_measured && r.device_exact;
            auto& b = by_bound[r.bound];
            ++b.second;
            b.first += r.time_ok;
            if (std::fabs(r.time_error) > std::fabs(v.probe[worst].time_error)) worst = i;
            std::string result = r.ok ? (r.time_by_slack_only ? "ok (within 1 us)" : "ok") : "FAIL";
            if (r.c.status == "failed")
                result += " (" + r.c.reason + ")";
            else if (!r.buffer_diff.empty())
                result += " (" + r.buffer_diff + ")";
            else if (!r.device_exact)
                result += fmt::format(" (the device counts {} B in use, {} B predicted)", group_digits(r.device_used),
                                      group_digits(r.predicted_allocated));
            else if (!r.driver_ok)
                result += fmt::format(" (driver took {} B, less than the {} B of 2 MiB pages)", group_digits(p.driver_bytes),
                                      group_digits(r.driver_low));
            else if (p.driver_bytes > r.driver_high)
                result += fmt::format(" (driver +{} B: module load)", group_digits(p.driver_bytes - r.driver_high));
            if (r.allocated_within_workspace && r.allocated_exact && r.workspace_bytes)
                result += fmt::format(" (+{} B kernel workspace)", group_digits(r.workspace_bytes));
            t.row();
            t.cell(r.c.id);
            t.cell(group_digits(r.predicted_allocated), std::to_string(r.predicted_allocated));
            t.cell(group_digits(p.allocated_bytes), std::to_string(p.allocated_bytes));
            t.cell(r.device_measured ? group_digits(r.device_used) : "-", r.device_measured ? std::to_string(r.device_used) : "");
            // "exact" only where the device counted the bytes; the bookkeeping alone is "asked".
            t.cell(!r.allocated_exact || !r.device_exact ? "DIFF"
                   : r.allocated_within_workspace        ? "ok"
                   : r.device_measured                   ? "exact"
                                                         : "asked");
            t.cell(secs(r.predicted_s), fmt::format("{:.6g}", r.predicted_s));
            t.cell(secs(p.time_s), fmt::format("{:.6g}", p.time_s));
            t.cell(fmt::format("{:+.1f}%", r.time_error * 100), fmt::format("{:.6g}", r.time_error));
            t.cell(r.bound);
            t.cell(result);
            for (const auto& k : r.kernels) {
                t.row();
                t.cell("· " + k.name, r.c.id + "/" + k.name);
                t.cell("");
                t.cell("");
                t.cell("");
                t.cell("");
                t.cell(secs(k.predicted_s), fmt::format("{:.6g}", k.predicted_s));
                t.cell(k.measured_s ? secs(*k.measured_s) : "-", k.measured_s ? fmt::format("{:.6g}", *k.measured_s) : "");
                t.cell(k.measured_s ? fmt::format("{:+.1f}%", relative_error(k.predicted_s, *k.measured_s) * 100) : "",
                       k.measured_s ? fmt::format("{:.6g}", relative_error(k.predicted_s, *k.measured_s)) : "");
                t.cell(k.bound);
                t.cell("");
            }
        }
        if (n) {
            size_t sdpa = 0;
            for (const auto& r : v.probe) sdpa += r.allocated_within_workspace && r.allocated_exact;
            // Memory: what the device counted, where it did; the probe's own bookkeeping (the
            // sizes it asked for, computed as the kernel model computes them) is not a measurement.
            std::string memory = device_n
                                     ? fmt::format("the device's count equals the predicted bytes in {} of {}", device_exact, device_n)
                                     : "no device count of the bytes (a run before per-case memory pools: only the probe's bookkeeping, "
                                       "which is not a measurement)";
            if (device_n && device_n < n) memory += fmt::format(" (the {} others: bookkeeping only)", n - device_n);
            std::string line = fmt::format(
                "{} probe cases: {}; sizes asked equal the kernel model's in {}{}; time within tolerance:", n, memory, exact,
                sdpa ? fmt::format(" (+{} PyTorch SDPA cases: the output exact, a workspace of at most 1 MiB beside it)", sdpa) : "");
            for (const auto& [bound, c] : by_bound) line += fmt::format(" {}-bound {}/{}", bound, c.first, c.second);
            line += fmt::format("; worst {} {:+.1f}%", v.probe[worst].c.id, v.probe[worst].time_error * 100);
            d.probe_notes.push_back(line);
        }
        for (const auto& c : v.checks)
            d.probe_notes.push_back(fmt::format("check {} {}: rel error {:.2e} (tolerance {:.0e}){} {}", c.suite, c.what, c.rel_error,
                                                c.tolerance, c.unwritten ? fmt::format(", {} outputs unwritten", c.unwritten) : "",
                                                c.passed ? "passed" : "FAILED"));
        for (const auto& c : v.probe_claims)
            if (!c.text.empty()) d.probe_notes.push_back("ceiling: " + c.text);
    }
    if (!v.steps.empty()) {
        Table& st = d.steps;
        for (auto [k, title, right] : std::initializer_list<std::tuple<const char*, const char*, bool>>{{"case", "case", false},
                                                                                                        {"predicted_s", "predicted", true},
                                                                                                        {"host_s", "host", true},
                                                                                                        {"gpu_s", "GPU", true},
                                                                                                        {"measured_s", "measured", true},
                                                                                                        {"error", "error", true},
                                                                                                        {"result", "result", false}})
            st.add_column(k, title, right);
        for (const auto& r : v.steps) {
            st.row();
            st.cell(r.c.id);
            st.cell(secs(r.predicted_s), fmt::format("{:.6g}", r.predicted_s));
            st.cell(r.host_s > 0 ? secs(r.host_s) : "-", r.host_s > 0 ? fmt::format("{:.6g}", r.host_s) : "");
            st.cell(secs(r.gpu_s), fmt::format("{:.6g}", r.gpu_s));
            st.cell(secs(r.c.step->seconds), fmt::format("{:.6g}", r.c.step->seconds));
            st.cell(fmt::format("{:+.1f}%", r.error * 100), fmt::format("{:.6g}", r.error));
            st.cell(r.ok ? "ok" : "FAIL");
        }
        size_t within = 0;
        for (const auto& r : v.steps) within += std::fabs(r.error) <= v.step_tolerance;
        d.step_notes.push_back(
            fmt::format("{} step times: {} within {:.0f}%; median |error| {:.1f}% (at most {:.0f}%), worst {:.1f}% (at most {:.0f}%)",
                        v.steps.size(), within, v.step_tolerance * 100, v.step_median_error * 100, v.step_tolerance * 100,
                        v.step_worst_error * 100, v.step_worst_tolerance * 100));
    }
    if (!v.train.empty()) {
        Table& tt = d.train;
        for (auto [k, title, right] : std::initializer_list<std::tuple<const char*, const char*, bool>>{
                 {"case", "case", false},
                 {"predicted_saved_bytes", "predicted saved", true},
                 {"measured_saved_bytes", "measured saved", true},
                 {"saved_error", "error", true},
                 {"predicted_backward_peak_bytes", "predicted backward peak", true},
                 {"measured_backward_peak_bytes", "measured backward peak", true},
                 {"backward_error", "error", true},
                 {"gradient_error", "gradients", true},
                 {"optimizer_error", "optimizer", true},
                 {"train_peak_error", "step peak", true},
                 {"result", "result", false}})
            tt.add_column(k, title, right);
        size_t both = 0;
        double worst = 0;
        for (const auto& r : v.train) {
            const MeasuredTrain& m = *r.c.train;
            tt.row();
            tt.cell(r.c.id);
            tt.cell(group_digits(r.saved), std::to_string(r.saved));
            tt.cell(group_digits(m.saved_activation_bytes), std::to_string(m.saved_activation_bytes));
            tt.cell(fmt::format("{:+.2f}%", r.saved_error * 100), fmt::format("{:.6g}", r.saved_error));
            tt.cell(group_digits(r.backward_peak), std::to_string(r.backward_peak));
            tt.cell(group_digits(m.backward_peak_bytes), std::to_string(m.backward_peak_bytes));
            tt.cell(fmt::format("{:+.2f}%", r.backward_error * 100), fmt::format("{:.6g}", r.backward_error));
            tt.cell(fmt::format("{:+.2f}%", r.gradient_error * 100), fmt::format("{:.6g}", r.gradient_error));
            tt.cell(fmt::format("{:+.2f}%", r.optimizer_error * 100), fmt::format("{:.6g}", r.optimizer_error));
            tt.cell(fmt::format("{:+.2f}%", r.train_peak_error * 100), fmt::format("{:.6g}", r.train_peak_error));
            tt.cell(r.ok ? "ok" : "FAIL");
            both += std::fabs(r.saved_error) <= v.tolerance && std::fabs(r.backward_error) <= v.tolerance;
            worst = std::max({worst, std::fabs(r.saved_error), std::fabs(r.backward_error)});
        }
        d.train_notes.push_back(
            fmt::format("{} training steps: saved activations and backward peak both within {:.0f}% in {}; worst {:.2f}%", v.train.size(),
                        v.tolerance * 100, both, worst * 100));
    }
    Table& t = d.cases;
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"case", "case", false},
                                                                           {"predicted_forward_peak_bytes", "predicted peak", true},
                                                                           {"measured_forward_peak_bytes", "measured peak", true},
                                                                           {"forward_peak_error", "error", true},
                                                                           {"kv", "KV", false},
                                                                           {"logits", "logits", false},
                                                                           {"result", "result", false}})
        t.add_column(k, title, right);
    size_t ok_cases = 0, ooms = 0, oom_agree = 0, oom_fragmented = 0;
    for (const auto& r : v.cases) {
        t.row();
        t.cell(r.c.id);
        t.cell(group_digits(r.predicted_peak), std::to_string(r.predicted_peak));
        if (r.c.status == "oom") {
            ++ooms;
            if (r.ok && !r.oom_borderline && !r.oom_explained) ++oom_agree;
            if (r.oom_explained) ++oom_fragmented;
            t.cell("OOM");
            t.cell("");
            t.cell("");
            t.cell("");
            t.cell(!r.ok              ? "FAIL (predicted to fit)"
                   : r.oom_borderline ? "ok (predicted total within the tolerance of capacity)"
                   : r.oom_explained
                       ? fmt::format("ok: fragmentation — allocated {:.2f} + request {:.2f} GiB within the predicted {:.2f} GiB; {:.2f} "
                                     "GiB reserved but unallocated",
                                     r.oom_allocated / kGiB, r.oom_request / kGiB, to_gib(r.predicted_allocation), r.oom_stranded / kGiB)
                       : "ok (predicted: does not fit)");
            continue;
        }
        ++ok_cases;
        t.cell(group_digits(*r.c.measured.forward_peak_bytes), std::to_string(*r.c.measured.forward_peak_bytes));
        t.cell(fmt::format("{:+.2f}%", r.peak_error * 100), fmt::format("{:.6g}", r.peak_error));
        t.cell(!r.predicted_kv ? "-" : r.kv_exact ? "exact" : "DIFF");
        t.cell(!r.predicted_logits ? "-" : r.logits_exact ? "exact" : "DIFF");
        t.cell(!r.ok ? "FAIL" : r.peak_by_slack_only ? "ok (within the absolute slack)" : "ok");
    }
    if (!v.cases.empty()) {
        size_t within = 0, kv_exact = 0, kv_n = 0, by_slack = 0;
        for (const auto& r : v.cases) {
            by_slack += r.peak_by_slack_only;
            if (r.c.status != "ok") continue;
            within += r.peak_ok;
            if (r.predicted_kv) {
                ++kv_n;
                kv_exact += r.kv_exact;
            }
        }
        std::string line = fmt::format(
            "{} measured cases: forward peak within {:.0f}% in {}{}, KV bytes exact in {} of {}", ok_cases, v.tolerance * 100,
            within - by_slack, by_slack ? fmt::format(" (+{} within the {} B absolute slack)", by_slack, group_digits(v.slack_bytes)) : "",
            kv_exact, kv_n);
        if (ooms)
            line += fmt::format(
                "; {} out-of-memory cases, {} predicted not to fit{}{}", ooms, oom_agree,
                oom_fragmented
                    ? fmt::format(", {} the allocator's fragmentation (the allocated bytes within the prediction)", oom_fragmented)
                    : "",
                ooms - oom_agree - oom_fragmented
                    ? fmt::format(", {} within {:.0f}% of capacity", ooms - oom_agree - oom_fragmented, v.tolerance * 100)
                    : "");
        d.notes.push_back(line);
        size_t sharded = 0, ranks = 0, ranks_bad = 0;
        const CaseResult* far = nullptr;
        for (const auto& r : v.cases)
            if (r.ranks_checked) {
                ++sharded;
                ranks += r.ranks_checked;
                ranks_bad += !r.ranks_ok;
                if (!far || std::fabs(r.worst_rank_error) > std::fabs(far->worst_rank_error)) far = &r;
            }
        if (far)
            d.notes.push_back(
                fmt::format("{} sharded cases, {} ranks: every rank against the per-GPU prediction, {} case(s) with a rank off; furthest: "
                            "{} rank {} {:+.2f}%",
                            sharded, ranks, ranks_bad, far->c.id, far->worst_rank, far->worst_rank_error * 100));
        if (ok_cases) {
            const auto& w = v.cases[v.worst];
            d.notes.push_back(fmt::format("worst case: {} {:+.2f}% (predicted {}, measured {}; peak at {})", w.c.id, w.peak_error * 100,
                                          group_digits(w.predicted_peak), group_digits(*w.c.measured.forward_peak_bytes), w.peak_at));
        }
        if (v.measured_overhead)
            for (const auto& [rt, pred] : v.predicted_overhead)
                d.notes.push_back(fmt::format("runtime overhead: measured {} B, runtime {} states {} B for {}: {}",
                                              group_digits(*v.measured_overhead), rt, group_digits(pred), v.gpu,
                                              pred == *v.measured_overhead ? "exact" : "DIFF"));
        for (const auto& c : v.claims)
            d.notes.push_back(
                fmt::format("per doubling of the prompt under {}: forward peak ×{:.2f} measured, ×{:.2f} predicted ({} pairs)", c.runtime,
                            c.measured_ratio, c.predicted_ratio, c.pairs));
    }
    d.notes.push_back(v.all_ok ? "result: every check passed" : "result: FAILED (see the cases marked FAIL)");
    return d;
}

}  // namespace

std::string render_validation_table(const Validation& v) {
    const ValidationDoc d = validation_doc(v);
    std::string out;
    for (const auto& h : d.header) out += h + "\n";
    out += "\n";
    if (!d.probe_title.empty()) {
        out += d.probe_title + "\n" + table_text(d.probe) + "\n";
        for (const auto& l : d.probe_notes) out += l + "\n";
        out += "\n";
    }
    if (!d.steps.text.empty()) {
        out += "step times (host wall clock of whole steps; predicted by the host/GPU pipeline of the time model)\n" + table_text(d.steps) +
               "\n";
        for (const auto& l : d.step_notes) out += l + "\n";
        out += "\n";
    }
    if (!d.train.text.empty()) {
        out += "training steps (bytes above what was allocated before the forward)\n" + table_text(d.train) + "\n";
        for (const auto& l : d.train_notes) out += l + "\n";
        out += "\n";
    }
    if (!d.cases.text.empty()) out += table_text(d.cases) + "\n";
    for (const auto& l : d.notes) out += l + "\n";
    return out;
}

std::string render_validation_markdown(const Validation& v) {
    const ValidationDoc d = validation_doc(v);
    std::string out = "**" + markdown_cell(d.header[0]) + "**\n\n" + markdown_cell(d.header[1]) + "\n\n";
    if (!d.probe_title.empty()) {
        out += markdown_cell(d.probe_title) + "\n\n" + table_markdown(d.probe) + "\n";
        for (const auto& l : d.probe_notes) out += "- " + markdown_cell(l) + "\n";
        out += "\n";
    }
    if (!d.steps.text.empty()) {
        out += "Step times (host wall clock of whole steps; predicted by the host/GPU pipeline of the time model)\n\n" +
               table_markdown(d.steps) + "\n";
        for (const auto& l : d.step_notes) out += "- " + markdown_cell(l) + "\n";
        out += "\n";
    }
    if (!d.train.text.empty()) {
        out += "Training steps (bytes above what was allocated before the forward)\n\n" + table_markdown(d.train) + "\n";
        for (const auto& l : d.train_notes) out += "- " + markdown_cell(l) + "\n";
        out += "\n";
    }
    if (!d.cases.text.empty()) out += table_markdown(d.cases) + "\n";
    for (const auto& l : d.notes) out += "- " + markdown_cell(l) + "\n";
    return out;
}

std::string render_validation_json(const Validation& v, const ToolInfo& tool) {
    using ojson = nlohmann::ordered_json;
    ojson cases = ojson::array();
    for (const auto& r : v.cases) {
        ojson c = {{"id", r.c.id},
                   {"status", r.c.status},
                   {"predicted_fits", r.predicted_fits},
                   {"predicted_allocation_bytes", r.predicted_allocation},
                   {"predicted_forward_peak_bytes", r.predicted_peak},
                   {"peak_at", r.peak_at},
                   {"ok", r.ok}};
        if (r.c.tp != 1) c["tp"] = r.c.tp;
        if (r.ranks_checked)
            c["ranks"] = {
                {"checked", r.ranks_checked}, {"ok", r.ranks_ok}, {"worst_rank", r.worst_rank}, {"worst_rank_error", r.worst_rank_error}};
        if (r.oom_explained)
            c["oom"] = {{"fragmentation", true},
                        {"request_bytes", r.oom_request},
                        {"allocated_bytes", r.oom_allocated},
                        {"reserved_unallocated_bytes", r.oom_stranded}};
        if (r.c.status == "ok") {
            c["measured_forward_peak_bytes"] = *r.c.measured.forward_peak_bytes;
            c["forward_peak_error"] = r.peak_error;
            if (r.predicted_kv) {
                c["predicted_kv_cache_bytes"] = *r.predicted_kv;
                c["measured_kv_cache_bytes"] = *r.c.measured.kv_cache_bytes;
            }
            if (r.predicted_logits) {
                c["predicted_logits_bytes"] = *r.predicted_logits;
                c["measured_logits_bytes"] = *r.c.measured.logits_bytes;
            }
            if (r.predicted_after) {
                c["predicted_after_step_bytes"] = *r.predicted_after;
                c["measured_after_step_bytes"] = *r.c.measured.after_step_bytes;
            }
        }
        cases.push_back(c);
    }
    ojson probe = ojson::array();
    for (const auto& r : v.probe) {
        ojson ks = ojson::array();
        for (const auto& k : r.kernels) {
            ojson kj = {{"name", k.name}, {"predicted_s", k.predicted_s}, {"bound", k.bound}};
            if (k.measured_s) kj["measured_s"] = *k.measured_s;
            ks.push_back(kj);
        }
        probe.push_back({{"id", r.c.id},
                         {"kind", r.c.kind},
                         {"status", r.c.status},
                         {"predicted_allocated_bytes", r.predicted_allocated},
                         {"measured_allocated_bytes", r.c.probe->allocated_bytes},
                         {"allocated_exact", r.allocated_exact},
                         {"device_used_bytes", r.device_measured ? ojson(r.device_used) : ojson(nullptr)},
                         {"device_reserved_bytes", r.device_measured ? ojson(r.device_reserved) : ojson(nullptr)},
                         {"device_exact", r.device_measured ? ojson(r.device_exact) : ojson(nullptr)},
                         {"driver_bytes", r.c.probe->driver_bytes},
                         {"driver_bytes_expected", {r.driver_low, r.driver_high}},
                         {"predicted_s", r.predicted_s},
                         {"measured_s", r.c.probe->time_s},
                         {"time_error", r.time_error},
                         {"bound", r.bound},
                         {"time_tolerance", r.time_tolerance},
                         {"kernels", ks},
                         {"ok", r.ok}});
    }
    ojson checks = ojson::array();
    for (const auto& c : v.checks)
        checks.push_back({{"suite", c.suite},
                          {"what", c.what},
                          {"rel_error", std::isfinite(c.rel_error) ? ojson(c.rel_error) : ojson(nullptr)},
                          {"tolerance", c.tolerance},
                          {"passed", c.passed}});
    ojson steps = ojson::array();
    for (const auto& r : v.steps)
        steps.push_back({{"id", r.c.id},
                         {"predicted_s", r.predicted_s},
                         {"host_s", r.host_s},
                         {"gpu_s", r.gpu_s},
                         {"measured_s", r.c.step->seconds},
                         {"error", r.error},
                         {"ok", r.ok}});
    ojson train = ojson::array();
    for (const auto& r : v.train)
        train.push_back({{"id", r.c.id},
                         {"predicted_saved_activation_bytes", r.saved},
                         {"measured_saved_activation_bytes", r.c.train->saved_activation_bytes},
                         {"saved_error", r.saved_error},
                         {"predicted_backward_peak_bytes", r.backward_peak},
                         {"measured_backward_peak_bytes", r.c.train->backward_peak_bytes},
                         {"backward_error", r.backward_error},
                         {"predicted_gradient_bytes", r.gradients},
                         {"gradient_error", r.gradient_error},
                         {"predicted_optimizer_bytes", r.optimizer},
                         {"optimizer_error", r.optimizer_error},
                         {"predicted_train_peak_bytes", r.train_peak},
                         {"train_peak_error", r.train_peak_error},
                         {"peak_at", r.peak_at},
                         {"ok", r.ok}});
    ojson ceilings = ojson::object();
    for (const auto& c : v.probe_claims) ceilings[c.name] = c.value;
    ojson claims = ojson::array();
    for (const auto& d : v.claims)
        claims.push_back({{"runtime", d.runtime},
                          {"pairs", d.pairs},
                          {"measured_ratio_per_doubling", d.measured_ratio},
                          {"predicted_ratio_per_doubling", d.predicted_ratio}});
    ojson prov = ojson::object();
    for (const auto& [k, val] : v.provenance) prov[k] = val;
    ojson j = {{"schema", "memtax.validation/1"},
               {"tool", {{"name", "memtax"}, {"version", tool.version}, {"git_sha", tool.git_sha}}},
               {"measurements", {{"file", v.file}, {"schema", v.schema}, {"source", v.source}, {"provenance", prov}}},
               {"gpu_profile", v.gpu},
               {"tolerance", v.tolerance},
               {"slack_bytes", v.slack_bytes},
               {"all_ok", v.all_ok},
               {"cases", cases},
               {"doubling", claims},
               {"gpu_calibrated", v.gpu_calibrated},
               {"bandwidth_tolerance", v.bandwidth_tolerance},
               {"compute_tolerance", v.compute_tolerance},
               {"probe_cases", probe},
               {"checks", checks},
               {"step_cases", steps},
               {"train_cases", train},
               {"step_median_error", v.step_median_error},
               {"step_worst_error", v.step_worst_error},
               {"ceilings", ceilings}};
    if (!v.cases.empty() && v.cases[v.worst].c.status == "ok")
        j["worst"] = {{"id", v.cases[v.worst].c.id}, {"forward_peak_error", v.cases[v.worst].peak_error}};
    return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string render_calibration_table(const CalibrationResult& c, const std::string& written_to) {
    std::string out = fmt::format("memtax calibrate: {} measured on {} (driver {}, {})\nrefines {} -> {}\n\n", c.measurements,
                                  c.provenance.at("gpu"), c.provenance.count("driver") ? c.provenance.at("driver") : "?",
                                  c.provenance.at("date"), c.base.name, c.calibrated.name);
    out += fmt::format("{:<20} {:>6} {:>12} {:>16} {:>18} {:>10}\n", "kernel class", "fits", "overhead", "bandwidth", "rate", "rms error");
    for (const auto& f : c.fits) {
        if (f.key == "allreduce") {
            out += fmt::format("{:<20} {:>6} {:>9.2f} us {:>11.3f} TB/s (bus) + {:.2f} us per ring step {:>4.1f}%\n", f.key, f.rates.cases,
                               f.rates.overhead_s * 1e6, f.rates.bandwidth / 1e12, f.rates.step_s * 1e6, f.rates.rms_error * 100);
            out += fmt::format("{:<20} {:>6} {:>9.2f} us {:>11.3f} TB/s (bus) + {:.2f} us per ring step\n", "  low-latency line", "",
                               f.rates.ll_overhead_s * 1e6, f.rates.ll_bandwidth / 1e12, f.rates.ll_step_s * 1e6);
            continue;
        }
        if (f.key == "launch") {
            out += fmt::format("{:<20} {:>6} {:>9.2f} us   alone; {:.2f} us queued behind another kernel\n", f.key, f.rates.cases,
                               f.rates.overhead_s * 1e6, f.rates.queued_s * 1e6);
            continue;
        }
        out += fmt::format("{:<20} {:>6} {:>9.2f} us {:>11.3f} TB/s {:>13.1f} TF/s {:>9.1f}%\n", f.key, f.rates.cases,
                           f.rates.overhead_s * 1e6, f.rates.bandwidth / 1e12, f.rates.flops / 1e12, f.rates.rms_error * 100);
    }
    out += fmt::format("\nefficiency: bandwidth {:.4g} of {:.3g} B/s, matmul {:.4g}, launch overhead {:.3g} s\n",
                       c.calibrated.bandwidth_efficiency, c.base.hbm_bandwidth.value, c.calibrated.matmul_efficiency,
                       c.calibrated.launch_overhead_s);
    if (!written_to.empty()) out += "wrote " + written_to + "\n";
    return out;
}

std::string render_calibration_markdown(const CalibrationResult& c, const std::string& written_to) {
    std::string out =
        fmt::format("## memtax calibrate\n\n{} measured on {} (driver {}, {}); refines {} into {}\n\n", markdown_cell(c.measurements),
                    c.provenance.at("gpu"), c.provenance.count("driver") ? c.provenance.at("driver") : "?", c.provenance.at("date"),
                    c.base.name, c.calibrated.name);
    Table t;
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"class", "kernel class", false},
                                                                           {"cases", "fits", true},
                                                                           {"overhead_s", "overhead µs", true},
                                                                           {"bandwidth_bytes_per_s", "bandwidth TB/s", true},
                                                                           {"flops_per_s", "rate TFLOP/s", true},
                                                                           {"queued_s", "queued µs", true},
                                                                           {"step_s", "ring step µs", true},
                                                                           {"rms_error", "rms error", true}})
        t.add_column(k, title, right);
    for (const auto& f : c.fits) {
        t.row();
        t.cell(f.key);
        t.cell(std::to_string(f.rates.cases));
        t.cell(fmt::format("{:.2f}", f.rates.overhead_s * 1e6));
        t.cell(fmt::format("{:.3f}", f.rates.bandwidth / 1e12));
        t.cell(fmt::format("{:.1f}", f.rates.flops / 1e12));
        t.cell(fmt::format("{:.2f}", f.rates.queued_s * 1e6));
        t.cell(fmt::format("{:.2f}", f.rates.step_s * 1e6));
        t.cell(fmt::format("{:.1f}%", f.rates.rms_error * 100));
    }
    out += table_markdown(t);
    out += fmt::format("\nefficiency: bandwidth {:.4g} of {:.3g} B/s, matmul {:.4g}, launch overhead {:.3g} s\n",
                       c.calibrated.bandwidth_efficiency, c.base.hbm_bandwidth.value, c.calibrated.matmul_efficiency,
                       c.calibrated.launch_overhead_s);
    if (!written_to.empty()) out += "\nwrote " + markdown_cell(written_to) + "\n";
    return out;
}

std::string render_calibration_json(const CalibrationResult& c, const std::string& written_to) {
    nlohmann::ordered_json fits = nlohmann::ordered_json::array();
    for (const auto& f : c.fits)
        fits.push_back({{"class", f.key},
                        {"cases", f.rates.cases},
                        {"overhead_s", f.rates.overhead_s},
                        {"bandwidth_bytes_per_s", f.rates.bandwidth},
                        {"flops_per_s", f.rates.flops},
                        {"queued_s", f.rates.queued_s},
                        {"rms_error", f.rates.rms_error},
                        {"kernels", f.kernels}});
    nlohmann::ordered_json j = {{"schema", "memtax.calibration/1"},        {"measurements", c.measurements}, {"base_profile", c.base.name},
                                {"calibrated_profile", c.calibrated.name}, {"written_to", written_to},       {"fits", fits}};
    return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Document accuracy_summary_document(const AccuracySummary& s) {
    Document d;
    d.schema = "memtax.accuracy-summary/1";
    d.title = "memtax accuracy in brief: median / worst error per kind, GPU and sample";
    d.notes.push_back(
        "Distinct configurations counted once; in sample: the lease a profile was fitted on, or the runs the engine was developed "
        "against; out: another lease, or shapes nothing was fitted on. Exact kinds show cases passed of cases. \"(bar not met)\" "
        "marks a group below the bar fixed before its run; docs/accuracy.md has every group, bar and case.");
    std::vector<std::string> gpus, kinds;
    for (const auto& r : s.rows) {
        if (std::find(gpus.begin(), gpus.end(), r.gpu) == gpus.end()) gpus.push_back(r.gpu);
        if (std::find(kinds.begin(), kinds.end(), r.kind) == kinds.end()) kinds.push_back(r.kind);
    }
    Document::Section brief{"brief", "Evidence in brief", {}, {}};
    Table& t = brief.table;
    t.add_column("kind", "kind");
    for (const auto& g : gpus)
        for (const char* sample : {"in", "out"}) {
            std::string short_name = g;
            for (const char* p : {"NVIDIA ", " 80GB HBM3"})
                if (auto at = short_name.find(p); at != std::string::npos) short_name.erase(at, std::string(p).size());
            t.add_column(fmt::format("{}_{}", short_name, sample),
                         fmt::format("{} {}", short_name, std::string(sample) == "in" ? "in sample" : "out of sample"), true);
        }
    for (const auto& k : kinds) {
        t.row();
        t.cell(k);
        for (const auto& g : gpus)
            for (bool in : {true, false}) {
                const AccuracyRow* row = nullptr;
                for (const auto& r : s.rows)
                    if (r.gpu == g && r.kind == k && r.in_sample == in) row = &r;
                if (!row) {
                    t.cell("-");
                    continue;
                }
                const bool exact_kind = k == "out of memory" || k == "runtime overhead";
                std::string c = exact_kind ? fmt::format("{} of {}", row->pass, row->configurations)
                                           : fmt::format("{:.1f}% / {:.1f}%", row->median * 100, row->worst * 100);
                if (!row->bar_met) c += " (bar not met)";
                t.cell(c);
            }
    }
    d.sections.push_back(std::move(brief));
    return d;
}

Document accuracy_document(const AccuracySummary& s, bool with_runs) {
    Document d;
    d.schema = "memtax.accuracy/1";
    d.title = "memtax accuracy: predicted against measured, per GPU, kind and sample";
    d.notes.push_back(
        "Each distinct configuration counts once per GPU, kind and sample: measured again (another lease, or the same "
        "configuration in two files), it counts at its worse result. The GPU is a column, not a second case. In sample: "
        "the lease a profile was fitted on, or the runs the engine was developed against; out of sample: another lease, "
        "or shapes nothing was fitted on. Bars: docs/accuracy.md.");
    Document::Section evidence{"evidence", "Evidence", {}, {}};
    Table& t = evidence.table;
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"gpu", "GPU", false},
                                                                           {"kind", "kind", false},
                                                                           {"sample", "sample", false},
                                                                           {"leases", "leases", true},
                                                                           {"configurations", "configs", true},
                                                                           {"pass", "pass", true},
                                                                           {"by_floor_only", "by floor only", true},
                                                                           {"median_error", "median", true},
                                                                           {"worst_error", "worst", true},
                                                                           {"bar", "run bar", false},
                                                                           {"bar_met", "met", false}})
        t.add_column(k, title, right);
    auto pct = [](double e) { return std::pair{fmt::format("{:.1f}%", e * 100), fmt::format("{:.6g}", e)}; };
    for (const auto& r : s.rows) {
        t.row();
        t.cell(r.gpu);
        t.cell(r.kind);
        t.cell(r.in_sample ? "in" : "out");
        t.cell(std::to_string(r.leases.size()));
        t.cell(std::to_string(r.configurations));
        t.cell(std::to_string(r.pass));
        t.cell(std::to_string(r.by_floor_only));
        const bool exact_kind = r.kind == "out of memory" || r.kind == "runtime overhead";
        auto [m, mraw] = pct(r.median);
        auto [w, wraw] = pct(r.worst);
        t.cell(exact_kind ? "-" : m, exact_kind ? "" : mraw);
        t.cell(exact_kind ? "-" : w, exact_kind ? "" : wraw);
        t.cell(r.bar);
        t.cell(r.bar_met ? "yes" : "NO", r.bar_met ? "true" : "false");
    }
    d.sections.push_back(std::move(evidence));
    if (!with_runs) return d;
    Document::Section listing{"runs", "Runs", {}, {}};
    Table& u = listing.table;
    for (auto [k, title] : std::initializer_list<std::pair<const char*, const char*>>{
             {"file", "file"}, {"gpu", "GPU"}, {"lease", "lease"}, {"sample", "sample"}, {"why", "why"}})
        u.add_column(k, title);
    for (size_t i = 0; i < s.runs.size(); ++i) {
        const auto& r = s.runs[i];
        u.row();
        u.cell(std::filesystem::path(r.file).filename().string());
        u.cell(s.run_gpus[i]);
        u.cell(r.lease);
        u.cell(r.in_sample ? "in" : "out");
        u.cell(r.why);
    }
    d.sections.push_back(std::move(listing));
    return d;
}

}  // namespace memtax
