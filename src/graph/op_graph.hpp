#pragma once
// A dataflow graph of ops and tensors with symbolic sizes, and liveness over its schedule.
//
// A graph is built once per compiled plan (one model shard, runtime and dtype policy), so
// every size is a constant coefficient times a product of a few point symbols: batch, query
// tokens, key tokens, cache tokens before/after the step, ... (`Sym`). Binding the symbols to
// numbers and evaluating runs liveness over the schedule (program order, as the runtime
// executes it): a tensor lives from the op that produces it to its last reader or holder, or
// forever when persistent (the cache it writes, the layer's output). Evaluation allocates
// nothing and throws nothing: an overflow is a flag naming the tensor.
//
// Each op carries its FLOPs, the weight tensors it reads and its temporaries, declared where
// the op is created; weights and cached state are read back from the same graph.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/dtype.hpp"

namespace memtax {

// The point symbols a size may depend on. Everything else (widths, heads, vocabulary) is a
// constant of the graph, folded into coefficients when it is built.
enum class Sym : std::uint8_t {
    Batch,        // sequences in the step (vLLM flattens: 1)
    Sq,           // query tokens per sequence in the step
    Skv,          // key tokens the attention reads
    SkvOld,       // tokens in the layer's cache storage before the step
    SkvNew,       // tokens in the layer's cache storage after the step
    AttnKeys,     // keys each query attends on average (a causal fused prefill skips the upper half)
    Kept,         // positions whose logits are computed
    Repeat,       // 1 when K/V are repeated per query head before a fused kernel, else 0
    MaskConv,     // 1 when this layer's bool mask is converted to the compute dtype, else 0
    MaskElems,    // elements of the attention masks kept for the whole forward
    SkvSink,      // Skv + 1: a row of scores with a learned sink logit appended (gpt-oss)
    Cached,       // 1 when the step starts from an existing cache (decode), else 0
    Prefilling,   // 1 − Cached: tensors only a prefill's code path makes
    StateLive,    // 1 where a fixed per-sequence state exists (0 only when sizing the cache before a prefill)
    MultiSeq,     // 1 when the step has more than one sequence, else 0 (a permuted [B, heads] view then cannot be merged without a copy)
    NativeGqa,    // 1 − repeat: the fused kernel reads the un-repeated K/V heads itself
    CacheView,    // 1 when a decode step's old cache is a slice of a longer storage (a window layer past its window), else 0
    CacheContig,  // Cached − CacheView: the old cache is a whole contiguous tensor
    Count
};
constexpr size_t kSyms = static_cast<size_t>(Sym::Count);
const char* to_string(Sym s);

// coef · Π syms: elements of a tensor, or FLOPs of an op.
struct Size {
    u64 coef = 0;
    std::array<Sym, 4> syms{};
    std::uint8_t n = 0;
    Size() = default;
    Size(u64 c, std::initializer_list<Sym> s);
    // The exponents of each symbol (a product of powers of the point symbols).
    std::array<std::uint8_t, kSyms> powers() const;
};

// Weight: the linear layers' weights (quantizable). Param: the other parameters (embeddings, norms,
// head, biases): a 16/32-bit --weight-dtype casts them too; an 8-bit or smaller one leaves them
// in the model's dtype, as quantization recipes do.
// ExpertWeight: a mixture of experts' routed expert matrices (their own dtype when shipped so).
enum class DtypeRole : std::uint8_t { Act, Softmax, Kv, Logits, Fp32, Index, Bool, Mask, Weight, Param, ExpertWeight, Count };
constexpr size_t kDtypeRoles = static_cast<size_t>(DtypeRole::Count);
// What a tensor is, for the breakdown.
enum class Category : std::uint8_t { Activation, AttentionMatrix, KvCache, Logits, Count };
constexpr size_t kCategories = static_cast<size_t>(Category::Count);
const char* to_string(Category c);  // "activation" | "attention matrix" | "KV cache" | "logits"
enum class Lifetime : std::uint8_t { Transient, Persistent, Preexisting };
// When a tensor is the same storage as its producer's first input, so costs nothing extra.
enum class AliasRule : std::uint8_t {
    None,
    View,          // always the input's storage, nothing written (a no-op .to(), repeat_kv without GQA)
    Always,        // an in-place op: the input's storage, written
    IfFreshCache,  // an empty cache stores the new tensor itself: active when SkvOld = 0
    IfCached,      // an existing state updated in place: active when SkvOld > 0
};
enum class OpKind : std::uint8_t { Embedding, Norm, Matmul, Rotary, Elementwise, Copy, Softmax, Attention, Sort };
// What an op is for, in the time model's per-kind table.
enum class OpGroup : std::uint8_t { Projection, Attention, KvCache, Mlp, Norm, Rotary, Residual, LmHead, Sampler, Embedding, Count };
const char* to_string(OpGroup g);

struct TensorInfo {
    const char* name = "";
    Size size;
    DtypeRole dtype = DtypeRole::Act;
    Category category = Category::Activation;
    Lifetime lifetime = Lifetime::Transient;
    AliasRule alias = AliasRule::None;
};

// A temporary that lives only while its op runs.
struct Workspace {
    Size size;
    DtypeRole dtype = DtypeRole::Act;
    Category category = Category::Activation;
    bool for_weight = false;  // training: kept only for the op's weight gradient (not with the weight frozen)
};

// A parameter tensor an op reads: constant elements in a dtype (group scales are per tensor).
struct WeightTensor {
    const char* name = "";
    u64 elements = 0;
    DtypeRole dtype = DtypeRole::Weight;
    bool shared = false;  // the storage of another weight (a tied LM head): read, not stored again
    u64 in = 0;           // input features of a matrix (block-scaled dtypes cost scales per tile); 0 = not a matrix
    // An expert bank: `experts` equal matrices of which a step reads those its tokens are routed to
    // (each token picks `topk`); 0 = an ordinary weight, read whole.
    u64 experts = 0, topk = 0;
    u64 bytes(const DType& d, std::string_view term) const;
};

// The kernels eager PyTorch really launches for an op, for the time model (its memory is the
// op's tensors). An op without launches is one kernel moving its minimum traffic at the stream
// bandwidth. Classes (rates in RuntimeSpec::EagerKernels, measured on the GPU):
//   Vectorized   contiguous elementwise kernels (vectorized loads): the stream bandwidth
//   Strided      TensorIterator's non-vectorized loop (a broadcast operand, a non-contiguous input,
//                a dtype conversion): bound by elements per second
//   StridedCopy  a copy from a broadcast or transposed source into a new tensor (repeat_kv,
//                transpose().contiguous()): elements per second
//   Cat          torch.cat of non-contiguous inputs: elements per second
//   Reduce       a reduction over rows (mean): bytes per second
//   Softmax      the fp32 softmax over rows: bytes per second
enum class LaunchClass : std::uint8_t { Vectorized, Strided, StridedCopy, Cat, Reduce, Softmax };
const char* to_string(LaunchClass c);
// One kernel: `elements` processed, each reading `inputs` values of `in` and writing `outputs`
// values of `out` (broadcast operands of a few rows are not counted).
struct Launch {
    LaunchClass cls = LaunchClass::Vectorized;
    Size elements;
    DtypeRole in = DtypeRole::Act;
    std::uint8_t inputs = 1;
    DtypeRole out = DtypeRole::Act;
    std::uint8_t outputs = 1;
};

struct OpInfo {
    // An op is written where it is created as {name, kind, group, flops, weights, workspace};
    // the training and time fields are set afterwards, where the op has them.
    OpInfo() = default;
    OpInfo(const char* name_, OpKind kind_, OpGroup group_, Size flops_ = {}, std::vector<WeightTensor> weights_ = {},
           std::vector<Workspace> workspace_ = {})
        : name(name_), kind(kind_), group(group_), flops(flops_), weights(std::move(weights_)), workspace(std::move(workspace_)) {}

