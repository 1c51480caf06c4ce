#include "cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <ostream>

#include "report/report.hpp"
#include "validate/calibrate.hpp"
#include "validate/validate.hpp"
#include "spec/loaders.hpp"

#ifndef MEMTAX_VERSION
#define MEMTAX_VERSION "0.0.0"
#endif
#ifndef MEMTAX_GIT_SHA
#define MEMTAX_GIT_SHA "unknown"
#endif

namespace memtax {
namespace {

struct EstimateArgs {
    std::string model = "llama-3.1-8b";
    std::string gpu = "h100-sxm";
    u64 gpus = 0, tp = 1, pp = 1, batch = 1, context = 8192;  // gpus 0: one replica (= tp · pp)
    std::string mode = "prefill", attention, runtime;
    std::string weight_dtype, kv_dtype, softmax_dtype, logits_dtype, logits_kept;
    std::string format = "table", output;
    bool explain = false, allow_long_context = false, require_fit = false, time = false;
    std::string cluster;
};

DType dtype_arg(const std::string& flag, const std::string& text) {
    DType d;
    if (!parse_dtype(text, d)) throw InputError(SourcePos{}, flag, unknown_dtype_message(text));
    return d;
}

// --runtime names the stack; --attention eager|fused is shorthand for hf-eager|hf-sdpa.
RuntimeSpec runtime_from(const std::string& runtime, const std::string& attention) {
    if (runtime.empty()) return resolve_runtime(attention == "eager" ? "hf-eager" : "hf-sdpa");
    RuntimeSpec r = resolve_runtime(runtime);
    if (!attention.empty() && attention != to_string(r.attention))
        throw InputError(SourcePos{}, "--attention",
                         fmt::format("\"{}\" contradicts runtime {} (its attention is {}); drop --attention or pick another runtime",
                                     attention, r.name, to_string(r.attention)));
    return r;
}

Workload workload_from(const EstimateArgs& a, const RuntimeSpec* resolved = nullptr) {
    Workload w;
    w.mode = a.mode == "decode" ? Mode::Decode : Mode::Prefill;
    w.runtime = resolved ? *resolved : runtime_from(a.runtime, a.attention);
    w.batch = a.batch;
    w.context = a.context;
    if (!a.weight_dtype.empty()) w.weight_dtype = dtype_arg("--weight-dtype", a.weight_dtype);
    if (!a.kv_dtype.empty()) w.kv_dtype = dtype_arg("--kv-dtype", a.kv_dtype);
    if (!a.softmax_dtype.empty()) w.softmax_dtype = dtype_arg("--softmax-dtype", a.softmax_dtype);
    if (!a.logits_dtype.empty()) w.logits_dtype = dtype_arg("--logits-dtype", a.logits_dtype);
    if (!a.logits_kept.empty()) {
        if (a.logits_kept == "all") {
            w.logits_kept = 0;
        } else {
            u64 k = 0;
            auto [p, ec] = std::from_chars(a.logits_kept.data(), a.logits_kept.data() + a.logits_kept.size(), k);
            if (ec != std::errc() || p != a.logits_kept.data() + a.logits_kept.size() || k == 0)
                throw InputError(SourcePos{}, "--logits-kept",
                                 fmt::format("expected a positive number of positions or \"all\", got \"{}\"", a.logits_kept));
            w.logits_kept = k;
        }
    }
    w.allow_long_context = a.allow_long_context;
    return w;
}

// CLI11's own range validators print the whole double range; this one says what is valid.
const CLI::Validator kPositiveInt(
    [](std::string& text) -> std::string {
        u64 v = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || p != text.data() + text.size() || v == 0)
            return fmt::format("expected a positive integer, got \"{}\"", text);
        return {};
    },
    "POSITIVE");

void add_workload_options(CLI::App* cmd, EstimateArgs& a) {
    cmd->add_option("--model", a.model, "built-in model name, a memtax YAML profile, or a HF config.json")->capture_default_str();
    cmd->add_option("--gpu", a.gpu, "built-in GPU name or a GPU YAML profile")->capture_default_str();
    cmd->add_option("--gpus", a.gpus, "GPUs in total (replicas = gpus / (tp · pp); default: tp · pp)")->check(kPositiveInt);
    cmd->add_option("--tp", a.tp, "tensor-parallel degree")->check(kPositiveInt)->capture_default_str();
    cmd->add_option("--pp", a.pp, "pipeline stages (layers split evenly; the fullest stage is reported)")
        ->check(kPositiveInt)
        ->capture_default_str();
    cmd->add_option("--mode", a.mode, "prefill | decode")->check(CLI::IsMember({"prefill", "decode"}))->capture_default_str();
    cmd->add_option("--runtime", a.runtime, "hf-sdpa (default) | hf-eager | vllm | a runtime YAML profile");
    cmd->add_option("--attention", a.attention, "eager | fused: shorthand for --runtime hf-eager | hf-sdpa")
        ->check(CLI::IsMember({"eager", "fused"}));
    cmd->add_option("--weight-dtype", a.weight_dtype, "dtype of the linear layers (default: the model's)");
    cmd->add_option("--kv-dtype", a.kv_dtype, "KV cache dtype (default: the model's)");
    cmd->add_option("--softmax-dtype", a.softmax_dtype, "eager softmax dtype (default fp32, PyTorch's upcast)");
    cmd->add_option("--logits-dtype", a.logits_dtype, "logits dtype (default: the model's)");
    cmd->add_option("--logits-kept", a.logits_kept, "positions whose logits are computed: N or all (default 1)");
    cmd->add_flag("--allow-long-context", a.allow_long_context, "size a context beyond the model's max_context");
}

ToolInfo tool_info() { return ToolInfo{MEMTAX_VERSION, MEMTAX_GIT_SHA}; }
std::string tool_line() { return fmt::format("memtax {} ({})", MEMTAX_VERSION, MEMTAX_GIT_SHA); }

struct CalibrateArgs {
    std::vector<std::string> measurements;
    std::string gpu, output, format = "table";
};

std::string default_calibrated_path(const std::string& base) { return "hardware/calibrated/" + base + ".yaml"; }

void write_profile(const std::string& path, const std::string& text, const std::vector<std::string>& inputs);
void refuse_overwriting_inputs(const std::string& output, const std::vector<std::string>& inputs);

int cmd_calibrate(const CalibrateArgs& a, std::ostream& out) {
    CalibrationResult c = calibrate(a.measurements, a.gpu, tool_line());
    const std::string path = a.output.empty() ? default_calibrated_path(c.base.name) : a.output;
    std::vector<std::string> inputs = a.measurements;
    inputs.push_back(a.gpu);
    write_profile(path, c.yaml, inputs);
    out << (a.format == "json" ? render_calibration_json(c, path) : render_calibration_table(c, path));
    return 0;
}

struct ProbeArgs {
    std::string probe, suites, measurements = "memtax-probe.json", calibrated, gpu, format = "table";
    bool quick = false, no_calibrate = false;
};

// The probe next to this executable (the root build puts memtax-probe beside memtax).
std::string default_probe_path() {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("memtax-probe") : (self.parent_path() / "memtax-probe").string();
}

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
}

