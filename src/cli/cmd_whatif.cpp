// memtax whatif: a grid of estimates (the main job on built-in defaults). One plan is compiled
// per setup, runtime and KV dtype; its points are estimated and streamed to the printer a row at
// a time, so a grid of any length holds one row in memory.
#include <fmt/format.h>

#include <charconv>

#include "cli/common.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

struct WhatifArgs {
    std::vector<std::string> setups = {"llama-3.1-8b@1xh100-sxm", "llama-3.1-70b@4xh200"};
    std::vector<u64> contexts = {8192, 32768, 131072};
    std::vector<u64> batches = {1, 16};
    std::vector<std::string> kv_dtypes = {"bf16", "fp8_e4m3"};
    std::vector<std::string> modes = {"prefill", "decode"};
    std::string attention, runtime, format = "table", output;
};

class Whatif final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* wi = app.add_subcommand("whatif", "a grid of estimates (the main job; built-in defaults)");
        wi->add_option("--setup", a_.setups, "MODEL@NxGPU, repeatable (tensor parallel over the N GPUs)")->capture_default_str();
        wi->add_option("--contexts", a_.contexts, "context lengths")->delimiter(',')->check(positive_int())->capture_default_str();
        wi->add_option("--batches", a_.batches, "batch sizes")->delimiter(',')->check(positive_int())->capture_default_str();
        wi->add_option("--kv-dtypes", a_.kv_dtypes, "KV cache dtypes")->delimiter(',')->capture_default_str();
        wi->add_option("--modes", a_.modes, "prefill and/or decode")->delimiter(',')->check(CLI::IsMember({"prefill", "decode"}))->capture_default_str();
        wi->add_option("--runtime", a_.runtime, "hf-sdpa (default) | hf-eager | vllm | a runtime YAML profile");
        wi->add_option("--attention", a_.attention, "eager | fused: shorthand for --runtime hf-eager | hf-sdpa")
            ->check(CLI::IsMember({"eager", "fused"}));
        add_format_option(wi, a_.format);
        wi->add_option("--output,-o", a_.output, "write the report to this file (atomically)");
        return wi;
    }

    int run(std::ostream& out, std::ostream&) override {
        const WhatifArgs& a = a_;
        const Printer& print = printer(a.format);
        const RuntimeSpec runtime = runtime_from(a.runtime, a.attention);
        struct Setup {
            ModelSpec model;
            GpuSpec gpu;
            u64 n;
        };
        std::vector<Setup> setups;
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
            setups.push_back({resolve_model(setup.substr(0, at)), resolve_gpu(setup.substr(x + 1)), n});
            inputs.push_back(setup.substr(0, at));
            inputs.push_back(setup.substr(x + 1));
        }
        // One plan per setup and KV dtype.
        std::vector<std::vector<Plan>> plans;
        for (const auto& s : setups) {
            plans.emplace_back();
            for (const auto& kv : a.kv_dtypes) {
                EstimateArgs ea;
                ea.attention = a.attention;
                ea.runtime = a.runtime;
                ea.kv_dtype = kv;
                plans.back().push_back(Plan::compile(s.model, s.gpu, Deployment{s.n, s.n}, workload_from(ea, &runtime)));
            }
        }
        auto point = [](const std::string& mode, u64 batch, u64 ctx) { return Point{mode == "decode" ? Mode::Decode : Mode::Prefill, batch, ctx}; };
        // Every point is checked before the first row is written: bad input leaves no output.
        for (const auto& per_setup : plans)
            for (const Plan& plan : per_setup)
                for (const auto& mode : a.modes)
                    for (u64 ctx : a.contexts)
                        for (u64 batch : a.batches)
                            if (plan.evaluate(point(mode, batch, ctx)).status != PointStatus::Ok) (void)plan.estimate(point(mode, batch, ctx));
        std::unique_ptr<AtomicFile> file;
        if (!a.output.empty()) {
            refuse_overwriting_inputs(a.output, inputs);
            file = std::make_unique<AtomicFile>(a.output);
        }
        auto write = [&](const std::string& text) {
            if (file) file->write(text);
            else out << text;
        };
        write(print.grid_header(tool_info()));
        bool first = true;
        for (const auto& per_setup : plans)
            for (const auto& mode : a.modes)
                for (const Plan& plan : per_setup)
                    for (u64 ctx : a.contexts)
                        for (u64 batch : a.batches) {
                            write(print.grid_row(plan.estimate(point(mode, batch, ctx)), first));
                            first = false;
                        }
        write(print.grid_footer());
        if (file) file->commit();
        return 0;
    }

private:
    WhatifArgs a_;
};

}  // namespace

std::unique_ptr<Command> make_whatif() { return std::make_unique<Whatif>(); }

}  // namespace memtax::cli