    const char* name = "";
    OpKind kind = OpKind::Elementwise;
    OpGroup group = OpGroup::Residual;
    Size flops;                         // multiply-add = 2 FLOPs
    std::vector<WeightTensor> weights;  // read once per run
    std::vector<Workspace> workspace;
    // Training: what autograd keeps from this op for the backward pass. Bit i of saves_inputs:
    // the op's i-th input; saves_output: its first output; saved: tensors the op makes
    // internally that autograd keeps (an RMSNorm's fp32 copy and normalized values, a fused
    // kernel's log-sum-exp). Its backward also makes a gradient for each upcast temporary in
    // `workspace` (a gradient in the temporary's dtype) besides those of its inputs.
    std::uint8_t saves_inputs = 0;
    std::uint8_t weight_saves = 0;  // of saves_inputs: kept only for the weights' gradient (a linear layer's input)
    bool saves_output = false;
    std::vector<Workspace> saved;
    // Temporaries its backward holds before the gradients of its inputs exist (then released):
    // when set, they replace the upcast gradients of `workspace`.
    std::vector<Workspace> backward_workspace;
    // Time: the kernels eager PyTorch launches for this op (empty: one kernel, see Launch).
    std::vector<Launch> launches;
};

// What a training step keeps and allocates for one graph (one layer), relative to before its
// forward, at a point: the bytes autograd keeps after the forward, and the highest live bytes
// while its backward runs on top of them (gradients of activations, weight gradients, upcast
// gradients), with the weight gradients it leaves.
struct TrainGraphEval {
    bool overflow = false;
    u64 saved = 0;                   // distinct storage kept for backward (aliases counted once)
    u64 backward_peak = 0;           // above the bytes live before the layer's backward (its saved included)
    u64 weight_grads = 0;            // gradients of its weights, in the weights' dtype
    u64 input_grad = 0;              // the gradient it hands to the layer below (its input's size)
    u64 saved_attention_matrix = 0;  // of `saved`: the S×S tensors (what selective recomputation drops)
    u64 saved_hidden = 0;            // of `saved`: [B, Sq, hidden] tensors, replicated under TP (sequence parallelism shards them)
    u64 unsaved_cache = 0;           // cache tensors the graph writes that no op saves (what a kept cache adds);
                                     // an op's internal saved entries of category KvCache are those storages
};

// Low-rank adapters (LoRA) on some linear ops, every other weight frozen: peft's LoraLayer.
// Each adapted op runs lora_B(lora_A(x)) beside its frozen base; autograd keeps the adapter's
// input (cast to the adapters' dtype when it differs: a copy) and lora_A's [tokens, rank] output.
struct Adapters {
    u64 rank = 0;
    std::vector<std::string> targets;   // op names (Hugging Face module names: q_proj, ..., down_proj)
    DtypeRole dtype = DtypeRole::Fp32;  // the adapters' (peft upcasts 16-bit adapters to fp32)
    bool adapts(const char* op) const;
    // The adapter parameters of one weight an adapted op reads (false: they overflow 64 bits).
    bool parameters(const WeightTensor& w, u64& out) const noexcept;
};

// How one graph's training walk runs (OpGraph::train).
struct TrainOptions {
    u64 hidden = 0;  // the model's hidden size: tells the TP-replicated [B, Sq, hidden] tensors apart
    // Each weight gradient stays allocated once formed (autograd's .grad, set_to_none); false:
    // it is live only at the op that forms it (copied into a reduction bucket, or added in place
    // into a gradient that existed before the backward).
    bool weight_grads_stay = true;
    // The base weights are frozen (requires_grad=False): autograd keeps an input only for the
    // gradients it will compute, so a frozen op keeps nothing for its weight.
    bool frozen = false;
    bool input_requires_grad = true;  // the graph's inputs need a gradient (a frozen embedding's output does not)
    const Adapters* adapters = nullptr;
};

struct LaunchTraffic {
    LaunchClass cls = LaunchClass::Vectorized;
    u64 elements = 0, bytes = 0;
};

// The minimum traffic of one op: each input read once, each output (and temporary) written
// once, its weights read once; and its declared launches at the point (those of zero elements
// dropped).
struct OpTraffic {
    const OpInfo* op = nullptr;
    u64 flops = 0;
    u64 bytes = 0;  // all of the below and activations
    u64 weight_bytes = 0;
    u64 in_bytes = 0, out_bytes = 0;  // of `bytes`: the tensors it reads, and those it writes (no weights, no temporaries)
    u64 kv_bytes = 0;                 // cache tensors read or written
    u64 attention_matrix_bytes = 0;   // S×S tensors read or written
    static constexpr size_t kMaxLaunches = 8;
    std::array<LaunchTraffic, kMaxLaunches> launches{};
    std::uint8_t n_launches = 0;
};

struct Bindings {
    std::array<u64, kSyms> v{};
    u64& operator[](Sym s) { return v[static_cast<size_t>(s)]; }
    u64 operator[](Sym s) const { return v[static_cast<size_t>(s)]; }
};

// The bytes of a graph at one moment, by category.
struct Composition {
    std::array<u64, kCategories> bytes{};
    u64 total() const;  // the categories never sum past what evaluate checked
    u64 operator[](Category c) const { return bytes[static_cast<size_t>(c)]; }
    u64& operator[](Category c) { return bytes[static_cast<size_t>(c)]; }
};

struct GraphEval {
    bool overflow = false;         // a size did not fit 64 bits; `overflow_tensor` names it
    int overflow_tensor = -1;      // tensor index, or -1 - op index for a temporary
    u64 peak_bytes = 0;            // max live bytes over the schedule (preexisting inputs included)
    int peak_op = -1;              // the op at which the peak occurs
    Composition at_peak;           // what is live at the peak
    u64 attention_matrix_max = 0;  // most S×S bytes live at any op
    u64 kv_written = 0;            // cache bytes the graph leaves behind (new storage, or old updated in place)
    u64 persistent_other = 0;      // other persistent bytes (the layer output)
    u64 preexisting = 0;           // bytes of the inputs alive before the graph runs
    u64 preexisting_kv = 0;        // of which cache storage (freed when replaced)
};

// One tensor live at a chosen op, with its allocated (rounded) bytes.
struct LiveTensor {
    std::string name;  // the tensor, or "<op> temporary" for an op's workspace
    u64 bytes = 0;
    Category category = Category::Activation;
};

class OpGraph {
public:
    // `dtypes`: the dtype of each role under this graph's policy; `round_to`: the caching
    // allocator's block granularity (PyTorch: 512), applied to every tensor and temporary.
    OpGraph(std::string name, const std::array<DType, kDtypeRoles>& dtypes, u64 round_to);

