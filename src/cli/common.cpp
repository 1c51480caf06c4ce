#include "cli/common.hpp"
#include "cli/atomic_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "core/number.hpp"
#include "runtimes/runtime.hpp"
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

u64 default_context(const ModelSpec& m) { return std::min(kDefaultContext, m.max_context); }

RuntimeSpec runtime_from(const std::string& runtime, const std::string& attention, const VllmArgs& v) {
    RuntimeSpec r = runtime.empty() ? resolve_runtime(attention == "eager" ? "hf-eager" : "hf-sdpa") : resolve_runtime(runtime);
    if (!runtime.empty() && !attention.empty() && attention != to_string(r.attention))
        throw InputError(SourcePos{}, "--attention",
                         fmt::format("\"{}\" contradicts runtime {} (its attention is {}); drop --attention or pick another runtime",
                                     attention, r.name, to_string(r.attention)));
    EngineArgs e;
    if (!v.gpu_memory_utilization.empty()) {
        e.gpu_memory_utilization_ppm = utilization_ppm(v.gpu_memory_utilization);
        if (!e.gpu_memory_utilization_ppm)
            throw InputError(
                SourcePos{}, "--gpu-memory-utilization",
                fmt::format("\"{}\" must be a decimal in (0, 1] with at most 6 digits (vLLM's default: 0.9)", v.gpu_memory_utilization));
    }
    if (v.max_num_seqs) e.max_num_seqs = v.max_num_seqs;
    if (v.max_num_batched_tokens) e.max_num_batched_tokens = v.max_num_batched_tokens;
    if (v.block_size) e.block_size = v.block_size;
    if (v.max_model_len) e.max_model_len = v.max_model_len;
    if (v.enforce_eager) e.enforce_eager = true;
    if (!v.attention_backend.empty()) e.attention_backend = v.attention_backend;
    if (!v.kv_cache_memory.empty()) {
        u64 bytes = 0;
        if (parse_byte_size(v.kv_cache_memory, bytes) != NumberParse::Ok || bytes == 0)
            throw InputError(SourcePos{}, "--kv-cache-memory",
                             fmt::format("\"{}\" is not a size in bytes; e.g. 21474836480, 20G (GiB) or 20g (10^9)", v.kv_cache_memory));
        e.kv_cache_memory_bytes = bytes;
    }
    try {
        apply_engine_args(r, e);
    } catch (const InputError& err) {
        if (!r.vllm) throw InputError(err.pos(), err.field(), err.message() + " (add --runtime vllm)");
        throw;
    }
    return r;
}

ModelSpec model_from(const std::string& model, const std::string& dtype) {
    ModelSpec m = resolve_model(model);
    if (!dtype.empty()) {
        const DType d = dtype_arg("--dtype", dtype);
        // The model's dtype is its activations' too: quantised types are weights only.
        if (!d.whole_bytes() || d.bits < 16)
            throw InputError(SourcePos{}, "--dtype",
                             fmt::format("{} cannot hold activations (valid: fp32, bf16, fp16); for quantised weights use "
                                         "--weight-dtype {}, for the KV cache --kv-dtype {}",
                                         d.name, dtype, dtype));
        m.dtype = d;
    }
    return m;
}

std::optional<DType> kv_cache_dtype(const std::string& text) {
    // vLLM's --kv-cache-dtype values (vllm/config/cache.py CacheDType): "auto" is the model's.
    if (text.empty() || text == "auto") return std::nullopt;
    static const std::pair<const char*, const char*> names[] = {
        {"fp8", "fp8_e4m3"}, {"fp8_e4m3", "fp8_e4m3"}, {"fp8_e5m2", "fp8_e5m2"}, {"bfloat16", "bf16"}, {"float16", "fp16"}};
    for (const auto& [vllm, ours] : names)
        if (text == vllm) {
            DType d;
            parse_dtype(ours, d);
            return d;
        }
    throw InputError(SourcePos{}, "--kv-cache-dtype",
                     fmt::format("\"{}\" is not a vLLM KV cache dtype; valid: auto, fp8, fp8_e4m3, fp8_e5m2, bfloat16, float16", text));
}

