// memtax whatif: a grid of estimates (the main job on built-in defaults). One plan is compiled
// per setup, runtime and KV dtype; its points are estimated and streamed to the printer a row at
// a time, so a grid of any length holds one row in memory.
#include <fmt/format.h>

#include "cli/atomic_file.hpp"
#include "cli/common.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

struct WhatifArgs {
    std::vector<std::string> setups = {"llama-3.1-8b@1xh100-sxm", "llama-3.1-70b@4xh200"};
    std::vector<u64> contexts;  // empty: 8k, 32k and 128k, those within each model's max context
    std::vector<u64> tps;       // empty: each setup's own TP

    std::vector<u64> batches = {1, 16};
    std::vector<std::string> kv_dtypes = {"bf16", "fp8_e4m3"};
    std::vector<std::string> modes = {"prefill", "decode"};
    std::string attention, runtime, dtype, format = "table", output;
    VllmArgs vllm;
};

// The default contexts of a model: 8k, 32k, 128k where the model reaches them, else its maximum.
std::vector<u64> default_contexts(const ModelSpec& m) {
    std::vector<u64> out;
    for (u64 c : {u64{8192}, u64{32768}, u64{131072}})
        if (c <= m.max_context) out.push_back(c);
    if (out.empty()) out.push_back(m.max_context);
    return out;
}

class Whatif final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* wi = app.add_subcommand("whatif", "a grid of estimates (the main job; built-in defaults)");
        wi->add_option("--setup", a_.setups, "MODEL@NxGPU[:tpT][:ppP][:epE], repeatable (default TP N within an 8-GPU node)")
            ->capture_default_str();
        wi->add_option("--tps", a_.tps, "tensor-parallel degrees to vary over each setup's GPUs (the rest replicas)")
            ->delimiter(',')
            ->transform(positive_int());
        wi->add_option("--contexts", a_.contexts,
                       "context lengths, e.g. 8k,32k,128k (k = 1,024, M = 1,048,576; default: 8k,32k,128k up to each model's max context)")
            ->delimiter(',')
            ->transform(token_count());
        wi->add_option("--batches", a_.batches, "batch sizes")->delimiter(',')->transform(positive_int())->capture_default_str();
        wi->add_option("--kv-dtypes", a_.kv_dtypes, "KV cache dtypes")->delimiter(',')->capture_default_str();
        wi->add_option("--modes", a_.modes, "prefill and/or decode")
            ->delimiter(',')
            ->check(CLI::IsMember({"prefill", "decode"}))
            ->capture_default_str();
        wi->add_option("--runtime", a_.runtime, "hf-sdpa (default) | hf-eager | vllm | a runtime YAML profile");
        wi->add_option("--attention", a_.attention, "eager | fused: shorthand for --runtime hf-eager | hf-sdpa")
            ->check(CLI::IsMember({"eager", "fused"}));
        wi->add_option("--dtype", a_.dtype, "the models' dtype (default: each config's)");
        add_vllm_options(wi, a_.vllm);
        add_format_option(wi, a_.format);
        wi->add_option("--output,-o", a_.output, "write the report to this file (atomically)");
        return wi;
    }

    int run(std::ostream& out, std::ostream&) override {
        const WhatifArgs& a = a_;
        const Printer& print = printer(a.format);
        const RuntimeSpec runtime = runtime_from(a.runtime, a.attention, a.vllm);
        struct Setup {
            ModelSpec model;
            GpuSpec gpu;
            Deployment dep;
            std::vector<u64> contexts;
        };
        std::vector<Setup> setups;
        std::vector<std::string> inputs = {a.runtime};
        for (const auto& setup : a.setups) {
            const SetupArg sa = parse_setup(setup);
            ModelSpec m = model_from(sa.model, a.dtype);
            std::vector<u64> contexts = a.contexts.empty() ? default_contexts(m) : a.contexts;
            GpuSpec g = resolve_gpu(sa.gpu);
            // --tps varies TP over the same GPUs (the rest data-parallel replicas).
            std::vector<u64> tps = a.tps.empty() ? std::vector<u64>{sa.tp} : a.tps;
            for (u64 tp : tps) {
                if (sa.gpus % (tp * sa.pp))
                    throw InputError(SourcePos{}, "--tps",
                                     fmt::format("TP {} × PP {} does not divide the {} GPUs of {}", tp, sa.pp, sa.gpus, setup));
                setups.push_back({m, g, Deployment{sa.gpus, tp, sa.pp, sa.ep}, contexts});
            }
            inputs.push_back(sa.model);
            inputs.push_back(sa.gpu);
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
                plans.back().push_back(Plan::compile(s.model, s.gpu, s.dep, workload_from(ea, s.model, &runtime)));
            }
        }
        auto point = [](const std::string& mode, u64 batch, u64 ctx) {
            return Point{mode == "decode" ? Mode::Decode : Mode::Prefill, batch, ctx};
        };
        // Every point is checked before the first row is written: bad input leaves no output.
        for (size_t si = 0; si < plans.size(); ++si)
            for (const Plan& plan : plans[si])
                for (const auto& mode : a.modes)
                    for (u64 ctx : setups[si].contexts)
                        for (u64 batch : a.batches)
                            if (plan.evaluate(point(mode, batch, ctx)).status != PointStatus::Ok)
                                (void)plan.estimate(point(mode, batch, ctx));
        std::unique_ptr<AtomicFile> file;
        if (!a.output.empty()) {
            refuse_overwriting_inputs(a.output, inputs);
            file = std::make_unique<AtomicFile>(a.output);
        }
        auto write = [&](const std::string& text) {
            if (file)
                file->write(text);
            else
                out << text;
        };
        write(print.grid_header(tool_info()));
        bool first = true;
        for (size_t si = 0; si < plans.size(); ++si)
            for (const auto& mode : a.modes)
                for (const Plan& plan : plans[si])
                    for (u64 ctx : setups[si].contexts)
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