int cmd_probe(const ProbeArgs& a, std::ostream& out, std::ostream& err) {
    const std::string probe = a.probe.empty() ? default_probe_path() : a.probe;
    if (!std::filesystem::exists(probe))
        throw InputError(SourcePos{}, "--probe",
                         fmt::format("{} not found: memtax-probe is built next to memtax when CMake finds nvcc (the CUDA toolkit), "
                                     "or standalone with `cmake -S kernels -B build-probe`; pass --probe PATH", probe));
    refuse_overwriting_inputs(a.measurements, {probe});
    std::string cmd = shell_quote(probe) + " --output " + shell_quote(a.measurements);
    if (!a.suites.empty()) cmd += " --suites " + shell_quote(a.suites);
    if (a.quick) cmd += " --quick";
    err << "memtax probe: running " << cmd << "\n";
    err.flush();
    const int status = std::system(cmd.c_str());
    const int rc = status == -1 ? 3 : WIFEXITED(status) ? WEXITSTATUS(status) : 3;
    // The probe's exit 4: this host has no GPU it can run on. Not an internal error: say so.
    if (rc == 4)
        throw InputError(SourcePos{}, "--probe",
                         "this host has no usable CUDA GPU (memtax-probe exit 4, its message above); run memtax probe on a host with an "
                         "NVIDIA GPU of compute capability 8.0 or newer");
    if (rc >= 2) {
        err << "memtax probe: memtax-probe failed (exit " << rc << "); no report\n";
        return 3;
    }
    // Calibration needs the stream suite (bandwidth and overhead); a run of other suites only is
    // validated with the profile as it stands (--gpu, else the device's calibrated profile).
    const bool has_stream = a.suites.empty() || ("," + a.suites + ",").find(",stream,") != std::string::npos;
    if (a.no_calibrate || !has_stream) {
        Validation v = validate_measurements(a.measurements, a.gpu, 0.05, 4 * kMiB);
        out << (a.format == "json" ? render_validation_json(v, tool_info()) : render_validation_table(v));
        return v.all_ok && rc == 0 ? 0 : 1;
    }
    CalibrationResult c = calibrate({a.measurements}, a.gpu, tool_line());
    const std::string path = a.calibrated.empty() ? default_calibrated_path(c.base.name) : a.calibrated;
    write_profile(path, c.yaml, {a.measurements, probe});
    const std::string calibration_text = render_calibration_table(c, path) + "\n";
    Validation v = validate_file(load_measurements(a.measurements), c.calibrated, 0.05, 4 * kMiB);
    out << (a.format == "json" ? render_validation_json(v, tool_info()) : calibration_text + render_validation_table(v));
    return v.all_ok && rc == 0 ? 0 : 1;
}