Workload workload_from(const EstimateArgs& a, const ModelSpec& m, const RuntimeSpec* resolved) {
    if (a.mode == "train") throw InputError(SourcePos{}, "--mode", "train is answered by `memtax estimate --mode train`");
    Workload w;
    w.mode = a.mode == "decode" ? Mode::Decode : Mode::Prefill;
    w.runtime = resolved ? *resolved : runtime_from(a.runtime, a.attention, a.vllm);
    w.batch = a.batch;
    w.context = a.context ? a.context : default_context(m);
    if (!a.weight_dtype.empty()) w.weight_dtype = dtype_arg("--weight-dtype", a.weight_dtype);
    if (!a.kv_dtype.empty()) w.kv_dtype = dtype_arg("--kv-dtype", a.kv_dtype);
    if (const auto kv = kv_cache_dtype(a.vllm.kv_cache_dtype)) {
        if (w.kv_dtype && !(*w.kv_dtype == *kv))
            throw InputError(SourcePos{}, "--kv-cache-dtype",
                             fmt::format("\"{}\" contradicts --kv-dtype {}; give one of them", a.vllm.kv_cache_dtype, a.kv_dtype));
        w.kv_dtype = *kv;
    }
    if (!a.softmax_dtype.empty()) w.softmax_dtype = dtype_arg("--softmax-dtype", a.softmax_dtype);
    if (!a.logits_dtype.empty()) w.logits_dtype = dtype_arg("--logits-dtype", a.logits_dtype);
    if (!a.logits_kept.empty()) {
        if (a.logits_kept == "all") {
            w.logits_kept = 0;
        } else {
            u64 k = 0;
            if (parse_exact_integer(a.logits_kept, k) != NumberParse::Ok || k == 0)
                throw InputError(SourcePos{}, "--logits-kept",
                                 fmt::format("expected a positive number of positions or \"all\", got \"{}\"", a.logits_kept));
            w.logits_kept = k;
        }
    }
    w.allow_long_context = a.allow_long_context;
    return w;
}

namespace {
CLI::Validator count_validator(bool tokens) {
    return CLI::Validator(
        [tokens](std::string& text) -> std::string {
            u64 v = 0;
            const NumberParse p = tokens ? parse_token_count(text, v) : parse_exact_integer(text, v);
            if (p != NumberParse::Ok) return number_problem(p, text, tokens);
            if (v == 0)
                return tokens ? fmt::format("expected a positive number of tokens, got \"{}\"", text)
                              : fmt::format("expected a positive integer, got \"{}\"", text);
            text = std::to_string(v);
            return {};
        },
        tokens ? "TOKENS" : "POSITIVE");
}
const CLI::Validator kPositiveInt = count_validator(false);
const CLI::Validator kTokenCount = count_validator(true);
}  // namespace

const CLI::Validator& positive_int() { return kPositiveInt; }
const CLI::Validator& token_count() { return kTokenCount; }

ClusterSpec cluster_arg(const std::string& name, const GpuSpec& g) {
    ClusterSpec c = resolve_cluster(name);
    const GpuSpec cg = resolve_gpu(c.gpu);
    bool same = cg.name == g.name;
    for (const auto& d : g.device_names)
        same = same || std::find(cg.device_names.begin(), cg.device_names.end(), d) != cg.device_names.end();
    if (!same)
        throw InputError(
            SourcePos{}, "--cluster",
            fmt::format("{} is a cluster of {}, not of {}; pass --gpu {} or another cluster", c.name, cg.name, g.name, cg.name));
    return c;
}

