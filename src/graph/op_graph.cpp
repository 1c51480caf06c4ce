#include "graph/op_graph.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace memtax {

const char* to_string(Sym s) {
    switch (s) {
        case Sym::Batch: return "B";
        case Sym::Sq: return "Sq";
        case Sym::Skv: return "Skv";
        case Sym::SkvOld: return "Skv_old";
        case Sym::SkvNew: return "Skv_new";
        case Sym::AttnKeys: return "keys";
        case Sym::Kept: return "kept";
        case Sym::Repeat: return "repeat";
        case Sym::MaskConv: return "mask_conv";
        case Sym::MaskElems: return "mask_elems";
        case Sym::Count: break;
    }
    return "?";
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
        case OpGroup::Embedding: return "embedding";
        case OpGroup::Count: break;
    }
    return "?";
}

Size::Size(u64 c, std::initializer_list<Sym> s) : coef(c) {
    if (s.size() > syms.size()) throw InternalError("Size: more than 4 symbols");
    for (Sym x : s) syms[n++] = x;
}

std::array<std::uint8_t, kSyms> Size::powers() const {
    std::array<std::uint8_t, kSyms> p{};
    for (std::uint8_t i = 0; i < n; ++i) ++p[static_cast<size_t>(syms[i])];
    return p;
}

u64 Composition::total() const {
    u64 t = 0;
    for (u64 b : bytes) t += b;
    return t;
}

OpGraph::OpGraph(std::string name, const std::array<DType, kDtypeRoles>& dtypes, u64 round_to)
    : name_(std::move(name)), dtypes_(dtypes), round_to_(round_to ? round_to : 1) {}

int OpGraph::input(TensorInfo t) {
    t.lifetime = Lifetime::Preexisting;
    tensors_.push_back(t);
    finalized_ = false;
    return static_cast<int>(tensors_.size() - 1);
}

std::vector<int> OpGraph::op(OpInfo info, std::initializer_list<int> inputs, std::vector<TensorInfo> outputs,
                             std::initializer_list<int> holds) {
    ops_.push_back(std::move(info));
    for (int in : inputs) read_.push_back(in);
    read_begin_.push_back(static_cast<int>(read_.size()));
    for (int h : holds)
        if (h >= 0) hold_.push_back(h);
    hold_begin_.push_back(static_cast<int>(hold_.size()));
    std::vector<int> ids;
    for (auto& t : outputs) {
        tensors_.push_back(t);
        ids.push_back(static_cast<int>(tensors_.size() - 1));
    }
    // Outputs remember their producer through the order of production (finalize rebuilds it).
    producer_.resize(tensors_.size(), -2);
    for (int id : ids) producer_[static_cast<size_t>(id)] = static_cast<int>(ops_.size() - 1);
    finalized_ = false;
    return ids;
}

int OpGraph::op1h(OpInfo info, std::initializer_list<int> inputs, TensorInfo output, const std::vector<int>& holds) {
    int id = op1(std::move(info), inputs, output);
    const auto o = ops_.size() - 1;
    hold_.resize(static_cast<size_t>(hold_begin_[o]));
    for (int h : holds)
        if (h >= 0) hold_.push_back(h);
    hold_begin_[o + 1] = static_cast<int>(hold_.size());
    return id;
}

std::vector<int> OpGraph::reads(int o) const {
    return {read_.begin() + read_begin_[static_cast<size_t>(o)], read_.begin() + read_begin_[static_cast<size_t>(o) + 1]};
}

