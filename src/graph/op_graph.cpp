#include "graph/op_graph.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace memtax {

const char* to_string(Sym s) {
    switch (s) {
        case Sym::Batch:
            return "B";
        case Sym::Sq:
            return "Sq";
        case Sym::Skv:
            return "Skv";
        case Sym::SkvOld:
            return "Skv_old";
        case Sym::SkvNew:
            return "Skv_new";
        case Sym::AttnKeys:
            return "keys";
        case Sym::Kept:
            return "kept";
        case Sym::Repeat:
            return "repeat";
        case Sym::MaskConv:
            return "mask_conv";
        case Sym::MaskElems:
            return "mask_elems";
        case Sym::SkvSink:
            return "Skv+1";
        case Sym::Cached:
            return "cached";
        case Sym::StateLive:
            return "state";
        case Sym::Prefilling:
            return "prefilling";
        case Sym::MultiSeq:
            return "multi_seq";
        case Sym::NativeGqa:
            return "native_gqa";
        case Sym::CacheView:
            return "cache_view";
        case Sym::CacheContig:
            return "cache_contig";
        case Sym::Count:
            break;
    }
    return "?";
}

const char* to_string(Category c) {
    switch (c) {
        case Category::Activation:
            return "activation";
        case Category::AttentionMatrix:
            return "attention matrix";
        case Category::KvCache:
            return "KV cache";
        case Category::Logits:
            return "logits";
        case Category::Count:
            break;
    }
    return "?";
}

const char* to_string(LaunchClass c) {
    switch (c) {
        case LaunchClass::Vectorized:
            return "vectorized";
        case LaunchClass::Strided:
            return "strided";
        case LaunchClass::StridedCopy:
            return "strided_copy";
        case LaunchClass::Cat:
            return "cat";
        case LaunchClass::Reduce:
            return "reduce";
        case LaunchClass::Softmax:
            return "softmax";
    }
    return "?";
}

const char* to_string(OpGroup g) {
    switch (g) {
        case OpGroup::Projection:
            return "attention projections";
        case OpGroup::Attention:
            return "attention core";
        case OpGroup::KvCache:
            return "kv cache update";
        case OpGroup::Mlp:
            return "mlp";
        case OpGroup::Norm:
            return "norms";
        case OpGroup::Rotary:
            return "rotary";
        case OpGroup::Residual:
            return "residual adds";
        case OpGroup::LmHead:
            return "lm head";
        case OpGroup::Sampler:
            return "sampler";
        case OpGroup::Embedding:
            return "embedding";
        case OpGroup::Count:
            break;
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

void OpGraph::finalize() {
    const size_t n = tensors_.size();
    for (const OpInfo& op : ops_)
        if (op.launches.size() > OpTraffic::kMaxLaunches)
            throw InternalError(fmt::format("op graph {}: op {} declares {} launches, above {}", name_, op.name, op.launches.size(),
                                            OpTraffic::kMaxLaunches));
    if (n > kMaxTensors) throw InternalError(fmt::format("op graph {}: {} tensors, above {}", name_, n, kMaxTensors));
    producer_.resize(n, -2);
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].lifetime == Lifetime::Preexisting)
            producer_[t] = -1;
        else if (producer_[t] < 0)
            throw InternalError(fmt::format("op graph {}: tensor {} has no producer", name_, tensors_[t].name));
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
    if (ops_.size() > kMaxTensors) throw InternalError(fmt::format("op graph {}: {} ops, above {}", name_, ops_.size(), kMaxTensors));
    ws_.clear();
    ws_begin_.assign(1, 0);
    for (size_t o = 0; o < ops_.size(); ++o) {
        for (const auto& w : ops_[o].workspace) ws_.push_back(WsSlot{w.size, w.dtype, w.category, static_cast<std::uint16_t>(o)});
        ws_begin_.push_back(static_cast<int>(ws_.size()));
    }
    if (ws_.size() > kMaxTensors) throw InternalError(fmt::format("op graph {}: {} temporaries, above {}", name_, ws_.size(), kMaxTensors));
    cache_tensors_.clear();
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].category == Category::KvCache && tensors_[t].lifetime == Lifetime::Persistent)
            cache_tensors_.push_back(static_cast<int>(t));
    }
    alias_of_.assign(n, -1);
    has_fresh_alias_ = false;
    for (size_t t = 0; t < n; ++t) {
        if (tensors_[t].alias == AliasRule::None) continue;
        const int p = producer_[t];
        if (p < 0 || read_begin_[static_cast<size_t>(p)] == read_begin_[static_cast<size_t>(p) + 1])
            throw InternalError(fmt::format("op graph {}: alias tensor {} reads nothing", name_, tensors_[t].name));
        alias_of_[t] = read_[static_cast<size_t>(read_begin_[static_cast<size_t>(p)])];
        has_fresh_alias_ |= tensors_[t].alias == AliasRule::IfFreshCache || tensors_[t].alias == AliasRule::IfCached;
    }
    build_variant(variants_[0], false);
    build_variant(variants_[1], true);
    prepare_fast_sizes();
    // Names for overflow errors of the traffic model, built once (never on a hot path).
    op_terms_.clear();
    for (size_t o = 0; o < ops_.size(); ++o) op_terms_.push_back(fmt::format("{}.{}", name_, ops_[o].name));
    finalized_ = true;
}

