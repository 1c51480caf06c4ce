#pragma once
// Shared by the subcommands (one file each, cmd_*.cpp): the workload flags and how they map onto
// the engine's fields, output through the printer registry, atomic writes that refuse to
// overwrite an input, and the interface every subcommand implements.
#include <CLI/CLI.hpp>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "model/plan.hpp"
#include "report/printer.hpp"

namespace memtax::cli {

// Flags that describe a deployment and a workload (estimate; what-if reuses them per row).
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

DType dtype_arg(const std::string& flag, const std::string& text);
// --runtime names the stack; --attention eager|fused is shorthand for hf-eager|hf-sdpa.
RuntimeSpec runtime_from(const std::string& runtime, const std::string& attention);
Workload workload_from(const EstimateArgs& a, const RuntimeSpec* resolved = nullptr);
// CLI11's own range validators print the whole double range; this one says what is valid.
const CLI::Validator& positive_int();
void add_workload_options(CLI::App* cmd, EstimateArgs& a);
// --format FORMAT: one of the printer registry's formats.
void add_format_option(CLI::App* cmd, std::string& format);

ToolInfo tool_info();
std::string tool_line();

// Refuses an --output that is one of the run's own input files (a typo away from destroying a
// profile or a measurement file).
void refuse_overwriting_inputs(const std::string& output, const std::vector<std::string>& inputs);
void write_profile(const std::string& path, const std::string& text, const std::vector<std::string>& inputs);
// To `output` atomically, or to `out` when no output file is given.
void emit(const std::string& text, const std::string& output, std::ostream& out, const std::vector<std::string>& inputs = {});

// One subcommand: registers its flags, then runs when chosen. run() returns the exit code.
class Command {
public:
    virtual ~Command() = default;
    virtual CLI::App* add(CLI::App& app) = 0;
    virtual int run(std::ostream& out, std::ostream& err) = 0;
};

std::unique_ptr<Command> make_estimate();
std::unique_ptr<Command> make_whatif();
std::unique_ptr<Command> make_validate();
std::unique_ptr<Command> make_calibrate();
std::unique_ptr<Command> make_probe();
std::unique_ptr<Command> make_listing(const std::string& what);  // models | gpus | runtimes

}  // namespace memtax::cli
