#include "validate/validate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

#include "model/kernel_model.hpp"
#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "model/train_time.hpp"
#include "model/training.hpp"
#include "spec/loaders.hpp"
#include "topology/topology.hpp"

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
                     fmt::format("\"{}\" matches no GPU profile's device_names ({}); pass validate.gpu", device, fmt::join(known, ", ")));
}

double rel(double pred, double meas) { return relative_error(pred, meas); }

// A byte count predicted within the relative tolerance, or within the absolute slack (the caching
// allocator's unsplit blocks, a library's first-call workspace).
bool bytes_within(u64 pred, u64 meas, double tolerance, u64 slack_bytes) {
    const u64 diff = pred > meas ? pred - meas : meas - pred;
    return std::fabs(rel(static_cast<double>(pred), static_cast<double>(meas))) <= tolerance || diff <= slack_bytes;
}

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
constexpr double kTimeSlack = 1e-6;             // s: CUDA events resolve about 0.5 us

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
        if (it == measured.end())
            r.buffer_diff = fmt::format("buffer {} predicted ({} B), not measured", name, bytes);
        else if (it->second != bytes)
            r.buffer_diff = fmt::format("{}: {} B measured, {} B predicted", name, it->second, bytes);
        if (!r.buffer_diff.empty()) break;
    }
    for (const auto& [name, bytes] : measured)
        if (r.buffer_diff.empty() && !predicted.count(name))
            r.buffer_diff = fmt::format("buffer {} measured ({} B), not predicted", name, bytes);
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
    if (p.device_used_bytes) {
        r.device_measured = true;
        r.device_used = *p.device_used_bytes;
        r.device_reserved = p.device_reserved_bytes.value_or(0);
        r.device_exact = r.device_used == m.allocated;
    }
    r.time_error = rel(r.predicted_s, p.time_s);
    r.time_tolerance = r.bound == "compute" ? compute_tol : bw_tol;
    // Below a few microseconds the events' resolution and the launch jitter dominate: an
    // absolute floor of kTimeSlack, as for the forward peak's byte slack.
    r.time_ok = std::fabs(r.time_error) <= r.time_tolerance || std::fabs(r.predicted_s - p.time_s) <= kTimeSlack;
    r.time_by_slack_only = r.time_ok && std::fabs(r.time_error) > r.time_tolerance;
    r.ok = c.status == "ok" && r.allocated_exact && r.device_exact && r.driver_ok && r.time_ok && p.unwritten_outputs == 0;
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
        out.push_back(
            {"flash_extra_bytes:" + f.c.id, extra,
             fmt::format("{}: {} B beyond q, k, v, out; {}", f.c.id, group_digits(static_cast<u64>(std::max(0.0, extra))), vs_eager)});
    }
    return out;
}

}  // namespace

