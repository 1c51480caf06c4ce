#include "validate/calibrate.hpp"

#include <fmt/format.h>
#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.hpp"
#include "model/kernel_model.hpp"
#include "model/time_model.hpp"
#include "spec/gpu_yaml_writer.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

struct Sample {
    std::string id;
    double flops = 0, bytes = 0, t = 0;
    double steps = 0;  // allreduce: ring steps
};

// One all-reduce protocol line: t = a + steps·α + bus bytes / bandwidth (relative least
// squares; α only when the samples span more than one ring size). Returns (a, α, 1/bw).
Eigen::Vector3d solve_line(const std::vector<Sample>& s) {
    bool several_rings = false;
    for (const auto& p : s) several_rings = several_rings || p.steps != s.front().steps;
    const Eigen::Index cols = several_rings ? 3 : 2;
    Eigen::MatrixXd A(static_cast<Eigen::Index>(s.size()), cols);
    Eigen::VectorXd b = Eigen::VectorXd::Ones(static_cast<Eigen::Index>(s.size()));
    for (size_t i = 0; i < s.size(); ++i) {
        const auto r = static_cast<Eigen::Index>(i);
        A(r, 0) = 1.0 / s[i].t;
        A(r, 1) = s[i].bytes / s[i].t;
        if (several_rings) A(r, 2) = s[i].steps / s[i].t;
    }
    Eigen::VectorXd x = A.colPivHouseholderQr().solve(b);
    return {x(0), several_rings ? x(2) : 0.0, x(1)};
}
double predict_line(const Eigen::Vector3d& l, const Sample& s) { return l(0) + l(1) * s.steps + l(2) * s.bytes; }

enum class Form { Memory, Compute, Roofline };

// Solves min Σ ((a + x·cols - t) / t)² for the columns in `use` (a: overhead, then the
// per-byte and per-FLOP times); `intercept` false pins a to 0. Eigen's column-pivoting QR.
Eigen::VectorXd solve(const std::vector<Sample>& s, const std::vector<int>& regime, bool intercept) {
    // Columns: [1, bytes (memory regime), flops (compute regime)], each row divided by t.
    const int n = static_cast<int>(s.size());
    Eigen::MatrixXd A = Eigen::MatrixXd::Zero(n, 3);
    Eigen::VectorXd b = Eigen::VectorXd::Ones(n);
    for (int i = 0; i < n; ++i) {
        A(i, 0) = intercept ? 1.0 / s[i].t : 0.0;
        if (regime[i] == 0)
            A(i, 1) = s[i].bytes / s[i].t;
        else
            A(i, 2) = s[i].flops / s[i].t;
    }
    // Unused columns (no sample in a regime) are dropped, then put back as zeros.
    std::vector<int> cols;
    for (int c = 0; c < 3; ++c)
        if (A.col(c).cwiseAbs().maxCoeff() > 0) cols.push_back(c);
    Eigen::MatrixXd Ar(n, static_cast<Eigen::Index>(cols.size()));
    for (size_t j = 0; j < cols.size(); ++j) Ar.col(static_cast<Eigen::Index>(j)) = A.col(cols[j]);
    Eigen::VectorXd xr = Ar.colPivHouseholderQr().solve(b);
    Eigen::VectorXd x = Eigen::VectorXd::Zero(3);
    for (size_t j = 0; j < cols.size(); ++j) x(cols[j]) = xr(static_cast<Eigen::Index>(j));
    return x;
}

double predict(const Eigen::VectorXd& x, const Sample& s) { return x(0) + std::max(x(1) * s.bytes, x(2) * s.flops); }

std::optional<ClassFit> fit(const std::string& key, const std::vector<Sample>& s, Form form, double ridge) {
    if (s.size() < 2) return std::nullopt;
    std::vector<int> regime(s.size());
    for (size_t i = 0; i < s.size(); ++i)
        regime[i] = form == Form::Memory ? 0 : form == Form::Compute ? 1 : (s[i].flops / std::max(s[i].bytes, 1.0) > ridge ? 1 : 0);
    Eigen::VectorXd x;
    for (int iter = 0; iter < 20; ++iter) {
        x = solve(s, regime, true);
        if (x(0) < 0) x = solve(s, regime, false);  // a negative overhead is no overhead
        if (form != Form::Roofline) break;
        bool changed = false;
        for (size_t i = 0; i < s.size(); ++i) {
            // A regime with no sample has no fitted coefficient: keep its samples where they are.
            if (x(1) <= 0 || x(2) <= 0) break;
            const int r = x(2) * s[i].flops > x(1) * s[i].bytes ? 1 : 0;
            changed = changed || r != regime[i];
            regime[i] = r;
        }
        if (!changed) break;
    }
    if ((form != Form::Compute && x(1) <= 0) || (form != Form::Memory && x(2) <= 0)) return std::nullopt;
    ClassFit f;
    f.key = key;
    f.rates.overhead_s = x(0);
    f.rates.bandwidth = x(1) > 0 ? 1.0 / x(1) : 0.0;
    f.rates.flops = x(2) > 0 ? 1.0 / x(2) : 0.0;
    f.rates.cases = s.size();
    double sq = 0;
    for (const auto& p : s) {
        const double e = (predict(x, p) - p.t) / p.t;
        sq += e * e;
        f.kernels.push_back(p.id);
    }
    f.rates.rms_error = std::sqrt(sq / static_cast<double>(s.size()));
    return f;
}

