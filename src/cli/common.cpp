#include "cli/common.hpp"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>

#include "spec/loaders.hpp"

#ifndef MEMTAX_VERSION
#define MEMTAX_VERSION "0.0.0"
#endif
#ifndef MEMTAX_GIT_SHA
#define MEMTAX_GIT_SHA "unknown"
#endif

namespace memtax::cli {

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

Workload workload_from(const EstimateArgs& a, const RuntimeSpec* resolved) {
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
const CLI::Validator kPositiveIntImpl(
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
    cmd->add_option("--gpus", a.gpus, "GPUs in total (replicas = gpus / (tp · pp); default: tp · pp)")->check(positive_int());
    cmd->add_option("--tp", a.tp, "tensor-parallel degree")->check(positive_int())->capture_default_str();
    cmd->add_option("--pp", a.pp, "pipeline stages (layers split evenly; the fullest stage is reported)")
        ->check(positive_int())
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

const CLI::Validator& positive_int() { return kPositiveIntImpl; }

void add_format_option(CLI::App* cmd, std::string& format) {
    cmd->add_option("--format", format, fmt::format("{} (every command has every printer)", fmt::join(printer_formats(), " | ")))
        ->check(CLI::IsMember(printer_formats()))
        ->capture_default_str();
}

ToolInfo tool_info() { return ToolInfo{MEMTAX_VERSION, MEMTAX_GIT_SHA}; }
std::string tool_line() { return fmt::format("memtax {} ({})", MEMTAX_VERSION, MEMTAX_GIT_SHA); }

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

void emit(const std::string& text, const std::string& output, std::ostream& out, const std::vector<std::string>& inputs) {
    if (output.empty()) {
        out << text;
        return;
    }
    refuse_overwriting_inputs(output, inputs);
    write_file_atomically(output, text);
}

}  // namespace memtax::cli
