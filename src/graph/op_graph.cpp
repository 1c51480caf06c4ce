#include "graph/op_graph.hpp"

#include <boost/graph/topological_sort.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace memtax {

Shape::Shape(std::initializer_list<Dim> d) {
    if (d.size() > dims.size()) throw InternalError("Shape: rank above 6");
    for (Dim x : d) dims[rank++] = x;
}

u64 Composition::total() const {
    u64 t = 0;
    for (u64 b : bytes) t = checked_add(t, b, "live bytes");
    return t;
}

int OpGraph::input(TensorInfo t) {
    t.lifetime = Lifetime::Preexisting;
    tensors_.push_back(std::move(t));
    tensor_vertex_.push_back(boost::add_vertex(Vertex{false, static_cast<int>(tensors_.size() - 1)}, graph_));
    return static_cast<int>(tensors_.size() - 1);
}

std::vector<int> OpGraph::op(OpInfo info, const std::vector<int>& inputs, std::vector<TensorInfo> outputs,
                             const std::vector<int>& holds) {
    ops_.push_back(std::move(info));
    int op_index = static_cast<int>(ops_.size() - 1);
    auto v = boost::add_vertex(Vertex{true, op_index}, graph_);
    op_vertex_.push_back(v);
    for (int in : inputs) boost::add_edge(tensor_vertex_.at(static_cast<size_t>(in)), v, Edge{false}, graph_);
    for (int in : holds) boost::add_edge(tensor_vertex_.at(static_cast<size_t>(in)), v, Edge{true}, graph_);
    std::vector<int> ids;
    for (auto& t : outputs) {
        tensors_.push_back(std::move(t));
        ids.push_back(static_cast<int>(tensors_.size() - 1));
        tensor_vertex_.push_back(boost::add_vertex(Vertex{false, ids.back()}, graph_));
        boost::add_edge(v, tensor_vertex_.back(), graph_);
    }
    finalized_ = false;
    return ids;
}

std::vector<int> OpGraph::reads(int op_index) const {
    std::vector<int> out;
    auto v = op_vertex_.at(static_cast<size_t>(op_index));
    for (auto [it, end] = boost::in_edges(v, graph_); it != end; ++it)
        if (!graph_[*it].hold) out.push_back(graph_[boost::source(*it, graph_)].index);
    return out;
}

const char* to_string(OpGroup g) {
    switch (g) {
        case OpGroup::Projection: return "attention projections";
        case OpGroup::Attention: return "attention core";
        case OpGroup::KvCache: return "kv cache update";
        case OpGroup::Mlp: return "mlp";
        case OpGroup::Norm: return "norms";
        case OpGroup::Rotary: return "rotary";
        case OpGroup::Residual: return "residual adds";
        case OpGroup::LmHead: return "lm head";
        case OpGroup::Sampler: return "sampler";
        case OpGroup::Count: break;
    }
    return "?";
}

void OpGraph::annotate(const std::string& op_name, OpGroup group, Cost flops, Cost weight, DtypeRole weight_dtype) {
    for (auto& o : ops_) {
        if (o.name != op_name) continue;
        o.group = group;
        o.flops = flops;
        o.weight = weight;
        o.weight_dtype = weight_dtype;
        return;
    }
    throw InternalError(fmt::format("op graph {}: no op {} to annotate", name_, op_name));
}

void OpGraph::finalize() {
    // A cycle is a bug in a graph definition; topological_sort throws not_a_dag.
    std::vector<Graph::vertex_descriptor> order;
    try {
        boost::topological_sort(graph_, std::back_inserter(order));
    } catch (const boost::not_a_dag&) {
        throw InternalError(fmt::format("op graph {} has a cycle", name_));
    }
    size_t n = tensors_.size();
    producer_.assign(n, -1);
    // Names for overflow errors, built once so evaluation allocates no strings.
    tensor_terms_.clear();
    for (const auto& t : tensors_) tensor_terms_.push_back(fmt::format("{}.{}", name_, t.name));
    workspace_terms_.clear();
    for (const auto& o : ops_) workspace_terms_.push_back(fmt::format("{}.{}.workspace", name_, o.name));
    produced_.assign(ops_.size(), {});
    last_use_.assign(n, -1);
    alias_of_.assign(n, -1);
    for (size_t t = 0; t < n; ++t) {
        auto tv = tensor_vertex_[t];
        for (auto [it, end] = boost::in_edges(tv, graph_); it != end; ++it) {
            producer_[t] = graph_[boost::source(*it, graph_)].index;
            produced_[static_cast<size_t>(producer_[t])].push_back(static_cast<int>(t));
        }
        for (auto [it, end] = boost::out_edges(tv, graph_); it != end; ++it)
            last_use_[t] = std::max(last_use_[t], graph_[boost::target(*it, graph_)].index);
        if (tensors_[t].lifetime != Lifetime::Preexisting && producer_[t] < 0)
            throw InternalError(fmt::format("op graph {}: tensor {} has no producer", name_, tensors_[t].name));
    }
    // The schedule (insertion order) must respect every edge: inputs are produced earlier.
    for (size_t o = 0; o < ops_.size(); ++o) {
        for (auto [it, end] = boost::in_edges(op_vertex_[o], graph_); it != end; ++it) {
            int t = graph_[boost::source(*it, graph_)].index;
            if (producer_[t] >= static_cast<int>(o))
                throw InternalError(fmt::format("op graph {}: {} reads {} before it is produced", name_,
                                                ops_[o].name, tensors_[t].name));
        }
    }
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].alias == AliasRule::None) continue;
        // An alias-capable output may share the storage of its producer's first input.
        std::vector<int> in = reads(producer_[t]);
        if (in.empty()) throw InternalError(fmt::format("op graph {}: alias tensor {} reads nothing", name_, tensors_[t].name));
        alias_of_[t] = in.front();
    }
    finalized_ = true;
}

