#pragma once
// A second, slow evaluation of an op graph's memory, written apart from OpGraph::evaluate: no
// precomputed sizes (each tensor sized from its Size and dtype at the point), no precomputed
// free lists or alias variants. It walks the schedule over storages: a tensor whose alias rule
// is active at the point shares the storage of its producer's first input (chains followed to
// the root); a storage lives from its root's production (or from the start, for an input) to
// the last op that produces, reads or holds any tensor on it, or for ever when one of them is
// persistent (or an input nobody reads); it takes the category of its earliest persistent alias
// when it has one. The peak is the most bytes live at any op, that op's temporaries included.
// Shared by tests/test_graph_reference.cpp and the fuzz harnesses, which hold evaluate to it.
#include <algorithm>
#include <optional>
#include <vector>

#include "graph/op_graph.hpp"

namespace memtax::reference {

struct Eval {
    u64 peak = 0;
    int peak_op = -1;
    Composition at_peak;
    u64 kv_written = 0, persistent_other = 0, preexisting = 0;
};

inline std::optional<u64> bytes_of(const OpGraph& g, const Size& s, DtypeRole role, const Bindings& b) {
    u64 n = s.coef;
    for (std::uint8_t i = 0; i < s.n; ++i)
        if (__builtin_mul_overflow(n, b[s.syms[i]], &n)) return std::nullopt;
    u64 out = 0;
    if (!g.dtype(role).try_bytes(n, out)) return std::nullopt;
    const u64 r = g.round_to();
    if (r > 1 && out % r && __builtin_add_overflow(out, r - out % r, &out)) return std::nullopt;
    return out;
}

// nullopt when a size overflows 64 bits (evaluate then reports an overflow).
inline std::optional<Eval> evaluate(const OpGraph& g, const Bindings& b) {
    const auto& ts = g.tensors();
    const int n = static_cast<int>(ts.size()), ops = static_cast<int>(g.ops().size());
    auto active = [&](AliasRule r) {
        return r == AliasRule::View || r == AliasRule::Always || (r == AliasRule::IfFreshCache && b[Sym::SkvOld] == 0) ||
               (r == AliasRule::IfCached && b[Sym::SkvOld] != 0);
    };
    // The storage each tensor lives on.
    std::vector<int> root(static_cast<size_t>(n));
    for (int t = 0; t < n; ++t) {
        int r = t;
        while (ts[static_cast<size_t>(r)].alias != AliasRule::None && active(ts[static_cast<size_t>(r)].alias))
            r = g.reads_of(g.producer_of(r)).front();
        root[static_cast<size_t>(t)] = r;
    }
    std::vector<int> last(static_cast<size_t>(n), -1);  // last op that touches the storage
    std::vector<bool> forever(static_cast<size_t>(n), false), used(static_cast<size_t>(n), false);
    std::vector<Category> cat(static_cast<size_t>(n));
    for (int t = 0; t < n; ++t) cat[static_cast<size_t>(t)] = ts[static_cast<size_t>(t)].category;
    auto touch = [&](int t, int o) {
        used[static_cast<size_t>(t)] = true;
        int& l = last[static_cast<size_t>(root[static_cast<size_t>(t)])];
        l = std::max(l, o);
    };
    for (int o = 0; o < ops; ++o) {
        for (int t : g.reads_of(o)) touch(t, o);
        for (int t : g.holds_of(o)) touch(t, o);
    }
    // Persistence, and the category a persistent alias lends: the earliest such alias wins.
    for (int t = n - 1; t >= 0; --t) {
        const auto& info = ts[static_cast<size_t>(t)];
        const auto r = static_cast<size_t>(root[static_cast<size_t>(t)]);
        const int p = g.producer_of(t);
        if (p >= 0) last[r] = std::max(last[r], p);
        const bool stays =
            info.lifetime == Lifetime::Persistent || (info.lifetime == Lifetime::Preexisting && !used[static_cast<size_t>(t)]);
        if (!stays) continue;
        forever[r] = true;
        if (static_cast<int>(r) != t) cat[r] = info.category;
    }
    std::vector<u64> bytes(static_cast<size_t>(n), 0);
    for (int t = 0; t < n; ++t) {
        if (root[static_cast<size_t>(t)] != t) continue;
        const auto x = bytes_of(g, ts[static_cast<size_t>(t)].size, ts[static_cast<size_t>(t)].dtype, b);
        if (!x) return std::nullopt;
        bytes[static_cast<size_t>(t)] = *x;
    }
    Eval e;
    Composition live;
    u64 live_total = 0;
    for (int t = 0; t < n; ++t)
        if (root[static_cast<size_t>(t)] == t && ts[static_cast<size_t>(t)].lifetime == Lifetime::Preexisting) {
            live[cat[static_cast<size_t>(t)]] += bytes[static_cast<size_t>(t)];
            live_total += bytes[static_cast<size_t>(t)];
        }
    e.preexisting = live_total;
    for (int o = 0; o < ops; ++o) {
        for (int t = 0; t < n; ++t)
            if (root[static_cast<size_t>(t)] == t && g.producer_of(t) == o) {
                live[cat[static_cast<size_t>(t)]] += bytes[static_cast<size_t>(t)];
                live_total += bytes[static_cast<size_t>(t)];
            }
        Composition here = live;
        u64 total = live_total;
        for (const auto& w : g.ops()[static_cast<size_t>(o)].workspace) {
            const auto x = bytes_of(g, w.size, w.dtype, b);
            if (!x) return std::nullopt;
            here[w.category] += *x;
            total += *x;
        }
        if (total > e.peak) {
            e.peak = total;
            e.peak_op = o;
            e.at_peak = here;
        }
        for (int t = 0; t < n; ++t)
            if (root[static_cast<size_t>(t)] == t && !forever[static_cast<size_t>(t)] && last[static_cast<size_t>(t)] == o) {
                live[cat[static_cast<size_t>(t)]] -= bytes[static_cast<size_t>(t)];
                live_total -= bytes[static_cast<size_t>(t)];
            }
    }
    for (int t = 0; t < n; ++t) {
        if (root[static_cast<size_t>(t)] != t || !forever[static_cast<size_t>(t)]) continue;
        if (cat[static_cast<size_t>(t)] == Category::KvCache)
            e.kv_written += bytes[static_cast<size_t>(t)];
        else if (ts[static_cast<size_t>(t)].lifetime != Lifetime::Preexisting)
            e.persistent_other += bytes[static_cast<size_t>(t)];
    }
    return e;
}

}  // namespace memtax::reference