    int input(TensorInfo t);  // a tensor alive before the graph (Lifetime::Preexisting)
    // Appends an op to the schedule; returns the ids of its outputs. `holds` are tensors the op
    // does not read but that stay referenced until it finishes (a Python variable in the calling
    // module that is rebound only after the call returns).
    std::vector<int> op(OpInfo op, std::initializer_list<int> inputs, std::vector<TensorInfo> outputs,
                        std::initializer_list<int> holds = {});
    int op1(OpInfo op, std::initializer_list<int> inputs, TensorInfo output, std::initializer_list<int> holds = {}) {
        return this->op(std::move(op), inputs, {output}, holds)[0];
    }
    // The same with a hold list built at run time (entries < 0 are ignored).
    int op1h(OpInfo op, std::initializer_list<int> inputs, TensorInfo output, const std::vector<int>& holds);

    // Checks the schedule (every input produced earlier, which also makes the graph acyclic),
    // resolves aliases and last uses. Throws InternalError for a malformed graph.
    void finalize();

    // Liveness at one point. Never throws, never allocates.
    GraphEval evaluate(const Bindings& b) const noexcept;
    // The tensors live while op `op` runs (its temporaries included), largest first: what makes
    // up a peak, for --explain. Allocates; not for sweeps. Throws OverflowError.
    std::vector<LiveTensor> live_at(const Bindings& b, int op) const;
    // Per-op FLOPs and minimum bytes (no allocator rounding), for the time model.
    std::vector<OpTraffic> traffic(const Bindings& b) const;
    // Training: saved bytes and the backward walk at a point (never throws).
    TrainGraphEval train(const Bindings& b, const TrainOptions& opt = {}) const noexcept;
    // Parameters of the adapters on this graph's ops.
    u64 adapter_parameters(const Adapters& a) const;
    // Bytes of one tensor, unrounded (throws OverflowError naming it).
    u64 tensor_bytes(int tensor, const Bindings& b) const;
    // Every weight tensor's bytes, and elements (parameters); shared weights count once, where
    // they are stored.
    u64 weight_bytes() const;
    // The most weight bytes one op reads (a module's own parameters: what ZeRO-3 gathers at once).
    u64 largest_op_weight_bytes() const;
    u64 weight_elements() const;
    // Parameters one token uses: an expert bank counts topk of its experts.
    u64 active_weight_elements() const;
    // Bytes of the persistent cache tensors the graph writes (state kept after the step),
    // unrounded: what a layer's cache holds for these bindings.
    u64 cache_bytes(const Bindings& b) const;
    bool try_cache_bytes(const Bindings& b, u64& out) const noexcept;
    // "graph.tensor" / "graph.op.workspace" for an overflow report.
    std::string item_name(int overflow_tensor) const;

