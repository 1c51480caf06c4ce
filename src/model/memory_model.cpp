#include "model/memory_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>

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

namespace {

// Signed arithmetic for the running change of live bytes (KV storage can shrink in a step).
using i64 = std::int64_t;
i64 sgn(u64 v, const char* term) {
    if (v > static_cast<u64>(std::numeric_limits<i64>::max() / 4)) throw OverflowError(term);
    return static_cast<i64>(v);
}
i64 add_s(i64 a, i64 b, const char* term) {
    i64 r;
    if (__builtin_add_overflow(a, b, &r)) throw OverflowError(term);
    return r;
}

u64 round_up(u64 bytes, u64 to, const char* term) {
    if (to <= 1 || bytes % to == 0) return bytes;
    return checked_add(bytes, to - bytes % to, term);
}

// Checks and resolves what every runtime shares: defaults, shards, weights.
struct Stage {
    bool embed = true, head = true;
};

Shard prepare(Estimate& e, const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, Workload& wl, DType& fp32,
              const Stage& stage) {
    e.model = model;
    e.gpu = gpu;
    e.deployment = dep;
    parse_dtype("fp32", fp32);
    const RuntimeSpec& rt = wl.runtime;
    if (rt.context_overhead.find("default") == rt.context_overhead.end())
        throw InputError(SourcePos{}, "--runtime", "runtime profile has no context_overhead.default entry");
    if (!wl.weight_dtype) wl.weight_dtype = model.dtype;
    if (!wl.kv_dtype) wl.kv_dtype = model.dtype;
    if (!wl.softmax_dtype) wl.softmax_dtype = rt.softmax_dtype;
    if (!wl.logits_dtype) wl.logits_dtype = rt.logits_dtype.value_or(model.dtype);
    if (!wl.logits_kept) wl.logits_kept = 1;
    e.workload = wl;

    if (wl.batch == 0) throw InputError(SourcePos{}, "--batch", "must be at least 1");
    if (wl.context == 0) throw InputError(SourcePos{}, "--context", "must be at least 1 token");
    if (dep.pp == 0) throw InputError(SourcePos{}, "--pp", "must be at least 1");
    const u64 per_replica = checked_mul(dep.tp, dep.pp, "--tp · --pp");
    if (dep.gpus == 0 || dep.tp == 0 || dep.gpus % per_replica != 0)
        throw InputError(SourcePos{}, "--gpus", fmt::format("{} GPUs cannot hold whole replicas of TP {} × PP {}; use a multiple of {}",
                                                            dep.gpus, dep.tp, dep.pp, per_replica));
    for (const DType* d : {&*wl.softmax_dtype, &*wl.logits_dtype})
        if (!d->whole_bytes())
            throw InputError(SourcePos{}, d == &*wl.softmax_dtype ? "--softmax-dtype" : "--logits-dtype",
                             fmt::format("{} cannot hold activations; use fp32, bf16 or fp16", d->name));
    const Shard s = shard(model, dep.tp);
    e.replicas = dep.gpus / per_replica;
    e.batch_per_replica = ceil_div(wl.batch, e.replicas);

    WeightParts w = weight_parts(model, s, *wl.weight_dtype);
    const u64 per_layer_w = checked_add(checked_add(w.attention, w.mlp, "weights"), w.norms, "weights");
    // A pipeline stage holds its layers, the first also the embedding, the last the final norm
    // and the LM head (a tied head is a copy of the embedding once they live apart).
    if (!stage.embed) w.embedding = 0;
    if (!stage.head) {
        w.lm_head = 0;
        w.final_norm = 0;
    } else if (!stage.embed && model.tie_word_embeddings) {
        w.lm_head = model.dtype.bytes(checked_mul(s.vocab, model.hidden_size, "lm_head"), "lm_head");
    }
    e.weights = checked_add(checked_add(checked_mul(per_layer_w, model.num_layers, "weights"), w.embedding, "weights"),
                            checked_add(w.lm_head, w.final_norm, "weights"), "weights");
    e.detail.shard = s;
    e.detail.weights = w;
    e.parameters = parameter_count(model);
    e.parameters_per_gpu = checked_add(checked_mul(w.params_layer, model.num_layers, "parameters"), w.params_other, "parameters");
    const ContextOverhead& oh = rt.overhead_for(gpu.name);
    e.runtime_overhead = oh.bytes;
    e.detail.overhead_source = oh.source;
    e.capacity = gpu.usable_memory_bytes;
    return s;
}

Bindings base_bindings(const Estimate& e, const Shard& s, const DType& fp32) {
    const ModelSpec& model = e.model;
    const Workload& wl = e.workload;
    Bindings b;
    b[Dim::Batch] = e.batch_per_replica;
    b[Dim::Hidden] = model.hidden_size;
    b[Dim::QDim] = s.q_dim;
    b[Dim::KvDim] = s.kv_dim;
    b[Dim::QkvDim] = checked_add(s.q_dim, checked_mul(2, s.kv_dim, "qkv"), "qkv");
    b[Dim::Inter] = s.inter;
    b[Dim::GateUp] = checked_mul(2, s.inter, "gate_up");
    b[Dim::HeadsQ] = s.heads_q;
    b[Dim::HeadsKv] = s.heads_kv;
    b[Dim::HeadDim] = model.head_dim;
    // The LM head's vocab-parallel shards are gathered onto one GPU for sampling.
    b[Dim::Vocab] = model.vocab_size;
    b[DtypeRole::Act] = model.dtype;
    b[DtypeRole::Softmax] = *wl.softmax_dtype;
    b[DtypeRole::Kv] = *wl.kv_dtype;
    b[DtypeRole::Logits] = *wl.logits_dtype;
    b[DtypeRole::Fp32] = fp32;
    b[DtypeRole::Index] = DType{"int64", 64, 0, 0};
    b[DtypeRole::Bool] = DType{"bool", 8, 0, 0};
    b[DtypeRole::Mask] = model.dtype;
    b[DtypeRole::Weight] = *wl.weight_dtype;
    b[Dim::VocabShard] = s.vocab;
    b.round_to = wl.runtime.allocator_round_bytes;
    return b;
}

// transformers with a DynamicCache: how many tokens each layer kind's cache storage holds
// before and after a step, what it exposes, and whether its attention gets a mask tensor.
struct TfGeometry {
    const ModelSpec& model;
    const RuntimeSpec& rt;
    bool prefill;
    u64 S;
    // A full layer grows by concatenation. A sliding layer keeps the last W - drop tokens as a
    // *view*: after a prefill the whole prompt's storage stays referenced; a decode step's cat
    // makes fresh storage of the kept tokens + 1. Decode is the first step after a prefill of
    // S - 1 tokens (generate()).
    u64 visible(LayerKind k, u64 tokens) const {
        return k == LayerKind::SlidingAttention ? std::min(tokens, model.sliding_window - rt.sliding_window_drop) : tokens;
    }
    u64 storage_after(LayerKind k) const {
        if (k == LayerKind::FullAttention || prefill) return S;
        return std::min(S - 1, model.sliding_window - rt.sliding_window_drop) + 1;
    }
    u64 storage_before(LayerKind) const { return prefill ? u64{0} : S - 1; }
    // The causal flag cannot express a window once the keys reach it (transformers
    // masking_utils._ignore_causal_mask_sdpa: kv_length >= local_attention_size);
    // padding-free batches otherwise skip the mask.
    bool needs_mask(LayerKind k) const {
        if (rt.mask == MaskKind::Additive) return true;
        if (rt.mask == MaskKind::None) return false;
        return k == LayerKind::SlidingAttention && storage_after(k) >= model.sliding_window;
    }
};

GraphConfig tf_config(const RuntimeSpec& rt, LayerKind k) {
    GraphConfig cfg;
    cfg.family = rt.family;
    cfg.kernel = rt.attention;
    cfg.keeps = rt.keeps;
    // DynamicSlidingWindowLayer.update cats K and V before releasing either old tensor.
    cfg.joint_kv_update = k == LayerKind::SlidingAttention;
    return cfg;
}

Bindings tf_layer_bindings(const Bindings& b, const TfGeometry& geo, const Shard& s, LayerKind k) {
    const RuntimeSpec& rt = geo.rt;
    Bindings bk = b;
    bk[Dim::SkvOld] = geo.storage_before(k);
    bk[Dim::SkvNew] = geo.storage_after(k);
    bk[Dim::Skv] = geo.storage_after(k);  // the cat's result is what attention reads
    const bool masked = geo.needs_mask(k);
    const bool repeat = rt.gqa == GqaKind::Repeat || (rt.gqa == GqaKind::NativeUnlessMasked && masked);
    bk[Dim::RepHeads] = repeat ? s.heads_q : 0;
    bk[Dim::MaskConvElems] = rt.attention == AttentionKernel::Fused && rt.mask == MaskKind::BoolWhenNeeded && masked
                                 ? checked_product({b[Dim::Batch], b[Dim::Sq], geo.storage_after(k)}, "attention mask")
                                 : 0;
    // A causal flash kernel skips the blocks above the diagonal: (S + 1) / 2 keys per query on
    // average; with a mask or one query it reads every key.
    bk[Dim::AttnKeys] = geo.prefill && !masked ? (geo.storage_after(k) + 1) / 2 : geo.storage_after(k);
    return bk;
}

void add_layer_rows(Estimate& e, const GraphEval* ev, const bool* has_kind, const std::function<u64(LayerKind)>& kv_layer) {
    const auto& w = e.detail.weights;
    const u64 per_layer_w = w.attention + w.mlp + w.norms;
    for (auto k : {LayerKind::FullAttention, LayerKind::SlidingAttention}) {
        if (!has_kind[static_cast<int>(k)]) continue;
        const GraphEval& g = ev[static_cast<int>(k)];
        LayerKindRow row;
        row.kind = k;
        row.count = static_cast<u64>(std::count(e.model.layer_kinds.begin(), e.model.layer_kinds.end(), k));
        row.weights_bytes = per_layer_w;
        row.kv_cache_bytes = kv_layer(k);
        row.attention_matrix_bytes = g.attention_matrix_max;
        row.transient_peak_bytes = g.peak_bytes - g.at_peak[Category::KvCache];
        row.peak_op = g.peak_op;
        e.layer_kinds.push_back(row);
    }
}

// transformers (eager or SDPA) with a DynamicCache: walk the layers in order.
void estimate_transformers(Estimate& e, const Shard& s, const DType& fp32, bool has_head) {
    const ModelSpec& model = e.model;
    const Workload& wl = e.workload;
    const RuntimeSpec& rt = wl.runtime;
    const u64 B = e.batch_per_replica;
    const u64 S = wl.context;
    const bool prefill = wl.mode == Mode::Prefill;
    const u64 Sq = prefill ? S : 1;
    const u64 round = rt.allocator_round_bytes;
    e.logits_kept = *wl.logits_kept == 0 ? Sq : std::min(*wl.logits_kept, Sq);
    Bindings b = base_bindings(e, s, fp32);
    b[Dim::Sq] = Sq;
    b[Dim::Kept] = e.logits_kept;

    const TfGeometry geo{model, rt, prefill, S};
    bool has_kind[2] = {false, false};
    for (auto k : model.layer_kinds) has_kind[static_cast<int>(k)] = true;
    u64 mask_elems = 0;
    // The eager additive mask is materialised per sequence; SDPA's bool mask is one [1,1,Sq,Skv]
    // tensor expanded (stride 0) over the batch (measured: Mistral-7B, batch 4, 32k on H200).
    const u64 mask_batch = rt.mask == MaskKind::Additive ? B : 1;
    for (auto k : {LayerKind::FullAttention, LayerKind::SlidingAttention})
        if (has_kind[static_cast<int>(k)] && geo.needs_mask(k))
            mask_elems = checked_add(mask_elems, checked_product({mask_batch, Sq, geo.storage_after(k)}, "attention mask"), "attention mask");
    b[Dim::MaskElems] = mask_elems;
    b[DtypeRole::Mask] = rt.mask == MaskKind::Additive ? model.dtype : b[DtypeRole::Bool];
    b[Dim::TableElems] = checked_product({2, Sq, model.head_dim}, "rotary tables");
    const u64 mask_bytes = round_up(b[DtypeRole::Mask].bytes(mask_elems, "attention mask"), round, "attention mask");
    // Forward-level tensors besides the masks: rotary tables and int64 token positions.
    const u64 table_bytes = checked_add(round_up(model.dtype.bytes(b[Dim::TableElems], "rotary tables"), round, "rotary tables"),
                                        round_up(checked_mul(Sq, 8, "positions"), round, "positions"), "forward state");

    const DType& kvd = *wl.kv_dtype;
    auto kv_bytes = [&](u64 tokens) { return kv_layer_bytes(kvd, B, tokens, s); };
    u64 kv_before = 0;
    for (auto k : model.layer_kinds) {
        e.kv_cache = checked_add(e.kv_cache, kv_bytes(geo.storage_after(k)), "kv cache");
        e.kv_cache_visible = checked_add(e.kv_cache_visible, kv_bytes(geo.visible(k, S)), "kv cache");
        kv_before = checked_add(kv_before, kv_bytes(geo.storage_before(k)), "kv cache");
    }
    e.resident_before = checked_add(e.weights, kv_before, "resident");

    GraphEval ev[2];
    for (auto k : {LayerKind::FullAttention, LayerKind::SlidingAttention}) {
        if (!has_kind[static_cast<int>(k)]) continue;
        const Bindings bk = tf_layer_bindings(b, geo, s, k);
        e.step_graphs.push_back({&decoder_layer_graph(tf_config(rt, k)), bk,
                                 static_cast<u64>(std::count(model.layer_kinds.begin(), model.layer_kinds.end(), k)), true, k});
        ev[static_cast<int>(k)] = e.step_graphs.back().graph->evaluate(bk);
    }
    Composition best;
    const u64 x_bytes = round_up(model.dtype.bytes(checked_product({B, Sq, model.hidden_size}, "hidden"), "hidden"), round, "hidden");
    // Prologue: embeddings out, masks and rotary tables built.
    best.bytes[static_cast<size_t>(Category::Activation)] = checked_add(x_bytes, table_bytes, "prologue");
    best.bytes[static_cast<size_t>(Category::AttentionMatrix)] = mask_bytes;
    e.peak_at = "embedding";
    i64 peak = sgn(best.total(), "peak");
    i64 kv_delta = 0;  // change of KV storage so far in this step
    for (u64 i = 0; i < model.num_layers; ++i) {
        const GraphEval& g = ev[static_cast<int>(model.layer_kinds[i])];
        // Every layer reads the masks and rotary tables. Past layer 0 the embedding output is
        // no longer the layer's input, but the base model's `inputs_embeds` may still
        // reference it (model_locals).
        const u64 held_act = checked_add(table_bytes, rt.keeps.model_locals && i > 0 ? x_bytes : 0, "forward state");
        // The layer's old cache is already counted before the step.
        i64 here = add_s(add_s(kv_delta, sgn(g.peak_bytes, "peak") - sgn(g.preexisting_kv, "peak"), "peak"),
                         sgn(checked_add(held_act, mask_bytes, "forward state"), "peak"), "peak");
        if (here > peak) {
            peak = here;
            best = g.at_peak;
            add_to(best, Category::AttentionMatrix, mask_bytes);
            add_to(best, Category::Activation, held_act);
            // Old storage counted in the graph is resident; report only the step's change.
            auto& kv = best.bytes[static_cast<size_t>(Category::KvCache)];
            const i64 kv_here = add_s(sgn(kv, "kv") - sgn(g.preexisting_kv, "kv"), kv_delta, "kv");
            kv = kv_here > 0 ? static_cast<u64>(kv_here) : 0;
            e.peak_at = fmt::format("layer {} ({}) {}", i, to_string(model.layer_kinds[i]), g.peak_op);
        }
        kv_delta = add_s(kv_delta, sgn(g.kv_written, "kv") - sgn(g.preexisting_kv, "kv"), "kv written");
    }
    Bindings bh = b;
    bh[Dim::Skv] = 0;  // the head has no attention
    GraphEval head = head_graph(rt.keeps.model_locals).evaluate(bh);
    if (has_head) e.step_graphs.push_back({&head_graph(rt.keeps.model_locals), bh, 1, false, LayerKind::FullAttention});
    if (const i64 here = add_s(sgn(head.peak_bytes, "peak"), kv_delta, "peak"); has_head && here > peak) {
        peak = here;
        best = head.at_peak;
        add_to(best, Category::KvCache, kv_delta > 0 ? static_cast<u64>(kv_delta) : 0);
        e.peak_at = "head " + head.peak_op;
    }
    e.forward_peak = peak > 0 ? static_cast<u64>(peak) : 0;
    e.logits_output = has_head ? wl.logits_dtype->bytes(checked_product({B, e.logits_kept, model.vocab_size}, "logits"), "logits") : 0;

    // Components at the peak. The KV part is reported as the cache after the step; KV held at
    // the peak beyond that (old storage not yet released) is transient, so activation.
    u64 kv_live = checked_add(kv_before, best[Category::KvCache], "kv live");
    u64 kv_excess = kv_live > e.kv_cache ? kv_live - e.kv_cache : 0;
    e.attention_matrix = best[Category::AttentionMatrix];
    e.logits = best[Category::Logits];
    e.activation_peak = checked_add(best[Category::Activation], kv_excess, "activation");
    e.total = checked_add(checked_add(checked_add(e.weights, e.kv_cache, "total"), checked_add(e.attention_matrix, e.activation_peak, "total"), "total"),
                          checked_add(e.logits, e.runtime_overhead, "total"), "total");
    add_layer_rows(e, ev, has_kind, [&](LayerKind k) { return kv_bytes(geo.storage_after(k)); });
    e.detail.mask_bytes = mask_bytes;
    e.detail.kv_excess = kv_excess;
    e.detail.skv = geo.storage_after(model.layer_kinds.front());
    e.fits = e.total <= e.capacity;
}

// vLLM: the start-up profile run, the CUDA-graph pool, and the KV blocks that remain.
void estimate_vllm(Estimate& e, const Shard& s, const DType& fp32, bool has_head) {
    const ModelSpec& model = e.model;
    const Workload& wl = e.workload;
    const RuntimeSpec& rt = wl.runtime;
    const VllmParams& p = *rt.vllm;
    VllmPlan plan;
    const DType& kvd = *wl.kv_dtype;
    if (!kvd.whole_bytes())
        throw InputError(SourcePos{}, "--kv-dtype", fmt::format("vLLM has no {} KV cache; use bf16, fp16 or fp8_e4m3", kvd.name));
    const u64 round = rt.allocator_round_bytes;
    e.logits_kept = 1;
    e.resident_before = e.weights;

    bool has_kind[2] = {false, false};
    for (auto k : model.layer_kinds) has_kind[static_cast<int>(k)] = true;
    GraphConfig cfg;
    cfg.family = RuntimeFamily::Vllm;
    cfg.kernel = AttentionKernel::Fused;
    const OpGraph& layer = decoder_layer_graph(cfg);

    // The forward over T flattened tokens: ids and positions (int64), then the layers; the
    // residual stream (hidden, residual) enters each layer, which returns new ones.
    auto forward_peak = [&](u64 tokens, GraphEval* out) {
        Bindings b = base_bindings(e, s, fp32);
        b[Dim::Batch] = 1;
        b[Dim::Sq] = tokens;
        b[Dim::Skv] = tokens;
        b[Dim::Kept] = 1;
        GraphEval g = layer.evaluate(b);
        if (out) *out = g;
        const u64 ids = checked_mul(2, round_up(checked_mul(tokens, 8, "token ids"), round, "token ids"), "token ids");
        return checked_add(g.peak_bytes, ids, "vllm forward");
    };
    GraphEval lev;
    plan.profile_tokens = p.max_num_batched_tokens;
    plan.forward_peak_bytes = forward_peak(p.max_num_batched_tokens, &lev);
    plan.sampler_requests = std::min(p.max_num_seqs, p.max_num_batched_tokens);
    if (has_head) {  // only the last pipeline stage samples
        Bindings b = base_bindings(e, s, fp32);
        b[Dim::Batch] = 1;
        b[Dim::Sq] = p.max_num_batched_tokens;
        b[Dim::Kept] = plan.sampler_requests;
        GraphEval g = vllm_sampler_graph().evaluate(b);
        plan.sampler_peak_bytes = g.peak_bytes;
        e.logits = g.at_peak[Category::Logits];
        if (plan.sampler_peak_bytes > plan.forward_peak_bytes) {
            e.peak_at = "sampler " + g.peak_op;
        } else {
            e.logits = 0;
        }
    }
    if (plan.forward_peak_bytes >= plan.sampler_peak_bytes) e.peak_at = "profile forward " + lev.peak_op;
    const u64 act_peak = std::max(plan.forward_peak_bytes, plan.sampler_peak_bytes);
    e.forward_peak = act_peak;
    e.activation_peak = act_peak - e.logits;
    plan.cudagraph_pool_bytes = p.cudagraph_max_capture_size ? forward_peak(p.cudagraph_max_capture_size, nullptr) : 0;
    plan.non_torch_bytes = e.runtime_overhead;
    // requested = total × utilisation, in exact integer arithmetic (ppm).
    plan.requested_bytes = mul_frac(e.capacity, p.gpu_memory_utilization_ppm, 1000000);
    const u64 non_kv = checked_add(checked_add(e.weights, act_peak, "vllm non-kv"),
                                   checked_add(plan.non_torch_bytes, plan.cudagraph_pool_bytes, "vllm non-kv"), "vllm non-kv");
    plan.kv_memory_positive = plan.requested_bytes > non_kv;
    plan.available_kv_bytes = plan.kv_memory_positive ? plan.requested_bytes - non_kv : 0;

    // KV cache specs (kv_cache_interface.py): one page = one block of one layer.
    plan.block_size = p.block_size;
    plan.page_bytes = checked_mul(2, checked_product({p.block_size, s.heads_kv, model.head_dim, kvd.bits / 8}, "kv page"), "kv page");
    const u64 n_full = static_cast<u64>(std::count(model.layer_kinds.begin(), model.layer_kinds.end(), LayerKind::FullAttention));
    const u64 n_slide = model.num_layers - n_full;
    // Hybrid models: layers are grouped so every group has the same size (the smaller count);
    // a block id spans one layer of each group... per KV tensor, so num_blocks divides by it.
    const u64 group = (n_full && n_slide) ? std::min(n_full, n_slide) : model.num_layers;
    plan.layers_per_block = group;
    plan.num_blocks = plan.available_kv_bytes / checked_mul(plan.page_bytes, group, "kv page");
    const u64 max_len = wl.context;
    auto full_blocks = ceil_div(max_len, p.block_size);
    auto slide_blocks = ceil_div(std::min(checked_add(model.sliding_window - (model.sliding_window ? 1 : 0), p.max_num_batched_tokens, "window"), max_len),
                                 p.block_size) + 1;
    u64 per_request = 0;
    if (n_full) per_request = checked_add(per_request, checked_mul(ceil_div(n_full, group), full_blocks, "blocks"), "blocks");
    if (n_slide) per_request = checked_add(per_request, checked_mul(ceil_div(n_slide, group), slide_blocks, "blocks"), "blocks");
    plan.blocks_per_request = per_request;
    // num_blocks / per_request can exceed 2^64 / 1000 only with absurd pools; checked.
    plan.max_concurrency_milli = checked_mul(plan.num_blocks / per_request, 1000, "max concurrency") +
                                 mul_frac(plan.num_blocks % per_request, 1000, per_request);
    plan.max_concurrency = plan.num_blocks / per_request;

    e.kv_cache = checked_product({plan.num_blocks, plan.page_bytes, group}, "kv pool");
    // Per sequence at the workload's context (the cache the step reads).
    u64 visible = 0;
    for (auto k : model.layer_kinds)
        visible = checked_add(visible, kv_layer_bytes(kvd, e.batch_per_replica, kept_tokens(model, k, max_len), s), "kv cache");
    e.kv_cache_visible = visible;
    e.runtime_overhead = checked_add(plan.non_torch_bytes, plan.cudagraph_pool_bytes, "overhead");
    e.total = checked_add(checked_add(checked_add(e.weights, e.kv_cache, "total"), checked_add(e.activation_peak, e.logits, "total"), "total"),
                          e.runtime_overhead, "total");
    const GraphEval ev[2] = {lev, lev};  // one fused layer serves both kinds
    add_layer_rows(e, ev, has_kind, [&](LayerKind) { return checked_mul(plan.page_bytes, full_blocks, "kv"); });
    e.detail.skv = max_len;
    {
        // The workload's own step, for the time model: B sequences flattened into one batch of
        // tokens; decode reads every sequence's KV from the pool.
        const u64 B = e.batch_per_replica;
        const bool prefill = wl.mode == Mode::Prefill;
        Bindings b = base_bindings(e, s, fp32);
        b[Dim::Batch] = 1;
        b[Dim::Sq] = prefill ? checked_mul(B, max_len, "tokens") : B;
        b[Dim::Skv] = max_len;
        b[Dim::SkvOld] = prefill ? 0 : checked_mul(B, max_len, "kv read");
        b[Dim::AttnKeys] = prefill ? (max_len + 1) / 2 : max_len;
        b[Dim::Kept] = B;
        e.step_graphs.push_back({&layer, b, model.num_layers, true, LayerKind::FullAttention});
        if (has_head) e.step_graphs.push_back({&head_graph(false), b, 1, false, LayerKind::FullAttention});
    }
    // vLLM refuses to start without KV memory, and serves `batch` sequences of `context`
    // tokens at once only if the pool holds them.
    e.fits = plan.kv_memory_positive && plan.num_blocks > 0 && plan.max_concurrency >= e.batch_per_replica;
    e.vllm = plan;
}

Estimate estimate_stage(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl_in,
                        const Stage& stage) {
    Estimate e;
    Workload wl = wl_in;
    DType fp32;
    const Shard s = prepare(e, model, gpu, dep, wl, fp32, stage);
    if (wl.runtime.family == RuntimeFamily::Vllm) estimate_vllm(e, s, fp32, stage.head);
    else estimate_transformers(e, s, fp32, stage.head);
    return e;
}

}  // namespace