// Refuses an --output that is one of the run's own input files (a typo away from destroying
// a profile or a measurement file).
void refuse_overwriting_inputs(const std::string& output, const std::vector<std::string>& inputs) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (output.empty() || !fs::exists(output, ec)) return;
    for (const auto& in : inputs) {
        if (in.empty() || !fs::exists(in, ec)) continue;
        if (fs::equivalent(output, in, ec))
            throw InputError(SourcePos{}, "--output", fmt::format("\"{}\" is an input of this run ({}); refusing to overwrite it", output, in));
    }
}

void write_profile(const std::string& path, const std::string& text, const std::vector<std::string>& inputs) {
    refuse_overwriting_inputs(path, inputs);
    const auto dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    write_file_atomically(path, text);
}

void emit(const std::string& text, const std::string& output, std::ostream& out, const std::vector<std::string>& inputs = {}) {
    if (output.empty()) {
        out << text;
        return;
    }
    refuse_overwriting_inputs(output, inputs);
    write_file_atomically(output, text);
}

int cmd_estimate(const EstimateArgs& a, std::ostream& out) {
    ModelSpec m = resolve_model(a.model);
    GpuSpec g = resolve_gpu(a.gpu);
    const Deployment dep{a.gpus ? a.gpus : a.tp * a.pp, a.tp, a.pp};
    const Workload w = workload_from(a);
    const Plan plan = Plan::compile(m, g, dep, w);
    Estimate e = plan.estimate(plan.point_of(w));
    std::optional<TimeEstimate> time;
    if (a.time) {
        const Topology topo(a.cluster.empty() ? single_node_cluster(g, a.tp * a.pp) : resolve_cluster(a.cluster));
        time = estimate_time(plan, plan.point_of(w), topo);
    } else if (!a.cluster.empty()) {
        throw InputError(SourcePos{}, "--cluster", "only used by --time; add --time");
    }
    const TimeEstimate* tp = time ? &*time : nullptr;
    std::string text = a.format == "json" ? render_json(e, tool_info(), a.explain, tp)
                       : a.format == "csv" ? render_csv(e)
                                           : render_table(e, a.explain, tp);
    emit(text, a.output, out, {a.model, a.gpu, a.runtime, a.cluster});
    return a.require_fit && !e.fits ? 1 : 0;
}

