#include "model/memory_model.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace memtax {

std::string group_digits(u64 v) {
    const std::string digits = std::to_string(v);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string format_bytes_gib(u64 bytes) { return fmt::format("{:.1f} GiB", to_gib(bytes)); }

namespace {

using Shard = ShardSizes;

Shard shard(const ModelSpec& m, u64 tp) {
    auto fail = [&](const std::string& msg) { throw InputError(SourcePos{}, "--tp", msg); };
    if (tp == 0) fail("must be at least 1");
    if (m.num_attention_heads % tp != 0)
        fail(fmt::format("{} does not divide num_attention_heads = {} ({}); valid: a divisor of {}", tp,
                         m.num_attention_heads, m.file, m.num_attention_heads));
    if (m.num_key_value_heads % tp != 0 && tp % m.num_key_value_heads != 0)
        fail(fmt::format("{} and num_key_value_heads = {} ({}) must divide one another", tp, m.num_key_value_heads,
                         m.file));
    if (m.intermediate_size % tp != 0)
        fail(fmt::format("{} does not divide intermediate_size = {} ({})", tp, m.intermediate_size, m.file));
    Shard s;
    s.heads_q = m.num_attention_heads / tp;
    // Fewer KV heads than GPUs: each GPU keeps a replica of one KV head (vLLM, Megatron).
    s.heads_kv = m.num_key_value_heads >= tp ? m.num_key_value_heads / tp : 1;
    s.q_dim = checked_mul(s.heads_q, m.head_dim, "q_dim");
    s.kv_dim = checked_mul(s.heads_kv, m.head_dim, "kv_dim");
    s.inter = m.intermediate_size / tp;
    s.vocab = ceil_div(m.vocab_size, tp);  // vocab-parallel embedding and LM head
    return s;
}

using WeightParts = WeightBreakdown;

WeightParts weight_parts(const ModelSpec& m, const Shard& s, const DType& linear) {
    const DType& md = m.dtype;
    const u64 h = m.hidden_size;
    WeightParts w;
    auto mat = [&](u64 rows, u64 cols, const char* name) {
        u64 n = checked_mul(rows, cols, name);
        w.params_layer = checked_add(w.params_layer, n, "parameters");
        return linear.bytes(n, name);  // group scales are per matrix, so size each one
    };
    auto vec = [&](u64 n, const char* name) {
        w.params_layer = checked_add(w.params_layer, n, "parameters");
        return md.bytes(n, name);
    };
    u64 norm_width = m.norm == NormKind::RMSNorm ? h : checked_mul(2, h, "norm");
    w.attention = checked_add(checked_add(mat(h, s.q_dim, "q_proj"), mat(h, s.kv_dim, "k_proj"), "attn"),
                              checked_add(mat(h, s.kv_dim, "v_proj"), mat(s.q_dim, h, "o_proj"), "attn"), "attn");
    if (m.qkv_bias) w.attention = checked_add(w.attention, vec(s.q_dim + 2 * s.kv_dim, "qkv_bias"), "attn");
    if (m.o_bias) w.attention = checked_add(w.attention, vec(h, "o_bias"), "attn");
    u64 mlp_mats = m.gated_mlp ? 3 : 2;
    for (u64 i = 0; i < mlp_mats; ++i)
        w.mlp = checked_add(w.mlp, i + 1 == mlp_mats ? mat(s.inter, h, "down_proj") : mat(h, s.inter, "up_proj"), "mlp");
    if (m.mlp_bias) w.mlp = checked_add(w.mlp, vec((mlp_mats - 1) * s.inter + h, "mlp_bias"), "mlp");
    w.norms = checked_add(vec(norm_width, "norm"), vec(norm_width, "norm"), "norms");

    u64 emb = checked_mul(s.vocab, h, "embedding");
    w.embedding = md.bytes(emb, "embedding");
    w.lm_head = m.tie_word_embeddings ? 0 : md.bytes(emb, "lm_head");
    w.final_norm = md.bytes(norm_width, "final_norm");
    w.params_other = checked_add(checked_mul(emb, m.tie_word_embeddings ? 1 : 2, "embedding"), norm_width, "params");
    return w;
}

// KV tokens a layer keeps after a step that leaves `context` tokens: sliding-window layers
// keep at most the window, as runtimes trim them.
u64 kept_tokens(const ModelSpec& m, LayerKind k, u64 context) {
    return k == LayerKind::SlidingAttention ? std::min(context, m.sliding_window) : context;
}

void add_to(Composition& c, Category k, u64 v) {
    auto& slot = c.bytes[static_cast<size_t>(k)];
    slot = checked_add(slot, v, "live bytes");
}

u64 kv_layer_bytes(const DType& kv, u64 batch, u64 tokens, const Shard& s) {
    // K and V: batch · tokens · kv_heads/GPU · head_dim elements each.
    return checked_mul(2, kv.bytes(checked_product({batch, tokens, s.kv_dim}, "kv cache"), "kv cache"), "kv cache");
}

}  // namespace

u64 parameter_count(const ModelSpec& m) {
    Shard s = shard(m, 1);
    WeightParts w = weight_parts(m, s, m.dtype);
    return checked_add(checked_mul(w.params_layer, m.num_layers, "parameters"), w.params_other, "parameters");
}

Estimate estimate(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl_in) {
    Estimate e;
    e.model = model;
    e.gpu = gpu;
    e.deployment = dep;
    Workload wl = wl_in;
    DType fp32;
    parse_dtype("fp32", fp32);
    if (!wl.weight_dtype) wl.weight_dtype = model.dtype;
    if (!wl.kv_dtype) wl.kv_dtype = model.dtype;
    if (!wl.softmax_dtype) wl.softmax_dtype = fp32;
    if (!wl.logits_dtype) wl.logits_dtype = model.dtype;
    if (!wl.logits_kept) wl.logits_kept = 1;
    e.workload = wl;

    if (wl.batch == 0) throw InputError(SourcePos{}, "--batch", "must be at least 1");
    if (wl.context == 0) throw InputError(SourcePos{}, "--context", "must be at least 1 token");
    if (dep.gpus == 0 || dep.tp == 0 || dep.gpus % dep.tp != 0)
        throw InputError(SourcePos{}, "--gpus", fmt::format("{} GPUs cannot hold whole replicas of TP {}; use a multiple of {}",
                                                            dep.gpus, dep.tp, dep.tp));
    for (const DType* d : {&*wl.softmax_dtype, &*wl.logits_dtype})
        if (!d->whole_bytes())
            throw InputError(SourcePos{}, d == &*wl.softmax_dtype ? "--softmax-dtype" : "--logits-dtype",
                             fmt::format("{} cannot hold activations; use fp32, bf16 or fp16", d->name));
    const Shard s = shard(model, dep.tp);
    e.replicas = dep.gpus / dep.tp;
    e.batch_per_replica = ceil_div(wl.batch, e.replicas);
    const u64 B = e.batch_per_replica;
    const u64 S = wl.context;
    const bool prefill = wl.mode == Mode::Prefill;
    const u64 Sq = prefill ? S : 1;
    e.logits_kept = *wl.logits_kept == 0 ? Sq : std::min(*wl.logits_kept, Sq);

    // Weights.
    WeightParts w = weight_parts(model, s, *wl.weight_dtype);
    const u64 per_layer_w = checked_add(checked_add(w.attention, w.mlp, "weights"), w.norms, "weights");
    e.weights = checked_add(checked_add(checked_mul(per_layer_w, model.num_layers, "weights"), w.embedding, "weights"),
                            checked_add(w.lm_head, w.final_norm, "weights"), "weights");
    e.detail.shard = s;
    e.detail.weights = w;
    e.parameters = parameter_count(model);
    e.parameters_per_gpu = checked_add(checked_mul(w.params_layer, model.num_layers, "parameters"), w.params_other, "parameters");

    // Bindings shared by every graph.
    Bindings b;
    b[Dim::Batch] = B;
    b[Dim::Sq] = Sq;
    b[Dim::Hidden] = model.hidden_size;
    b[Dim::QDim] = s.q_dim;
    b[Dim::KvDim] = s.kv_dim;
    b[Dim::Inter] = s.inter;
    b[Dim::HeadsQ] = s.heads_q;
    b[Dim::HeadsKv] = s.heads_kv;
    b[Dim::HeadDim] = model.head_dim;
    // The LM head's vocab-parallel shards are gathered onto one GPU for sampling.
    b[Dim::Vocab] = model.vocab_size;
    b[Dim::Kept] = e.logits_kept;
    b[DtypeRole::Act] = model.dtype;
    b[DtypeRole::Softmax] = *wl.softmax_dtype;
    b[DtypeRole::Kv] = *wl.kv_dtype;
    b[DtypeRole::Logits] = *wl.logits_dtype;
    b[DtypeRole::Fp32] = fp32;
    b[DtypeRole::Index] = DType{"int64", 64, 0, 0};

    // Keys a layer kind attends to: prefill attends the whole prompt (the eager kernel
    // materialises S×S and masks the window); decode reads what the cache keeps.
    auto skv = [&](LayerKind k) { return prefill ? S : kept_tokens(model, k, S); };
    bool has_kind[2] = {false, false};
    for (auto k : model.layer_kinds) has_kind[static_cast<int>(k)] = true;
    u64 mask_elems = 0;
    if (wl.attention == AttentionKernel::Eager) {
        // transformers builds one additive mask [B, 1, Sq, Skv] per attention kind in the act dtype.
        for (auto k : {LayerKind::FullAttention, LayerKind::SlidingAttention})
            if (has_kind[static_cast<int>(k)])
                mask_elems = checked_add(mask_elems, checked_product({B, Sq, skv(k)}, "attention mask"), "attention mask");
    }
    b[Dim::MaskElems] = mask_elems;
    b[Dim::TableElems] = checked_product({2, Sq, model.head_dim}, "rotary tables");
    const u64 mask_bytes = model.dtype.bytes(mask_elems, "attention mask");
    // Forward-level tensors besides the masks: rotary tables and int64 token positions.
    const u64 table_bytes = checked_add(model.dtype.bytes(b[Dim::TableElems], "rotary tables"),
                                        checked_mul(Sq, 8, "positions"), "forward state");

    // KV: after the step, and resident before it (decode only).
    const DType& kvd = *wl.kv_dtype;
    u64 kv_before = 0;
    for (auto k : model.layer_kinds) {
        e.kv_cache = checked_add(e.kv_cache, kv_layer_bytes(kvd, B, kept_tokens(model, k, S), s), "kv cache");
        if (!prefill) kv_before = checked_add(kv_before, kv_layer_bytes(kvd, B, kept_tokens(model, k, S - 1), s), "kv cache");
    }

    e.resident_before = checked_add(e.weights, kv_before, "resident");

    // Forward peak: walk the layers; each kind's graph is evaluated once.
    const OpGraph& layer_graph = decoder_layer_graph(wl.attention);
    GraphEval ev[2];
    for (auto k : {LayerKind::FullAttention, LayerKind::SlidingAttention}) {
        if (!has_kind[static_cast<int>(k)]) continue;
        Bindings bk = b;
        bk[Dim::Skv] = skv(k);
        ev[static_cast<int>(k)] = layer_graph.evaluate(bk);
    }
    Composition best;
    const u64 x_bytes = model.dtype.bytes(checked_product({B, Sq, model.hidden_size}, "hidden"), "hidden");
    // Prologue: embeddings out, masks and rotary tables built.
    best.bytes[static_cast<size_t>(Category::Activation)] = checked_add(x_bytes, table_bytes, "prologue");
    best.bytes[static_cast<size_t>(Category::AttentionMatrix)] = mask_bytes;
    e.peak_at = "embedding";
    u64 peak = best.total();
    u64 kv_new = 0;  // KV written so far in this step
    for (u64 i = 0; i < model.num_layers; ++i) {
        const GraphEval& g = ev[static_cast<int>(model.layer_kinds[i])];
        // Past layer 0 the embedding output is no longer the layer's input, but the base
        // model's `inputs_embeds` still references it.
        const u64 held = checked_add(table_bytes, i > 0 ? x_bytes : 0, "forward state");
        u64 here = checked_add(checked_add(checked_add(kv_new, g.peak_bytes, "peak"), mask_bytes, "peak"), held, "peak");
        if (here > peak) {
            peak = here;
            best = g.at_peak;
            add_to(best, Category::AttentionMatrix, mask_bytes);
            add_to(best, Category::Activation, held);
            add_to(best, Category::KvCache, kv_new);
            e.peak_at = fmt::format("layer {} ({}) {}", i, to_string(model.layer_kinds[i]), g.peak_op);
        }
        kv_new = checked_add(kv_new, g.kv_written, "kv written");
    }
    Bindings bh = b;
    bh[Dim::Skv] = 0;  // the head has no attention
    GraphEval head = head_graph().evaluate(bh);
    if (const u64 here = checked_add(head.peak_bytes, kv_new, "peak"); here > peak) {
        peak = here;
        best = head.at_peak;
        add_to(best, Category::KvCache, kv_new);
        e.peak_at = "head " + head.peak_op;
    }
    e.forward_peak = peak;

    // Components at the peak. The KV part is reported as the whole cache after the step; KV
    // held at the peak beyond that (a window not yet trimmed) is transient, so activation.
    u64 kv_live = checked_add(kv_before, best[Category::KvCache], "kv live");
    u64 kv_excess = kv_live > e.kv_cache ? kv_live - e.kv_cache : 0;
    e.attention_matrix = best[Category::AttentionMatrix];
    e.logits = best[Category::Logits];
    e.activation_peak = checked_add(best[Category::Activation], kv_excess, "activation");
    e.runtime_overhead = gpu.runtime_overhead_bytes;
    e.total = checked_add(checked_add(checked_add(e.weights, e.kv_cache, "total"), checked_add(e.attention_matrix, e.activation_peak, "total"), "total"),
                          checked_add(e.logits, e.runtime_overhead, "total"), "total");

    // Per layer kind rows.
    for (auto k : {LayerKind::FullAttention, LayerKind::SlidingAttention}) {
        if (!has_kind[static_cast<int>(k)]) continue;
        const GraphEval& g = ev[static_cast<int>(k)];
        LayerKindRow row;
        row.kind = k;
        row.count = static_cast<u64>(std::count(model.layer_kinds.begin(), model.layer_kinds.end(), k));
        row.weights_bytes = per_layer_w;
        row.kv_cache_bytes = kv_layer_bytes(kvd, B, kept_tokens(model, k, S), s);
        row.attention_matrix_bytes = g.attention_matrix_max;
        row.transient_peak_bytes = g.peak_bytes - g.at_peak[Category::KvCache];
        row.peak_op = g.peak_op;
        e.layer_kinds.push_back(row);
    }

    e.detail.mask_bytes = mask_bytes;
    e.detail.kv_excess = kv_excess;
    e.detail.skv = skv(model.layer_kinds.front());
    e.capacity = gpu.usable_memory_bytes;
    e.fits = e.total <= e.capacity;
    return e;
}

std::string fit_verdict(const Estimate& e) {
    // Components in decreasing size, so the sentence leads with what decided it.
    std::vector<std::pair<std::string, u64>> parts = {{"weights", e.weights},       {"KV", e.kv_cache},
                                                      {"attention matrix", e.attention_matrix}, {"activations", e.activation_peak},
                                                      {"logits", e.logits},         {"overhead", e.runtime_overhead}};
    std::stable_sort(parts.begin(), parts.end(), [](const auto& a, const auto& c) { return a.second > c.second; });
    // Terms that would print as 0.0 GiB are summed into one "other" term in MiB.
    std::string sum;
    u64 small = 0;
    for (const auto& [name, v] : parts) {
        if (v < (1ull << 30) / 20) {
            small += v;
            continue;
        }
        sum += fmt::format("{}{} {}", sum.empty() ? "" : " + ", name, format_bytes_gib(v));
    }
    if (small) sum += fmt::format("{}other {:.1f} MiB", sum.empty() ? "" : " + ", static_cast<double>(small) / kMiB);
    if (e.fits)
        return fmt::format("fits: {} = {} of {} usable, {} free", sum, format_bytes_gib(e.total), format_bytes_gib(e.capacity),
                           format_bytes_gib(e.capacity - e.total));
    return fmt::format("does not fit: {} = {} exceeds {} usable by {}", sum, format_bytes_gib(e.total),
                       format_bytes_gib(e.capacity), format_bytes_gib(e.total - e.capacity));
}

std::vector<Term> explain_terms(const Estimate& e) {
    const auto& m = e.model;
    const auto& d = e.detail.shard;
    const auto& wp = e.detail.weights;
    const auto& w = e.workload;
    const DType& md = m.dtype;
    const u64 h = m.hidden_size;
    std::vector<Term> t;
    t.push_back({"weights.embedding", fmt::format("vocab/tp · hidden · {} = {} · {} · {} B", md.name, group_digits(d.vocab), h,
                                                  md.bits / 8),
                 wp.embedding});
    if (!m.tie_word_embeddings)
        t.push_back({"weights.lm_head", fmt::format("vocab/tp · hidden · {} (untied) = {} · {} · {} B", md.name,
                                                    group_digits(d.vocab), h, md.bits / 8),
                     wp.lm_head});
    t.push_back({"weights.attention/layer",
                 fmt::format("hidden·(q_dim + 2·kv_dim) + q_dim·hidden in {} = {}·({} + 2·{}) + {}·{}{}", w.weight_dtype->name, h,
                             d.q_dim, d.kv_dim, d.q_dim, h, m.qkv_bias ? " + q/k/v biases" : ""),
                 wp.attention});
    t.push_back({"weights.mlp/layer",
                 fmt::format("{}·hidden·intermediate/tp in {} = {}·{}·{}", m.gated_mlp ? 3 : 2, w.weight_dtype->name,
                             m.gated_mlp ? 3 : 2, h, d.inter),
                 wp.mlp});
    t.push_back({"weights.norms/layer", fmt::format("2 norms · {} in {}", m.norm == NormKind::RMSNorm ? h : 2 * h, md.name),
                 wp.norms});
    t.push_back({"weights", fmt::format("embedding + lm_head + final norm + {} layers · {} B", m.num_layers,
                                        group_digits(wp.attention + wp.mlp + wp.norms)),
                 e.weights});
    t.push_back({"kv_cache",
                 fmt::format("Σ layers 2 · batch · tokens kept · kv_heads/GPU · head_dim · {} = 2 · {} · {} · {} · {} · {} B × {} layers{}",
                             w.kv_dtype->name, e.batch_per_replica, w.context, d.heads_kv, m.head_dim, w.kv_dtype->bits / 8.0,
                             m.num_layers,
                             m.sliding_window ? fmt::format(" (sliding layers keep ≤ {} tokens)", m.sliding_window) : ""),
                 e.kv_cache});
    const u64 sq = w.mode == Mode::Prefill ? w.context : 1;
    t.push_back({"attention_matrix",
                 w.attention == AttentionKernel::Eager
                     ? fmt::format("S×S tensors live at the peak, each batch · heads/GPU · Sq · Skv = {} · {} · {} · {} elements "
                                   "(scores in {}, softmax in {}), + masks {} B",
                                   e.batch_per_replica, d.heads_q, sq, e.detail.skv, m.dtype.name, w.softmax_dtype->name,
                                   group_digits(e.detail.mask_bytes))
                     : std::string("fused kernel: no S×S tensor (its O(S) softmax statistics count as activations)"),
                 e.attention_matrix});
    t.push_back({"activation_peak",
                 fmt::format("live non-KV, non-S×S tensors at the forward peak ({}) by op-graph liveness{}", e.peak_at,
                             e.detail.kv_excess ? fmt::format(", incl. {} B of KV beyond the window", group_digits(e.detail.kv_excess)) : ""),
                 e.activation_peak});
    t.push_back({"logits", fmt::format("batch · positions kept · vocab · {} = {} · {} · {} · {} B, if live at the peak",
                                       w.logits_dtype->name, e.batch_per_replica, e.logits_kept, group_digits(m.vocab_size),
                                       w.logits_dtype->bits / 8),
                 e.logits});
    auto src = e.gpu.sources.find("runtime_overhead_bytes");
    t.push_back({"runtime_overhead", fmt::format("CUDA context + library workspaces ({}: {})", e.gpu.name,
                                                 src == e.gpu.sources.end() ? "profile" : src->second),
                 e.runtime_overhead});
    t.push_back({"forward_peak", fmt::format("peak during the step above what was allocated before it, at {}", e.peak_at),
                 e.forward_peak});
    t.push_back({"total", "weights + kv_cache + attention_matrix + activation_peak + logits + runtime_overhead", e.total});
    return t;
}

}  // namespace memtax
