#include "validate/accuracy.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "validate/validate.hpp"

namespace memtax {
namespace {

struct Result {
    bool pass = true, by_floor_only = false;
    double error = 0;  // |relative error|
};

// One configuration's result, merged over the runs that measured it: it passes only if every
// run passed, and keeps its worst error.
void merge(Result& into, const Result& r, bool first) {
    if (first) {
        into = r;
        return;
    }
    into.by_floor_only = (into.pass && into.by_floor_only) || (r.pass && r.by_floor_only);
    into.pass = into.pass && r.pass;
    into.error = std::max(into.error, r.error);
}

// The order kinds are listed in.
int kind_rank(const std::string& k) {
    static const std::vector<std::string> order = {"prefill peak",       "decode peak", "out of memory", "training",  "step time",
                                                   "training step time", "probe time",  "probe memory",  "SDPA time", "runtime overhead"};
    return static_cast<int>(std::find(order.begin(), order.end(), k) - order.begin());
}

// The run bar of a kind (docs/accuracy.md, "Bars").
void judge(AccuracyRow& row) {
    const size_t n = row.configurations;
    if (row.kind == "step time" || row.kind == "training step time") {
        row.bar = "median at most 10%, worst at most 20%";
        row.bar_met = row.median <= 0.10 && row.worst <= 0.20;
    } else if (row.kind == "probe time" || row.kind == "SDPA time") {
        row.bar = "at least 90% of cases pass, median at most 5%";
        row.bar_met = 10 * row.pass >= 9 * n && row.median <= 0.05;
    } else {
        row.bar = "every case passes";
        row.bar_met = row.pass == n;
    }
}

}  // namespace

AccuracySummary accuracy_summary(const std::vector<RecordedRun>& runs) {
    AccuracySummary s;
    s.runs = runs;
    using Key = std::tuple<std::string, std::string, bool>;  // gpu, kind, in sample
    std::map<Key, std::map<std::string, Result>> groups;
    std::map<Key, AccuracyRow> rows;
    for (const auto& run : runs) {
        const Validation v = validate_measurements(run.file, "", 0.05, 4ull << 20);
        const std::string gpu = v.provenance.count("gpu") ? v.provenance.at("gpu") : "?";
        s.run_gpus.push_back(gpu);
        auto add = [&](const std::string& kind, const std::string& id, const Result& r) {
            const Key k{gpu, kind, run.in_sample};
            AccuracyRow& row = rows[k];
            row.gpu = gpu;
            row.kind = kind;
            row.in_sample = run.in_sample;
            row.leases.insert(run.lease);
            auto& g = groups[k];
            const bool first = !g.count(id);
            merge(g[id], r, first);
        };
        for (const auto& r : v.cases) {
            const std::string& id = r.c.id;
            if (r.c.status == "oom")
                add("out of memory", id, {r.ok, false, 0});
            else
                add(r.c.mode == "decode" ? "decode peak" : "prefill peak", id, {r.ok, r.peak_by_slack_only, std::fabs(r.peak_error)});
        }
        for (const auto& t : v.train)
            add("training", t.c.id, {t.ok, false, std::max(std::fabs(t.saved_error), std::fabs(t.backward_error))});
        for (const auto& st : v.steps) add("step time", st.c.id, {st.ok, false, std::fabs(st.error)});
        for (const auto& t : v.train)
            if (t.timed) add("training step time", t.c.id, {std::fabs(t.step_error) <= 0.20, false, std::fabs(t.step_error)});
        for (const auto& p : v.probe) {
            add(p.c.kind == "attention-sdpa" ? "SDPA time" : "probe time", p.c.id,
                {p.time_ok, p.time_by_slack_only, std::fabs(p.time_error)});
            if (p.device_measured) {
                const double pred = static_cast<double>(p.predicted_allocated);
                const double err = pred > 0 ? std::fabs(static_cast<double>(p.device_used) - pred) / pred : (p.device_used ? 1.0 : 0.0);
                add("probe memory", p.c.id, {p.device_exact, false, err});
            }
        }
        if (v.measured_overhead) add("runtime overhead", "process", {v.overhead_exact, false, 0});
    }
    for (auto& [k, row] : rows) {
        std::vector<double> errors;
        for (const auto& [id, r] : groups[k]) {
            ++row.configurations;
            row.pass += r.pass;
            row.by_floor_only += r.pass && r.by_floor_only;
            errors.push_back(r.error);
        }
        std::sort(errors.begin(), errors.end());
        const size_t n = errors.size();
        row.median = n % 2 ? errors[n / 2] : (errors[n / 2 - 1] + errors[n / 2]) / 2;
        row.worst = errors.back();
        judge(row);
        s.rows.push_back(std::move(row));
    }
    std::stable_sort(s.rows.begin(), s.rows.end(), [](const AccuracyRow& a, const AccuracyRow& b) {
        return std::make_tuple(a.gpu, kind_rank(a.kind), !a.in_sample) < std::make_tuple(b.gpu, kind_rank(b.kind), !b.in_sample);
    });
    return s;
}

}  // namespace memtax
