// memtax calibrate: fits probe measurements to the time model's kernel classes and writes a
// calibrated GPU profile.
#include "cli/common.hpp"

namespace memtax::cli {
namespace {

class Calibrate final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* cal = app.add_subcommand("calibrate", "fit the probe's measurements to kernel rates; write a calibrated GPU profile");
        cal->add_option("--measurements", measurements_,
                        "memtax-probe measurement files of one device (repeat, e.g. the one-GPU run and a multi-GPU allreduce run)")
            ->required();
        cal->add_option("--gpu", gpu_, "the datasheet profile to refine (default: matched from provenance.gpu)");
        cal->add_option("--output,-o", output_, "where to write the profile (default: hardware/calibrated/<gpu>.yaml)");
        add_format_option(cal, format_);
        return cal;
    }

    int run(std::ostream& out, std::ostream&) override {
        const Printer& print = printer(format_);
        const CalibrationResult c = calibrate(measurements_, gpu_, tool_line());
        const std::string path = output_.empty() ? "hardware/calibrated/" + c.base.name + ".yaml" : output_;
        std::vector<std::string> inputs = measurements_;
        inputs.push_back(gpu_);
        write_profile(path, c.yaml, inputs);
        out << print.calibration(c, path);
        return 0;
    }

private:
    std::vector<std::string> measurements_;
    std::string gpu_, output_, format_ = "table";
};

}  // namespace

std::unique_ptr<Command> make_calibrate() { return std::make_unique<Calibrate>(); }

}  // namespace memtax::cli
