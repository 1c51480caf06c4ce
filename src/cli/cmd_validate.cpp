// memtax validate: predicts every case of a measurement file and compares (exit 1 on a failure).
#include "cli/common.hpp"

namespace memtax::cli {
namespace {

class Validate final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* val = app.add_subcommand("validate", "predict every case of a measurement file and compare (exit 1 on any failure)");
        val->add_option("--measurements", file_, "a memtax.measurements/1 JSON file (docs/measurement-schema.md)")->required();
        val->add_option("--gpu", gpu_, "GPU profile for the predictions (default: matched from provenance.gpu)");
        val->add_option("--tolerance", tolerance_, "allowed forward-peak error, percent")
            ->check(CLI::Range(0.0, 100.0))
            ->capture_default_str();
        val->add_option("--slack-mib", slack_mib_,
                        "absolute floor of the allowed forward-peak difference, MiB (the caching allocator may hand out a cached "
                        "block up to 1 MiB larger than asked for each tensor above 1 MiB)")
            ->capture_default_str();
        add_format_option(val, format_);
        val->add_option("--output,-o", output_, "write the report to this file (atomically)");
        return val;
    }

    int run(std::ostream& out, std::ostream&) override {
        const Printer& print = printer(format_);
        const Validation v = validate_measurements(file_, gpu_, tolerance_ / 100.0, checked_mul(slack_mib_, 1ull << 20, "--slack-mib"));
        emit(print.validation(v, tool_info()), output_, out, {file_, gpu_});
        return v.all_ok ? 0 : 1;
    }

private:
    std::string file_, gpu_, format_ = "table", output_;
    double tolerance_ = 5.0;
    u64 slack_mib_ = 4;
};

}  // namespace

std::unique_ptr<Command> make_validate() { return std::make_unique<Validate>(); }

}  // namespace memtax::cli