void OpGraph::finalize() {
    const size_t n = tensors_.size();
    if (n > kMaxTensors) throw InternalError(fmt::format("op graph {}: {} tensors, above {}", name_, n, kMaxTensors));
    producer_.resize(n, -2);
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].lifetime == Lifetime::Preexisting) producer_[t] = -1;
        else if (producer_[t] < 0) throw InternalError(fmt::format("op graph {}: tensor {} has no producer", name_, tensors_[t].name));
    }
    produced_.clear();
    produced_begin_.assign(ops_.size() + 1, 0);
    for (size_t o = 0; o < ops_.size(); ++o) {
        for (size_t t = 0; t < n; ++t)
            if (producer_[t] == static_cast<int>(o)) produced_.push_back(static_cast<int>(t));
        produced_begin_[o + 1] = static_cast<int>(produced_.size());
    }
    // The schedule must respect every edge: an op reads or holds only tensors produced by an
    // earlier op (or alive before the graph). Program order is then a topological order, so
    // this check is also the acyclicity check.
    last_use_.assign(n, -1);
    for (size_t o = 0; o < ops_.size(); ++o) {
        auto check = [&](int t, const char* what) {
            if (t < 0 || static_cast<size_t>(t) >= n)
                throw InternalError(fmt::format("op graph {}: {} {} of {} is not a tensor", name_, what, t, ops_[o].name));
            if (producer_[static_cast<size_t>(t)] >= static_cast<int>(o))
                throw InternalError(fmt::format("op graph {}: {} {}s {} before it is produced", name_, ops_[o].name, what,
                                                tensors_[static_cast<size_t>(t)].name));
            last_use_[static_cast<size_t>(t)] = std::max(last_use_[static_cast<size_t>(t)], static_cast<int>(o));
        };
        for (int i = read_begin_[o]; i < read_begin_[o + 1]; ++i) check(read_[static_cast<size_t>(i)], "read");
        for (int i = hold_begin_[o]; i < hold_begin_[o + 1]; ++i) check(hold_[static_cast<size_t>(i)], "hold");
    }
    alias_of_.assign(n, -1);
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].alias == AliasRule::None) continue;
        const int p = producer_[t];
        if (p < 0 || read_begin_[static_cast<size_t>(p)] == read_begin_[static_cast<size_t>(p) + 1])
            throw InternalError(fmt::format("op graph {}: alias tensor {} reads nothing", name_, tensors_[t].name));
        alias_of_[t] = read_[static_cast<size_t>(read_begin_[static_cast<size_t>(p)])];
    }
    finalized_ = true;
}

namespace {

bool alias_active(AliasRule r, const Bindings& b) {
    switch (r) {
        case AliasRule::None: return false;
        case AliasRule::View:
        case AliasRule::Always: return true;
        case AliasRule::IfFreshCache: return b[Sym::SkvOld] == 0;
    }
    return false;
}

// coef · Π syms, false on overflow.
bool size_value(const Size& s, const Bindings& b, u64& out) noexcept {
    u64 v = s.coef;
    for (std::uint8_t i = 0; i < s.n; ++i)
        if (__builtin_mul_overflow(v, b[s.syms[i]], &v)) return false;
    out = v;
    return true;
}

bool sized_bytes(const Size& s, const DType& d, u64 round_to, const Bindings& b, u64& out) noexcept {
    u64 n;
    if (!size_value(s, b, n) || !d.try_bytes(n, out)) return false;
    if (round_to > 1 && out % round_to) return !__builtin_add_overflow(out, round_to - out % round_to, &out);
    return true;
}

}  // namespace

u64 OpGraph::tensor_bytes(int t, const Bindings& b) const {
    const TensorInfo& ti = tensors_.at(static_cast<size_t>(t));
    u64 out;
    if (!sized_bytes(ti.size, dtype(ti.dtype), 1, b, out)) throw OverflowError(item_name(t));
    return out;
}

std::string OpGraph::item_name(int i) const {
    if (i >= 0) return fmt::format("{}.{}", name_, tensors_.at(static_cast<size_t>(i)).name);
    return fmt::format("{}.{}.workspace", name_, ops_.at(static_cast<size_t>(-1 - i)).name);
}

u64 OpGraph::weight_bytes() const {
    u64 total = 0;
    for (const auto& o : ops_)
        for (const auto& w : o.weights)
            if (!w.shared) total = checked_add(total, dtype(w.dtype).bytes(w.elements, w.name), w.name);
    return total;
}

u64 OpGraph::weight_elements() const {
    u64 total = 0;
    for (const auto& o : ops_)
        for (const auto& w : o.weights)
            if (!w.shared) total = checked_add(total, w.elements, "parameters");
    return total;
}