namespace {

bool alias_active(AliasRule r, const Bindings& b) {
    switch (r) {
        case AliasRule::None: return false;
        case AliasRule::IfSoftmaxIsAct: return b[DtypeRole::Softmax] == b[DtypeRole::Act];
        case AliasRule::IfKvIsAct: return b[DtypeRole::Kv] == b[DtypeRole::Act];
        case AliasRule::IfNoGqa: return b[Dim::HeadsQ] == b[Dim::HeadsKv];
        case AliasRule::IfLogitsIsAct: return b[DtypeRole::Logits] == b[DtypeRole::Act];
        case AliasRule::IfFreshCache: return b[DtypeRole::Kv] == b[DtypeRole::Act] && b[Dim::SkvOld] == 0;
        case AliasRule::Always: return true;
    }
    return false;
}

bool skipped(SkipRule r, const Bindings& b) {
    switch (r) {
        case SkipRule::Never: return false;
        case SkipRule::UnlessSoftmaxUpcastCopies:
            return b[DtypeRole::Softmax] == b[DtypeRole::Act] || b[DtypeRole::Act].name == "fp16";
    }
    return false;
}

u64 shape_bytes(const Shape& s, DtypeRole role, const Bindings& b, std::string_view name) {
    u64 n = 1;
    for (std::uint8_t i = 0; i < s.rank; ++i) n = checked_mul(n, b[s.dims[i]], name);
    u64 bytes = b[role].bytes(n, name);
    if (b.round_to > 1 && bytes % b.round_to) bytes = checked_add(bytes, b.round_to - bytes % b.round_to, name);
    return bytes;
}

}  // namespace

namespace {
u64 cost_value(const Cost& c, const Bindings& b, std::string_view term) {
    u64 n = c.coef;
    for (std::uint8_t i = 0; i < c.dims.rank; ++i) n = checked_mul(n, b[c.dims.dims[i]], term);
    return n;
}
}  // namespace

std::vector<OpTraffic> OpGraph::traffic(const Bindings& b_in) const {
    if (!finalized_) throw InternalError("OpGraph::traffic before finalize");
    Bindings b = b_in;
    b.round_to = 1;  // traffic counts the bytes moved, not the allocator's blocks
    std::vector<u64> bytes(tensors_.size());
    for (size_t t = 0; t < tensors_.size(); ++t) bytes[t] = tensor_bytes(static_cast<int>(t), b);
    std::vector<OpTraffic> out(ops_.size());
    for (size_t o = 0; o < ops_.size(); ++o) {
        OpTraffic& r = out[o];
        const OpInfo& op = ops_[o];
        r.op = &op;
        const std::string& term = workspace_terms_[o];
        r.flops = cost_value(op.flops, b, term);
        if (op.weight.coef) r.weight_bytes = b[op.weight_dtype].bytes(cost_value(op.weight, b, term), term);
        auto count = [&](int t, bool write) {
            const TensorInfo& ti = tensors_[static_cast<size_t>(t)];
            // An output that is its input's storage without an in-place write moves nothing.
            if (write && alias_of_[static_cast<size_t>(t)] >= 0 && ti.alias != AliasRule::Always &&
                alias_active(ti.alias, b))
                return;
            const u64 v = bytes[static_cast<size_t>(t)];
            r.bytes = checked_add(r.bytes, v, term);
            if (ti.category == Category::KvCache) r.kv_bytes = checked_add(r.kv_bytes, v, term);
            if (ti.category == Category::AttentionMatrix) r.attention_matrix_bytes = checked_add(r.attention_matrix_bytes, v, term);
        };
        for (int t : reads(static_cast<int>(o))) count(t, false);
        for (int t : produced_[o]) count(t, true);
        for (const auto& w : op.workspace) {
            if (skipped(w.skip, b)) continue;
            // A temporary is written once and read once.
            const u64 v = checked_mul(2, shape_bytes(w.shape, w.dtype, b, term), term);
            r.bytes = checked_add(r.bytes, v, term);
            if (w.category == Category::AttentionMatrix) r.attention_matrix_bytes = checked_add(r.attention_matrix_bytes, v, term);
        }
        r.bytes = checked_add(r.bytes, r.weight_bytes, term);
    }
    return out;
}