void add_workload_options(CLI::App* cmd, EstimateArgs& a) {
    cmd->add_option("--model", a.model, "built-in model (name, alias or HF id), a memtax YAML profile, or a HF config.json")
        ->capture_default_str();
    cmd->add_option("--gpu", a.gpu, "built-in GPU (name or alias; a family such as h100 lists its members) or a GPU YAML profile")
        ->capture_default_str();
    cmd->add_option("--gpus", a.gpus, "GPUs in total (replicas = gpus / (tp · pp); default: tp · pp)")->transform(positive_int());
    cmd->add_option("--tp,--tensor-parallel-size", a.tp, "tensor-parallel degree")->transform(positive_int())->capture_default_str();
    cmd->add_option("--ep", a.ep,
                    "expert-parallel degree (MoE models): routed experts spread over this many GPUs, each sliced over TP / EP of them "
                    "(EP divides TP), or whole on each GPU of several replicas (wide EP: a multiple of TP, with --gpus)")
        ->transform(positive_int())
        ->capture_default_str();
    cmd->add_option("--pp,--pipeline-parallel-size", a.pp, "pipeline stages (layers split evenly; the fullest stage is reported)")
        ->transform(positive_int())
        ->capture_default_str();
    cmd->add_option("--mode", a.mode, "prefill | decode | train (estimate: one training step)")
        ->check(CLI::IsMember({"prefill", "decode", "train"}))
        ->capture_default_str();
    cmd->add_option("--runtime", a.runtime, "hf-sdpa (default) | hf-eager | vllm | a runtime YAML profile");
    cmd->add_option("--attention", a.attention, "eager | fused: shorthand for --runtime hf-eager | hf-sdpa")
        ->check(CLI::IsMember({"eager", "fused"}));
    cmd->add_option("--dtype", a.dtype, "the model's dtype: weights, activations and, by default, KV and logits (default: the config's)");
    cmd->add_option("--weight-dtype", a.weight_dtype,
                    "dtype of the linear layers' weights; 16/32-bit also casts embeddings, norms and head (default: the model's)");
    cmd->add_option("--kv-dtype", a.kv_dtype, "KV cache dtype (default: the model's)");
    cmd->add_option("--softmax-dtype", a.softmax_dtype, "eager softmax dtype (default fp32, PyTorch's upcast)");
    cmd->add_option("--logits-dtype", a.logits_dtype, "logits dtype (default: the model's)");
    cmd->add_option("--logits-kept", a.logits_kept, "positions whose logits are computed: N or all (default 1)");
    cmd->add_flag("--allow-long-context", a.allow_long_context, "size a context beyond the model's max_context");
    add_vllm_options(cmd, a.vllm);
}

void add_vllm_options(CLI::App* cmd, VllmArgs& v) {
    cmd->add_option("--gpu-memory-utilization", v.gpu_memory_utilization, "vLLM: fraction of GPU memory vLLM may use (vLLM default 0.9)");
    cmd->add_option("--max-num-seqs", v.max_num_seqs, "vLLM: sequences scheduled at once (vLLM default 256)")->transform(positive_int());
    cmd->add_option("--max-num-batched-tokens", v.max_num_batched_tokens,
                    "vLLM: tokens per engine step, sizes the profile run (vLLM default 8192)")
        ->transform(token_count());
    cmd->add_option("--block-size", v.block_size,
                    "vLLM: tokens per KV block: 1, 8, 16, 32, 64, 128 or 256 (vLLM default 16; MLA "
                    "backends force 64 or 128)")
        ->transform(positive_int());
    cmd->add_option("--max-model-len", v.max_model_len,
                    "vLLM: the longest request the engine admits, apart from the workload's --context (default: the context)")
        ->transform(token_count());
    cmd->add_option("--kv-cache-dtype", v.kv_cache_dtype, "vLLM: auto | fp8 | fp8_e4m3 | fp8_e5m2 (auto: the model's dtype)");
    cmd->add_option("--kv-cache-memory,--kv-cache-memory-bytes", v.kv_cache_memory,
                    "vLLM: the KV cache's size in bytes (20G = 20 GiB, 20g = 20·10^9); gpu_memory_utilization is then not used");
    cmd->add_flag("--enforce-eager", v.enforce_eager, "vLLM: no CUDA graphs (no graph pool)");
    cmd->add_option("--attention-backend", v.attention_backend,
                    "vLLM: MLA backend FLASHMLA | FLASHINFER_MLA | CUTLASS_MLA | TRITON_MLA (default: vLLM's for the GPU)");
}

