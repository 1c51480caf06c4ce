#pragma once
// A layer as a dataflow graph of ops and tensors (Boost.Graph), with symbolic tensor shapes.
// The graph is built once per (layer kind, attention kernel, mode); a workload binds the
// symbols to numbers and `evaluate` runs liveness over the schedule (program order, as
// PyTorch executes it): a tensor lives from the op that produces it to its last consumer,
// or forever if it is persistent (the KV it writes, the layer's output).
#include <boost/graph/adjacency_list.hpp>

#include <array>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/dtype.hpp"

namespace memtax {

// Symbols a workload binds (all per GPU, after tensor parallelism).
enum class Dim : std::uint8_t {
    Batch, Sq, Skv, Hidden, QDim, KvDim, Inter, HeadsQ, HeadsKv, HeadDim, Vocab, Kept,
    MaskElems,   // elements of the materialised attention masks, kept for the whole forward
    TableElems,  // elements of the rotary cos/sin tables, kept for the whole forward
    SkvOld,      // tokens in a layer's cache storage before the step
    SkvNew,      // tokens in a layer's cache storage after the step
    RepHeads,    // query heads when K/V are repeated per query head before the kernel, else 0
    MaskConvElems,  // elements of a bool mask SDPA converts to the compute dtype in this layer, else 0
    QkvDim,      // q_dim + 2 kv_dim (merged projection)
    GateUp,      // 2 · intermediate (merged gate/up projection)
    VocabShard,  // vocab / tp: this GPU's rows of the LM head
    AttnKeys,    // keys each query attends on average (causal fused prefill skips the upper half)
    Count
};
enum class DtypeRole : std::uint8_t { Act, Softmax, Kv, Logits, Fp32, Index, Bool, Mask, Weight, Count };
// What a tensor is, for the breakdown.
enum class Category : std::uint8_t { Activation, AttentionMatrix, KvCache, Logits, Count };
enum class Lifetime : std::uint8_t { Transient, Persistent, Preexisting };
// When a tensor is the same storage as its (single) input, so costs nothing extra.
enum class AliasRule : std::uint8_t {
    None,
    IfSoftmaxIsAct,  // .to(act dtype) of a tensor already in act dtype returns it
    IfKvIsAct,       // the cache keeps the projection's own tensor (no quantising copy)
    IfNoGqa,         // repeat_kv with one query head per KV head returns its input
    IfLogitsIsAct,   // logits.to(logits dtype) when already in that dtype
    IfFreshCache,    // an empty cache stores the new K/V tensor itself (no cat, no quantising copy)
    Always,          // an in-place op: the output is its input's storage
};
// When an op's temporary is not needed.
enum class SkipRule : std::uint8_t {
    Never,
    // softmax(x, dtype=fp32) converts a bf16 input to an fp32 copy first; only a CUDA fp16
    // input takes the fused half-to-float path (ATen SoftMax.cpp, softmax()), and nothing is
    // converted when the dtypes already agree.
    UnlessSoftmaxUpcastCopies,
};
enum class OpKind : std::uint8_t { Embedding, Norm, Matmul, Rotary, Elementwise, Copy, Softmax, Attention, Sort };

struct Shape {
    std::array<Dim, 6> dims{};
    std::uint8_t rank = 0;
    Shape() = default;
    Shape(std::initializer_list<Dim> d);
};

struct TensorInfo {
    std::string name;
    Shape shape;
    DtypeRole dtype = DtypeRole::Act;
    Category category = Category::Activation;
    Lifetime lifetime = Lifetime::Transient;
    AliasRule alias = AliasRule::None;
};

struct Workspace {
    Shape shape;
    DtypeRole dtype;
    SkipRule skip = SkipRule::Never;
    Category category = Category::Activation;
};

// What an op is for, in the time model's per-kind table.
enum class OpGroup : std::uint8_t { Projection, Attention, KvCache, Mlp, Norm, Rotary, Residual, LmHead, Sampler, Count };
const char* to_string(OpGroup g);

// coef · Π dims (FLOPs of an op, or elements of its weight).
struct Cost {
    u64 coef = 0;
    Shape dims;
};

struct OpInfo {
    OpInfo(std::string n, OpKind k, std::vector<Workspace> ws = {}) : name(std::move(n)), kind(k), workspace(std::move(ws)) {}
    std::string name;
    OpKind kind;
    std::vector<Workspace> workspace;  // temporaries that live only during the op
    // Traffic model (set by annotate after the graph is built): the op's group, its FLOPs,
    // and the weight it reads (elements, in `weight_dtype`).
    OpGroup group = OpGroup::Residual;
    Cost flops;
    Cost weight;
    DtypeRole weight_dtype = DtypeRole::Weight;
};

// The minimum traffic of one op: each input read once, each output (and workspace) written
// once, its weight read once.
struct OpTraffic {
    const OpInfo* op = nullptr;
    u64 flops = 0;
    u64 bytes = 0;               // all of the below and activations
    u64 weight_bytes = 0;
    u64 kv_bytes = 0;            // KV cache tensors read or written
    u64 attention_matrix_bytes = 0;  // S×S tensors read or written
};

struct Bindings {
    std::array<u64, static_cast<size_t>(Dim::Count)> dim{};
    std::array<DType, static_cast<size_t>(DtypeRole::Count)> dtype{};
    // The caching allocator rounds every block up to this many bytes (PyTorch: 512).
    u64 round_to = 1;
    u64& operator[](Dim d) { return dim[static_cast<size_t>(d)]; }
    u64 operator[](Dim d) const { return dim[static_cast<size_t>(d)]; }
    DType& operator[](DtypeRole r) { return dtype[static_cast<size_t>(r)]; }
    const DType& operator[](DtypeRole r) const { return dtype[static_cast<size_t>(r)]; }
};

// The bytes of a layer at one moment, by category.
struct Composition {
    std::array<u64, static_cast<size_t>(Category::Count)> bytes{};
    u64 total() const;
    u64 operator[](Category c) const { return bytes[static_cast<size_t>(c)]; }
};

struct GraphEval {
    u64 peak_bytes = 0;            // max live bytes over the schedule (preexisting inputs included)
    std::string peak_op;           // the op at which the peak occurs
    Composition at_peak;           // what is live at the peak
    u64 attention_matrix_max = 0;  // most S×S bytes live at any op
    u64 kv_written = 0;            // persistent KV bytes this graph writes
    u64 persistent_other = 0;      // other persistent bytes (the layer output)
    u64 preexisting = 0;           // bytes of the inputs alive before the graph runs
    u64 preexisting_kv = 0;        // of which KV cache storage (freed when replaced)
};

class OpGraph {
public:
    explicit OpGraph(std::string name) : name_(std::move(name)) {}
    int input(TensorInfo t);  // a tensor alive before the graph (Lifetime::Preexisting)
    // Appends an op to the schedule; returns the ids of its outputs. `holds` are tensors the
    // op does not read but that stay referenced until it finishes (a Python variable in the
    // calling module that is rebound only after the call returns).
    std::vector<int> op(OpInfo op, const std::vector<int>& inputs, std::vector<TensorInfo> outputs,
                        const std::vector<int>& holds = {});
    int op1(OpInfo op, const std::vector<int>& inputs, TensorInfo output, const std::vector<int>& holds = {}) {
        return this->op(std::move(op), inputs, {std::move(output)}, holds)[0];
    }
    // Inputs the op reads (excluding holds), for traffic models.
    std::vector<int> reads(int op_index) const;
    // Sets an op's traffic annotations by name (InternalError if no op has that name).
    void annotate(const std::string& op_name, OpGroup group, Cost flops, Cost weight = {},
                  DtypeRole weight_dtype = DtypeRole::Weight);
    // Per-op FLOPs and minimum bytes under the bindings (no allocator rounding).
    std::vector<OpTraffic> traffic(const Bindings& b) const;
    // Checks the graph is a DAG whose schedule respects every edge and computes last uses.
    void finalize();

    GraphEval evaluate(const Bindings& b) const;
    u64 tensor_bytes(int tensor, const Bindings& b) const;

    const std::string& name() const { return name_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const std::vector<OpInfo>& ops() const { return ops_; }

private:
    struct Vertex {
        bool is_op = false;
        int index = 0;
    };
    struct Edge {
        bool hold = false;  // keeps the tensor alive; no data is read
    };
    using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, Vertex, Edge>;

    std::string name_;
    Graph graph_;
    std::vector<TensorInfo> tensors_;
    std::vector<OpInfo> ops_;
    std::vector<Graph::vertex_descriptor> tensor_vertex_, op_vertex_;
    // Compiled schedule (filled by finalize).
    std::vector<int> producer_;   // op index that produces each tensor (-1 = preexisting)
    std::vector<std::vector<int>> produced_;  // tensors each op produces
    std::vector<std::string> tensor_terms_, workspace_terms_;
    std::vector<int> last_use_;   // last op index reading each tensor (-1 = none)
    std::vector<int> alias_of_;   // for alias-capable tensors, the input they may alias (-1 = none)
    bool finalized_ = false;
};

}  // namespace memtax