u64 OpGraph::tensor_bytes(int t, const Bindings& b) const {
    const TensorInfo& ti = tensors_.at(static_cast<size_t>(t));
    return shape_bytes(ti.shape, ti.dtype, b, tensor_terms_.at(static_cast<size_t>(t)));
}

GraphEval OpGraph::evaluate(const Bindings& b) const {
    if (!finalized_) throw InternalError("OpGraph::evaluate before finalize");
    const size_t n = tensors_.size();
    constexpr int kForever = 1 << 30;
    // Effective storage: an active alias costs nothing and extends its source's lifetime;
    // a persistent alias makes its source persistent and gives it its category.
    std::vector<u64> bytes(n);
    std::vector<int> free_after(n);
    std::vector<Category> cat(n);
    for (size_t t = 0; t < n; ++t) {
        bytes[t] = tensor_bytes(static_cast<int>(t), b);
        cat[t] = tensors_[t].category;
        switch (tensors_[t].lifetime) {
            case Lifetime::Transient: free_after[t] = std::max(last_use_[t], producer_[t]); break;
            case Lifetime::Persistent: free_after[t] = kForever; break;
            // An input (the residual stream entering a layer) dies after its last reader.
            case Lifetime::Preexisting: free_after[t] = last_use_[t] >= 0 ? last_use_[t] : kForever; break;
        }
    }
    // Aliases point backwards in the schedule, so one reverse pass settles chains.
    for (size_t i = n; i-- > 0;) {
        if (alias_of_[i] < 0 || !alias_active(tensors_[i].alias, b)) continue;
        auto src = static_cast<size_t>(alias_of_[i]);
        bytes[i] = 0;
        free_after[src] = std::max(free_after[src], free_after[i]);
        if (free_after[i] == kForever) cat[src] = cat[i];
    }

    GraphEval r;
    Composition live;
    auto add = [&](Composition& c, Category k, u64 v) {
        auto& slot = c.bytes[static_cast<size_t>(k)];
        slot = checked_add(slot, v, name_ + " live bytes");
    };
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].lifetime == Lifetime::Preexisting) {
            add(live, cat[t], bytes[t]);
            r.preexisting = checked_add(r.preexisting, bytes[t], "preexisting");
            if (cat[t] == Category::KvCache) r.preexisting_kv = checked_add(r.preexisting_kv, bytes[t], "preexisting");
        }
    }
    // Tensors freed after each op, bucketed by a counting sort (one flat array, no per-op lists).
    const size_t n_ops = ops_.size();
    std::vector<std::uint32_t> first(n_ops + 1, 0), order(n);
    for (size_t t = 0; t < n; ++t)
        if (free_after[t] >= 0 && free_after[t] != kForever) ++first[static_cast<size_t>(free_after[t]) + 1];
    for (size_t o = 0; o < n_ops; ++o) first[o + 1] += first[o];
    {
        std::vector<std::uint32_t> fill(first.begin(), first.end() - 1);
        for (size_t t = 0; t < n; ++t)
            if (free_after[t] >= 0 && free_after[t] != kForever) order[fill[static_cast<size_t>(free_after[t])]++] = static_cast<std::uint32_t>(t);
    }
    for (size_t o = 0; o < n_ops; ++o) {
        for (int t : produced_[o]) add(live, cat[static_cast<size_t>(t)], bytes[static_cast<size_t>(t)]);
        Composition during = live;
        for (const auto& w : ops_[o].workspace)
            if (!skipped(w.skip, b))
                add(during, w.category, shape_bytes(w.shape, w.dtype, b, workspace_terms_[o]));
        u64 total = during.total();
        if (total > r.peak_bytes) {
            r.peak_bytes = total;
            r.peak_op = ops_[o].name;
            r.at_peak = during;
        }
        r.attention_matrix_max = std::max(r.attention_matrix_max, during[Category::AttentionMatrix]);
        for (std::uint32_t i = first[o]; i < first[o + 1]; ++i) live.bytes[static_cast<size_t>(cat[order[i]])] -= bytes[order[i]];
    }
    for (size_t t = 0; t < n; ++t) {
        if (free_after[t] != kForever || tensors_[t].lifetime == Lifetime::Preexisting) continue;
        if (cat[t] == Category::KvCache) r.kv_written = checked_add(r.kv_written, bytes[t], "kv written");
        else r.persistent_other = checked_add(r.persistent_other, bytes[t], "persistent");
    }
    return r;
}

}  // namespace memtax