namespace {

bool alias_active(AliasRule r, const Bindings& b) {
    switch (r) {
        case AliasRule::None:
            return false;
        case AliasRule::View:
        case AliasRule::Always:
            return true;
        case AliasRule::IfFreshCache:
            return b[Sym::SkvOld] == 0;
        case AliasRule::IfCached:
            return b[Sym::SkvOld] != 0;
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

std::uint8_t OpGraph::combo_index(const Size& s) {
    Combo c;
    // A Size holds at most four symbols; the bound also tells the optimizer so.
    c.n = static_cast<std::uint8_t>(std::min<size_t>(s.n, c.syms.size()));
    c.syms = s.syms;
    std::sort(c.syms.begin(), c.syms.begin() + c.n);
    for (size_t i = 0; i < combos_.size(); ++i)
        if (combos_[i].n == c.n && std::equal(c.syms.begin(), c.syms.begin() + c.n, combos_[i].syms.begin()))
            return static_cast<std::uint8_t>(i);
    combos_.push_back(c);
    return static_cast<std::uint8_t>(combos_.size() - 1);
}

void OpGraph::prepare_fast_sizes() {
    combos_.clear();
    combo_of_.clear();
    coef_bytes_.clear();
    auto add = [&](const Size& s, DtypeRole r) {
        const DType& d = dtype(r);
        u64 cb = 0;
        if (d.whole_bytes() && __builtin_mul_overflow(s.coef, d.bits / 8, &cb)) cb = 0;  // the general path reports it
        combo_of_.push_back(combo_index(s));
        coef_bytes_.push_back(cb);
    };
    for (const auto& t : tensors_) add(t.size, t.dtype);
    for (const auto& w : ws_) add(w.size, w.dtype);
    if (combos_.size() > 32) throw InternalError(fmt::format("op graph {}: {} distinct size products, above 32", name_, combos_.size()));
}

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

u64 WeightTensor::bytes(const DType& d, std::string_view term) const {
    if (in == 0 || d.block2d == 0) return d.bytes(elements, term);
    // A bank of experts is `experts` matrices of elements / experts values each.
    const u64 banks = experts ? experts : 1;
    const u64 per = elements / banks;
    return checked_mul(d.matrix_bytes(per / in, in, term), banks, term);
}

u64 OpGraph::weight_bytes() const {
    u64 total = 0;
    for (const auto& o : ops_)
        for (const auto& w : o.weights)
            if (!w.shared) total = checked_add(total, w.bytes(dtype(w.dtype), w.name), w.name);
    return total;
}

u64 OpGraph::largest_op_weight_bytes() const {
    u64 largest = 0;
    for (const auto& o : ops_) {
        u64 op = 0;
        for (const auto& w : o.weights)
            if (!w.shared) op = checked_add(op, w.bytes(dtype(w.dtype), w.name), w.name);
        largest = std::max(largest, op);
    }
    return largest;
}

u64 OpGraph::weight_elements() const {
    u64 total = 0;
    for (const auto& o : ops_)
        for (const auto& w : o.weights)
            if (!w.shared) total = checked_add(total, w.elements, "parameters");
    return total;
}

u64 OpGraph::active_weight_elements() const {
    u64 total = 0;
    for (const auto& o : ops_)
        for (const auto& w : o.weights)
            if (!w.shared)
                total =
                    checked_add(total, w.experts ? mul_frac(w.elements, std::min(w.topk, w.experts), w.experts) : w.elements, "parameters");
    return total;
}

u64 OpGraph::cache_bytes(const Bindings& b) const {
    u64 total = 0;
    for (size_t t = 0; t < tensors_.size(); ++t)
        if (tensors_[t].category == Category::KvCache && tensors_[t].lifetime == Lifetime::Persistent)
            if (__builtin_add_overflow(total, tensor_bytes(static_cast<int>(t), b), &total))
                throw OverflowError(item_name(static_cast<int>(t)));
    return total;
}

bool OpGraph::try_cache_bytes(const Bindings& b, u64& out) const noexcept {
    out = 0;
    for (int t : cache_tensors_) {
        u64 v;
        const TensorInfo& ti = tensors_[static_cast<size_t>(t)];
        if (const u64 cb = coef_bytes_[static_cast<size_t>(t)]) {  // whole-byte dtype: coef · bytes × Π syms
            v = cb;
            bool ovf = false;
            for (std::uint8_t i = 0; i < ti.size.n; ++i) ovf |= __builtin_mul_overflow(v, b[ti.size.syms[i]], &v);
            if (ovf) return false;
        } else if (!sized_bytes(ti.size, dtype(ti.dtype), 1, b, v)) {
            return false;
        }
        if (__builtin_add_overflow(out, v, &out)) return false;
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
        const std::string& term = op_terms_[o];
        if (!size_value(op.flops, b, r.flops)) throw OverflowError(term);
        for (const auto& w : op.weights) {
            u64 wb = w.bytes(dtype(w.dtype), term);
            if (w.experts) {
                // T routed tokens each pick topk of E experts: E·(1 − (1 − k/E)^T) distinct experts
                // are expected to be hit (uniform routing), each read once.
                const double T = static_cast<double>(b[Sym::Batch]) * static_cast<double>(b[Sym::Sq]);
                const double E = static_cast<double>(w.experts), k = static_cast<double>(std::min(w.topk, w.experts));
                const double hit = E * (1.0 - std::pow(1.0 - k / E, T));
                wb = ceil_to_u64_saturating(static_cast<double>(wb) * std::min(1.0, hit / E));
            }
            r.weight_bytes = checked_add(r.weight_bytes, wb, term);
        }
        auto count = [&](int t, bool write) {
            const TensorInfo& ti = tensors_[static_cast<size_t>(t)];
            // An output that is its input's storage without an in-place write moves nothing.
            if (write && alias_of_[static_cast<size_t>(t)] >= 0 && ti.alias != AliasRule::Always && alias_active(ti.alias, b)) return;
            const u64 v = bytes[static_cast<size_t>(t)];
            r.bytes = checked_add(r.bytes, v, term);
            u64& side = write ? r.out_bytes : r.in_bytes;
            side = checked_add(side, v, term);
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
        for (const Launch& l : op.launches) {
            u64 n;
            if (!size_value(l.elements, b, n)) throw OverflowError(term);
            if (n == 0) continue;
            const u64 in = checked_mul(l.inputs, dtype(l.in).bytes(n, term), term);
            const u64 outb = checked_mul(l.outputs, dtype(l.out).bytes(n, term), term);
            r.launches[r.n_launches++] = LaunchTraffic{l.cls, n, checked_add(in, outb, term)};
        }
    }
    return out;
}

// The schedule of one alias variant: which tensors cost nothing, each tensor's category and
// the op after which it is freed, bucketed per op; what stays. Computed once per variant.
void OpGraph::build_variant(Variant& v, bool fresh_active) const {
    const size_t n = tensors_.size();
    constexpr int kForever = 1 << 30;
    std::vector<int> free_after(n);
    v.cat.resize(n);
    v.zero.assign(n, 0);
    for (size_t t = 0; t < n; ++t) {
        v.cat[t] = tensors_[t].category;
        switch (tensors_[t].lifetime) {
            case Lifetime::Transient:
                free_after[t] = std::max(last_use_[t], producer_[t]);
                break;
            case Lifetime::Persistent:
                free_after[t] = kForever;
                break;
            // An input (the residual stream entering a layer) dies after its last reader.
            case Lifetime::Preexisting:
                free_after[t] = last_use_[t] >= 0 ? last_use_[t] : kForever;
                break;
        }
    }
    // Effective storage: an active alias costs nothing and extends its source's lifetime; a
    // persistent alias makes its source persistent and gives it its category. Aliases point
    // backwards in the schedule, so one reverse pass settles chains.
    for (size_t i = n; i-- > 0;) {
        const AliasRule a = tensors_[i].alias;
        const bool active = a == AliasRule::View || a == AliasRule::Always || (a == AliasRule::IfFreshCache && fresh_active) ||
                            (a == AliasRule::IfCached && !fresh_active);
        if (alias_of_[i] < 0 || !active) continue;
        const auto src = static_cast<size_t>(alias_of_[i]);
        v.zero[i] = 1;
        free_after[src] = std::max(free_after[src], free_after[i]);
        if (free_after[i] == kForever) v.cat[src] = v.cat[i];
    }
    v.free_begin.assign(ops_.size() + 1, 0);
    v.freed.clear();
    for (size_t o = 0; o < ops_.size(); ++o) {
        for (size_t t = 0; t < n; ++t)
            if (!v.zero[t] && free_after[t] == static_cast<int>(o)) v.freed.push_back(static_cast<std::uint16_t>(t));
        v.free_begin[o + 1] = static_cast<int>(v.freed.size());
    }
    v.preexisting.clear();
    v.kept_kv.clear();
    v.kept_other.clear();
    for (size_t t = 0; t < n; ++t) {
        if (v.zero[t]) continue;
        const bool pre = tensors_[t].lifetime == Lifetime::Preexisting;
        if (pre) v.preexisting.push_back(static_cast<std::uint16_t>(t));
        // What the graph leaves behind. Cache storage updated in place (a recurrent state) is
        // preexisting and stays: it counts as written, so the step's change of cache is nil.
        if (free_after[t] != kForever) continue;
        if (v.cat[t] == Category::KvCache)
            v.kept_kv.push_back(static_cast<std::uint16_t>(t));
        else if (!pre)
            v.kept_other.push_back(static_cast<std::uint16_t>(t));
    }
}

GraphEval OpGraph::evaluate(const Bindings& b) const noexcept {
    GraphEval r;
    if (!finalized_) {  // a bug, reported as an overflow of nothing rather than a crash
        r.overflow = true;
        return r;
    }
    const Variant& v = variants_[has_fresh_alias_ && b[Sym::SkvOld] == 0 ? 1 : 0];
    const size_t n = tensors_.size();
    // Scratch on the stack: evaluation must not allocate (a planner calls it millions of times).
    // Each distinct product of symbols once; a product past 2^64 is only an error if a tensor of
    // non-zero size uses it (the general path below decides).
    std::array<u64, 32> cv;
    std::array<bool, 32> cv_ok;
    for (size_t c = 0; c < combos_.size(); ++c) {
        u64 x = 1;
        bool ok = true;
        for (std::uint8_t i = 0; i < combos_[c].n; ++i) ok &= !__builtin_mul_overflow(x, b[combos_[c].syms[i]], &x);
        cv[c] = x;
        cv_ok[c] = ok;
    }
    const u64 round = round_to_;
    // The caching allocator's granularity is a power of two (PyTorch: 512): a mask, not a division.
    const bool pow2 = (round & (round - 1)) == 0;
    const u64 mask = round - 1;
    auto size_slot = [&](size_t k, const Size& sz, DtypeRole role, u64& out) {
        const u64 cb = coef_bytes_[k];
        const std::uint8_t c = combo_of_[k];
        if (cb && cv_ok[c] && pow2) {
            if (__builtin_mul_overflow(cb, cv[c], &out)) return false;
            return !__builtin_add_overflow(out, mask, &out) ? (out &= ~mask, true) : false;
        }
        return sized_bytes(sz, dtypes_[static_cast<size_t>(role)], round, b, out);
    };
    std::array<u64, kMaxTensors> bytes;
    // Sums below stay within Σ bytes, checked once here.
    u64 sum = 0;
    for (size_t t = 0; t < n; ++t) {
        if (v.zero[t]) {
            bytes[t] = 0;
            continue;
        }
        if (!size_slot(t, tensors_[t].size, tensors_[t].dtype, bytes[t]) || __builtin_add_overflow(sum, bytes[t], &sum)) {
            r.overflow = true;
            r.overflow_tensor = static_cast<int>(t);
            return r;
        }
    }
    // Temporaries of every op, sized once.
    std::array<u64, kMaxTensors> ws;
    for (size_t k = 0; k < ws_.size(); ++k) {
        const WsSlot& w = ws_[k];
        if (!size_slot(n + k, w.size, w.dtype, ws[k]) || __builtin_add_overflow(sum, ws[k], &sum)) {
            r.overflow = true;
            r.overflow_tensor = -1 - static_cast<int>(w.op);
            return r;
        }
    }
    Composition live;
    u64 live_total = 0;
    for (std::uint16_t t : v.preexisting) {
        live[v.cat[t]] += bytes[t];
        live_total += bytes[t];
        if (v.cat[t] == Category::KvCache) r.preexisting_kv += bytes[t];
    }
    r.preexisting = live_total;
    const size_t n_ops = ops_.size();
    for (size_t o = 0; o < n_ops; ++o) {
        for (int i = produced_begin_[o]; i < produced_begin_[o + 1]; ++i) {
            const auto t = static_cast<size_t>(produced_[static_cast<size_t>(i)]);
            live[v.cat[t]] += bytes[t];
            live_total += bytes[t];
        }
        u64 ws_total = 0, ws_am = 0;
        for (int k = ws_begin_[o]; k < ws_begin_[o + 1]; ++k) {
            ws_total += ws[static_cast<size_t>(k)];
            if (ws_[static_cast<size_t>(k)].category == Category::AttentionMatrix) ws_am += ws[static_cast<size_t>(k)];
        }
        const u64 total = live_total + ws_total;
        if (total > r.peak_bytes) {
            r.peak_bytes = total;
            r.peak_op = static_cast<int>(o);
            r.at_peak = live;
            for (int k = ws_begin_[o]; k < ws_begin_[o + 1]; ++k)
                r.at_peak[ws_[static_cast<size_t>(k)].category] += ws[static_cast<size_t>(k)];
        }
        r.attention_matrix_max = std::max(r.attention_matrix_max, live[Category::AttentionMatrix] + ws_am);
        for (int i = v.free_begin[o]; i < v.free_begin[o + 1]; ++i) {
            const std::uint16_t t = v.freed[static_cast<size_t>(i)];
            live[v.cat[t]] -= bytes[t];
            live_total -= bytes[t];
        }
    }
    for (std::uint16_t t : v.kept_kv) r.kv_written += bytes[t];
    for (std::uint16_t t : v.kept_other) r.persistent_other += bytes[t];
    return r;
}

std::vector<int> OpGraph::reads_of(int op) const {
    const auto o = static_cast<size_t>(op);
    return std::vector<int>(read_.begin() + read_begin_[o], read_.begin() + read_begin_[o + 1]);
}

std::vector<int> OpGraph::holds_of(int op) const {
    const auto o = static_cast<size_t>(op);
    return std::vector<int>(hold_.begin() + hold_begin_[o], hold_.begin() + hold_begin_[o + 1]);
}

int OpGraph::producer_of(int tensor) const { return finalized_ ? producer_[static_cast<size_t>(tensor)] : -2; }

std::vector<LiveTensor> OpGraph::live_at(const Bindings& b, int op) const {
    std::vector<LiveTensor> out;
    if (!finalized_ || op < 0 || static_cast<size_t>(op) >= ops_.size()) return out;
    const Variant& v = variants_[has_fresh_alias_ && b[Sym::SkvOld] == 0 ? 1 : 0];
    auto bytes_of = [&](const Size& sz, DtypeRole role, const std::string& name) {
        u64 x = 0;
        if (!sized_bytes(sz, dtypes_[static_cast<size_t>(role)], round_to_, b, x)) throw OverflowError(name_ + "." + name);
        return x;
    };
    std::vector<bool> live(tensors_.size(), false);
    for (std::uint16_t t : v.preexisting) live[t] = true;
    for (size_t o = 0; o <= static_cast<size_t>(op); ++o) {
        for (int i = produced_begin_[o]; i < produced_begin_[o + 1]; ++i)
            live[static_cast<size_t>(produced_[static_cast<size_t>(i)])] = true;
        if (o == static_cast<size_t>(op)) break;
        for (int i = v.free_begin[o]; i < v.free_begin[o + 1]; ++i) live[v.freed[static_cast<size_t>(i)]] = false;
    }
    for (size_t t = 0; t < tensors_.size(); ++t) {
        if (!live[t] || v.zero[t]) continue;
        const u64 n = bytes_of(tensors_[t].size, tensors_[t].dtype, tensors_[t].name);
        if (n) out.push_back({tensors_[t].name, n, v.cat[t]});
    }
    for (int k = ws_begin_[static_cast<size_t>(op)]; k < ws_begin_[static_cast<size_t>(op) + 1]; ++k) {
        const WsSlot& w = ws_[static_cast<size_t>(k)];
        const std::string name = std::string(ops_[static_cast<size_t>(op)].name) + " temporary";
        if (const u64 n = bytes_of(w.size, w.dtype, name)) out.push_back({name, n, w.category});
    }
    std::stable_sort(out.begin(), out.end(), [](const LiveTensor& a, const LiveTensor& c) { return a.bytes > c.bytes; });
    return out;
}

}  // namespace memtax

namespace memtax {

// Autograd's view of one layer: what the forward leaves for the backward, then the backward
// pass in reverse schedule. Gradients live per storage (a view's gradient flows into its
// base's); an input's gradient is made by the first op to be back-propagated that reads it and
// released when its producer has been back-propagated; a saved storage is released after the
// earliest op that saves it; weight gradients stay.
bool Adapters::adapts(const char* op) const {
    for (const auto& t : targets)
        if (t == op) return true;
    return false;
}

bool Adapters::parameters(const WeightTensor& w, u64& out) const noexcept {
    out = 0;
    if (!w.in || w.shared) return true;  // only a matrix of its own gets lora_A (r × in) and lora_B (out × r)
    u64 sides;
    return !__builtin_add_overflow(w.in, w.elements / w.in, &sides) && !__builtin_mul_overflow(rank, sides, &out);
}

u64 OpGraph::adapter_parameters(const Adapters& a) const {
    u64 total = 0;
    for (const auto& o : ops_) {
        if (!a.adapts(o.name)) continue;
        for (const auto& w : o.weights) {
            u64 n;
            if (!a.parameters(w, n)) throw OverflowError("adapter");
            total = checked_add(total, n, "adapter");
        }
    }
    return total;
}

TrainGraphEval OpGraph::train(const Bindings& b, const TrainOptions& opt) const noexcept {
    const u64 hidden = opt.hidden;
    const bool weight_grads_stay = opt.weight_grads_stay;
    TrainGraphEval r;
    if (!finalized_) {
        r.overflow = true;
        return r;
    }
    const Variant& v = variants_[has_fresh_alias_ && b[Sym::SkvOld] == 0 ? 1 : 0];
    const size_t n = tensors_.size();
    std::array<u64, kMaxTensors> bytes{};
    for (size_t t = 0; t < n; ++t) {
        if (v.zero[t]) continue;
        if (!sized_bytes(tensors_[t].size, dtype(tensors_[t].dtype), round_to_, b, bytes[t])) {
            r.overflow = true;
            return r;
        }
    }
    auto base = [&](int t) {
        while (t >= 0 && v.zero[static_cast<size_t>(t)] && alias_of_[static_cast<size_t>(t)] >= 0) t = alias_of_[static_cast<size_t>(t)];
        return t;
    };
    auto differentiable = [&](int t) {
        const TensorInfo& ti = tensors_[static_cast<size_t>(t)];
        if (ti.lifetime == Lifetime::Preexisting && ti.category == Category::KvCache) return false;
        const DtypeRole d = ti.dtype;
        return d != DtypeRole::Index && d != DtypeRole::Bool && d != DtypeRole::Mask;
    };
    // The earliest op that saves each storage (it is released once that op is back-propagated).
    constexpr int kNone = 1 << 30;
    std::array<int, kMaxTensors> first_saver;
    first_saver.fill(kNone);
    std::array<u64, kMaxTensors> internal{};  // per op: its internal saved bytes
    u64 sum = 0;
    u64 cache_saved = 0;  // internal saved bytes that are the cache's own storages
    auto is_hidden = [&](const Size& s) {
        return hidden && s.coef == hidden && s.n == 2 &&
               ((s.syms[0] == Sym::Batch && s.syms[1] == Sym::Sq) || (s.syms[0] == Sym::Sq && s.syms[1] == Sym::Batch));
    };
    // Which tensors need a gradient: the graph's inputs as the caller says, then every output of
    // an op with such an input or a trainable weight. An op with neither makes no autograd node.
    std::array<bool, kMaxTensors> rg{};
    for (size_t t = 0; t < n; ++t)
        if (producer_[t] < 0 && tensors_[t].lifetime == Lifetime::Preexisting)
            rg[t] = opt.input_requires_grad && differentiable(static_cast<int>(t));
    const Adapters* ad = opt.adapters;
    // (A shared weight, a tied head, trains as the tensor it shares.)
    auto trainable_weights = [&](const OpInfo& op) { return !op.weights.empty() && !opt.frozen; };
    std::array<u64, kMaxTensors> adapter_grads{};  // per op: its adapters' gradients (frozen base)
    for (size_t o = 0; o < ops_.size(); ++o) {
        const OpInfo& op = ops_[o];
        const int nin = read_begin_[o + 1] - read_begin_[o];
        const bool weights_train = trainable_weights(op);
        const bool adapted = ad && opt.frozen && ad->adapts(op.name);
        bool in_rg = false;
        for (int i = 0; i < nin; ++i) {
            const int t = base(read_[static_cast<size_t>(read_begin_[o] + i)]);
            in_rg = in_rg || (t >= 0 && rg[static_cast<size_t>(t)]);
        }
        const bool node = in_rg || weights_train || adapted;
        for (int i = produced_begin_[o]; i < produced_begin_[o + 1]; ++i) {
            const int t = produced_[static_cast<size_t>(i)];
            rg[static_cast<size_t>(t)] = node && differentiable(t);
            const int bt = base(t);
            if (bt >= 0) rg[static_cast<size_t>(bt)] = rg[static_cast<size_t>(bt)] || rg[static_cast<size_t>(t)];
        }
        if (!node) continue;
        for (int i = 0; i < nin && i < 8; ++i) {
            if (!(op.saves_inputs & (1u << i))) continue;
            if ((op.weight_saves & (1u << i)) && !weights_train) continue;  // kept only for a frozen weight's gradient
            if (!(op.weight_saves & (1u << i)) && !in_rg) continue;         // kept only for inputs that need none
            const int t = base(read_[static_cast<size_t>(read_begin_[o] + i)]);
            if (t < 0 || !differentiable(t)) continue;
            first_saver[static_cast<size_t>(t)] = std::min(first_saver[static_cast<size_t>(t)], static_cast<int>(o));
        }
        if (op.saves_output && in_rg && produced_begin_[o] < produced_begin_[o + 1]) {
            const int t = base(produced_[static_cast<size_t>(produced_begin_[o])]);
            if (t >= 0) first_saver[static_cast<size_t>(t)] = std::min(first_saver[static_cast<size_t>(t)], static_cast<int>(o));
        }
        if (adapted && nin > 0) {
            // lora_A keeps its input: a copy in the adapters' dtype when that differs, else the
            // input itself; lora_B keeps lora_A's [tokens, rank] output.
            const int in = base(read_[static_cast<size_t>(read_begin_[o])]);
            if (in >= 0) {
                const TensorInfo& ti = tensors_[static_cast<size_t>(in)];
                u64 copy = 0, low = 0;
                Size lr = ti.size;
                lr.coef = ad->rank;
                bool ok = sized_bytes(lr, dtype(ad->dtype), round_to_, b, low);
                if (dtype(ad->dtype) == dtype(ti.dtype))
                    first_saver[static_cast<size_t>(in)] = std::min(first_saver[static_cast<size_t>(in)], static_cast<int>(o));
                else
                    ok = ok && sized_bytes(ti.size, dtype(ad->dtype), round_to_, b, copy);
                if (!ok || __builtin_add_overflow(internal[o], copy + low, &internal[o])) {
                    r.overflow = true;
                    return r;
                }
            }
            for (const auto& w : op.weights) {
                u64 n = 0, x = 0;
                if (!ad->parameters(w, n) || !dtype(ad->dtype).try_bytes(n, x) ||
                    __builtin_add_overflow(adapter_grads[o], x, &adapter_grads[o])) {
                    r.overflow = true;
                    return r;
                }
            }
        }
        for (const auto& w : op.saved) {
            if (w.for_weight && !weights_train) continue;
            if (!w.for_weight && !in_rg) continue;
            u64 x;
            if (!sized_bytes(w.size, dtype(w.dtype), round_to_, b, x) || __builtin_add_overflow(internal[o], x, &internal[o])) {
                r.overflow = true;
                return r;
            }
            if (w.category == Category::AttentionMatrix) r.saved_attention_matrix += x;
            if (w.category == Category::KvCache) cache_saved += x;
            if (is_hidden(w.size)) r.saved_hidden += x;
        }
        if (__builtin_add_overflow(sum, internal[o], &sum)) {
            r.overflow = true;
            return r;
        }
    }
    for (size_t t = 0; t < n; ++t) {
        if (first_saver[t] == kNone) continue;
        if (__builtin_add_overflow(sum, bytes[t], &sum)) {
            r.overflow = true;
            return r;
        }
        if (v.cat[t] == Category::AttentionMatrix) r.saved_attention_matrix += bytes[t];
        if (is_hidden(tensors_[t].size)) r.saved_hidden += bytes[t];
    }
    r.saved = sum;
    for (std::uint16_t kv : v.kept_kv) {
        const int t = base(kv);  // an empty cache keeps the new tensor itself
        if (t < 0 || first_saver[static_cast<size_t>(t)] != kNone) continue;
        if (__builtin_add_overflow(r.unsaved_cache, bytes[static_cast<size_t>(t)], &r.unsaved_cache)) {
            r.overflow = true;
            return r;
        }
    }
    r.unsaved_cache -= std::min(r.unsaved_cache, cache_saved);
    // The backward pass. `live` counts from the saved bytes (live before it starts) upwards.
    std::array<bool, kMaxTensors> grad{};
    u64 live = sum, peak = sum;
    bool ovf = false;
    auto add = [&](u64 x) { ovf |= __builtin_add_overflow(live, x, &live); };
    // Bytes of a list of temporaries (those of `fp32_only`'s dtype alone when set).
    auto temporaries = [&](const std::vector<Workspace>& list, bool fp32_only) {
        u64 total = 0;
        for (const auto& w : list) {
            if (fp32_only && w.dtype != DtypeRole::Fp32) continue;
            u64 x = 0;
            ovf |= !sized_bytes(w.size, dtype(w.dtype), round_to_, b, x);
            ovf |= __builtin_add_overflow(total, x, &total);
        }
        return total;
    };
    // The gradient of the layer's output arrives from the layer above.
    for (std::uint16_t t : v.kept_other) {
        grad[t] = true;
        add(bytes[t]);
    }
    for (size_t o = ops_.size(); o-- > 0;) {
        const OpInfo& op = ops_[o];
        if (!op.backward_workspace.empty()) {
            u64 at = 0;
            ovf |= __builtin_add_overflow(live, temporaries(op.backward_workspace, false), &at);
            peak = std::max(peak, at);
        }
        for (int i = read_begin_[o]; i < read_begin_[o + 1]; ++i) {
            const int t = base(read_[static_cast<size_t>(i)]);
            if (t < 0 || grad[static_cast<size_t>(t)] || !rg[static_cast<size_t>(t)] || !differentiable(t) ||
                !dtype(tensors_[static_cast<size_t>(t)].dtype).whole_bytes())
                continue;
            grad[static_cast<size_t>(t)] = true;
            add(bytes[static_cast<size_t>(t)]);
        }
        u64 formed = adapter_grads[o];  // this op's weight gradients (a frozen base: its adapters' only)
        ovf |= __builtin_add_overflow(r.weight_grads, formed, &r.weight_grads);
        for (const auto& w : op.weights) {
            if (w.shared || opt.frozen) continue;
            u64 x = 0;
            ovf |= !dtype(w.dtype).try_bytes(w.elements, x);
            ovf |= __builtin_add_overflow(r.weight_grads, x, &r.weight_grads);
            ovf |= __builtin_add_overflow(formed, x, &formed);
        }
        if (weight_grads_stay) add(formed);
        // The gradients of its upcast temporaries, unless its backward holds its own (and the
        // weight gradients it forms, when they do not stay).
        u64 transient = op.backward_workspace.empty() ? temporaries(op.workspace, true) : 0;
        if (!weight_grads_stay) ovf |= __builtin_add_overflow(transient, formed, &transient);
        u64 at = 0;
        ovf |= __builtin_add_overflow(live, transient, &at);
        peak = std::max(peak, at);
        // Released: the gradients of what this op produced, what it alone still kept, its internals.
        for (int i = produced_begin_[o]; i < produced_begin_[o + 1]; ++i) {
            const auto t = static_cast<size_t>(base(produced_[static_cast<size_t>(i)]));
            if (producer_[t] == static_cast<int>(o) && grad[t]) {
                grad[t] = false;
                live -= bytes[t];
            }
        }
        for (size_t t = 0; t < n; ++t)
            if (first_saver[t] == static_cast<int>(o)) live -= bytes[t];
        live -= internal[o];
    }
    if (ovf) {
        r.overflow = true;
        return r;
    }
    for (size_t t = 0; t < n; ++t)
        if (grad[t] && tensors_[t].lifetime == Lifetime::Preexisting) r.input_grad += bytes[t];
    r.backward_peak = peak - sum;
    return r;
}

}  // namespace memtax