double relative_error(double pred, double meas) { return meas == 0 ? (pred == 0 ? 0.0 : 1.0) : (pred - meas) / meas; }

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
        if (c.kind != "forward" && c.kind != "step_time" && c.kind != "train") continue;
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
        if (c.kind == "train") {
            if (c.status != "ok" || !c.train) continue;
            TrainResult tr;
            tr.c = c;
            Workload w;
            w.runtime = runtimes.at(c.runtime);
            w.batch = c.batch;
            w.context = c.context;
            w.allow_long_context = true;
            TrainSpec spec;
            spec.recompute = recompute_from(c.recompute, "recompute");
            spec.optimizer = optimizer_from(c.optimizer, "optimizer");
            spec.loop = loop_from(c.loop, "loop");
            spec.use_cache = c.use_cache != "off";  // "default": the config's use_cache (true for these configs)
            spec.set_to_none = c.zero_grad == "none";
            spec.micro_batches = c.micro_batches;
            if (c.lora) spec.lora = LoraSpec{c.lora->rank, c.lora->alpha, c.lora->targets};
            const TrainEstimate e = estimate_train(models.at(c.model), gpu, Deployment{}, w, spec);
            const MeasuredTrain& m = *c.train;
            // The harness measures from before the step's first forward: the last micro-batch's
            // forward finds the earlier ones' gradients there (set_to_none), or they were there
            // before the step (set_to_none=False: counted before, not after).
            const bool before = !spec.set_to_none;
            tr.saved = e.saved_activation_bytes + (spec.micro_batches > 1 && !before ? e.gradient_bytes : 0);
            tr.backward_peak = e.backward_peak_bytes;
            tr.gradients = before ? 0 : e.gradient_bytes;
            tr.optimizer = e.optimizer_bytes;
            tr.train_peak = e.train_peak_bytes;
            tr.peak_at = e.peak_at;
            auto err = [](u64 p, u64 meas) {
                return meas ? (static_cast<double>(p) - static_cast<double>(meas)) / static_cast<double>(meas) : 0.0;
            };
            auto within = [&](u64 p, u64 meas) {
                const u64 d = p > meas ? p - meas : meas - p;
                return std::fabs(err(p, meas)) <= tolerance || d <= slack_bytes;
            };
            tr.saved_error = err(tr.saved, m.saved_activation_bytes);
            tr.backward_error = err(tr.backward_peak, m.backward_peak_bytes);
            tr.gradient_error = err(tr.gradients, m.gradient_bytes);
            tr.optimizer_error = err(tr.optimizer, m.optimizer_state_bytes);
            tr.train_peak_error = err(tr.train_peak, m.train_peak_bytes);
            tr.ok = within(tr.saved, m.saved_activation_bytes) && within(tr.backward_peak, m.backward_peak_bytes);
            if (m.step_time_ms > 0 && gpu.hbm_bandwidth.value > 0) {
                const TrainTime t = estimate_train_time(e, Topology(single_node_cluster(gpu, 1)));
                tr.timed = true;
                tr.step_s = t.step_s;
                tr.step_error = tr.step_s / (m.step_time_ms * 1e-3) - 1;
            }
            if (!tr.ok) v.all_ok = false;
            v.train.push_back(std::move(tr));
            continue;
        }
        if (c.kind == "step_time") {
            if (c.status != "ok" || !c.step) continue;
            StepResult sr;
            sr.c = c;
            Workload w;
            w.runtime = runtimes.at(c.runtime);
            w.context = c.context;
            w.batch = c.batch;
            w.logits_kept = c.logits_kept;
            const Plan plan = Plan::compile(models.at(c.model), gpu, Deployment{c.tp, c.tp}, w);
            const TimeEstimate t = estimate_time(plan, Point{Mode::Prefill, c.batch, c.context}, Topology(single_node_cluster(gpu, c.tp)));
            const StepTime& st = c.mode == "prefill" ? t.prefill : t.decode;
            sr.predicted_s = st.seconds;
            sr.host_s = st.host_s;
            sr.gpu_s = st.gpu_s;
            sr.error = (sr.predicted_s - c.step->seconds) / c.step->seconds;
            sr.ok = std::fabs(sr.error) <= v.step_worst_tolerance;
            v.steps.push_back(std::move(sr));
            continue;
        }
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
        w.decode_step = c.decode_step;
        w.allow_long_context = true;  // the harness ran what it ran
        Estimate e = estimate(models.at(c.model), gpu, Deployment{c.tp, c.tp}, w);
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
            r.peak_ok = bytes_within(e.forward_peak, *m.forward_peak_bytes, tolerance, slack_bytes);
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
                // The same absolute slack as the peak: the first call at a new shape can create
                // and keep a library workspace (0.5-1.5 MiB seen on the H200 after MoE and SSM
                // prefills, h200_hf_arch*.json), which is not the model's.
                const u64 pa = static_cast<u64>(*r.predicted_after);
                const u64 ma = static_cast<u64>(std::max<std::int64_t>(*m.after_step_bytes, 0));
                r.after_ok = std::fabs(r.after_error) <= tolerance || (pa > ma ? pa - ma : ma - pa) <= slack_bytes;
            }
            // Every rank of a sharded run: memtax predicts one per-GPU forward (the ranks of a TP
            // group hold equal shards), so each rank is held to it.
            for (const auto& [rank, rm] : c.ranks) {
                ++r.ranks_checked;
                const double err = rel(static_cast<double>(e.forward_peak), static_cast<double>(*rm.forward_peak_bytes));
                bool ok = bytes_within(e.forward_peak, *rm.forward_peak_bytes, tolerance, slack_bytes);
                if (rm.kv_cache_bytes) ok = ok && e.kv_cache_visible == *rm.kv_cache_bytes;
                if (rm.logits_bytes) ok = ok && e.logits_output == *rm.logits_bytes;
                if (!ok) r.ranks_ok = false;
                if (std::fabs(err) >= std::fabs(r.worst_rank_error)) {
                    r.worst_rank_error = err;
                    r.worst_rank = rank;
                }
            }
            r.ok = r.peak_ok && r.kv_exact && r.logits_exact && r.after_ok && r.ranks_ok;
            if (std::fabs(r.peak_error) > worst) {
                worst = std::fabs(r.peak_error);
                v.worst = v.cases.size();
            }
        }
        if (!r.ok) v.all_ok = false;
        v.cases.push_back(std::move(r));
    }
    v.probe_claims = probe_claims(v.probe);
    // The quadratic tax of eager attention: per doubling of the prompt, how the forward peak grows, per runtime.
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
    if (!v.steps.empty()) {
        std::vector<double> errs;
        for (const auto& s : v.steps) {
            errs.push_back(std::fabs(s.error));
            v.step_worst_error = std::max(v.step_worst_error, std::fabs(s.error));
        }
        std::sort(errs.begin(), errs.end());
        const size_t n = errs.size();
        v.step_median_error = n % 2 ? errs[n / 2] : (errs[n / 2 - 1] + errs[n / 2]) / 2;
        if (v.step_median_error > v.step_tolerance || v.step_worst_error > v.step_worst_tolerance) v.all_ok = false;
    }
    return v;
}

}  // namespace memtax