    const std::string& name() const { return name_; }
    // The schedule as built, for a walker of the graph that does not use the precomputed liveness
    // (the tests' reference evaluation): what op `op` reads and holds, the op that produces each
    // tensor (-1: alive before the graph), and the allocator granularity.
    std::vector<int> reads_of(int op) const;
    std::vector<int> holds_of(int op) const;
    int producer_of(int tensor) const;
    u64 round_to() const { return round_to_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const std::vector<OpInfo>& ops() const { return ops_; }
    const DType& dtype(DtypeRole r) const { return dtypes_[static_cast<size_t>(r)]; }

    // The largest graph evaluate handles (its scratch lives on the stack).
    static constexpr size_t kMaxTensors = 160;

private:
    std::string name_;
    std::array<DType, kDtypeRoles> dtypes_;
    u64 round_to_ = 1;
    std::vector<TensorInfo> tensors_;
    std::vector<OpInfo> ops_;
    // Edges in flat form: op o reads read_[read_begin_[o] .. read_begin_[o+1]), holds likewise.
    std::vector<int> read_, read_begin_{0}, hold_, hold_begin_{0};
    // Filled by finalize.
    std::vector<int> producer_;                   // op that produces each tensor (-1 = preexisting)
    std::vector<int> produced_, produced_begin_;  // tensors each op produces, flat
    std::vector<int> last_use_;                   // last op reading or holding each tensor (-1 = none)
    std::vector<int> alias_of_;                   // the input an alias-capable tensor may share (-1 = none)
    // The fast path of sizing: every distinct product of symbols is computed once per point; a
    // tensor in a whole-byte dtype is then coef · bytes-per-element × that product.
    struct Combo {
        std::array<Sym, 4> syms{};
        std::uint8_t n = 0;
    };
    std::vector<Combo> combos_;
    std::vector<std::uint8_t> combo_of_;  // per tensor, then per temporary (ws_ order)
    std::vector<u64> coef_bytes_;         // per tensor, then per temporary; 0: the general path
    std::uint8_t combo_index(const Size& s);
    void prepare_fast_sizes();
    std::vector<int> cache_tensors_;     // the persistent cache tensors
    std::vector<std::string> op_terms_;  // "graph.op", for overflow errors
    struct WsSlot {
        Size size;
        DtypeRole dtype;
        Category category;
        std::uint16_t op;
    };
    std::vector<WsSlot> ws_;     // every op's temporaries, flat
    std::vector<int> ws_begin_;  // op o's are ws_[ws_begin_[o] .. ws_begin_[o+1])
    // The schedule with IfFreshCache aliases inactive [0] and active [1] (the rest are constant).
    struct Variant {
        std::vector<Category> cat;         // effective category (a persistent alias lends its own)
        std::vector<std::uint8_t> zero;    // an active alias: no storage of its own
        std::vector<std::uint16_t> freed;  // tensors freed after each op, flat
        std::vector<int> free_begin;
        std::vector<std::uint16_t> preexisting, kept_kv, kept_other;
    };
    std::array<Variant, 2> variants_;
    bool has_fresh_alias_ = false;
    void build_variant(Variant& v, bool fresh_active) const;
    bool finalized_ = false;
};

}  // namespace memtax