struct WhatifArgs {
    std::vector<std::string> setups = {"llama-3.1-8b@1xh100-sxm", "llama-3.1-70b@4xh200"};
    std::vector<u64> contexts = {8192, 32768, 131072};
    std::vector<u64> batches = {1, 16};
    std::vector<std::string> kv_dtypes = {"bf16", "fp8_e4m3"};
    std::vector<std::string> modes = {"prefill", "decode"};
    std::string attention, runtime, format = "table", output;
};

int cmd_whatif(const WhatifArgs& a, std::ostream& out) {
    std::vector<Estimate> rows;
    const RuntimeSpec runtime = runtime_from(a.runtime, a.attention);
    std::vector<std::string> inputs = {a.runtime};
    for (const auto& setup : a.setups) {
        // MODEL@NxGPU, tensor parallel over the N GPUs of one replica.
        auto at = setup.find('@');
        auto x = setup.find('x', at == std::string::npos ? 0 : at);
        u64 n = 0;
        const char* first = setup.data() + (at == std::string::npos ? 0 : at + 1);
        const char* last = setup.data() + (x == std::string::npos ? setup.size() : x);
        auto [p, ec] = std::from_chars(first, last, n);
        if (at == std::string::npos || x == std::string::npos || ec != std::errc() || p != last || n == 0)
            throw InputError(SourcePos{}, "--setup", fmt::format("expected MODEL@NxGPU (e.g. llama-3.1-70b@4xh200), got \"{}\"", setup));
        ModelSpec m = resolve_model(setup.substr(0, at));
        GpuSpec g = resolve_gpu(setup.substr(x + 1));
        inputs.push_back(setup.substr(0, at));
        inputs.push_back(setup.substr(x + 1));
        for (const auto& mode : a.modes)
        for (const auto& kv : a.kv_dtypes)
            for (u64 ctx : a.contexts)
                for (u64 batch : a.batches) {
                    EstimateArgs ea;
                    ea.mode = mode;
                    ea.attention = a.attention;
                    ea.runtime = a.runtime;
                    ea.batch = batch;
                    ea.context = ctx;
                    ea.kv_dtype = kv;
                    rows.push_back(estimate(m, g, Deployment{n, n}, workload_from(ea, &runtime)));
                }
    }
    std::string text = a.format == "json" ? render_whatif_json(rows, tool_info())
                       : a.format == "csv" ? render_whatif_csv(rows)
                                           : render_whatif_table(rows);
    emit(text, a.output, out, inputs);
    return 0;
}

