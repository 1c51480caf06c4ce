// Hugging Face transformers on eager PyTorch (eager or SDPA attention) with a DynamicCache: the
// forward walks the layers in order, each layer a pre-norm residual block of a token mixer and
// a channel mixer executed as transformers' modules, every tensor freed when its last reader
// finishes or the Python variable holding it is rebound (the runtime's `keeps`). The forward
// peak is taken over that walk, above what was allocated before the step.
#include <fmt/format.h>

#include <algorithm>

#include "runtimes/runtime.hpp"
#include "runtimes/shared.hpp"

namespace memtax {
namespace {

using S = Sym;
__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

class TransformersPlan final : public RuntimePlan {
public:
    explicit TransformersPlan(const CompileInput& in);
    void evaluate(const Point& p, PointResult& r) const noexcept override;
    void describe(const Point& p, const PointResult& r, Breakdown& out) const override;
    u64 weights() const override { return weights_; }
    u64 parameters() const override { return parameters_; }
    u64 active_parameters() const override { return active_parameters_; }
    std::string overflow_term(const PointResult& r) const override;
    TrainActivations train(const TrainPoint& p) const override;

private:
    using Type = LayerType;
    // A run of consecutive layers of one type (the walk's unit).
    struct Run {
        std::uint32_t type, start, len;
    };
    // The cache geometry of a point for one layer type.
    struct Geometry {
        u64 before = 0, after = 0, visible = 0;
        bool masked = false;
        bool view = false;  // the old cache is a slice of a longer storage (DynamicSlidingWindowLayer past W - drop)
    };
    Geometry geometry(const Type& t, bool prefill, u64 S, u64 step) const noexcept;
    Bindings layer_bindings(const Type& t, const Geometry& g, bool prefill, u64 B, u64 Sq, u64 kept, u64 mask_elems) const noexcept;
    // Everything evaluate computes, kept for describe (which reruns it once).
    struct Walk;
    bool walk(const Point& p, PointResult& r, Walk* w) const noexcept;