u64 OpGraph::cache_bytes(const Bindings& b) const {
    u64 total = 0;
    for (size_t t = 0; t < tensors_.size(); ++t)
        if (tensors_[t].category == Category::KvCache && tensors_[t].lifetime == Lifetime::Persistent)
            total = checked_add(total, tensor_bytes(static_cast<int>(t), b), item_name(static_cast<int>(t)));
    return total;
}

bool OpGraph::try_cache_bytes(const Bindings& b, u64& out) const noexcept {
    out = 0;
    for (const auto& t : tensors_) {
        if (t.category != Category::KvCache || t.lifetime != Lifetime::Persistent) continue;
        u64 v;
        if (!sized_bytes(t.size, dtype(t.dtype), 1, b, v) || __builtin_add_overflow(out, v, &out)) return false;
    }
    return true;
}

std::vector<OpTraffic> OpGraph::traffic(const Bindings& b) const {
    if (!finalized_) throw InternalError("OpGraph::traffic before finalize");
    std::vector<u64> bytes(tensors_.size());
    for (size_t t = 0; t < tensors_.size(); ++t) bytes[t] = tensor_bytes(static_cast<int>(t), b);
    std::vector<OpTraffic> out(ops_.size());
    for (size_t o = 0; o < ops_.size(); ++o) {
        OpTraffic& r = out[o];
        const OpInfo& op = ops_[o];
        r.op = &op;
        const std::string term = item_name(-1 - static_cast<int>(o));
        if (!size_value(op.flops, b, r.flops)) throw OverflowError(term);
        for (const auto& w : op.weights) r.weight_bytes = checked_add(r.weight_bytes, dtype(w.dtype).bytes(w.elements, term), term);
        auto count = [&](int t, bool write) {
            const TensorInfo& ti = tensors_[static_cast<size_t>(t)];
            // An output that is its input's storage without an in-place write moves nothing.
            if (write && alias_of_[static_cast<size_t>(t)] >= 0 && ti.alias != AliasRule::Always && alias_active(ti.alias, b)) return;
            const u64 v = bytes[static_cast<size_t>(t)];
            r.bytes = checked_add(r.bytes, v, term);
            if (ti.category == Category::KvCache) r.kv_bytes = checked_add(r.kv_bytes, v, term);
            if (ti.category == Category::AttentionMatrix) r.attention_matrix_bytes = checked_add(r.attention_matrix_bytes, v, term);
        };
        for (int i = read_begin_[o]; i < read_begin_[o + 1]; ++i) count(read_[static_cast<size_t>(i)], false);
        for (int i = produced_begin_[o]; i < produced_begin_[o + 1]; ++i) count(produced_[static_cast<size_t>(i)], true);
        for (const auto& w : op.workspace) {
            u64 v;
            if (!sized_bytes(w.size, dtype(w.dtype), 1, b, v)) throw OverflowError(term);
            // A temporary is written once and read once.
            v = checked_mul(2, v, term);
            r.bytes = checked_add(r.bytes, v, term);
            if (w.category == Category::AttentionMatrix) r.attention_matrix_bytes = checked_add(r.attention_matrix_bytes, v, term);
        }
        r.bytes = checked_add(r.bytes, r.weight_bytes, term);
    }
    return out;
}

