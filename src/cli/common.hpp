#pragma once
// Shared by the subcommands (one file each, cmd_*.cpp): the workload flags and how they map onto
// the engine's fields, output through the printer registry, atomic writes that refuse to
// overwrite an input, and the interface every subcommand implements.
#include <CLI/CLI.hpp>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/number.hpp"
#include "model/plan.hpp"
#include "report/printer.hpp"
#include "spec/scenario_spec.hpp"

namespace memtax::cli {

// vLLM's own engine arguments, with vLLM's names; unset (empty / 0) keeps the runtime profile's
// values (vLLM's defaults in the shipped `vllm` profile).
struct VllmArgs {
    std::string gpu_memory_utilization;
    u64 max_num_seqs = 0, max_num_batched_tokens = 0, block_size = 0, max_model_len = 0;
    std::string kv_cache_memory, kv_cache_dtype, attention_backend;
    bool enforce_eager = false;
};

// Flags that describe a deployment and a workload (estimate; what-if reuses them per row).
struct EstimateArgs {
    std::string model = "llama-3.1-8b";
    std::string gpu = "h100-sxm";
    u64 gpus = 0, tp = 1, pp = 1, ep = 1, batch = 1;  // gpus 0: one replica (= tp · pp)
    u64 context = 0;                                  // 0: min(8192, the model's max context)
    std::string mode = "prefill", attention, runtime;
    std::string dtype, weight_dtype, kv_dtype, softmax_dtype, logits_dtype, logits_kept;
    std::string format = "table", output;
    bool explain = false, allow_long_context = false, require_fit = false, time = false;
    std::string cluster;
    VllmArgs vllm;
    // --mode train (estimate)
    std::string recompute, optimizer, precision;
    u64 zero = 0, micro_batches = 1;
    bool sequence_parallel = false;
    std::string loop, use_cache, zero_grad, overlap_comm, grad_dtype;
    bool fsdp = false;
    u64 reduce_bucket = 0, prefetch_bucket = 0;  // 0: DeepSpeed's defaults
    u64 lora_rank = 0, lora_alpha = 0;           // 0: no LoRA / alpha = 2 · rank
    std::vector<std::string> lora_targets;
    std::string offload;
    u64 train_tokens = 0;       // --mode train --time: a token budget (0: none)
    double gpu_hour_price = 0;  // $ per GPU-hour for the budget (0: none)
};

// The context a workload gets when none is given: 8192 tokens, or the model's maximum if smaller.
constexpr u64 kDefaultContext = 8192;
u64 default_context(const ModelSpec& m);

DType dtype_arg(const std::string& flag, const std::string& text);
// --cluster NAME|FILE for a run on GPU `g`: the cluster profile, whose GPU must be `g` (or its
// calibrated copy: the same device); InputError naming --cluster otherwise.
ClusterSpec cluster_arg(const std::string& name, const GpuSpec& g);
// --runtime names the stack; --attention eager|fused is shorthand for hf-eager|hf-sdpa; vLLM's
// engine arguments edit a vllm runtime (an error for another runtime).
RuntimeSpec runtime_from(const std::string& runtime, const std::string& attention, const VllmArgs& vllm = {});
// The model with --dtype applied (the model's own dtype: weights, activations, KV by default).
ModelSpec model_from(const std::string& model, const std::string& dtype);
// vLLM's --kv-cache-dtype value as a dtype; nullopt for "auto" (the model's) or unset.
std::optional<DType> kv_cache_dtype(const std::string& text);
Workload workload_from(const EstimateArgs& a, const ModelSpec& m, const RuntimeSpec* resolved = nullptr);
// A positive integer, in exponent notation too ("1e3"); a transform: the flag's value becomes
// the plain decimal. CLI11's own range validators print the whole double range; this one says
// what is valid.
const CLI::Validator& positive_int();
// A positive token count: 8192, 32k (= 32,768), 1M (= 1,048,576), 1e5.
const CLI::Validator& token_count();
void add_workload_options(CLI::App* cmd, EstimateArgs& a);
void add_vllm_options(CLI::App* cmd, VllmArgs& v);
// --format FORMAT: one of the printer registry's formats.
void add_format_option(CLI::App* cmd, std::string& format);
// Non-fatal notes about the inputs (a GPU profile without efficiencies), one line each.
void warn_about(const GpuSpec& g, std::ostream& err);

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
    // Its inputs are scenario files: the engine's field paths are that file's keys, not flags.
    virtual bool reads_scenarios() const { return false; }
};

std::unique_ptr<Command> make_estimate();
std::unique_ptr<Command> make_whatif();
std::unique_ptr<Command> make_validate();
std::unique_ptr<Command> make_accuracy();
std::unique_ptr<Command> make_calibrate();
std::unique_ptr<Command> make_probe();
std::unique_ptr<Command> make_listing(const std::string& what);  // models | gpus | runtimes | clusters
std::unique_ptr<Command> make_plan();
std::unique_ptr<Command> make_sweep();
std::unique_ptr<Command> make_max_batch();
std::unique_ptr<Command> make_max_context();
std::unique_ptr<Command> make_vs();
std::unique_ptr<Command> make_serve();
std::unique_ptr<Command> make_compare();
std::unique_ptr<Command> make_report();
std::unique_ptr<Command> make_check();

// MODEL@NxGPU[:tpT][:ppP][:epE]: N GPUs of one kind, TP T (default N), PP P (default 1) and
// expert parallelism E (default 1; MoE models); the rest data-parallel replicas. TP defaults to N
// only within one 8-GPU node: past it the setup must say how it is laid out.
struct SetupArg {
    std::string model, gpu;
    u64 gpus = 1, tp = 1, pp = 1, ep = 1;
};
SetupArg parse_setup(const std::string& text, u64 gpus_per_node = 8);

}  // namespace memtax::cli