Estimate estimate(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl) {
    if (dep.pp <= 1) {
        Estimate e = estimate_stage(model, gpu, dep, wl, Stage{});
        e.detail.stage_layers = model.num_layers;
        return e;
    }
    // Layers split evenly; the first and the last stage bound every other one (a middle stage
    // has as many layers as the first and neither embedding nor head).
    const u64 L = model.num_layers;
    const u64 per = ceil_div(L, dep.pp);
    if (per * (dep.pp - 1) >= L)
        throw InputError(SourcePos{}, "--pp", fmt::format("{} stages leave the last of {}'s {} layers empty; use at most {}", dep.pp,
                                                         model.name, L, ceil_div(L, per)));
    auto stage_model = [&](u64 first, u64 count) {
        ModelSpec m = model;
        m.num_layers = count;
        m.layer_kinds.assign(model.layer_kinds.begin() + static_cast<std::ptrdiff_t>(first),
                             model.layer_kinds.begin() + static_cast<std::ptrdiff_t>(first + count));
        return m;
    };
    Estimate a = estimate_stage(stage_model(0, per), gpu, dep, wl, Stage{true, false});
    a.detail.pp_stage = 0;
    a.detail.stage_first_layer = 0;
    a.detail.stage_layers = per;
    Estimate b = estimate_stage(stage_model(per * (dep.pp - 1), L - per * (dep.pp - 1)), gpu, dep, wl, Stage{false, true});
    b.detail.pp_stage = dep.pp - 1;
    b.detail.stage_first_layer = per * (dep.pp - 1);
    b.detail.stage_layers = L - per * (dep.pp - 1);
    Estimate& e = a.total >= b.total ? a : b;
    e.model = model;
    e.parameters = parameter_count(model);
    return e;
}

