#pragma once
// Runtime families behind one interface. A family (transformers' eager PyTorch, vLLM, ...)
// decides how a model executes on one GPU: which graph each layer's blocks build, which
// tensors stay alive, how the cache is laid out and how its pools are sized. It compiles a
// (model, GPU, runtime, deployment, dtypes) into a RuntimePlan once; the plan evaluates a
// (mode, batch, context) point into plain numbers without allocating or throwing, and
// describes a point in full (named components, family sections, where the peak is) only for
// rows someone prints. A family owns its behaviour: how requests are scheduled (first_tokens),
// which batches it admits, what its TTFT and TPOT mean, and its settings section. A new family is
// one file in this folder plus its entry in RuntimeRegistry::builtin() (common.cpp); docs/engine.md
// "Adding a runtime" walks through it.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "blocks/block.hpp"
#include "core/format.hpp"
#include "runtimes/serving.hpp"
#include "spec/gpu_spec.hpp"

namespace memtax {

enum class Mode : std::uint8_t { Prefill, Decode };
const char* to_string(Mode m);

struct Deployment {
    u64 gpus = 1;  // GPUs in total; data-parallel replicas = gpus / (tp · pp)
    u64 tp = 1;    // tensor-parallel degree
    u64 pp = 1;    // pipeline stages (layers split evenly, ceil(L / pp) per stage)
    // Expert-parallel degree: routed experts spread over ep GPUs, each expert sliced over tp / ep of
    // them (ep divides tp), or whole on each of ep GPUs spanning replicas (wide EP: ep = tp × replicas)
    u64 ep = 1;
};

// The dtype policy of a plan, every choice resolved.
struct DtypePolicy {
    DType weight, kv, softmax, logits;
    u64 logits_kept = 1;  // positions whose logits are computed; 0 = all
    DType expert_weight;  // routed experts' weights (gpt-oss ships them in mxfp4); empty name = weight
};

// One point of a sweep.
struct Point {
    Mode mode = Mode::Prefill;
    u64 batch = 1;    // sequences in total (split over data-parallel replicas)
    u64 context = 0;  // prefill: prompt tokens; decode: KV length after the step (vLLM: max_model_len)
    // decode: which step after the prefill. 1: the first, whose windowed layers still hold the
    // prompt's whole storage; 2 or more: the steady state of a generate() loop.
    u64 decode_step = 1;
};

enum class PointStatus : std::uint8_t {
    Ok,
    Overflow,          // a count does not fit 64 bits (the full estimate names the term)
    BadBatch,          // workload.batch is 0
    BadContext,        // workload.context is 0
    BeyondMaxContext,  // workload.context exceeds the model's max_context (and it was not allowed)
};

// Per GPU, bytes: what a planner reads for one point. Plain numbers, no strings.
struct PointResult {
    PointStatus status = PointStatus::Ok;
    u64 weights = 0, kv_cache = 0, attention_matrix = 0, activation_peak = 0, logits = 0;
    // KV bytes the cache exposes (its tensors' sizes): below kv_cache when a view keeps a larger
    // storage alive (transformers' sliding-window slice of the prompt's K/V).
    u64 kv_cache_visible = 0;
    u64 logits_output = 0;  // the logits tensor the step returns: batch · kept · vocab · dtype
    u64 runtime_overhead = 0, total = 0, forward_peak = 0;
    u64 resident_before = 0;  // allocated before the step: weights (+ the existing KV in decode)
    u64 capacity = 0;
    bool fits = false;
    u64 batch_per_replica = 1;
    u64 logits_kept = 1;
    // Requests the runtime can serve at once at this context (paged pools), ×1000; 0 when the
    // family has no such limit.
    u64 max_concurrency_milli = 0;
    // Where the peak is: the pipeline stage, the layer (-1: before the layers or after them),
    // and an index the family's describe() turns into a name.
    std::uint32_t stage = 0;
    std::int32_t peak_layer = -1;
    std::int32_t peak_site = -1;
    std::int32_t peak_op = -1;
    std::int32_t overflow_graph = -1, overflow_item = 0;  // for the overflow message
};

// One named part of a GPU's memory, with the formula behind it (--explain).
struct Component {
    std::string name;      // "weights", "kv_cache", ...
    std::string category;  // weights | kv_cache | attention_matrix | activations | logits | overhead | total
    u64 bytes = 0;
    std::string formula;
};

// A family's own numbers, discovered by the printers: key, value, and what it means.
struct SectionField {
    std::string key;
    std::variant<u64, double, bool, std::string> value;
    std::string label;  // for tables; empty = key
};
struct Section {
    std::string name;   // JSON key, e.g. "vllm"
    std::string title;  // table heading
    std::vector<SectionField> fields;
};

// A layer type's numbers in the breakdown (layers with the same blocks share a row).
struct LayerRow {
    std::string token_mixer, channel_mixer;
    u64 count = 0;
    u64 weights_bytes = 0;           // per layer
    u64 kv_cache_bytes = 0;          // per layer, after the step
    u64 attention_matrix_bytes = 0;  // most S×S bytes live at once in the layer
    u64 transient_peak_bytes = 0;    // the layer's own peak, excluding the cache it writes
    std::string peak_op;
};

// A graph of the step as bound for this point, for the traffic and time model.
struct GraphUse {
    const OpGraph* graph = nullptr;
    Bindings bindings;
    u64 count = 0;  // times it runs in one whole-model step (every stage)
    bool is_layer = true;
    u64 mask_read_bytes = 0;  // a mask built outside the layer that each run reads
    u64 hidden_bytes = 0;     // one activation message (batch · tokens · hidden), for collectives
};

// The full description of a point: built only for rows that are printed.
// A tensor live at the forward peak (--explain): the peak's graph tensors and the per-forward
// tensors held beside it; the resident weights and KV cache are components of their own.
struct LiveItem {
    std::string name;
    u64 bytes = 0;
    std::string where;  // category and site: "activation, layer 31 (full_attention)"
};

// How much of a point a family describes: everything a printer shows, or only the step's graphs
// the time model prices (no names, formulas, live tensors, sections or verdict: nothing is
// formatted for a caller that prints none of it).
enum class Detail : std::uint8_t { Full, Steps };

struct Breakdown {
    Detail detail = Detail::Full;
    std::vector<Component> components;
    std::vector<LiveItem> live_at_peak;
    std::vector<Section> sections;
    std::vector<LayerRow> layers;
    std::vector<GraphUse> step_graphs;
    std::string peak_at;
    std::string verdict;
    std::string kv_note;  // what the cache keeps beyond what it exposes, if anything
};

// The value of a family section's integer field, for callers that know the family (tests, a
// planner reading vLLM's concurrency); nullopt when absent.
std::optional<u64> section_u64(const Breakdown& b, const std::string& section, const std::string& key);

class RuntimeRegistry;

// A deployment as a runtime's own launcher takes it (RuntimeRegistry::Family::launch).
struct ServeLaunch {
    std::string model;  // the checkpoint's Hugging Face id, or memtax's name
    u64 tp = 1, pp = 1, dp = 1;
    bool expert_parallel = false;
    std::string kv_dtype;  // "" = the model's own dtype
    u64 max_model_len = 0;
};

struct CompileInput {
    const ModelSpec& model;  // this stage's layers
    const GpuSpec& gpu;
    const RuntimeSpec& runtime;
    const Deployment& deployment;
    const DtypePolicy& dtypes;
    const ShardSizes& shard;
    const BlockRegistry& blocks;
    bool has_embedding = true, has_head = true;  // the pipeline stage's ends
    const ModelSpec& full_model;                 // every layer (a step runs them all)
    const RuntimeRegistry* runtimes = nullptr;   // null: RuntimeRegistry::builtin()
};

// Training (`--mode train`): one micro-batch's forward with a loss over every position, then
// its backward. Recompute::Full checkpoints every decoder layer (non-reentrant: its inputs are
// kept and it runs again in the backward); Selective recomputes the attention core.
enum class Recompute : std::uint8_t { None, Selective, Full };
const char* to_string(Recompute r);
// How the weight gradients live through the backward pass.
enum class GradHolding : std::uint8_t {
    Accumulate,  // autograd's .grad tensors, each kept once formed (zero_grad(set_to_none=True), one micro-batch)
    InPlace,     // they exist before the backward (accumulation, set_to_none=False): each new one is added in place
    Bucketed,    // each copied into a reduction bucket as it is formed (DeepSpeed ZeRO-2/3)
    PerLayer,    // a layer's kept until its backward ends, then reduce-scattered; the root module's to the end (FSDP2)
    Fused,       // accumulated into a main-gradient buffer by the weight-gradient GEMM (Megatron)
};
struct TrainPoint {
    u64 batch = 1;    // sequences in the micro-batch
    u64 context = 0;  // tokens per sequence
    Recompute recompute = Recompute::None;
    bool sequence_parallel = false;  // shard the TP-replicated [tokens, hidden] activations over the TP group
    bool keep_outputs = false;       // the caller holds the model's output through the backward: its logits
    bool keep_cache = false;         // ... and its cache (use_cache on; no checkpointed layers)
    GradHolding grads = GradHolding::Accumulate;
    // LoRA: the base frozen, these adapters trained (null: every parameter trains). The first
    // layer's input then needs no gradient unless layers are checkpointed (peft's
    // enable_input_require_grads).
    const Adapters* adapters = nullptr;
};
// Per GPU, bytes, relative to what was allocated before the forward.
struct TrainActivations {
    u64 saved = 0;          // allocated after the forward: what backward reads, the loss's included
    u64 forward_peak = 0;   // the forward's highest
    u64 backward_peak = 0;  // the highest through forward and backward, gradients included
    u64 weight_grads = 0;   // gradients of this GPU's parameters, in their dtype
    u64 layer_saved = 0;    // one decoder layer's saved bytes (the largest type) under selective or no recomputation
    u64 outputs_kept = 0;   // of `saved`: the output the caller holds (logits, cache), released after the step
    // Where the weights are (what ZeRO-3 and FSDP gather): the largest one module holds, the
    // largest decoder layer's, and the root module's (embedding, final norm, LM head).
    u64 largest_module = 0, largest_layer = 0, root_weights = 0;
    u64 adapter_parameters = 0;  // LoRA: the trainable parameters (peft's count)
    std::string peak_at;         // where backward_peak is
};

// When each request's first token arrives. A static batch (transformers' generate) prefills
// every prompt in one forward: each first token comes after the whole batch's prefill. vLLM
// batches continuously with chunked prefill: each engine step takes at most
// max_num_batched_tokens tokens, running requests first (one decode token each), then prompt
// chunks in arrival order; a request's first token comes with the step that finishes its prompt.
struct FirstToken {
    std::string schedule;  // "static batch" | "continuous batching, chunked prefill" | a family's own
    u64 requests = 0;      // requests timed (vLLM: at most max_num_seqs are scheduled at once)
    u64 step_tokens = 0;   // token budget of one step (static: the whole batch's prompt tokens)
    u64 steps = 0;         // engine steps until the last timed request's first token
    double first_s = 0, mean_s = 0, last_s = 0;
    std::string rule;  // how the scheduler's times were found (--explain); empty for a static batch
};

// What a scheduler is given: one replica's requests, all arriving together, and the step costs the
// time model found for them.
struct StepCosts {
    u64 batch = 1;               // requests on the replica
    u64 prompt_tokens = 0;       // per request
    double batch_prefill_s = 0;  // one forward over every prompt at once (the static batch's TTFT)
    // One forward of a single decode token at that prompt length: the floor of any engine step
    // (it reads every weight once and launches every kernel). Evaluated only by schedulers that
    // ask for it.
    std::function<double()> smallest_step_s;
};

class RuntimePlan {
public:
    virtual ~RuntimePlan() = default;
    // Memory of one point. Fills everything but capacity-independent inputs; never throws.
    virtual void evaluate(const Point& p, PointResult& r) const noexcept = 0;
    // Names, formulas, sections, rows and the step's graphs for a point evaluate() returned.
    virtual void describe(const Point& p, const PointResult& r, Breakdown& out) const = 0;
    // Weight bytes held by this GPU, and the parameters behind them.
    virtual u64 weights() const = 0;
    virtual u64 parameters() const = 0;
    // Parameters one token uses (routed experts: experts_per_token of them; the rest whole).
    virtual u64 active_parameters() const = 0;
    // The term a point with PointStatus::Overflow overflowed in ("graph.tensor").
    virtual std::string overflow_term(const PointResult& r) const = 0;
    // Training memory of one micro-batch. Families that do not train throw InputError;
    // OverflowError names a term past 64 bits.
    virtual TrainActivations train(const TrainPoint& p) const;