    ModelSpec model_;
    RuntimeSpec rt_;
    ShardSizes shard_;
    u64 rotary_width_ = 0;  // channels of the rotary tables the forward builds (its token mixers')
    DtypePolicy dt_;
    std::array<DType, kDtypeRoles> dtypes_;
    bool has_head_, has_embedding_;
    std::vector<Type> types_;
    std::vector<Run> runs_;
    std::vector<std::uint32_t> window_types_;  // one layer type per distinct window (one mask each)
    OpGraph embedding_, head_;
    u64 parameters_ = 0, active_parameters_ = 0;
    std::vector<Component> weight_components_;
    u64 weights_ = 0, overhead_ = 0, capacity_ = 0;
    std::string overhead_source_;
};

// The decoder layer as transformers' LlamaDecoderLayer runs it: RMSNorm (which upcasts to fp32
// and casts back: one fp32 and one compute-dtype temporary beside input and output), the token
// mixer, the residual add, RMSNorm, the channel mixer, the residual add. The model's loop
// variable keeps the layer input alive until the layer returns.
OpGraph build_decoder_layer(const BlockEnv& env, const LayerSpec& layer, const LayerBlocks& blocks, u64 round_to) {
    OpGraph g(fmt::format("decoder_layer/{}+{}", layer.token_mixer, layer.channel_mixer), env.dtypes, round_to);
    const u64 h = env.model.hidden_size;
    const Size bsh = blk::tokens(h);
    const bool sandwich = env.model.attn.sandwich_norm;
    auto norm = [&](const char* name) {
        OpInfo op{name, OpKind::Norm, OpGroup::Norm, Size(4 * h, {S::Batch, S::Sq}), {}, {{bsh, DtypeRole::Fp32}, {bsh, DtypeRole::Act}}};
        op.weights.push_back({name, norm_width(env.model), DtypeRole::Param});
        // Training: the fp32 copy, the [B, Sq, 1] fp32 rsqrt and the normalized values cast back;
        // a fused LayerNorm kernel keeps its input and the fp32 mean and rstd instead.
        if (env.runtime.training.fused_layernorm) {
            op.saves_inputs = 1;
            op.saved = {{Size(2, {S::Batch, S::Sq}), DtypeRole::Fp32}};
        } else {
            // (The normalized values only for the weight's gradient.)
            op.saved = {
                {bsh, DtypeRole::Fp32}, {bsh, DtypeRole::Act, Category::Activation, true}, {Size(1, {S::Batch, S::Sq}), DtypeRole::Fp32}};
            // nn.LayerNorm is one fused kernel; transformers' RMSNorm is eight.
            if (env.model.norm == NormKind::RMSNorm)
                blk::eager_rms_norm_launches(op, 1, h, !(env.dtype(DtypeRole::Act) == env.dtype(DtypeRole::Fp32)));
        }
        return op;
    };
    auto add = [&](const char* name, int a, int b, TensorInfo out, std::vector<int> holds) {
        return g.op1h({name, OpKind::Elementwise, OpGroup::Residual, Size(h, {S::Batch, S::Sq}), {}, {}}, {a, b}, out, holds);
    };
    // A training runtime with dropout drops each branch before the residual add, keeping the
    // 1-byte mask for the backward.
    auto dropout = [&](const char* name, int in) {
        if (!env.runtime.training.dropout) return in;
        OpInfo op{name, OpKind::Elementwise, OpGroup::Residual, Size(h, {S::Batch, S::Sq}), {}, {}};
        op.saved = {{bsh, DtypeRole::Bool}};
        return g.op1(std::move(op), {in}, blk::act(name, bsh));
    };
    int x = g.input(blk::act("x_in", bsh));
    int xn = g.op1(norm("input_norm"), {x}, blk::act("x_norm", bsh));
    int o = dropout("attn_dropout_out", blocks.token.build(g, env, MixerIO{xn, {}, false}));
    // Gemma-2/3 norm each mixer's output too before the residual add (4 norms a layer).
    if (sandwich) o = g.op1(norm("post_attention_norm"), {o}, blk::act("o_normed", bsh));
    const int keep_x = env.runtime.keeps.layer_input ? x : -1;
    if (layer.channel_mixer == "none") {
        // A mixer-only block (Mamba-2): norm, mixer, residual.
        TensorInfo out = blk::act("x_out", bsh);
        out.lifetime = Lifetime::Persistent;
        add("residual_mixer", x, o, out, {keep_x});
        g.finalize();
        return g;
    }
    int x2 = add("residual_attn", x, o, blk::act("x_mid", bsh), {});
    int xn2 = g.op1(norm(sandwich ? "pre_feedforward_norm" : "post_attention_norm"), {x2}, blk::act("x_norm2", bsh));
    int down = dropout("mlp_dropout_out", blocks.channel.build(g, env, MixerIO{xn2, {}, false}));
    if (sandwich) down = g.op1h(norm("post_feedforward_norm"), {down}, blk::act("mlp_normed", bsh), {keep_x});
    TensorInfo out = blk::act("x_out", bsh);
    out.lifetime = Lifetime::Persistent;
    add("residual_mlp", x2, down, out, {keep_x});
    g.finalize();
    return g;
}

u64 round_up(u64 v, u64 to, bool& ovf) noexcept {
    if (to <= 1 || v % to == 0) return v;
    u64 r;
    ovf |= __builtin_add_overflow(v, to - v % to, &r);
    return r;
}

u64 mul(u64 a, u64 b, bool& ovf) noexcept {
    u64 r;
    ovf |= __builtin_mul_overflow(a, b, &r);
    return r;
}

u64 add(u64 a, u64 b, bool& ovf) noexcept {
    u64 r;
    ovf |= __builtin_add_overflow(a, b, &r);
    return r;
}

u64 bytes_of(const DType& d, u64 n, bool& ovf) noexcept {
    u64 r = 0;
    ovf |= !d.try_bytes(n, r);
    return r;
}

TransformersPlan::TransformersPlan(const CompileInput& in)
    : model_(in.model),
      rt_(in.runtime),
      shard_(in.shard),
      rotary_width_(rotary_width(in.blocks, in.model)),
      dt_(in.dtypes),
      dtypes_(graph_dtypes(in.model, in.dtypes, in.runtime.mask == MaskKind::Additive ? in.model.dtype : DType{"bool", 8, 0, 0})),
      has_head_(in.has_head),
      has_embedding_(in.has_embedding),
      embedding_(build_embedding_graph(in, dtypes_)),
      head_(build_head_graph(in, dtypes_, in.runtime.keeps.model_locals, true)) {
    const BlockEnv env{model_, shard_, rt_, "transformers", dtypes_};
    std::vector<std::uint32_t> type_of;
    types_ = build_layer_types(in, env, build_decoder_layer, &type_of);
    // The walk keeps one evaluation per layer type on the stack.
    if (types_.size() > 8)
        throw InputError(model_.pos_of("layer_types"), "model.layers",
                         fmt::format("{} distinct layer types; this engine walks at most 8", types_.size()));
    for (const auto& t : types_) {
        bool seen = false;
        for (std::uint32_t w : window_types_) seen |= types_[w].cache.window == t.cache.window;
        if (!seen) window_types_.push_back(static_cast<std::uint32_t>(&t - types_.data()));
    }
    // Layer 0 is a run of its own: past it the base model's `inputs_embeds` is a separate tensor.
    for (std::uint32_t i = 0; i < type_of.size(); ++i) {
        if (i > 1 && runs_.back().type == type_of[i])
            ++runs_.back().len;
        else
            runs_.push_back(Run{type_of[i], i, 1});
    }
    StageWeights w = stage_weights(model_, types_, has_embedding_ ? &embedding_ : nullptr, has_head_ ? &head_ : nullptr, shard_.tp);
    weights_ = w.bytes;
    parameters_ = w.parameters;
    active_parameters_ = w.active_parameters;
    weight_components_ = std::move(w.components);
    const ContextOverhead& oh = rt_.overhead_for(in.gpu.name);
    overhead_ = oh.bytes;
    overhead_source_ = oh.source;
    capacity_ = in.gpu.usable_memory_bytes;
}

// A full layer grows by concatenation. A windowed layer keeps the last W - drop tokens as a
// *view*: after a prefill the whole prompt's storage stays referenced; a decode step's cat
// makes fresh storage of the kept tokens + 1. The first decode step after a prefill of S - 1
// tokens releases the prompt's storage; every later step releases the previous step's
// (kept + 1 tokens: measured on the H200, h200_hf_arch.json). The causal flag cannot express a
// window once the keys reach it (transformers masking_utils._ignore_causal_mask_sdpa:
// kv_length >= local_attention_size); padding-free batches otherwise skip the mask.
TransformersPlan::Geometry TransformersPlan::geometry(const Type& t, bool prefill, u64 S, u64 step) const noexcept {
    const u64 W = t.cache.window, keep = W ? W - rt_.sliding_window_drop : 0;
    Geometry g;
    g.before = prefill ? 0 : W && step > 1 ? std::min(S - 1, keep + 1) : S - 1;
    g.after = !W || prefill ? S : std::min(S - 1, keep) + 1;
    g.visible = W ? std::min(S, keep) : S;
    g.masked = rt_.mask == MaskKind::Additive || (rt_.mask == MaskKind::BoolWhenNeeded && W && g.after >= W);
    // Once more tokens were seen than it keeps, a windowed layer holds `full[:, :, -keep:]`: the
    // next step's cat reads that strided view (a gather, not a vectorized copy).
    g.view = !prefill && W && S - 1 > keep;
    return g;
}

Bindings TransformersPlan::layer_bindings(const Type& t, const Geometry& g, bool prefill, u64 B, u64 Sq, u64 kept,
                                          u64 mask_elems) const noexcept {
    Bindings b;
    b[S::Batch] = B;
    b[S::Sq] = Sq;
    b[S::Kept] = kept;
    b[S::MaskElems] = mask_elems;
    b[S::SkvOld] = g.before;
    b[S::SkvNew] = g.after;
    b[S::Skv] = g.after;  // the cat's result is what attention reads
    b[S::SkvSink] = g.after + 1;
    b[S::Cached] = g.before > 0 ? 1 : 0;
    b[S::Prefilling] = g.before > 0 ? 0 : 1;
    b[S::CacheView] = g.before > 0 && g.view ? 1 : 0;
    b[S::CacheContig] = b[S::Cached] - b[S::CacheView];
    b[S::StateLive] = 1;
    b[S::MultiSeq] = B > 1 ? 1 : 0;
    b[S::Repeat] = rt_.gqa == GqaKind::Repeat || (rt_.gqa == GqaKind::NativeUnlessMasked && g.masked) ? 1 : 0;
    b[S::NativeGqa] = 1 - b[S::Repeat];
    b[S::MaskConv] = rt_.attention == AttentionKernel::Fused && rt_.mask == MaskKind::BoolWhenNeeded && g.masked ? 1 : 0;
    // A causal flash kernel skips the blocks above the diagonal: (S + 1) / 2 keys per query on
    // average; with a mask or one query it reads every key.
    b[S::AttnKeys] = prefill && !g.masked ? (g.after + 1) / 2 : g.after;
    if (const u64 c = t.cache.attend_cap; c && c < g.after) {
        // A sparse layer: query i attends min(i, c) keys; in prefill the mean over i = 1..S is
        // (c(c+1)/2 + (S − c)·c) / S, rounded up; one query attends c.
        const u128 n = g.after, cc = c;
        b[S::AttnKeys] = prefill ? static_cast<u64>((cc * (cc + 1) / 2 + (n - cc) * cc + n - 1) / n) : c;
    }
    return b;
}

struct TransformersPlan::Walk {
    std::array<GraphEval, 8> ev;  // per layer type (the first 8; more are evaluated on the fly)
    Composition best;
    u64 mask_bytes = 0, kv_before = 0, kv_excess = 0;
    Bindings base;
};

bool TransformersPlan::walk(const Point& p, PointResult& r, Walk* w) const noexcept {
    bool ovf = false;
    const u64 B = p.batch, S = p.context;
    const bool prefill = p.mode == Mode::Prefill;
    const u64 Sq = prefill ? S : 1;
    const u64 round = rt_.allocator_round_bytes;
    r.logits_kept = dt_.logits_kept == 0 ? Sq : std::min(dt_.logits_kept, Sq);
    // The eager additive mask is materialised per sequence; SDPA's bool mask is one [1,1,Sq,Skv]
    // tensor expanded (stride 0) over the batch (measured: Mistral-7B, batch 4, 32k on H200).
    const u64 mask_batch = rt_.mask == MaskKind::Additive ? B : 1;
    // One mask per distinct window (its first layer type stands for it).
    std::array<Geometry, 8> geo;
    for (size_t ti = 0; ti < types_.size(); ++ti) geo[ti] = geometry(types_[ti], prefill, S, p.decode_step);
    u64 mask_elems = 0;
    for (std::uint32_t ti : window_types_)
        if (geo[ti].masked) mask_elems = add(mask_elems, mul(mul(mask_batch, Sq, ovf), geo[ti].after, ovf), ovf);
    const DType& md = model_.dtype;
    const u64 mask_bytes = round_up(bytes_of(dtypes_[static_cast<size_t>(DtypeRole::Mask)], mask_elems, ovf), round, ovf);
    // Forward-level tensors besides the masks: rotary tables (cos, sin) and int64 token positions.
    const u64 table_bytes =
        add(round_up(bytes_of(md, mul(mul(2, Sq, ovf), rotary_width_, ovf), ovf), round, ovf), round_up(mul(Sq, 8, ovf), round, ovf), ovf);
    const u64 x_bytes = round_up(bytes_of(md, mul(mul(B, Sq, ovf), model_.hidden_size, ovf), ovf), round, ovf);
    if (ovf) {
        r.status = PointStatus::Overflow;
        return false;
    }

    // Cache bytes per layer type, read off the graph's persistent cache tensors.
    std::array<GraphEval, 8> ev_local;
    std::array<GraphEval, 8>& ev = w ? w->ev : ev_local;
    u64 kv_before = 0;
    r.kv_cache = r.kv_cache_visible = 0;
    for (size_t ti = 0; ti < types_.size() && ti < ev.size(); ++ti) {
        const Type& t = types_[ti];
        const Geometry& g = geo[ti];
        Bindings b = layer_bindings(t, g, prefill, B, Sq, r.logits_kept, mask_elems);
        ev[ti] = t.graph.evaluate(b);
        if (ev[ti].overflow) {
            r.status = PointStatus::Overflow;
            r.overflow_graph = static_cast<std::int32_t>(ti);
            r.overflow_item = ev[ti].overflow_tensor;
            return false;
        }
        u64 after, visible, before;
        ovf |= !t.graph.try_cache_bytes(b, after);
        b[S::SkvNew] = g.visible;
        ovf |= !t.graph.try_cache_bytes(b, visible);
        b[S::SkvNew] = g.before;
        b[S::StateLive] = g.before > 0 ? 1 : 0;
        ovf |= !t.graph.try_cache_bytes(b, before);
        r.kv_cache = add(r.kv_cache, mul(after, t.count, ovf), ovf);
        r.kv_cache_visible = add(r.kv_cache_visible, mul(visible, t.count, ovf), ovf);
        kv_before = add(kv_before, mul(before, t.count, ovf), ovf);
    }
    r.resident_before = add(weights_, kv_before, ovf);

    // Prologue: embeddings out, masks and rotary tables built.
    Composition best;
    // Gemma scales the embeddings (a new tensor); the base model keeps `inputs_embeds` too.
    const bool scaled = model_.attn.scale_embeddings && has_embedding_;
    best[Category::Activation] = add(add(x_bytes, scaled ? x_bytes : 0, ovf), table_bytes, ovf);
    best[Category::AttentionMatrix] = mask_bytes;
    i128 peak = static_cast<i128>(x_bytes) * (scaled ? 2 : 1) + table_bytes + mask_bytes;
    r.peak_layer = -1;
    r.peak_site = -1;  // the embedding
    r.peak_op = -1;
    i128 kv_delta = 0;  // change of cache storage so far in this step
    for (const Run& run : runs_) {
        const GraphEval& g = ev[run.type];
        // Every layer reads the masks and rotary tables. Past layer 0 the embedding output is no
        // longer the layer's input, but the base model's `inputs_embeds` may still reference it.
        const u64 held_act = table_bytes + (rt_.keeps.model_locals && (run.start > 0 || scaled) ? x_bytes : 0);
        // The layer's old cache is already counted before the step.
        const i128 c = static_cast<i128>(g.peak_bytes) - g.preexisting_kv + held_act + mask_bytes;
        const i128 d = static_cast<i128>(g.kv_written) - g.preexisting_kv;
        // here_i = kv_delta + (i - start)·d + c: the run's first peak is its largest unless the
        // cache grows layer by layer, then its last.
        const std::uint32_t at = d > 0 ? run.len - 1 : 0;
        const i128 here = kv_delta + static_cast<i128>(at) * d + c;
        if (here > peak) {
            peak = here;
            best = g.at_peak;
            best[Category::AttentionMatrix] += mask_bytes;
            best[Category::Activation] += held_act;
            // Old storage counted in the graph is resident; report only the step's change.
            const i128 kv_here = static_cast<i128>(best[Category::KvCache]) - g.preexisting_kv + kv_delta + static_cast<i128>(at) * d;
            best[Category::KvCache] = kv_here > 0 ? static_cast<u64>(kv_here) : 0;
            r.peak_layer = static_cast<std::int32_t>(run.start + at);
            r.peak_site = static_cast<std::int32_t>(run.type);
            r.peak_op = g.peak_op;
        }
        kv_delta += static_cast<i128>(run.len) * d;
    }
    if (has_head_) {
        Bindings bh = layer_bindings(types_.front(), geo[0], prefill, B, Sq, r.logits_kept, mask_elems);
        bh[S::Skv] = 0;  // the head has no attention
        const GraphEval head = head_.evaluate(bh);
        if (head.overflow) {
            r.status = PointStatus::Overflow;
            r.overflow_graph = -2;
            r.overflow_item = head.overflow_tensor;
            return false;
        }
        if (const i128 here = static_cast<i128>(head.peak_bytes) + kv_delta; here > peak) {
            peak = here;
            best = head.at_peak;
            best[Category::KvCache] += kv_delta > 0 ? static_cast<u64>(kv_delta) : 0;
            r.peak_layer = -1;
            r.peak_site = -2;  // the head
            r.peak_op = head.peak_op;
        }
        r.logits_output = bytes_of(dt_.logits, mul(mul(B, r.logits_kept, ovf), model_.vocab_size, ovf), ovf);
    } else {
        r.logits_output = 0;
    }
    if (peak > static_cast<i128>(~u64{0})) ovf = true;
    r.forward_peak = peak > 0 ? static_cast<u64>(peak) : 0;
    // Components at the peak. The KV part is reported as the cache after the step; KV held at the
    // peak beyond that (old storage not yet released) is transient, so activation.
    const u64 kv_live = add(kv_before, best[Category::KvCache], ovf);
    const u64 kv_excess = kv_live > r.kv_cache ? kv_live - r.kv_cache : 0;
    r.attention_matrix = best[Category::AttentionMatrix];
    r.logits = best[Category::Logits];
    r.activation_peak = add(best[Category::Activation], kv_excess, ovf);
    r.weights = weights_;
    r.runtime_overhead = overhead_;
    r.capacity = capacity_;
    r.total =
        add(add(add(weights_, r.kv_cache, ovf), add(r.attention_matrix, r.activation_peak, ovf), ovf), add(r.logits, overhead_, ovf), ovf);
    r.fits = r.total <= capacity_;
    r.max_concurrency_milli = 0;
    if (ovf) {
        r.status = PointStatus::Overflow;
        return false;
    }
    if (w) {
        w->best = best;
        w->mask_bytes = mask_bytes;
        w->kv_before = kv_before;
        w->kv_excess = kv_excess;
        w->base = layer_bindings(types_.front(), geo[0], prefill, B, Sq, r.logits_kept, mask_elems);
    }
    r.status = PointStatus::Ok;
    return true;
}

void TransformersPlan::evaluate(const Point& p, PointResult& r) const noexcept { walk(p, r, nullptr); }

std::string TransformersPlan::overflow_term(const PointResult& r) const {
    if (r.overflow_graph >= 0) return types_.at(static_cast<size_t>(r.overflow_graph)).graph.item_name(r.overflow_item);
    if (r.overflow_graph == -2) return head_.item_name(r.overflow_item);
    return "per-GPU bytes of the forward (masks, rotary tables, cache, total)";
}

void TransformersPlan::describe(const Point& p, const PointResult& r, Breakdown& out) const {
    Walk w;
    PointResult again = r;
    walk(p, again, &w);
    const bool prefill = p.mode == Mode::Prefill;
    const u64 B = p.batch, S = p.context, Sq = prefill ? S : 1;
    const bool full = out.detail == Detail::Full;
    // Where the peak is.
    if (full && r.peak_site == -1)
        out.peak_at = "embedding";
    else if (full && r.peak_site == -2)
        out.peak_at = std::string("head ") + head_.ops().at(static_cast<size_t>(r.peak_op)).name;
    else if (full)
        out.peak_at =
            fmt::format("layer {} ({}) {}", r.peak_layer, types_.at(static_cast<size_t>(r.peak_site)).spec.token_mixer,
                        r.peak_op >= 0 ? types_[static_cast<size_t>(r.peak_site)].graph.ops().at(static_cast<size_t>(r.peak_op)).name : "");
    // Layer rows and the step's graphs.
    for (size_t ti = 0; ti < types_.size(); ++ti) {
        const Type& t = types_[ti];
        const Geometry g = geometry(t, prefill, S, p.decode_step);
        const Bindings b = layer_bindings(t, g, prefill, B, Sq, r.logits_kept, w.base[S::MaskElems]);
        const GraphEval& ev = w.ev[ti];
        LayerRow row;
        row.token_mixer = t.spec.token_mixer;
        row.channel_mixer = t.spec.channel_mixer;
        row.count = t.count;
        row.weights_bytes = t.graph.weight_bytes();
        row.kv_cache_bytes = t.graph.cache_bytes(b);
        row.attention_matrix_bytes = ev.attention_matrix_max;
        row.transient_peak_bytes = ev.peak_bytes - ev.at_peak[Category::KvCache];
        row.peak_op = ev.peak_op >= 0 ? t.graph.ops()[static_cast<size_t>(ev.peak_op)].name : "";
        out.layers.push_back(row);
        GraphUse use{&t.graph, b, t.model_count, true, 0, 0};
        // The attention mask is built once per forward (outside the layer graph) and read by
        // every layer: eager adds the additive [B,1,Sq,Skv] mask to its scores; SDPA reads the
        // bool mask (one byte an element) to convert it.
        use.mask_read_bytes = rt_.mask == MaskKind::Additive ? model_.dtype.bytes(checked_product({B, Sq, g.after}, "mask"), "mask")
                                                             : (b[S::MaskConv] ? checked_product({B, Sq, g.after}, "mask") : 0);
        use.hidden_bytes = model_.dtype.bytes(checked_product({B, Sq, model_.hidden_size}, "message"), "message");
        out.step_graphs.push_back(use);
        if (full && static_cast<std::int32_t>(ti) == r.peak_site && r.peak_op >= 0) {
            const std::string site = fmt::format("layer {} ({})", r.peak_layer, t.spec.token_mixer);
            for (const auto& l : t.graph.live_at(b, r.peak_op))
                out.live_at_peak.push_back({l.name, l.bytes, fmt::format("{}, {}", to_string(l.category), site)});
            if (w.mask_bytes) out.live_at_peak.push_back({"attention masks", w.mask_bytes, "attention matrix, built once per forward"});
        }
    }
    if (has_head_) {
        Bindings bh = w.base;
        bh[S::Skv] = 0;
        if (full && r.peak_site == -2 && r.peak_op >= 0)
            for (const auto& l : head_.live_at(bh, r.peak_op))
                out.live_at_peak.push_back({l.name, l.bytes, fmt::format("{}, head", to_string(l.category))});
        out.step_graphs.push_back(GraphUse{&head_, bh, 1, false, 0, 0});
    }
    if (!full) return;
    // Components with their formulas.
    out.components.insert(out.components.end(), weight_components_.begin(), weight_components_.end());
    const u64 skv = geometry(types_.front(), prefill, S, p.decode_step).after;
    std::string windows;
    u64 per_token = 0;  // elements per token of the first layer type that caches per token
    for (const auto& t : types_) {
        if (t.cache.window) windows = fmt::format(" ({} layers keep ≤ {} tokens)", t.spec.token_mixer, t.cache.window);
        if (per_token == 0) per_token = t.cache.elements_per_token;
    }
    out.components.push_back({"kv_cache", "kv_cache", r.kv_cache,
                              fmt::format("Σ layers state per token · batch · tokens kept = {} · {} · {} · {} B × {} layers{}", per_token,
                                          B, S, dt_.kv.bits / 8.0, model_.num_layers, windows)});
    out.components.push_back({"attention_matrix", "attention_matrix", r.attention_matrix,
                              rt_.attention == AttentionKernel::Eager
                                  ? fmt::format("S×S tensors live at the peak, each batch · heads/GPU · Sq · Skv = {} · {} · {} · {} "
                                                "elements (scores in {}, softmax in {}), + masks {} B",
                                                B, blk::heads_per_gpu(model_, shard_.tp), Sq, skv, model_.dtype.name, dt_.softmax.name,
                                                group_digits(w.mask_bytes))
                                  : std::string("fused kernel: no S×S tensor (its O(S) softmax statistics count as activations)")});
    out.components.push_back(
        {"activation_peak", "activations", r.activation_peak,
         fmt::format("live non-KV, non-S×S tensors at the forward peak ({}) by op-graph liveness{}", out.peak_at,
                     w.kv_excess ? fmt::format(", incl. {} B of old cache storage not yet released", group_digits(w.kv_excess)) : "")});
    out.components.push_back({"logits", "logits", r.logits,
                              fmt::format("batch · positions kept · vocab · {} = {} · {} · {} · {} B, if live at the peak", dt_.logits.name,
                                          B, r.logits_kept, group_digits(model_.vocab_size), dt_.logits.bits / 8)});
    out.components.push_back({"runtime_overhead", "overhead", r.runtime_overhead,
                              fmt::format("CUDA context + library workspaces of {} ({})", rt_.name, overhead_source_)});
    out.components.push_back({"forward_peak", "peak", r.forward_peak,
                              fmt::format("peak during the step above what was allocated before it, at {}", out.peak_at)});
    out.components.push_back(
        {"total", "total", r.total, "weights + kv_cache + attention_matrix + activation_peak + logits + runtime_overhead"});
    if (r.kv_cache_visible != r.kv_cache)
        out.kv_note = fmt::format("KV the cache exposes: {} B ({:.2f} GiB); the rest is storage a view keeps alive",
                                  group_digits(r.kv_cache_visible), to_gib(r.kv_cache_visible));
    out.verdict = sum_verdict(r);
}

}  // namespace

// A training step as transformers runs it (model.train(), use_cache=False, labels given): each
// layer's forward keeps what its ops' autograd nodes save (OpGraph::train), the loss keeps the
// fp32 log-softmax of every position; the backward then walks the graphs in reverse (the loss:
// two fp32 [tokens, vocab] gradients; each graph: OpGraph::train's walk), weight gradients
// accumulating. With Recompute::Full (gradient_checkpointing_enable, use_reentrant=False) a
// layer keeps only its inputs (and an eager model's additive mask, an argument of the
// checkpointed call) and runs its forward again just before its backward. The embedding's
// backward ends the pass: a tied embedding's gradient is formed and added out of place to the
// LM head's (two [vocab, hidden] tensors beside every other gradient; measured on the H200).
TrainActivations TransformersPlan::train(const TrainPoint& p) const {
    for (const auto& t : types_) {
        const std::string& tm = t.spec.token_mixer;
        const std::string& cm = t.spec.channel_mixer;
        if (tm != "full_attention" && tm != "sliding_attention" && tm != "chunked_attention")
            throw InputError(model_.pos_of("layer_types"), "model.layers",
                             fmt::format("training memory is modelled for full_attention and sliding_attention layers; {} has {} layers",
                                         model_.name, tm));
        if (cm != "gated_mlp" && cm != "mlp" &&
            !(cm == "moe" && model_.moe.dispatch == "grouped" && !model_.moe.expert_bias && model_.moe.shared_intermediate_size == 0))
            throw InputError(
                model_.pos_of("layer_types"), "model.layers",
                fmt::format(
                    "training memory is modelled for gated_mlp, mlp and moe (grouped_mm dispatch, no shared experts or expert biases) "
                    "channel mixers; {} has {} layers",
                    model_.name, cm));
    }
    if (p.recompute == Recompute::Selective && !rt_.training.selective_recompute)
        throw InputError(
            {}, "train.recompute",
            fmt::format("{} checkpoints whole layers (gradient_checkpointing_enable); valid here: none, full (selective: a runtime with "
                        "training.selective_recompute, e.g. megatron-train)",
                        rt_.name));
    if (p.sequence_parallel && !rt_.training.sequence_parallel)
        throw InputError({}, "train.sequence_parallel",
                         fmt::format("{} does not shard activations over the sequence (e.g. megatron-train does)", rt_.name));
    bool ovf = false;
    const u64 B = p.batch, S = p.context, T = mul(B, S, ovf);
    const u64 round = rt_.allocator_round_bytes;
    const DType& md = model_.dtype;
    auto rb = [&](const DType& d, u64 n) { return round_up(bytes_of(d, n, ovf), round, ovf); };
    const u64 x_bytes = rb(md, mul(T, model_.hidden_size, ovf));
    // Masks: one per distinct window that needs one (eager: an additive [B,1,S,S] per sequence).
    std::array<Geometry, 8> geo;
    for (size_t ti = 0; ti < types_.size() && ti < geo.size(); ++ti) geo[ti] = geometry(types_[ti], true, S, 1);
    const u64 mask_batch = rt_.mask == MaskKind::Additive ? B : 1;
    u64 mask_elems = 0;
    for (std::uint32_t ti : window_types_)
        if (geo[ti].masked) mask_elems = add(mask_elems, mul(mul(mask_batch, S, ovf), geo[ti].after, ovf), ovf);
    const u64 mask_bytes = round_up(bytes_of(dtypes_[static_cast<size_t>(DtypeRole::Mask)], mask_elems, ovf), round, ovf);
    // The rotary tables (cos, sin) every layer's rotary multiplications keep.
    const u64 tables = rb(md, mul(mul(2, S, ovf), rotary_width_, ovf));
    if (ovf) throw OverflowError("train.tokens");
    std::array<TrainGraphEval, 8> ev;
    std::array<GraphEval, 8> fwd;
    TrainOptions topt;
    topt.hidden = model_.hidden_size;
    topt.weight_grads_stay = p.grads == GradHolding::Accumulate || p.grads == GradHolding::PerLayer;
    topt.frozen = p.adapters != nullptr;
    topt.adapters = p.adapters;
    const bool full = p.recompute == Recompute::Full;
    // LoRA: the first layer reads a frozen embedding's output, which needs no gradient unless
    // checkpointing asked for one (peft's enable_input_require_grads).
    const bool first_frozen_input = topt.frozen && !full && has_embedding_;
    TrainGraphEval first{};
    for (size_t ti = 0; ti < types_.size() && ti < ev.size(); ++ti) {
        const Bindings b = layer_bindings(types_[ti], geo[ti], true, B, S, S, mask_elems);
        ev[ti] = types_[ti].graph.train(b, topt);
        fwd[ti] = types_[ti].graph.evaluate(b);
        if (ev[ti].overflow || fwd[ti].overflow) throw OverflowError(types_[ti].graph.name() + ".train");
        if (first_frozen_input && !runs_.empty() && runs_.front().type == ti) {
            TrainOptions o = topt;
            o.input_requires_grad = false;
            first = types_[ti].graph.train(b, o);
            if (first.overflow) throw OverflowError(types_[ti].graph.name() + ".train");
        }
    }
    // What each layer type keeps: selective recomputation drops the S×S tensors (recomputed
    // before the layer's backward); sequence parallelism shards the TP-replicated ones.
    const u64 tp = shard_.tp;
    const bool selective = p.recompute == Recompute::Selective;
    auto sp_shard = [&](u64 bytes) { return p.sequence_parallel && tp > 1 ? bytes / tp + (bytes % tp != 0) : bytes; };
    std::array<u64, 8> keep{}, again{};
    TrainActivations out;
    for (size_t ti = 0; ti < types_.size() && ti < ev.size(); ++ti) {
        const TrainGraphEval& e = ev[ti];
        u64 k = e.saved - e.saved_hidden + sp_shard(e.saved_hidden);
        if (selective) k -= e.saved_attention_matrix;
        out.layer_saved = std::max(out.layer_saved, k);
        keep[ti] = full ? sp_shard(x_bytes) : k;
        again[ti] = full ? e.saved : selective ? e.saved_attention_matrix : 0;
    }
    std::vector<std::uint32_t> order;  // layer → type
    for (const Run& r : runs_)
        for (std::uint32_t i = 0; i < r.len; ++i) order.push_back(r.type);
    // The head (final norm, LM head over every position) and the loss.
    TrainGraphEval head{};
    u64 loss_saved = 0, loss_fwd = 0, loss_bwd = 0;
    if (has_head_) {
        Bindings bh;
        bh[S::Batch] = B;
        bh[S::Sq] = S;
        bh[S::Kept] = S;
        bh[S::MaskElems] = mask_elems;
        TrainOptions hopt = topt;
        hopt.hidden = 0;
        head = head_.train(bh, hopt);
        if (head.overflow) throw OverflowError("head.train");
        // ForCausalLMLoss: logits.float(), cross_entropy = log_softmax (kept, fp32) + nll_loss
        // (keeps the int64 shifted labels).
        const DType f32{"fp32", 32, 0, 0};
        const u64 vocab = shard_.vocab;
        const u64 logits = rb(dtypes_[static_cast<size_t>(DtypeRole::Logits)], mul(T, vocab, ovf));
        const u64 f32_tv = rb(f32, mul(T, vocab, ovf));
        loss_saved = add(f32_tv, round_up(mul(T, 8, ovf), round, ovf), ovf);
        loss_fwd = add(add(logits, f32_tv, ovf), loss_saved, ovf);  // logits, their fp32 copy, the log-softmax
        loss_bwd = mul(2, f32_tv, ovf);                             // d(log-softmax) and d(logits.float())
    }
    // A cache the caller keeps (the output's past_key_values) holds what each layer wrote; it
    // costs only the cache tensors no op saves (an eager kernel saves repeat_kv's copies, not
    // the cache). Checkpointed layers run without a cache (transformers turns use_cache off).
    std::array<u64, 8> cache_kept{};
    if (p.keep_cache && !full)
        for (size_t ti = 0; ti < types_.size() && ti < ev.size(); ++ti) cache_kept[ti] = ev[ti].unsaved_cache;
    // Forward: what the layers keep, and the peak of each layer's own forward above it.
    u64 kept = add(tables, full ? mask_bytes : 0, ovf), fpeak = 0, held = 0;
    // The first layer under LoRA (no gradient into it) keeps its own, smaller set.
    auto keep_of = [&](size_t l) { return l == 0 && first_frozen_input ? first.saved : keep[order[l]]; };
    auto walk_of = [&](size_t l) -> const TrainGraphEval& { return l == 0 && first_frozen_input ? first : ev[order[l]]; };
    for (size_t l = 0; l < order.size(); ++l) {
        const std::uint32_t ti = order[l];
        const u64 before = kept;
        fpeak = std::max(fpeak, add(before, fwd[ti].peak_bytes, ovf));
        kept = add(add(kept, keep_of(l), ovf), cache_kept[ti], ovf);
        held = add(held, cache_kept[ti], ovf);
    }
    if (has_head_) {
        fpeak = std::max(fpeak, add(add(kept, head.saved, ovf), loss_fwd, ovf));
        kept = add(add(kept, head.saved, ovf), loss_saved, ovf);
        // The loop that keeps the output keeps its logits (the loss's own copies are released).
        if (p.keep_outputs) {
            const u64 logits = rb(dtypes_[static_cast<size_t>(DtypeRole::Logits)], mul(T, shard_.vocab, ovf));
            kept = add(kept, logits, ovf);
            held = add(held, logits, ovf);
        }
    }
    out.saved = kept;
    out.outputs_kept = held;
    out.forward_peak = std::max(fpeak, kept);
    // Backward, in reverse. R: saved bytes not yet released (what the caller holds stays);
    // G: weight gradients that stay (GradHolding); `formed`: every weight gradient formed.
    u64 R = kept, G = 0, peak = out.forward_peak, formed = 0;
    const bool stay = p.grads == GradHolding::Accumulate || p.grads == GradHolding::PerLayer;
    out.peak_at = "forward";
    auto candidate = [&](u64 v, std::string where) {
        if (v > peak) {
            peak = v;
            out.peak_at = std::move(where);
        }
    };
    const u64 emb = has_embedding_ ? embedding_.weight_bytes() : 0;
    // Tied only where one GPU holds both ends: under PP the first stage's embedding forms its
    // own gradient, and the last stage's head is a copy with its own (Megatron's word
    // embeddings, kept in sync by an all-reduce of their gradients).
    const bool tied = model_.tie_word_embeddings && has_embedding_ && has_head_;
    if (has_head_) {
        candidate(add(R, loss_bwd, ovf), "loss backward");
        R -= loss_saved;
        candidate(add(add(R, G, ovf), head.backward_peak, ovf), "LM head backward");
        R -= head.saved;
        // A tied head's gradient is the embedding's (formed here, at the head's size).
        formed = add(add(formed, head.weight_grads, ovf), tied && !topt.frozen ? emb : 0, ovf);
        if (stay) G = formed;
    }
    // FSDP2 reduce-scatters a layer's gradients when its backward ends; the root module's
    // (head, embedding) stay to the end.
    const u64 root_grads = G;
    for (size_t l = order.size(); l-- > 0;) {
        const std::uint32_t ti = order[l];
        const std::string where = fmt::format("layer {} backward", l);
        if (full) {
            // The recomputed forward runs with the gradient of its output waiting.
            candidate(add(add(add(R, G, ovf), x_bytes, ovf), fwd[ti].peak_bytes - std::min(fwd[ti].peak_bytes, fwd[ti].preexisting), ovf),
                      fmt::format("layer {} recomputation", l));
        }
        // Recomputed tensors are back before the layer's backward (the walk counts a layer's
        // whole saved set; with sequence parallelism the gathered copies are what it reads).
        R = add(R, again[ti], ovf);
        const TrainGraphEval& e = walk_of(l);
        candidate(add(add(R, G, ovf), e.backward_peak, ovf), where);
        R -= keep_of(l) + again[ti];
        formed = add(formed, e.weight_grads, ovf);
        if (p.grads == GradHolding::Accumulate) G = add(G, e.weight_grads, ovf);
        if (p.grads == GradHolding::PerLayer) G = root_grads;
    }
    if (has_embedding_ && !topt.frozen) {
        // The embedding's dense gradient is formed, then kept or added (a tied one out of place
        // to the head's: two [vocab, hidden] tensors).
        candidate(add(add(add(R, G, ovf), x_bytes, ovf), tied ? mul(2, emb, ovf) : emb, ovf), "embedding backward");
        if (!tied) formed = add(formed, emb, ovf);
        if (!tied && stay) G = add(G, emb, ovf);
    }
    if (ovf) throw OverflowError("train.backward");
    out.backward_peak = peak;
    out.weight_grads = formed;
    for (const auto& t : types_) {
        out.largest_module = std::max(out.largest_module, t.graph.largest_op_weight_bytes());
        out.largest_layer = std::max(out.largest_layer, t.graph.weight_bytes());
    }
    if (has_head_) out.largest_module = std::max(out.largest_module, head_.largest_op_weight_bytes());
    out.largest_module = std::max(out.largest_module, emb);
    out.root_weights = checked_add(emb, has_head_ ? head_.weight_bytes() : 0, "root weights");
    if (p.adapters) {
        for (const Run& r : runs_)
            out.adapter_parameters = checked_add(
                out.adapter_parameters, checked_mul(r.len, types_[r.type].graph.adapter_parameters(*p.adapters), "adapters"), "adapters");
        if (has_head_) out.adapter_parameters = checked_add(out.adapter_parameters, head_.adapter_parameters(*p.adapters), "adapters");
    }
    return out;
}

std::unique_ptr<RuntimePlan> compile_transformers(const CompileInput& in) { return std::make_unique<TransformersPlan>(in); }

RuntimeRegistry::Family transformers_family() {
    // hf-eager and hf-sdpa are its profiles per attention kernel (attn_implementation).
    return {"transformers", compile_transformers, nullptr, true, nullptr, {{"eager", "hf-eager"}, {"fused", "hf-sdpa"}}};
}

// Megatron-LM-style training: the same op graphs as transformers' training path, with the
// profile's `training:` knobs (fused LayerNorm, dropout masks, selective recomputation,
// sequence parallelism) that Korthikanti et al. 2022 account for. Its own family so that
// listings and plans name what executes it.
RuntimeRegistry::Family megatron_family() { return {"megatron", compile_transformers, nullptr, true}; }

}  // namespace memtax
