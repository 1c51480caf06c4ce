#include "validate/validate.hpp"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <nlohmann/json.hpp>

#include "model/memory_model.hpp"
#include "spec/loaders.hpp"

namespace memtax {
namespace {

GpuSpec gpu_for(const MeasurementFile& f, const std::string& gpu) {
    if (!gpu.empty()) return resolve_gpu(gpu);
    const std::string device = f.provenance.at("gpu");
    std::vector<std::string> known;
    for (const auto& g : catalog_gpus()) {
        for (const auto& n : g.device_names) {
            if (n == device) return g;
            known.push_back(n);
        }
    }
    throw InputError(SourcePos{f.file, 0, 0}, "provenance.gpu",
                     fmt::format("\"{}\" matches no GPU profile's device_names ({}); pass --gpu", device, fmt::join(known, ", ")));
}

double rel(double pred, double meas) { return meas == 0 ? (pred == 0 ? 0.0 : 1.0) : (pred - meas) / meas; }

// "12.50 GiB" -> bytes (PyTorch's format_size: bytes, KiB, MiB, GiB with two decimals).
double size_of(const std::string& number, const std::string& unit) {
    const double v = std::stod(number);
    if (unit == "GiB") return v * 1073741824.0;
    if (unit == "MiB") return v * 1048576.0;
    if (unit == "KiB") return v * 1024.0;
    return v;
}

struct OomMessage {
    double request = 0, allocated = 0, stranded = 0;
};

// Reads CUDACachingAllocator's out-of-memory message (c10/cuda/CUDACachingAllocator.cpp):
// "Tried to allocate X. ... Of the allocated memory Y is allocated by PyTorch, and Z is
// reserved by PyTorch but unallocated."
std::optional<OomMessage> parse_oom(const std::string& reason) {
    static const std::regex tried(R"(Tried to allocate ([0-9.]+) (GiB|MiB|KiB|bytes))");
    static const std::regex held(
        R"(Of the allocated memory ([0-9.]+) (GiB|MiB|KiB|bytes) is allocated by PyTorch, and ([0-9.]+) (GiB|MiB|KiB|bytes) is reserved by PyTorch but unallocated)");
    std::smatch a, b;
    if (!std::regex_search(reason, a, tried) || !std::regex_search(reason, b, held)) return std::nullopt;
    return OomMessage{size_of(a[1], a[2]), size_of(b[1], b[2]), size_of(b[3], b[4])};
}

}  // namespace

Validation validate_measurements(const std::string& path, const std::string& gpu_arg, double tolerance, u64 slack_bytes) {
    MeasurementFile f = load_measurements(path);
    Validation v;
    v.file = path;
    v.schema = f.schema;
    v.source = f.source;
    v.provenance = f.provenance;
    v.tolerance = tolerance;
    v.slack_bytes = slack_bytes;
    const GpuSpec gpu = gpu_for(f, gpu_arg);
    v.gpu = gpu.name;
    std::map<std::string, ModelSpec> models;
    std::map<std::string, RuntimeSpec> runtimes;
    for (size_t i = 0; i < f.cases.size(); ++i) {
        const auto& c = f.cases[i];
        // A name the catalog does not know is an error in this file, at this case.
        auto at_case = [&](const char* field, auto resolve) {
            try {
                return resolve();
            } catch (const InputError& e) {
                if (!e.pos().file.empty()) throw;
                throw InputError(SourcePos{f.file, c.line, 0}, fmt::format("cases[{}].{}", i, field), e.message());
            }
        };
        if (!models.count(c.model)) models.emplace(c.model, at_case("model", [&] { return resolve_model(c.model); }));
        if (!runtimes.count(c.runtime)) runtimes.emplace(c.runtime, at_case("runtime", [&] { return resolve_runtime(c.runtime); }));
    }
    if (f.runtime_overhead_bytes) {
        v.measured_overhead = f.runtime_overhead_bytes;
        for (const auto& [name, rt] : runtimes) {
            u64 pred = rt.overhead_for(gpu.name).bytes;
            v.predicted_overhead.push_back({name, pred});
            if (pred != *f.runtime_overhead_bytes) v.overhead_exact = false;
        }
        if (!v.overhead_exact) v.all_ok = false;
    }
    double worst = -1;
    for (const auto& c : f.cases) {
        if (c.status == "skipped") continue;
        CaseResult r;
        r.c = c;
        Workload w;
        w.mode = c.mode == "decode" ? Mode::Decode : Mode::Prefill;
        w.batch = c.batch;
        w.context = c.context;
        w.runtime = runtimes.at(c.runtime);
        w.logits_kept = c.logits_kept;
        Estimate e = estimate(models.at(c.model), gpu, Deployment{1, 1}, w);
        r.predicted_fits = e.fits;
        r.predicted_peak = e.forward_peak;
        r.peak_at = e.peak_at;
        if (c.status == "oom") {
            r.predicted_allocation = e.resident_before + e.forward_peak;
            if (!e.fits) {
                r.ok = true;
            } else if (auto oom = parse_oom(c.reason)) {
                r.oom_request = oom->request;
                r.oom_allocated = oom->allocated;
                r.oom_stranded = oom->stranded;
                const double wanted = oom->allocated + oom->request;
                r.ok = static_cast<double>(r.predicted_allocation) >= (1.0 - tolerance) * wanted && oom->stranded > 0;
                r.oom_explained = r.ok;
            } else {
                r.ok = static_cast<double>(e.total) >= (1.0 - tolerance) * static_cast<double>(e.capacity);
                r.oom_borderline = r.ok;
            }
        } else {
            const auto& m = c.measured;
            r.peak_error = rel(static_cast<double>(e.forward_peak), static_cast<double>(*m.forward_peak_bytes));
            const u64 meas = *m.forward_peak_bytes;
            const u64 diff = e.forward_peak > meas ? e.forward_peak - meas : meas - e.forward_peak;
            r.peak_ok = std::fabs(r.peak_error) <= tolerance || diff <= slack_bytes;
            r.peak_by_slack_only = r.peak_ok && std::fabs(r.peak_error) > tolerance;
            if (m.kv_cache_bytes) {
                r.predicted_kv = e.kv_cache_visible;
                r.kv_exact = e.kv_cache_visible == *m.kv_cache_bytes;
            }
            if (m.logits_bytes) {
                r.predicted_logits = e.logits_output;
                r.logits_exact = e.logits_output == *m.logits_bytes;
            }
            // What the prefill leaves allocated: the cache storage and the logits.
            if (m.after_step_bytes && w.mode == Mode::Prefill) {
                r.predicted_after = static_cast<std::int64_t>(e.kv_cache + e.logits_output);
                r.after_error = rel(static_cast<double>(*r.predicted_after), static_cast<double>(*m.after_step_bytes));
                r.after_ok = std::fabs(r.after_error) <= tolerance;
            }
            r.ok = r.peak_ok && r.kv_exact && r.logits_exact && r.after_ok;
            if (std::fabs(r.peak_error) > worst) {
                worst = std::fabs(r.peak_error);
                v.worst = v.cases.size();
            }
        }
        if (!r.ok) v.all_ok = false;
        v.cases.push_back(std::move(r));
    }
    // The seed's claim: per doubling of the prompt, how the forward peak grows, per runtime.
    std::map<std::string, std::map<std::string, std::map<u64, const CaseResult*>>> series;
    for (const auto& r : v.cases)
        if (r.c.status == "ok" && r.c.mode == "prefill" && r.c.logits_kept == 1)
            series[r.c.runtime][fmt::format("{}/b{}", r.c.model, r.c.batch)][r.c.context] = &r;
    for (const auto& [rt, by_shape] : series) {
        DoublingClaim d;
        d.runtime = rt;
        double lm = 0, lp = 0;
        for (const auto& [shape, pts] : by_shape)
            for (const auto& [ctx, r] : pts) {
                auto next = pts.find(ctx * 2);
                if (next == pts.end()) continue;
                lm += std::log(static_cast<double>(*next->second->c.measured.forward_peak_bytes) /
                               static_cast<double>(*r->c.measured.forward_peak_bytes));
                lp += std::log(static_cast<double>(next->second->predicted_peak) / static_cast<double>(r->predicted_peak));
                ++d.pairs;
            }
        if (d.pairs == 0) continue;
        d.measured_ratio = std::exp(lm / d.pairs);
        d.predicted_ratio = std::exp(lp / d.pairs);
        v.claims.push_back(d);
    }
    return v;
}

std::string render_validation_table(const Validation& v) {
    std::string out = fmt::format("memtax validate: {} ({}; source {})\nmeasured on {} (driver {}), {}; predicted with GPU profile {}\n\n",
                                  v.file, v.schema, v.source, v.provenance.at("gpu"),
                                  v.provenance.count("driver") ? v.provenance.at("driver") : "?", v.provenance.at("date"), v.gpu);
    out += fmt::format("{:<46} {:>16} {:>16} {:>8}  {:<5} {:<6} {}\n", "case", "predicted peak", "measured peak", "error", "KV",
                       "logits", "result");
    size_t ok_cases = 0, ooms = 0, oom_agree = 0, oom_fragmented = 0;
    for (const auto& r : v.cases) {
        if (r.c.status == "oom") {
            ++ooms;
            if (r.ok && !r.oom_borderline && !r.oom_explained) ++oom_agree;
            if (r.oom_explained) ++oom_fragmented;
            std::string verdict = !r.ok ? "FAIL (predicted to fit)"
                                  : r.oom_borderline ? "ok (predicted total within the tolerance of capacity)"
                                  : r.oom_explained
                                      ? fmt::format("ok: fragmentation — allocated {:.2f} + request {:.2f} GiB within the predicted {:.2f} GiB; {:.2f} GiB reserved but unallocated",
                                                    r.oom_allocated / kGiB, r.oom_request / kGiB, to_gib(r.predicted_allocation), r.oom_stranded / kGiB)
                                      : "ok (predicted: does not fit)";
            out += fmt::format("{:<46} {:>16} {:>16} {:>8}  {:<5} {:<6} {}\n", r.c.id, group_digits(r.predicted_peak), "OOM", "",
                               "", "", verdict);
            continue;
        }
        ++ok_cases;
        out += fmt::format("{:<46} {:>16} {:>16} {:>+7.2f}%  {:<5} {:<6} {}\n", r.c.id, group_digits(r.predicted_peak),
                           group_digits(*r.c.measured.forward_peak_bytes), r.peak_error * 100,
                           !r.predicted_kv ? "-" : r.kv_exact ? "exact" : "DIFF", !r.predicted_logits ? "-" : r.logits_exact ? "exact" : "DIFF",
                           !r.ok ? "FAIL" : r.peak_by_slack_only ? "ok (within the absolute slack)" : "ok");
    }
    size_t within = 0, kv_exact = 0, kv_n = 0;
    for (const auto& r : v.cases) {
        if (r.c.status != "ok") continue;
        within += r.peak_ok;
        if (r.predicted_kv) {
            ++kv_n;
            kv_exact += r.kv_exact;
        }
    }
    size_t by_slack = 0;
    for (const auto& r : v.cases) by_slack += r.peak_by_slack_only;
    out += fmt::format("\n{} measured cases: forward peak within {:.0f}% in {}{}, KV bytes exact in {} of {}", ok_cases, v.tolerance * 100,
                       within - by_slack,
                       by_slack ? fmt::format(" (+{} within the {} B absolute slack)", by_slack, group_digits(v.slack_bytes)) : "",
                       kv_exact, kv_n);
    if (ooms)
        out += fmt::format("; {} out-of-memory cases, {} predicted not to fit{}{}", ooms, oom_agree,
                           oom_fragmented ? fmt::format(", {} the allocator's fragmentation (the allocated bytes within the prediction)", oom_fragmented) : "",
                           ooms - oom_agree - oom_fragmented
                               ? fmt::format(", {} within {:.0f}% of capacity", ooms - oom_agree - oom_fragmented, v.tolerance * 100)
                               : "");
    out += "\n";
    if (ok_cases) {
        const auto& w = v.cases[v.worst];
        out += fmt::format("worst case: {} {:+.2f}% (predicted {}, measured {}; peak at {})\n", w.c.id, w.peak_error * 100,
                           group_digits(w.predicted_peak), group_digits(*w.c.measured.forward_peak_bytes), w.peak_at);
    }
    if (v.measured_overhead)
        for (const auto& [rt, pred] : v.predicted_overhead)
            out += fmt::format("runtime overhead: measured {} B, runtime {} states {} B for {}: {}\n", group_digits(*v.measured_overhead), rt,
                               group_digits(pred), v.gpu, pred == *v.measured_overhead ? "exact" : "DIFF");
    for (const auto& d : v.claims)
        out += fmt::format("per doubling of the prompt under {}: forward peak ×{:.2f} measured, ×{:.2f} predicted ({} pairs)\n", d.runtime,
                           d.measured_ratio, d.predicted_ratio, d.pairs);
    out += v.all_ok ? "result: every check passed\n" : "result: FAILED (see the cases marked FAIL)\n";
    return out;
}

std::string render_validation_json(const Validation& v, const ToolInfo& tool) {
    using ojson = nlohmann::ordered_json;
    ojson cases = ojson::array();
    for (const auto& r : v.cases) {
        ojson c = {{"id", r.c.id}, {"status", r.c.status}, {"predicted_fits", r.predicted_fits},
                   {"predicted_allocation_bytes", r.predicted_allocation},
                   {"predicted_forward_peak_bytes", r.predicted_peak}, {"peak_at", r.peak_at}, {"ok", r.ok}};
        if (r.oom_explained)
            c["oom"] = {{"fragmentation", true}, {"request_bytes", r.oom_request}, {"allocated_bytes", r.oom_allocated},
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
    ojson claims = ojson::array();
    for (const auto& d : v.claims)
        claims.push_back({{"runtime", d.runtime}, {"pairs", d.pairs}, {"measured_ratio_per_doubling", d.measured_ratio},
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
               {"doubling", claims}};
    if (!v.cases.empty() && v.cases[v.worst].c.status == "ok")
        j["worst"] = {{"id", v.cases[v.worst].c.id}, {"forward_peak_error", v.cases[v.worst].peak_error}};
    return j.dump(2) + "\n";
}

}  // namespace memtax