// Engine errors name field paths (a scenario file's keys); on the command line they are flags.
InputError as_flags(const InputError& e) {
    static const std::pair<const char*, const char*> paths[] = {
        {"workload.allow_long_context", "--allow-long-context"}, {"workload.batch", "--batch"}, {"workload.context", "--context"},
        {"workload.kv_dtype", "--kv-dtype"}, {"workload.softmax_dtype", "--softmax-dtype"}, {"workload.logits_dtype", "--logits-dtype"},
        {"deployment.tp", "--tp"}, {"deployment.pp", "--pp"}, {"deployment.gpus", "--gpus"}, {"runtime", "--runtime"}};
    auto map = [&](std::string text, bool whole) {
        for (const auto& [path, flag] : paths) {
            if (whole) {
                if (text == path) return std::string(flag);
                continue;
            }
            // Only dotted paths inside a message (a bare word such as "runtime" is prose there).
            const std::string p = path;
            if (p.find('.') == std::string::npos) continue;
            for (size_t at = 0; (at = text.find(p, at)) != std::string::npos; at += std::string(flag).size())
                text.replace(at, p.size(), flag);
        }
        return text;
    };
    return InputError(e.pos(), map(e.field(), true), map(e.message(), false));
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    CLI::App app{"memtax: memory-cost simulator and capacity planner for long-context transformers"};
    app.set_version_flag("--version", std::string("memtax ") + MEMTAX_VERSION + " (" + MEMTAX_GIT_SHA + ")");
    app.require_subcommand(1);

    EstimateArgs ea;
    auto* est = app.add_subcommand("estimate", "per-GPU memory of one inference step, with the fit verdict");
    add_workload_options(est, ea);
    est->add_option("--batch", ea.batch, "sequences (split over replicas)")->check(kPositiveInt)->capture_default_str();
    est->add_option("--context", ea.context, "prefill: prompt tokens; decode: KV length after the step")
        ->check(kPositiveInt)
        ->capture_default_str();
    est->add_option("--format", ea.format, "table | json | csv")->check(CLI::IsMember({"table", "json", "csv"}))->capture_default_str();
    est->add_option("--output,-o", ea.output, "write the report to this file (atomically) instead of stdout");
    est->add_flag("--explain", ea.explain, "print each term's formula with its numbers");
    est->add_flag("--require-fit", ea.require_fit, "exit 1 when the step does not fit (for CI gates)");
    est->add_flag("--time", ea.time, "add the roofline: TTFT, TPOT, tokens/s and the bound per op kind");
    est->add_option("--cluster", ea.cluster, "cluster profile for communication (--time): built-in name or YAML path; "
                                             "default: one node joined by the GPU's interconnect");

    WhatifArgs wa;
    auto* wi = app.add_subcommand("whatif", "a grid of estimates (the main job; built-in defaults)");
    wi->add_option("--setup", wa.setups, "MODEL@NxGPU, repeatable (tensor parallel over the N GPUs)")->capture_default_str();
    wi->add_option("--contexts", wa.contexts, "context lengths")->delimiter(',')->check(kPositiveInt)->capture_default_str();
    wi->add_option("--batches", wa.batches, "batch sizes")->delimiter(',')->check(kPositiveInt)->capture_default_str();
    wi->add_option("--kv-dtypes", wa.kv_dtypes, "KV cache dtypes")->delimiter(',')->capture_default_str();
    wi->add_option("--modes", wa.modes, "prefill and/or decode")->delimiter(',')->check(CLI::IsMember({"prefill", "decode"}))->capture_default_str();
    wi->add_option("--runtime", wa.runtime, "hf-sdpa (default) | hf-eager | vllm | a runtime YAML profile");
    wi->add_option("--attention", wa.attention, "eager | fused: shorthand for --runtime hf-eager | hf-sdpa")
        ->check(CLI::IsMember({"eager", "fused"}));
    wi->add_option("--format", wa.format, "table | json | csv")->check(CLI::IsMember({"table", "json", "csv"}))->capture_default_str();
    wi->add_option("--output,-o", wa.output, "write the report to this file (atomically)");

    std::string meas_file, meas_gpu, meas_format = "table", meas_output;
    double meas_tolerance = 5.0;
    u64 meas_slack_mib = 4;
    auto* val = app.add_subcommand("validate", "predict every case of a measurement file and compare (exit 1 on any failure)");
    val->add_option("--measurements", meas_file, "a memtax.measurements/1 JSON file (docs/measurement-schema.md)")->required();
    val->add_option("--gpu", meas_gpu, "GPU profile for the predictions (default: matched from provenance.gpu)");
    val->add_option("--tolerance", meas_tolerance, "allowed forward-peak error, percent")->check(CLI::Range(0.0, 100.0))->capture_default_str();
    val->add_option("--slack-mib", meas_slack_mib,
                    "absolute floor of the allowed forward-peak difference, MiB (the caching allocator may hand out a cached "
                    "block up to 1 MiB larger than asked for each tensor above 1 MiB)")
        ->capture_default_str();
    val->add_option("--format", meas_format, "table | json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
    val->add_option("--output,-o", meas_output, "write the report to this file (atomically)");

    CalibrateArgs ca;
    auto* cal = app.add_subcommand("calibrate", "fit the probe's measurements to kernel rates; write a calibrated GPU profile");
    cal->add_option("--measurements", ca.measurements, "memtax-probe measurement files of one device (repeat, e.g. the one-GPU run and a multi-GPU allreduce run)")->required();
    cal->add_option("--gpu", ca.gpu, "the datasheet profile to refine (default: matched from provenance.gpu)");
    cal->add_option("--output,-o", ca.output, "where to write the profile (default: hardware/calibrated/<gpu>.yaml)");
    cal->add_option("--format", ca.format, "table | json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();

    ProbeArgs pa;
    auto* prb = app.add_subcommand("probe", "run memtax-probe on this host's GPU, calibrate, and validate every case (exit 1 on a failure)");
    prb->add_option("--probe", pa.probe, "the memtax-probe executable (default: next to memtax)");
    prb->add_option("--suites", pa.suites, "comma-separated: stream, gemm, attention-eager, attention-flash, decode-paged, mlp (default: all)");
    prb->add_flag("--quick", pa.quick, "fewer shapes (a smoke test)");
    prb->add_option("--measurements", pa.measurements, "where the probe writes its measurement file")->capture_default_str();
    prb->add_option("--calibrated", pa.calibrated, "where to write the calibrated profile (default: hardware/calibrated/<gpu>.yaml)");
    prb->add_option("--gpu", pa.gpu, "the datasheet profile to refine (default: matched from the device's name)");
    prb->add_flag("--no-calibrate", pa.no_calibrate,
                  "validate with the profile as it stands (--gpu, else the device's calibrated profile), without fitting; "
                  "implied when --suites leaves out stream");
    prb->add_option("--format", pa.format, "table | json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();

    std::string list_format = "table";
    auto* models = app.add_subcommand("models", "list the built-in model profiles");
    auto* gpus = app.add_subcommand("gpus", "list the built-in GPU profiles");
    auto* rts = app.add_subcommand("runtimes", "list the built-in runtime profiles");
    for (auto* list : {models, gpus, rts})
        list->add_option("--format", list_format, "table | json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();

    std::vector<std::string> argv_rev(args.rbegin(), args.rend());
    try {
        app.parse(argv_rev);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e, out, err);
    } catch (const CLI::ParseError& e) {
        std::string msg = e.what();
        err << "memtax: error: " << msg << " (see memtax --help)\n";
        return 2;
    }
    try {
        if (*est) return cmd_estimate(ea, out);
        if (*wi) return cmd_whatif(wa, out);
        if (*val) {
            Validation v = validate_measurements(meas_file, meas_gpu, meas_tolerance / 100.0,
                                                 checked_mul(meas_slack_mib, kMiB, "--slack-mib"));
            emit(meas_format == "json" ? render_validation_json(v, tool_info()) : render_validation_table(v), meas_output, out,
                 {meas_file, meas_gpu});
            return v.all_ok ? 0 : 1;
        }
        if (*cal) return cmd_calibrate(ca, out);
        if (*prb) return cmd_probe(pa, out, err);
        if (*models) {
            out << (list_format == "json" ? render_models_json(catalog_models(), tool_info()) : render_models_table(catalog_models()));
            return 0;
        }
        if (*rts) {
            out << (list_format == "json" ? render_runtimes_json(catalog_runtimes(), tool_info())
                                          : render_runtimes_table(catalog_runtimes()));
            return 0;
        }
        if (*gpus) {
            out << (list_format == "json" ? render_gpus_json(catalog_gpus(), tool_info()) : render_gpus_table(catalog_gpus()));
            return 0;
        }
    } catch (const InputError& e) {
        err << "memtax: error: " << as_flags(e).what() << "\n";
        return 2;
    } catch (const OverflowError& e) {
        err << "memtax: error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        err << "memtax: internal error: " << e.what() << "\n";
        return 3;
    }
    return 0;
}

}  // namespace memtax
