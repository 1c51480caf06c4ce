#include "validate/validate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <nlohmann/json.hpp>

#include "model/kernel_model.hpp"
#include "model/memory_model.hpp"
#include "spec/loaders.hpp"

namespace memtax {
namespace {

// The profile for the file's device. For probe measurements (timed) a calibrated profile of that
// device wins over the datasheet one; memory measurements use the datasheet profile (the
// runtime profiles' overheads are keyed by its name).
GpuSpec gpu_for(const MeasurementFile& f, const std::string& gpu) {
    if (!gpu.empty()) return resolve_gpu(gpu);
    const bool timed = std::any_of(f.cases.begin(), f.cases.end(), [](const MeasuredCase& c) { return c.kind != "forward"; });
    const std::string device = f.provenance.at("gpu");
    std::vector<std::string> known;
    std::optional<GpuSpec> found;
    for (const auto& g : catalog_gpus()) {
        for (const auto& n : g.device_names) {
            if (n == device && (!found || (timed && g.calibrated && !found->calibrated) || (!timed && !g.calibrated && found->calibrated)))
                found = g;
            known.push_back(n);
        }
    }
    if (found) return *found;
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


u64 round_up(u64 b, u64 to) { return checked_mul((b + to - 1) / to, to, "driver bytes"); }
constexpr u64 kDriverGranularity = 2ull << 20;  // cudaMalloc maps device memory in 2 MiB pages
constexpr double kTimeSlack = 1e-6;              // s: CUDA events resolve about 0.5 us

ProbeResult predict_probe(const MeasuredCase& c, const GpuSpec& gpu, double bw_tol, double compute_tol) {
    ProbeResult r;
    r.c = c;
    const ProbeModel m = model_probe_case(c.kind, c.shape, gpu);
    const ProbeTime t = probe_time(m, gpu);
    r.predicted_allocated = m.allocated;
    r.predicted_s = t.seconds;
    r.bound = t.bound;
    for (size_t i = 0; i < m.kernels.size(); ++i) {
        ProbeKernelResult k{m.kernels[i].name, t.kernels[i].seconds, std::nullopt, t.kernels[i].bound};
        if (c.probe)
            for (const auto& [name, secs] : c.probe->kernels)
                if (name == k.name) k.measured_s = secs;
        r.kernels.push_back(k);
    }
    for (const auto& [name, bytes] : m.buffers) {
        r.driver_high = checked_add(r.driver_high, round_up(bytes, kDriverGranularity), "driver bytes");
        if (bytes >= kDriverGranularity) r.driver_low = checked_add(r.driver_low, round_up(bytes, kDriverGranularity), "driver bytes");
    }
    if (!c.probe) return r;  // skipped
    const MeasuredProbe& p = *c.probe;
    r.allocated_exact = p.allocated_bytes == m.allocated;
    // Buffers by name (a JSON object has no order).
    std::map<std::string, u64> measured(p.buffers.begin(), p.buffers.end()), predicted(m.buffers.begin(), m.buffers.end());
    for (const auto& [name, bytes] : predicted) {
        auto it = measured.find(name);
        if (it == measured.end()) r.buffer_diff = fmt::format("buffer {} predicted ({} B), not measured", name, bytes);
        else if (it->second != bytes) r.buffer_diff = fmt::format("{}: {} B measured, {} B predicted", name, it->second, bytes);
        if (!r.buffer_diff.empty()) break;
    }
    for (const auto& [name, bytes] : measured)
        if (r.buffer_diff.empty() && !predicted.count(name)) r.buffer_diff = fmt::format("buffer {} measured ({} B), not predicted", name, bytes);
    r.allocated_exact = r.allocated_exact && r.buffer_diff.empty();
    if (c.kind == "attention-sdpa") {
        // PyTorch's kernels may take a small workspace besides the output (cuDNN's, split-K
        // partials for decode): the peak must hold the output and at most 1 MiB more.
        r.workspace_bytes = p.allocated_bytes >= m.allocated ? p.allocated_bytes - m.allocated : 0;
        r.allocated_exact = r.buffer_diff.empty() && p.allocated_bytes >= m.allocated && r.workspace_bytes <= kMiB;
        r.allocated_within_workspace = true;
    }
    // The driver must have mapped at least the large buffers (2 MiB pages); it can map more: the
    // first use of a cuBLAS kernel loads its module into device memory (CUDA lazy loading).
    r.driver_ok = !p.has_driver_bytes || p.driver_bytes >= r.driver_low;
    r.time_error = rel(r.predicted_s, p.time_s);
    r.time_tolerance = r.bound == "compute" ? compute_tol : bw_tol;
    // Below a few microseconds the events' resolution and the launch jitter dominate: an
    // absolute floor of kTimeSlack, as for the forward peak's byte slack.
    r.time_ok = std::fabs(r.time_error) <= r.time_tolerance || std::fabs(r.predicted_s - p.time_s) <= kTimeSlack;
    r.time_by_slack_only = r.time_ok && std::fabs(r.time_error) > r.time_tolerance;
    r.ok = c.status == "ok" && r.allocated_exact && r.driver_ok && r.time_ok && p.unwritten_outputs == 0;
    return r;
}

double bytes_per_s(const ProbeResult& r, double bytes) { return bytes / r.c.probe->time_s; }

std::vector<Validation::Claim> probe_claims(const std::vector<ProbeResult>& probe) {
    std::vector<Validation::Claim> out;
    double memcpy_bw = 0, copy_bw = 0, read_bw = 0;
    for (const auto& r : probe) {
        if (r.c.kind != "stream" || r.c.status != "ok") continue;
        const double moved = static_cast<double>(r.c.shape.bytes) * (r.c.shape.op == "copy" || r.c.shape.op == "memcpy" ? 2 : 1);
        const double bw = bytes_per_s(r, moved);
        if (r.c.shape.op == "memcpy") memcpy_bw = std::max(memcpy_bw, bw);
        if (r.c.shape.op == "copy") copy_bw = std::max(copy_bw, bw);
        if (r.c.shape.op == "read") read_bw = std::max(read_bw, bw);
    }
    if (memcpy_bw > 0 && copy_bw > 0)
        out.push_back({"stream_copy_vs_memcpy", copy_bw / memcpy_bw,
                       fmt::format("stream copy {:.3f} TB/s = {:.1f}% of cudaMemcpy's device-to-device {:.3f} TB/s (read + written bytes)",
                                   copy_bw / 1e12, 100 * copy_bw / memcpy_bw, memcpy_bw / 1e12)});
    if (read_bw > 0) out.push_back({"stream_read_bytes_per_s", read_bw, fmt::format("stream read {:.3f} TB/s", read_bw / 1e12)});
    for (const auto& r : probe) {
        if (r.c.kind != "decode-paged" || r.c.status != "ok" || r.c.shape.context < 32768 || copy_bw == 0) continue;
        const auto& s = r.c.shape;
        const double kv = 2.0 * s.batch * s.context * s.kv_heads * s.head_dim * 2;
        const double bw = bytes_per_s(r, kv);
        out.push_back({"decode_vs_stream:" + r.c.id, bw / copy_bw,
                       fmt::format("{}: K+V read at {:.3f} TB/s = {:.1f}% of the stream copy", r.c.id, bw / 1e12, 100 * bw / copy_bw)});
    }
    for (const auto& f : probe) {
        if (f.c.kind != "attention-flash" || f.c.status != "ok") continue;
        const auto& s = f.c.shape;
        const u64 qkvo = 4 * s.batch * s.heads * s.context * s.head_dim * 2;
        std::string vs_eager = "eager did not fit";
        for (const auto& e : probe)
            if (e.c.kind == "attention-eager" && e.c.status == "ok" && e.c.shape.batch == s.batch && e.c.shape.heads == s.heads &&
                e.c.shape.context == s.context) {
                const double speed = e.c.probe->time_s / f.c.probe->time_s;
                out.push_back({"flash_speedup:" + f.c.id, speed, ""});
                vs_eager = fmt::format("{:.1f}× faster than eager ({:.3f} ms vs {:.3f} ms; eager allocates {:.2f} GiB)", speed,
                                       f.c.probe->time_s * 1e3, e.c.probe->time_s * 1e3, e.c.probe->allocated_bytes / kGiB);
            }
        const double extra = static_cast<double>(f.c.probe->allocated_bytes) - static_cast<double>(qkvo);
        out.push_back({"flash_extra_bytes:" + f.c.id, extra,
                       fmt::format("{}: {} B beyond q, k, v, out; {}", f.c.id, group_digits(static_cast<u64>(std::max(0.0, extra))), vs_eager)});
    }
    return out;
}

}  // namespace

Validation validate_measurements(const std::string& path, const std::string& gpu_arg, double tolerance, u64 slack_bytes,
                                 double bandwidth_tolerance, double compute_tolerance) {
    MeasurementFile f = load_measurements(path);
    return validate_file(f, gpu_for(f, gpu_arg), tolerance, slack_bytes, bandwidth_tolerance, compute_tolerance);
}

Validation validate_file(const MeasurementFile& f, const GpuSpec& gpu, double tolerance, u64 slack_bytes, double bandwidth_tolerance,
                         double compute_tolerance) {
    Validation v;
    v.file = f.file;
    v.schema = f.schema;
    v.source = f.source;
    v.provenance = f.provenance;
    v.tolerance = tolerance;
    v.slack_bytes = slack_bytes;
    v.bandwidth_tolerance = bandwidth_tolerance;
    v.compute_tolerance = compute_tolerance;
    v.gpu = gpu.name;
    v.gpu_calibrated = gpu.calibrated;
    v.checks = f.checks;
    for (const auto& ch : f.checks)
        if (!ch.passed || ch.rel_error > ch.tolerance || ch.unwritten) v.all_ok = false;
    std::map<std::string, ModelSpec> models;
    std::map<std::string, RuntimeSpec> runtimes;
    for (size_t i = 0; i < f.cases.size(); ++i) {
        const auto& c = f.cases[i];
        if (c.kind != "forward") continue;
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
        if (c.kind != "forward") {
            if (c.status == "skipped") continue;
            ProbeResult pr = predict_probe(c, gpu, bandwidth_tolerance, compute_tolerance);
            if (!pr.ok) v.all_ok = false;
            v.probe.push_back(std::move(pr));
            continue;
        }
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
    v.probe_claims = probe_claims(v.probe);
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

namespace {

std::string secs(double s) {
    if (s >= 1e-3) return fmt::format("{:.3f} ms", s * 1e3);
    return fmt::format("{:.1f} us", s * 1e6);
}

std::string render_probe(const Validation& v) {
    std::string out = fmt::format("probe cases (time predicted with {} rates of {}; memory-bound and overhead-bound within {:.0f}%, compute-bound within {:.0f}%)\n",
                                  v.gpu_calibrated ? "calibrated" : "ASSUMED (uncalibrated)", v.gpu, v.bandwidth_tolerance * 100,
                                  v.compute_tolerance * 100);
    out += fmt::format("{:<38} {:>15} {:>15} {:>6} {:>12} {:>12} {:>8} {:<8} {}\n", "case", "alloc predicted", "alloc measured", "memory",
                       "time pred", "time meas", "error", "bound", "result");
    size_t exact = 0, n = 0, worst = 0;
    std::map<std::string, std::pair<size_t, size_t>> by_bound;
    for (size_t i = 0; i < v.probe.size(); ++i) {
        const auto& r = v.probe[i];
        const auto& p = *r.c.probe;
        ++n;
        exact += r.allocated_exact && !r.allocated_within_workspace;
        auto& b = by_bound[r.bound];
        ++b.second;
        b.first += r.time_ok;
        if (std::fabs(r.time_error) > std::fabs(v.probe[worst].time_error)) worst = i;
        std::string result = r.ok ? (r.time_by_slack_only ? "ok (within 1 us)" : "ok") : "FAIL";
        if (r.c.status == "failed") result += " (" + r.c.reason + ")";
        else if (!r.buffer_diff.empty()) result += " (" + r.buffer_diff + ")";
        else if (!r.driver_ok) result += fmt::format(" (driver took {} B, less than the {} B of 2 MiB pages)", group_digits(p.driver_bytes), group_digits(r.driver_low));
        else if (p.driver_bytes > r.driver_high) result += fmt::format(" (driver +{} B: module load)", group_digits(p.driver_bytes - r.driver_high));
        if (r.allocated_within_workspace && r.allocated_exact && r.workspace_bytes)
            result += fmt::format(" (+{} B kernel workspace)", group_digits(r.workspace_bytes));
        out += fmt::format("{:<38} {:>15} {:>15} {:>6} {:>12} {:>12} {:>+7.1f}% {:<8} {}\n", r.c.id, group_digits(r.predicted_allocated),
                           group_digits(p.allocated_bytes), r.allocated_exact ? (r.allocated_within_workspace ? "ok" : "exact") : "DIFF",
                           secs(r.predicted_s), secs(p.time_s),
                           r.time_error * 100, r.bound, result);
        if (!p.kernels.empty())
            for (const auto& k : r.kernels)
                out += fmt::format("    {:<34} {:>47} {:>12} {:>8} {}\n", "· " + k.name, secs(k.predicted_s),
                                   k.measured_s ? secs(*k.measured_s) : "-",
                                   k.measured_s ? fmt::format("{:+.1f}%", rel(k.predicted_s, *k.measured_s) * 100) : "", k.bound);
    }
    if (n) {
        size_t sdpa = 0;
        for (const auto& r : v.probe) sdpa += r.allocated_within_workspace && r.allocated_exact;
        out += fmt::format("\n{} probe cases: allocated bytes exact in {}{}; time within tolerance:", n, exact,
                           sdpa ? fmt::format(" (+{} PyTorch SDPA cases: the output exact, a workspace of at most 1 MiB beside it)", sdpa) : "");
        for (const auto& [bound, c] : by_bound) out += fmt::format(" {}-bound {}/{}", bound, c.first, c.second);
        out += fmt::format("; worst {} {:+.1f}%\n", v.probe[worst].c.id, v.probe[worst].time_error * 100);
    }
    for (const auto& c : v.checks)
        out += fmt::format("check {:<16} {:<44} rel error {:.2e} (tolerance {:.0e}){} {}\n", c.suite, c.what, c.rel_error, c.tolerance,
                           c.unwritten ? fmt::format(", {} outputs unwritten", c.unwritten) : "", c.passed ? "passed" : "FAILED");
    for (const auto& c : v.probe_claims)
        if (!c.text.empty()) out += "ceiling: " + c.text + "\n";
    out += "\n";
    return out;
}

}  // namespace

std::string render_validation_table(const Validation& v) {
    std::string out = fmt::format("memtax validate: {} ({}; source {})\nmeasured on {} (driver {}), {}; predicted with GPU profile {}\n\n",
                                  v.file, v.schema, v.source, v.provenance.at("gpu"),
                                  v.provenance.count("driver") ? v.provenance.at("driver") : "?", v.provenance.at("date"), v.gpu);
    if (!v.probe.empty() || !v.checks.empty()) out += render_probe(v);
    if (v.cases.empty()) {
        out += v.all_ok ? "result: every check passed\n" : "result: FAILED (see the cases marked FAIL)\n";
        return out;
    }
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
    ojson probe = ojson::array();
    for (const auto& r : v.probe) {
        ojson ks = ojson::array();
        for (const auto& k : r.kernels) {
            ojson kj = {{"name", k.name}, {"predicted_s", k.predicted_s}, {"bound", k.bound}};
            if (k.measured_s) kj["measured_s"] = *k.measured_s;
            ks.push_back(kj);
        }
        probe.push_back({{"id", r.c.id}, {"kind", r.c.kind}, {"status", r.c.status}, {"predicted_allocated_bytes", r.predicted_allocated},
                         {"measured_allocated_bytes", r.c.probe->allocated_bytes}, {"allocated_exact", r.allocated_exact},
                         {"driver_bytes", r.c.probe->driver_bytes}, {"driver_bytes_expected", {r.driver_low, r.driver_high}},
                         {"predicted_s", r.predicted_s}, {"measured_s", r.c.probe->time_s}, {"time_error", r.time_error},
                         {"bound", r.bound}, {"time_tolerance", r.time_tolerance}, {"kernels", ks}, {"ok", r.ok}});
    }
    ojson checks = ojson::array();
    for (const auto& c : v.checks)
        checks.push_back({{"suite", c.suite}, {"what", c.what}, {"rel_error", std::isfinite(c.rel_error) ? ojson(c.rel_error) : ojson(nullptr)},
                          {"tolerance", c.tolerance}, {"passed", c.passed}});
    ojson ceilings = ojson::object();
    for (const auto& c : v.probe_claims) ceilings[c.name] = c.value;
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
               {"doubling", claims},
               {"gpu_calibrated", v.gpu_calibrated},
               {"bandwidth_tolerance", v.bandwidth_tolerance},
               {"compute_tolerance", v.compute_tolerance},
               {"probe_cases", probe},
               {"checks", checks},
               {"ceilings", ceilings}};
    if (!v.cases.empty() && v.cases[v.worst].c.status == "ok")
        j["worst"] = {{"id", v.cases[v.worst].c.id}, {"forward_peak_error", v.cases[v.worst].peak_error}};
    return j.dump(2) + "\n";
}

}  // namespace memtax
