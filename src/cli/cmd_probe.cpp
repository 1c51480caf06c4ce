// memtax probe: runs memtax-probe on this host's GPU, fits the measurements into a calibrated
// profile and validates every case with it.
#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "cli/common.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

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

class Probe final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* prb =
            app.add_subcommand("probe", "run memtax-probe on this host's GPU, calibrate, and validate every case (exit 1 on a failure)");
        prb->add_option("--probe", a_.probe, "the memtax-probe executable (default: next to memtax)");
        prb->add_option("--suites", a_.suites,
                        "comma-separated: stream, gemm, attention-eager, attention-flash, decode-paged, mlp (default: all)");
        prb->add_flag("--quick", a_.quick, "fewer shapes (a smoke test)");
        prb->add_option("--measurements", a_.measurements, "where the probe writes its measurement file")->capture_default_str();
        prb->add_option("--calibrated", a_.calibrated, "where to write the calibrated profile (default: hardware/calibrated/<gpu>.yaml)");
        prb->add_option("--gpu", a_.gpu, "the datasheet profile to refine (default: matched from the device's name)");
        prb->add_flag("--no-calibrate", a_.no_calibrate,
                      "validate with the profile as it stands (--gpu, else the device's calibrated profile), without fitting; "
                      "implied when --suites leaves out stream");
        add_format_option(prb, a_.format);
        return prb;
    }

    int run(std::ostream& out, std::ostream& err) override {
        const ProbeArgs& a = a_;
        const Printer& print = printer(a.format);
        const std::string probe = a.probe.empty() ? default_probe_path() : a.probe;
        if (std::error_code ec; !std::filesystem::exists(probe, ec))
            throw InputError(SourcePos{}, "--probe",
                             fmt::format("{} not found: memtax-probe is built next to memtax when CMake finds nvcc (the CUDA toolkit), "
                                         "or standalone with `cmake -S kernels -B build-probe`; pass --probe PATH",
                                         probe));
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
            throw InputError(
                SourcePos{}, "--probe",
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
            const Validation v = validate_measurements(a.measurements, a.gpu, 0.05, 4 * kMiB);
            out << print.validation(v, tool_info());
            return v.all_ok && rc == 0 ? 0 : 1;
        }
        const CalibrationResult c = calibrate({a.measurements}, a.gpu, tool_line());
        const std::string path = a.calibrated.empty() ? "hardware/calibrated/" + c.base.name + ".yaml" : a.calibrated;
        write_profile(path, c.yaml, {a.measurements, probe});
        const Validation v = validate_file(load_measurements(a.measurements), c.calibrated, 0.05, 4 * kMiB);
        // The table shows the calibration before the validation; machine formats carry the validation.
        out << (a.format == "table" ? print.calibration(c, path) + "\n" : "") << print.validation(v, tool_info());
        return v.all_ok && rc == 0 ? 0 : 1;
    }

private:
    ProbeArgs a_;
};

}  // namespace

std::unique_ptr<Command> make_probe() { return std::make_unique<Probe>(); }

}  // namespace memtax::cli