    // The family's scheduler: each request's first token. Default: a static batch.
    virtual FirstToken first_tokens(const StepCosts& c) const;
    // The most requests one replica runs at once (vLLM: max_num_seqs); 0 = no limit but memory.
    virtual u64 max_running() const { return 0; }
    // True when the memory is sized once at start-up for every sequence the runtime will hold
    // (vLLM's KV pool: a point's prefill at the full context decides it); false when each step's
    // own peak does (a static batch must hold its longest prompt's prefill and its decode).
    virtual bool sizes_pool_at_startup() const { return false; }
    // How it schedules requests under a steady load (runtimes/serving.hpp): a static batch unless
    // the family says otherwise.
    virtual Scheduler scheduler() const { return {}; }
    // Whether the runtime can spread a MoE model's experts over its GPUs (vLLM's
    // --enable-expert-parallel: EP = TP × DP, whole experts on each GPU); the planner then
    // searches it. transformers runs every expert on every GPU.
    virtual bool expert_parallel() const { return false; }
    // Serving under a steady load on one replica: the steady state in closed form (the planner's)
    // and the same scheduler simulated request by request (the reference it is checked against).
    virtual ServingResult serve(const ServingLoad& l, const StepCostTable& c, const ServingSlo& slo) const {
        return serve_steady(scheduler(), l, c, slo);
    }
    virtual ServingResult simulate(const ServingLoad& l, const StepCostTable& c, const ServingSlo& slo, const SimulationOptions& o) const {
        return serve_simulated(scheduler(), l, c, slo, o);
    }
    // What TTFT and TPOT mean under this family, for a replica's batch at a context.
    virtual std::string ttft_meaning(u64 batch, u64 context) const;
    virtual std::string tpot_meaning(u64 batch, u64 context) const;
};

// The runtime families an engine can compile, by the `family:` name of runtime profiles.
// `builtin()` holds transformers and vllm; a copy can be extended (a test's toy family, a
// plug-in), as BlockRegistry is for layer variants.
class RuntimeRegistry {
public:
    struct Family {
        std::string name;  // runtime profiles' `family:`
        // Compiles a plan; the plan builds its layers' blocks under its execution (blocks/: an
        // Execution's name, "transformers" or "vllm", or one a test registers).
        std::unique_ptr<RuntimePlan> (*compile)(const CompileInput&);
        // Its engine settings, as listings print them (an empty section: none beyond the profile's).
        Section (*settings)(const RuntimeSpec&) = nullptr;
        bool trains = false;  // it models `--mode train`
        // The command that starts it for a deployment (vLLM: `vllm serve ...`); null: none.
        std::string (*launch)(const RuntimeSpec&, const ServeLaunch&) = nullptr;
        // The runtime profile that runs each attention kernel a scenario may ask for
        // (constraints.attention: "eager", "fused"); empty: the family has one kernel per profile.
        std::vector<std::pair<std::string, std::string>> kernel_profiles = {};
    };
    static const RuntimeRegistry& builtin();
    void add(Family f);
    // The family of a runtime profile; InputError at the profile naming `family` and the valid names.
    const Family& family(const RuntimeSpec& r) const;
    std::vector<std::string> names() const;

private:
    std::vector<Family> families_;
};

// The compiler of a runtime family (CompileInput::runtimes picks the registry).
std::unique_ptr<RuntimePlan> compile_runtime(const CompileInput& in);

// vLLM's engine arguments onto a runtime profile: InputError naming the field
// (runtime_settings.*) when the runtime is not vLLM or a value is one vLLM refuses.
void apply_engine_args(RuntimeSpec& r, const EngineArgs& a);

// Families (one file each), with their registry entries.
std::unique_ptr<RuntimePlan> compile_transformers(const CompileInput& in);
std::unique_ptr<RuntimePlan> compile_vllm(const CompileInput& in);
RuntimeRegistry::Family transformers_family();
RuntimeRegistry::Family vllm_family();
RuntimeRegistry::Family megatron_family();

// Shared by the families: the dtype of every graph role under a policy, and the graphs of the
// embedding, the head (final norm + LM head) and of one decoder layer, pre-norm residual.
std::array<DType, kDtypeRoles> graph_dtypes(const ModelSpec& m, const DtypePolicy& p, const DType& mask);
OpGraph build_embedding_graph(const CompileInput& in, const std::array<DType, kDtypeRoles>& dt);
// The head's preexisting inputs are what the base model keeps for the whole forward (masks,
// rotary tables, positions, inputs_embeds) when `model_locals`, freed once the final norm is done;
// `eager_launches`: the final RMSNorm runs as eager PyTorch's kernels (transformers).
OpGraph build_head_graph(const CompileInput& in, const std::array<DType, kDtypeRoles>& dt, bool model_locals, bool eager_launches);
u64 norm_width(const ModelSpec& m);

}  // namespace memtax