std::string base_text(const GpuSpec& g) {
    if (std::error_code ec; std::filesystem::exists(g.file, ec)) return read_input_file(g.file);
    for (const auto& e : embedded_gpus())
        if (g.file == e.path) return e.text;
    throw InternalError(fmt::format("no text for GPU profile {}", g.file));
}

GpuSpec base_for(const MeasurementFile& f, const std::string& gpu) {
    if (!gpu.empty()) return resolve_gpu(gpu);
    const std::string device = f.provenance.at("gpu");
    for (const auto& g : catalog_gpus())
        if (!g.calibrated)
            for (const auto& n : g.device_names)
                if (n == device) return g;
    throw InputError(SourcePos{f.file, 0, 0}, "provenance.gpu",
                     fmt::format("\"{}\" matches no uncalibrated GPU profile's device_names; pass calibrate.gpu", device));
}

}  // namespace

CalibrationResult calibrate(const std::vector<std::string>& paths, const std::string& gpu, const std::string& tool) {
    if (paths.empty()) throw InputError(SourcePos{}, "calibrate.measurements", "needs at least one measurement file");
    std::vector<MeasurementFile> files;
    for (const auto& p : paths) files.push_back(load_measurements(p));
    const MeasurementFile& f = files.front();
    const std::string path = fmt::format("{}", fmt::join(paths, ", "));
    for (const auto& other : files)
        if (other.provenance.at("gpu") != f.provenance.at("gpu"))
            throw InputError(SourcePos{other.file, 0, 0}, "provenance.gpu",
                             fmt::format("\"{}\" differs from {}'s \"{}\": calibrate one device at a time", other.provenance.at("gpu"),
                                         f.file, f.provenance.at("gpu")));
    CalibrationResult c;
    c.measurements = path;
    c.provenance = f.provenance;
    c.base = base_for(f, gpu);
    if (c.base.calibrated)
        throw InputError(SourcePos{}, "calibrate.gpu",
                         fmt::format("{} is already a calibrated profile; pass the datasheet profile it refines", c.base.name));

    std::map<std::string, std::vector<Sample>> samples;
    for (const auto& file : files)
        for (const auto& mc : file.cases) {
            if (mc.kind == "forward" || mc.status != "ok" || !mc.probe) continue;
            if (mc.kind != "stream" && mc.kind != "gemm" && mc.kind != "attention-flash" && mc.kind != "decode-paged" &&
                mc.kind != "allreduce" && mc.kind != "attention-sdpa")
                continue;
            if (mc.kind == "stream" && mc.shape.op == "memcpy") continue;  // the library's copy is the ceiling, not a fit point
            if (mc.kind == "stream" && mc.shape.op == "launch") {
                samples["launch"].push_back({mc.id, 0, static_cast<double>(mc.shape.kernels - 1), mc.probe->time_s});
                continue;
            }
            const ProbeModel m = model_probe_case(mc.kind, mc.shape, c.base);
            for (const auto& k : m.kernels) {
                double t = m.kernels.size() == 1 ? mc.probe->time_s : 0.0;
                for (const auto& [name, secs] : mc.probe->kernels)
                    if (name == k.name) t = secs;
                if (t <= 0) continue;
                if (mc.kind == "decode-paged" && k.cls != KernelClass::MemtaxPagedDecode) continue;  // the combine is predicted
                samples[kernel_class_key(k.cls, k.dtype)].push_back({mc.id + (m.kernels.size() > 1 ? "/" + k.name : ""),
                                                                     static_cast<double>(k.flops), static_cast<double>(k.bytes), t,
                                                                     static_cast<double>(k.steps)});
            }
        }
    // Launch: t(N empty kernels) = isolated + (N − 1) · queued.
    if (auto it = samples.find("launch"); it != samples.end()) {
        std::vector<Sample> s = it->second;
        samples.erase(it);
        if (s.size() >= 2) {
            const Eigen::Vector3d x = solve_line(s);  // the line's "bytes" hold N − 1
            if (x(0) > 0 && x(2) > 0) {
                ClassFit f;
                f.key = "launch";
                f.rates.overhead_s = x(0);
                f.rates.queued_s = x(2);
                f.rates.cases = s.size();
                for (const auto& p : s) f.kernels.push_back(p.id);
                c.fits.push_back(f);
            }
        }
    }
    // All-reduce: NCCL picks per message size the faster protocol, so the time is the lower of
    // two lines (low-latency: small fixed cost, lower bandwidth; simple: the bus bandwidth).
    // Fitted like the roofline's regimes: assign each size to the line that predicts it
    // faster, refit both, until stable.
    if (auto it = samples.find("allreduce"); it != samples.end()) {
        std::vector<Sample> s = it->second;
        samples.erase(it);
        std::sort(s.begin(), s.end(), [](const Sample& a, const Sample& b) { return a.bytes < b.bytes; });
        std::vector<int> simple(s.size());
        for (size_t i = 0; i < s.size(); ++i) simple[i] = i >= s.size() / 2;
        Eigen::Vector3d line[2];
        bool ok = false;
        for (int iter = 0; iter < 20; ++iter) {
            ok = true;
            for (int p = 0; p < 2; ++p) {
                std::vector<Sample> part;
                for (size_t i = 0; i < s.size(); ++i)
                    if (simple[i] == p) part.push_back(s[i]);
                if (part.size() < 3) {
                    ok = false;
                    break;
                }
                line[p] = solve_line(part);
                if (line[p](2) <= 0) ok = false;
            }
            if (!ok) break;
            bool changed = false;
            for (size_t i = 0; i < s.size(); ++i) {
                const int p = predict_line(line[1], s[i]) < predict_line(line[0], s[i]) ? 1 : 0;
                changed = changed || p != simple[i];
                simple[i] = p;
            }
            if (!changed) break;
        }
        if (ok) {
            ClassFit f;
            f.key = "allreduce";
            f.rates.overhead_s = std::max(0.0, line[1](0));
            f.rates.step_s = std::max(0.0, line[1](1));
            f.rates.bandwidth = 1.0 / line[1](2);
            f.rates.ll_overhead_s = std::max(0.0, line[0](0));
            f.rates.ll_step_s = std::max(0.0, line[0](1));
            f.rates.ll_bandwidth = 1.0 / line[0](2);
            f.rates.cases = s.size();
            double sq = 0;
            for (const auto& p : s) {
                const double e = (std::min(predict_line(line[0], p), predict_line(line[1], p)) - p.t) / p.t;
                sq += e * e;
                f.kernels.push_back(p.id);
            }
            f.rates.rms_error = std::sqrt(sq / static_cast<double>(s.size()));
            c.fits.push_back(f);
        }
    }
    if (!samples.count("stream"))
        throw InputError(SourcePos{f.file, 0, 0}, "cases",
                         "no stream cases with status ok: run the probe's stream suite (it calibrates bandwidth and overhead)");
    const double peak_bw = c.base.hbm_bandwidth.value;
    for (const auto& [key, s] : samples) {
        Form form = Form::Memory;
        double ridge = 0;
        if (key.starts_with("gemm_")) {
            form = Form::Roofline;
            auto it = c.base.peak_flops.find(key.substr(5));
            ridge = (it == c.base.peak_flops.end() ? 0.0 : it->second.value) / peak_bw;
        } else if (key == "attention_prefill" || key == "memtax_flash") {
            form = Form::Compute;
        }
        if (auto fitted = fit(key, s, form, ridge)) c.fits.push_back(*fitted);
    }

    // The calibrated profile: the datasheet profile with the fitted classes, the efficiencies
    // they imply, and where they came from.
    CalibratedGpu out;
    out.base_text = base_text(c.base);
    out.name = c.base.name + "-calibrated";
    out.display_name = c.base.display_name + " (calibrated)";
    std::map<std::string, KernelRates> rates;
    for (const auto& fit : c.fits) {
        rates[fit.key] = fit.rates;
        out.kernels.emplace_back(fit.key, fit.rates);
    }
    const KernelRates& stream = rates.at("stream");
    out.bandwidth_efficiency = std::min(1.0, stream.bandwidth / peak_bw);
    out.matmul_efficiency = c.base.matmul_efficiency;
    for (const char* d : {"bf16", "fp16"})
        if (rates.count(std::string("gemm_") + d) && c.base.peak_flops.count(d)) {
            out.matmul_efficiency = std::min(1.0, rates.at(std::string("gemm_") + d).flops / c.base.peak_flops.at(d).value);
            break;
        }
    out.launch_overhead_s = stream.overhead_s;
    out.measurements = path;
    for (const char* k : {"gpu", "driver", "date", "command"})
        if (f.provenance.count(k)) out.provenance.emplace_back(k, f.provenance.at(k));
    out.tool = tool;
    const std::string from = fmt::format("{} on {} (driver {}, {})", path, f.provenance.at("gpu"),
                                         f.provenance.count("driver") ? f.provenance.at("driver") : "?", f.provenance.at("date"));
    out.efficiency_source = fmt::format(
        "measured: memtax calibrate from {}: bandwidth = the stream fit's bandwidth / the datasheet peak, matmul = the bf16 "
        "gemm fit's rate / the datasheet peak, launch overhead = the stream fit's fixed cost per kernel",
        from);
    out.calibration_source = fmt::format(
        "measured: memtax-probe kernels, least squares on the relative error per kernel class (src/validate/calibrate.hpp), from {}", from);
    out.header = fmt::format(
        "# Generated by memtax calibrate from {}: the profile {} with the kernel rates\n"
        "# measured on the device. Regenerate it rather than editing it.\n",
        path, c.base.name);
    c.yaml = write_calibrated_gpu_yaml(out);
    c.calibrated = load_gpu_yaml(c.yaml, "hardware/calibrated/" + c.base.name + ".yaml");
    return c;
}

}  // namespace memtax