GraphEval OpGraph::evaluate(const Bindings& b) const noexcept {
    GraphEval r;
    if (!finalized_) {  // a bug, reported as an overflow of nothing rather than a crash
        r.overflow = true;
        return r;
    }
    const size_t n = tensors_.size();
    constexpr int kForever = 1 << 30;
    // Scratch on the stack: evaluation must not allocate (a planner calls it millions of times).
    std::array<u64, kMaxTensors> bytes;
    std::array<int, kMaxTensors> free_after;
    std::array<Category, kMaxTensors> cat;
    for (size_t t = 0; t < n; ++t) {
        const TensorInfo& ti = tensors_[t];
        if (!sized_bytes(ti.size, dtypes_[static_cast<size_t>(ti.dtype)], round_to_, b, bytes[t])) {
            r.overflow = true;
            r.overflow_tensor = static_cast<int>(t);
            return r;
        }
        cat[t] = ti.category;
        switch (ti.lifetime) {
            case Lifetime::Transient: free_after[t] = std::max(last_use_[t], producer_[t]); break;
            case Lifetime::Persistent: free_after[t] = kForever; break;
            // An input (the residual stream entering a layer) dies after its last reader.
            case Lifetime::Preexisting: free_after[t] = last_use_[t] >= 0 ? last_use_[t] : kForever; break;
        }
    }
    // Effective storage: an active alias costs nothing and extends its source's lifetime; a
    // persistent alias makes its source persistent and gives it its category. Aliases point
    // backwards in the schedule, so one reverse pass settles chains.
    for (size_t i = n; i-- > 0;) {
        if (alias_of_[i] < 0 || !alias_active(tensors_[i].alias, b)) continue;
        const auto src = static_cast<size_t>(alias_of_[i]);
        bytes[i] = 0;
        free_after[src] = std::max(free_after[src], free_after[i]);
        if (free_after[i] == kForever) cat[src] = cat[i];
    }
    // Sums below stay within Σ bytes, checked once here.
    u64 sum = 0;
    for (size_t t = 0; t < n; ++t)
        if (__builtin_add_overflow(sum, bytes[t], &sum)) {
            r.overflow = true;
            r.overflow_tensor = static_cast<int>(t);
            return r;
        }
    Composition live;
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].lifetime != Lifetime::Preexisting) continue;
        live[cat[t]] += bytes[t];
        r.preexisting += bytes[t];
        if (cat[t] == Category::KvCache) r.preexisting_kv += bytes[t];
    }
    // Tensors freed after each op, bucketed by a counting sort.
    const size_t n_ops = ops_.size();
    std::array<std::uint16_t, kMaxTensors + 1> first{};
    std::array<std::uint16_t, kMaxTensors> order;
    for (size_t t = 0; t < n; ++t)
        if (free_after[t] >= 0 && free_after[t] != kForever) ++first[static_cast<size_t>(free_after[t]) + 1];
    for (size_t o = 0; o < n_ops; ++o) first[o + 1] = static_cast<std::uint16_t>(first[o + 1] + first[o]);
    {
        std::array<std::uint16_t, kMaxTensors + 1> fill = first;
        for (size_t t = 0; t < n; ++t)
            if (free_after[t] >= 0 && free_after[t] != kForever) order[fill[static_cast<size_t>(free_after[t])]++] = static_cast<std::uint16_t>(t);
    }
    for (size_t o = 0; o < n_ops; ++o) {
        for (int i = produced_begin_[o]; i < produced_begin_[o + 1]; ++i) {
            const auto t = static_cast<size_t>(produced_[static_cast<size_t>(i)]);
            live[cat[t]] += bytes[t];
        }
        Composition during = live;
        for (const auto& w : ops_[o].workspace) {
            u64 v;
            if (!sized_bytes(w.size, dtypes_[static_cast<size_t>(w.dtype)], round_to_, b, v) ||
                __builtin_add_overflow(during[w.category], v, &during[w.category]) ||
                __builtin_add_overflow(sum, v, &sum)) {
                r.overflow = true;
                r.overflow_tensor = -1 - static_cast<int>(o);
                return r;
            }
        }
        const u64 total = during.total();
        if (total > r.peak_bytes) {
            r.peak_bytes = total;
            r.peak_op = static_cast<int>(o);
            r.at_peak = during;
        }
        r.attention_matrix_max = std::max(r.attention_matrix_max, during[Category::AttentionMatrix]);
        for (std::uint16_t i = first[o]; i < first[o + 1]; ++i) live[cat[order[i]]] -= bytes[order[i]];
    }
    for (size_t t = 0; t < n; ++t) {
        if (free_after[t] != kForever || tensors_[t].lifetime == Lifetime::Preexisting) continue;
        if (cat[t] == Category::KvCache) r.kv_written += bytes[t];
        else r.persistent_other += bytes[t];
    }
    return r;
}

}  // namespace memtax