std::string fit_verdict(const Estimate& e) {
    if (e.vllm) {
        const VllmPlan& p = *e.vllm;
        if (!p.kv_memory_positive)
            return fmt::format("does not fit: weights {} + activation peak {} + non-torch {} + CUDA graphs {} exceed the {} vLLM may use; no memory for the KV cache",
                               format_bytes_gib(e.weights), format_bytes_gib(p.forward_peak_bytes > p.sampler_peak_bytes ? p.forward_peak_bytes : p.sampler_peak_bytes),
                               format_bytes_gib(p.non_torch_bytes), format_bytes_gib(p.cudagraph_pool_bytes), format_bytes_gib(p.requested_bytes));
        std::string pool = fmt::format("{} KV blocks of {} tokens ({}) hold {:.2f} sequences of {} tokens", group_digits(p.num_blocks),
                                       p.block_size, format_bytes_gib(e.kv_cache), static_cast<double>(p.max_concurrency_milli) / 1000.0,
                                       group_digits(e.workload.context));
        if (e.fits) return fmt::format("fits: {}; {} wanted", pool, e.batch_per_replica);
        return fmt::format("does not fit: {}; {} wanted", pool, e.batch_per_replica);
    }
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
    if (e.vllm) {
        const VllmPlan& p = *e.vllm;
        t.push_back({"kv_cache", fmt::format("vLLM pool: num_blocks · page · layers per block = {} · {} · {}, page = 2 · block {} · kv_heads/GPU {} · head_dim {} · {} B; "
                                             "num_blocks = available {} B // (page · layers)",
                                             group_digits(p.num_blocks), group_digits(p.page_bytes), p.layers_per_block, p.block_size,
                                             d.heads_kv, m.head_dim, w.kv_dtype->bits / 8, group_digits(p.available_kv_bytes)),
                     e.kv_cache});
    } else {
        t.push_back({"kv_cache",
                     fmt::format("Σ layers 2 · batch · tokens kept · kv_heads/GPU · head_dim · {} = 2 · {} · {} · {} · {} · {} B × {} layers{}",
                                 w.kv_dtype->name, e.batch_per_replica, w.context, d.heads_kv, m.head_dim, w.kv_dtype->bits / 8.0,
                                 m.num_layers,
                                 m.sliding_window ? fmt::format(" (sliding layers keep ≤ {} tokens)", m.sliding_window) : ""),
                     e.kv_cache});
    }
    const u64 sq = w.mode == Mode::Prefill ? w.context : 1;
    t.push_back({"attention_matrix",
                 w.runtime.attention == AttentionKernel::Eager
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
    if (e.vllm)
        t.push_back({"logits", fmt::format("vLLM sampler tensors live at the profile peak ({} requests · vocab {}: logits in {} and fp32, sorted values and int64 indices, masks, probabilities)",
                                           e.vllm->sampler_requests, group_digits(m.vocab_size), m.dtype.name),
                     e.logits});
    else
    t.push_back({"logits", fmt::format("batch · positions kept · vocab · {} = {} · {} · {} · {} B, if live at the peak",
                                       w.logits_dtype->name, e.batch_per_replica, e.logits_kept, group_digits(m.vocab_size),
                                       w.logits_dtype->bits / 8),
                 e.logits});
    t.push_back({"runtime_overhead", fmt::format("CUDA context + library workspaces of {} on {} ({}){}", w.runtime.name, e.gpu.name,
                                                 e.detail.overhead_source,
                                                 e.vllm ? fmt::format(" + CUDA-graph pool {} B", group_digits(e.vllm->cudagraph_pool_bytes)) : ""),
                 e.runtime_overhead});
    t.push_back({"forward_peak", fmt::format("peak during the step above what was allocated before it, at {}", e.peak_at),
                 e.forward_peak});
    t.push_back({"total", "weights + kv_cache + attention_matrix + activation_peak + logits + runtime_overhead", e.total});
    return t;
}

}  // namespace memtax