void add_format_option(CLI::App* cmd, std::string& format) {
    cmd->add_option("--format", format, fmt::format("{} (every command has every printer)", fmt::join(printer_formats(), " | ")))
        ->check(CLI::IsMember(printer_formats()))
        ->capture_default_str();
}

void warn_about(const GpuSpec& g, std::ostream& err) {
    for (const auto& w : g.warnings) err << "memtax: warning: " << w << "\n";
}

SetupArg parse_setup(const std::string& text, u64 gpus_per_node) {
    auto bad = [&](const std::string& why) {
        return InputError(
            SourcePos{}, "--setup",
            fmt::format(
                "\"{}\": {}; expected MODEL@NxGPU[:tpT][:ppP][:epE] (e.g. llama-3.1-70b@4xh200, llama-3.1-405b@16xh100-sxm:tp8:pp2, "
                "deepseek-v3@8xh200:tp1:ep8)",
                text, why));
    };
    const size_t at = text.rfind('@');
    if (at == std::string::npos || at == 0) throw bad("no MODEL@");
    SetupArg s;
    s.model = text.substr(0, at);
    std::string rest = text.substr(at + 1);
    std::vector<std::string> parts;
    for (size_t i = 0; i <= rest.size();) {
        const size_t c = std::min(rest.find(':', i), rest.size());
        parts.push_back(rest.substr(i, c - i));
        i = c + 1;
    }
    const size_t x = parts[0].find('x');
    if (x == std::string::npos || x == 0 || x + 1 >= parts[0].size()) throw bad("no NxGPU");
    if (parse_exact_integer(parts[0].substr(0, x), s.gpus) != NumberParse::Ok || s.gpus == 0) throw bad("N must be a positive integer");
    s.gpu = parts[0].substr(x + 1);
    bool tp_given = false;
    for (size_t i = 1; i < parts.size(); ++i) {
        u64 v = 0;
        const std::string& p = parts[i];
        if (p.size() > 2 && (p.starts_with("tp") || p.starts_with("pp") || p.starts_with("ep")) &&
            parse_exact_integer(p.substr(2), v) == NumberParse::Ok && v > 0) {
            (p[0] == 't' ? s.tp : p[0] == 'p' ? s.pp : s.ep) = v;
            tp_given |= p[0] == 't';
        } else {
            throw bad(fmt::format("unknown part \"{}\" (valid: tpT, ppP, epE)", p));
        }
    }
    if (!tp_given) {
        if (s.gpus / s.pp > gpus_per_node)
            throw bad(fmt::format("TP {} would cross a node of {} GPUs; say how to lay it out, e.g. :tp{} ({} replicas) or :tp{}:pp{}",
                                  s.gpus / s.pp, gpus_per_node, gpus_per_node, s.gpus / gpus_per_node, gpus_per_node,
                                  s.gpus / gpus_per_node));
        s.tp = s.gpus / s.pp;
    }
    if (s.gpus % (s.tp * s.pp)) throw bad(fmt::format("{} GPUs do not split into replicas of TP {} × PP {}", s.gpus, s.tp, s.pp));
    return s;
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
            throw InputError(SourcePos{}, "--output",
                             fmt::format("\"{}\" is an input of this run ({}); refusing to overwrite it", output, in));
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
