#include "graph/layer_graphs.hpp"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <mutex>

namespace memtax {

const char* to_string(Mode m) { return m == Mode::Prefill ? "prefill" : "decode"; }

std::string GraphConfig::key() const {
    return fmt::format("{}/{}/{}{}{}{}{}{}/{}", family == RuntimeFamily::Vllm ? "vllm" : "transformers", to_string(kernel),
                       keeps.layer_input, keeps.normed_input, keeps.query_states, keeps.attn_weights, keeps.mlp_input,
                       keeps.model_locals, joint_kv_update ? "joint" : "split");
}

namespace {

using D = Dim;
using R = DtypeRole;
using C = Category;

TensorInfo act(const char* name, Shape s, C cat = C::Activation) { return TensorInfo{name, s, R::Act, cat}; }

std::vector<int> held(std::initializer_list<std::pair<bool, int>> items) {
    std::vector<int> out;
    for (auto [on, t] : items)
        if (on && t >= 0) out.push_back(t);
    return out;
}


// FLOPs and weights per op (multiply-add = 2 FLOPs; elementwise ops count their arithmetic
// per output element: RMSNorm ~4 (square, mean, rsqrt-scale, weight), rotary 3, SiLU 4,
// softmax 5 (max, sub, exp, sum, div)).
Cost c(u64 coef, Shape dims) { return Cost{coef, dims}; }

void annotate_transformers(OpGraph& g, AttentionKernel kernel, bool joint) {
    using G = OpGroup;
    const Shape bsh{D::Batch, D::Sq, D::Hidden};
    g.annotate("input_norm", G::Norm, c(4, bsh), c(1, {D::Hidden}), R::Act);
    g.annotate("post_attention_norm", G::Norm, c(4, bsh), c(1, {D::Hidden}), R::Act);
    g.annotate("q_proj", G::Projection, c(2, {D::Batch, D::Sq, D::Hidden, D::QDim}), c(1, {D::Hidden, D::QDim}));
    g.annotate("k_proj", G::Projection, c(2, {D::Batch, D::Sq, D::Hidden, D::KvDim}), c(1, {D::Hidden, D::KvDim}));
    g.annotate("v_proj", G::Projection, c(2, {D::Batch, D::Sq, D::Hidden, D::KvDim}), c(1, {D::Hidden, D::KvDim}));
    g.annotate("o_proj", G::Projection, c(2, {D::Batch, D::Sq, D::QDim, D::Hidden}), c(1, {D::QDim, D::Hidden}));
    g.annotate("rotary_q", G::Rotary, c(3, {D::Batch, D::Sq, D::QDim}));
    g.annotate("rotary_k", G::Rotary, c(3, {D::Batch, D::Sq, D::KvDim}));
    if (joint) {
        g.annotate("kv_cache_update", G::KvCache, {});
    } else {
        g.annotate("k_cache_update", G::KvCache, {});
        g.annotate("v_cache_update", G::KvCache, {});
    }
    g.annotate("repeat_k", G::Attention, {});
    g.annotate("repeat_v", G::Attention, {});
    if (kernel == AttentionKernel::Eager) {
        const Shape ss{D::Batch, D::HeadsQ, D::Sq, D::Skv};
        g.annotate("scores_qk", G::Attention, c(2, {D::Batch, D::HeadsQ, D::Sq, D::Skv, D::HeadDim}));
        g.annotate("scores_scale", G::Attention, c(1, ss));
        g.annotate("scores_mask", G::Attention, c(1, ss));
        g.annotate("softmax", G::Attention, c(5, ss));
        g.annotate("probs_cast", G::Attention, {});
        g.annotate("probs_v", G::Attention, c(2, {D::Batch, D::HeadsQ, D::Sq, D::Skv, D::HeadDim}));
        g.annotate("heads_transpose", G::Attention, {});
    } else {
        g.annotate("mask_to_additive", G::Attention, {});
        // Q·Kᵀ and P·V over the keys each query attends, plus the online softmax.
        g.annotate("fused_attention", G::Attention, c(4, {D::Batch, D::HeadsQ, D::Sq, D::AttnKeys, D::HeadDim}));
    }
    g.annotate("residual_attn", G::Residual, c(1, bsh));
    g.annotate("residual_mlp", G::Residual, c(1, bsh));
    const Shape bsi{D::Batch, D::Sq, D::Inter};
    g.annotate("gate_proj", G::Mlp, c(2, {D::Batch, D::Sq, D::Hidden, D::Inter}), c(1, {D::Hidden, D::Inter}));
    g.annotate("up_proj", G::Mlp, c(2, {D::Batch, D::Sq, D::Hidden, D::Inter}), c(1, {D::Hidden, D::Inter}));
    g.annotate("activation", G::Mlp, c(4, bsi));
    g.annotate("gate_mul_up", G::Mlp, c(1, bsi));
    g.annotate("down_proj", G::Mlp, c(2, {D::Batch, D::Sq, D::Inter, D::Hidden}), c(1, {D::Inter, D::Hidden}));
}

OpGraph build_transformers(const GraphConfig& cfg) {
    OpGraph g("decoder_layer/" + cfg.key());
    const auto& keep = cfg.keeps;
    const Shape bsh{D::Batch, D::Sq, D::Hidden};
    // RMSNorm upcasts to fp32 and casts back: one fp32 and one act-dtype temporary live
    // beside input and output (transformers LlamaRMSNorm.forward).
    const std::vector<Workspace> norm_ws = {{bsh, R::Fp32}, {bsh, R::Act}};

    int x = g.input(act("x_in", bsh));
    // The layer's cache storage before the step (empty in prefill).
    const Shape old_shape{D::Batch, D::SkvOld, D::KvDim};
    int k_old = g.input(TensorInfo{"k_cache_old", old_shape, R::Kv, C::KvCache});
    int v_old = g.input(TensorInfo{"v_cache_old", old_shape, R::Kv, C::KvCache});
    int xn = g.op1({"input_norm", OpKind::Norm, norm_ws}, {x}, act("x_norm", bsh));
    int q = g.op1({"q_proj", OpKind::Matmul, {}}, {xn}, act("q", {D::Batch, D::Sq, D::QDim}));
    int k = g.op1({"k_proj", OpKind::Matmul, {}}, {xn}, act("k", {D::Batch, D::Sq, D::KvDim}));
    int v = g.op1({"v_proj", OpKind::Matmul, {}}, {xn}, act("v", {D::Batch, D::Sq, D::KvDim}));
    // Rotary embedding: q*cos and rotate_half(q)*sin are live beside input and output.
    const Shape q_shape{D::Batch, D::Sq, D::QDim}, kv_shape{D::Batch, D::Sq, D::KvDim};
    int qr = g.op1({"rotary_q", OpKind::Rotary, {{q_shape, R::Act}, {q_shape, R::Act}}}, {q}, act("q_rot", q_shape));
    // apply_rotary_pos_emb returns both rotated tensors before q and k are rebound.
    int kr = g.op1({"rotary_k", OpKind::Rotary, {{kv_shape, R::Act}, {kv_shape, R::Act}}}, {k}, act("k_rot", kv_shape),
                   {q});
    // The cache update: an empty cache keeps the new tensors themselves; otherwise torch.cat
    // makes the layer's new storage while the old one is still referenced, and the old is
    // released when the cache attribute is rebound.
    const Shape new_shape{D::Batch, D::SkvNew, D::KvDim};
    auto cache_out = [&](const char* name) {
        return TensorInfo{name, new_shape, R::Kv, C::KvCache, Lifetime::Persistent, AliasRule::IfFreshCache};
    };
    int kc, vc;
    if (cfg.joint_kv_update) {
        // DynamicSlidingWindowLayer always concatenates (onto empty tensors in prefill), so its
        // storage is a fresh copy even when the cache was empty.
        auto copy = [&](const char* name) {
            return TensorInfo{name, new_shape, R::Kv, C::KvCache, Lifetime::Persistent, AliasRule::None};
        };
        auto out = g.op({"kv_cache_update", OpKind::Copy, {}}, {kr, v, k_old, v_old}, {copy("k_cache"), copy("v_cache")});
        kc = out[0];
        vc = out[1];
    } else {
        kc = g.op1({"k_cache_update", OpKind::Copy, {}}, {kr, k_old}, cache_out("k_cache"));
        vc = g.op1({"v_cache_update", OpKind::Copy, {}}, {v, v_old}, cache_out("v_cache"));
    }

    const Shape heads_out{D::Batch, D::HeadsQ, D::Sq, D::HeadDim};
    int attn_out;
    int probs_held = -1;
    if (cfg.kernel == AttentionKernel::Eager) {
        // transformers eager_attention_forward: repeat_kv materialises K and V per query head
        // (GQA), scores = (Q Kᵀ) * scale, + mask, softmax in the softmax dtype, cast back, P V.
        const Shape rep{D::Batch, D::HeadsQ, D::Skv, D::HeadDim};
        const Shape ss{D::Batch, D::HeadsQ, D::Sq, D::Skv};
        int krep = g.op1({"repeat_k", OpKind::Copy, {}}, {kc},
                         TensorInfo{"k_repeated", rep, R::Act, C::Activation, Lifetime::Transient, AliasRule::IfNoGqa});
        int vrep = g.op1({"repeat_v", OpKind::Copy, {}}, {vc},
                         TensorInfo{"v_repeated", rep, R::Act, C::Activation, Lifetime::Transient, AliasRule::IfNoGqa});
        int s0 = g.op1({"scores_qk", OpKind::Matmul, {}}, {qr, krep}, act("scores", ss, C::AttentionMatrix));
        int s1 = g.op1({"scores_scale", OpKind::Elementwise, {}}, {s0}, act("scores_scaled", ss, C::AttentionMatrix));
        int s2 = g.op1({"scores_mask", OpKind::Elementwise, {}}, {s1}, act("scores_masked", ss, C::AttentionMatrix));
        int p32 = g.op1({"softmax", OpKind::Softmax, {{ss, R::Softmax, SkipRule::UnlessSoftmaxUpcastCopies, C::AttentionMatrix}}}, {s2},
                        TensorInfo{"probs", ss, R::Softmax, C::AttentionMatrix});
        // `attn_weights = softmax(attn_weights, dtype=fp32).to(q.dtype)`: the masked scores
        // stay referenced until the whole right-hand side is done.
        int p = g.op1({"probs_cast", OpKind::Copy, {}}, {p32},
                      TensorInfo{"probs_act", ss, R::Act, C::AttentionMatrix, Lifetime::Transient, AliasRule::IfSoftmaxIsAct},
                      {s2});
        int oh = g.op1({"probs_v", OpKind::Matmul, {}}, {p, vrep}, act("attn_heads", heads_out));
        // repeat_kv's results are locals of eager_attention_forward, alive until it returns.
        attn_out = g.op1({"heads_transpose", OpKind::Copy, {}}, {oh}, act("attn_out", q_shape), {krep, vrep});
        if (keep.attn_weights) probs_held = p;
    } else {
        // SDPA/flash: no S×S tensor, only per-row softmax statistics (fp32 log-sum-exp). When
        // the runtime repeats K/V for the kernel (RepHeads > 0) the copies are made first; a
        // bool mask is turned into an additive one in the compute dtype (ATen
        // convert_boolean_attn_mask: where(mask, 0, -inf), no temporary besides the result).
        const Shape rep{D::Batch, D::RepHeads, D::Skv, D::HeadDim};
        int krep = g.op1({"repeat_k", OpKind::Copy, {}}, {kc},
                         TensorInfo{"k_repeated", rep, R::Act, C::Activation, Lifetime::Transient, AliasRule::IfNoGqa});
        int vrep = g.op1({"repeat_v", OpKind::Copy, {}}, {vc},
                         TensorInfo{"v_repeated", rep, R::Act, C::Activation, Lifetime::Transient, AliasRule::IfNoGqa});
        int mask_add = g.op1({"mask_to_additive", OpKind::Elementwise, {}}, {},
                             act("mask_additive", {D::MaskConvElems}, C::AttentionMatrix));
        attn_out = g.op1({"fused_attention", OpKind::Attention, {{{D::Batch, D::HeadsQ, D::Sq}, R::Fp32}}},
                         {qr, krep, vrep, mask_add}, act("attn_out", q_shape));
    }
    // Until self_attn returns, the decoder layer's variable keeps the normed input and the
    // attention module's `query_states` keeps the rotated queries.
    int o = g.op1({"o_proj", OpKind::Matmul, {}}, {attn_out}, act("o", bsh),
                  held({{keep.normed_input, xn}, {keep.query_states, qr}, {keep.attn_weights, probs_held}}));
    int x2 = g.op1({"residual_attn", OpKind::Elementwise, {}}, {x, o}, act("x_mid", bsh));
    int xn2 = g.op1({"post_attention_norm", OpKind::Norm, norm_ws}, {x2}, act("x_norm2", bsh));
    const Shape bsi{D::Batch, D::Sq, D::Inter};
    // act_fn(gate_proj(x)) * up_proj(x): gate dies once activated.
    int gate = g.op1({"gate_proj", OpKind::Matmul, {}}, {xn2}, act("gate", bsi));
    int a = g.op1({"activation", OpKind::Elementwise, {}}, {gate}, act("gate_act", bsi));
    int up = g.op1({"up_proj", OpKind::Matmul, {}}, {xn2}, act("up", bsi));
    int m = g.op1({"gate_mul_up", OpKind::Elementwise, {}}, {a, up}, act("mlp_hidden", bsi));
    int down = g.op1({"down_proj", OpKind::Matmul, {}}, {m}, act("down", bsh), held({{keep.mlp_input, xn2}}));
    TensorInfo out = act("x_out", bsh);
    out.lifetime = Lifetime::Persistent;
    // The model's loop variable keeps the layer input alive until the layer returns.
    g.op1({"residual_mlp", OpKind::Elementwise, {}}, {x2, down}, out, held({{keep.layer_input, x}}));
    annotate_transformers(g, cfg.kernel, cfg.joint_kv_update);
    g.finalize();
    return g;
}

OpGraph build_vllm(const GraphConfig& cfg) {
    OpGraph g("decoder_layer/" + cfg.key());
    // vLLM flattens the batch: Batch = 1, Sq = tokens in the step. The residual stream is two
    // tensors (hidden, residual) updated in place by fused_add_rms_norm.
    const Shape th{D::Batch, D::Sq, D::Hidden};
    int x = g.input(act("hidden", th));
    int res = g.input(act("residual", th));
    // The paged KV the attention reads (SkvOld tokens in all; 0 in the start-up profile run,
    // which has no cache yet).
    int kv_k = g.input(TensorInfo{"kv_pool_k", {D::Batch, D::SkvOld, D::KvDim}, R::Kv, C::KvCache});
    int kv_v = g.input(TensorInfo{"kv_pool_v", {D::Batch, D::SkvOld, D::KvDim}, R::Kv, C::KvCache});
    int xn = g.op1({"input_norm", OpKind::Norm, {}}, {x, res},
                   TensorInfo{"hidden_normed", th, R::Act, C::Activation, Lifetime::Transient, AliasRule::Always});
    int qkv = g.op1({"qkv_proj", OpKind::Matmul, {}}, {xn}, act("qkv", {D::Batch, D::Sq, D::QkvDim}));
    // Rotary in place on the q and k views; the attention writes its output buffer and the new
    // K/V into the preallocated pool (not allocated here).
    int attn = g.op1({"attention", OpKind::Attention, {{{D::Batch, D::HeadsQ, D::Sq}, R::Fp32}}}, {qkv, kv_k, kv_v},
                     act("attn_out", {D::Batch, D::Sq, D::QDim}));
    // `qkv` and its views are locals of the attention module until it returns.
    int o = g.op1({"o_proj", OpKind::Matmul, {}}, {attn}, act("o", th), {qkv});
    int on = g.op1({"post_attention_norm", OpKind::Norm, {}}, {o, res},
                   TensorInfo{"o_normed", th, R::Act, C::Activation, Lifetime::Transient, AliasRule::Always});
    int gu = g.op1({"gate_up_proj", OpKind::Matmul, {}}, {on}, act("gate_up", {D::Batch, D::Sq, D::GateUp}));
    // SiluAndMul makes a new tensor; `x` is rebound, freeing gate_up.
    int a = g.op1({"silu_and_mul", OpKind::Elementwise, {}}, {gu}, act("mlp_hidden", {D::Batch, D::Sq, D::Inter}));
    TensorInfo out = act("hidden_out", th);
    out.lifetime = Lifetime::Persistent;
    g.op1({"down_proj", OpKind::Matmul, {}}, {a}, out, {res});
    using G = OpGroup;
    g.annotate("input_norm", G::Norm, c(4, th), c(1, {D::Hidden}), R::Act);
    g.annotate("post_attention_norm", G::Norm, c(4, th), c(1, {D::Hidden}), R::Act);
    g.annotate("qkv_proj", G::Projection, c(2, {D::Batch, D::Sq, D::Hidden, D::QkvDim}), c(1, {D::Hidden, D::QkvDim}));
    g.annotate("attention", G::Attention, c(4, {D::Batch, D::HeadsQ, D::Sq, D::AttnKeys, D::HeadDim}));
    g.annotate("o_proj", G::Projection, c(2, {D::Batch, D::Sq, D::QDim, D::Hidden}), c(1, {D::QDim, D::Hidden}));
    g.annotate("gate_up_proj", G::Mlp, c(2, {D::Batch, D::Sq, D::Hidden, D::GateUp}), c(1, {D::Hidden, D::GateUp}));
    g.annotate("silu_and_mul", G::Mlp, c(5, {D::Batch, D::Sq, D::Inter}));
    g.annotate("down_proj", G::Mlp, c(2, {D::Batch, D::Sq, D::Inter, D::Hidden}), c(1, {D::Inter, D::Hidden}));
    g.finalize();
    return g;
}

OpGraph build_head(bool model_locals) {
    OpGraph g(model_locals ? "head/locals" : "head");
    const Shape bsh{D::Batch, D::Sq, D::Hidden};
    int x = g.input(act("x_last", bsh));
    std::vector<int> holds;
    if (model_locals) {
        // The base model's locals live until it returns, after the final norm: the masks, the
        // rotary tables, the token positions (int64) and the embedding output (`inputs_embeds`).
        holds.push_back(g.input(TensorInfo{"attention_masks", {D::MaskElems}, R::Mask, C::AttentionMatrix}));
        holds.push_back(g.input(act("rotary_tables", {D::TableElems})));
        holds.push_back(g.input(TensorInfo{"cache_position", {D::Sq}, R::Index}));
        holds.push_back(g.input(act("inputs_embeds", bsh)));
    }
    int xf = g.op1({"final_norm", OpKind::Norm, {{bsh, R::Fp32}, {bsh, R::Act}}}, {x}, act("x_final", bsh), holds);
    const Shape logits{D::Batch, D::Kept, D::Vocab};
    int l = g.op1({"lm_head", OpKind::Matmul, {}}, {xf}, act("logits_act", logits, C::Logits));
    TensorInfo lo{"logits", logits, R::Logits, C::Logits, Lifetime::Persistent, AliasRule::IfLogitsIsAct};
    g.op1({"logits_cast", OpKind::Copy, {}}, {l}, lo);
    g.annotate("final_norm", OpGroup::Norm, c(4, bsh), c(1, {D::Hidden}), R::Act);
    // The vocab-parallel head: this GPU's rows; the logits are then gathered.
    g.annotate("lm_head", OpGroup::LmHead, c(2, {D::Batch, D::Kept, D::Hidden, D::VocabShard}), c(1, {D::Hidden, D::VocabShard}), R::Act);
    g.annotate("logits_cast", OpGroup::LmHead, {});
    g.finalize();
    return g;
}

OpGraph build_sampler() {
    OpGraph g("vllm_sampler");
    // Batch = 1; Kept = requests sampled; the hidden states of the profile run stay referenced.
    const Shape nv{D::Batch, D::Kept, D::Vocab};
    int hidden = g.input(act("last_hidden_states", {D::Batch, D::Sq, D::Hidden}));
    int h = g.op1({"select_logit_rows", OpKind::Copy, {}}, {hidden}, act("sample_hidden", {D::Batch, D::Kept, D::Hidden}),
                  {});
    int l = g.op1({"lm_head", OpKind::Matmul, {}}, {h}, act("logits_act", nv, C::Logits), {hidden});
    int l32 = g.op1({"logits_fp32", OpKind::Copy, {}}, {l}, TensorInfo{"logits", nv, R::Fp32, C::Logits}, {hidden});
    // apply_top_k_top_p: sort, mask below the k-th value, softmax + cumsum (in place), mask
    // above p, scatter back; its locals live until it returns.
    auto sorted = g.op({"sort", OpKind::Sort, {}}, {l32},
                       {TensorInfo{"logits_sorted", nv, R::Fp32, C::Logits}, TensorInfo{"sort_index", nv, R::Index, C::Logits}},
                       {l});
    int topk_mask = g.op1({"top_k_mask", OpKind::Elementwise, {}}, {sorted[0]}, TensorInfo{"top_k_mask", nv, R::Bool, C::Logits},
                          {l, l32, sorted[1]});
    int probs_sort = g.op1({"top_p_softmax", OpKind::Softmax, {}}, {sorted[0], topk_mask},
                           TensorInfo{"probs_sort", nv, R::Fp32, C::Logits}, {l, l32, sorted[1]});
    int topp_mask = g.op1({"top_p_mask", OpKind::Elementwise, {}}, {probs_sort}, TensorInfo{"top_p_mask", nv, R::Bool, C::Logits},
                          {l, l32, sorted[0], sorted[1]});
    int scattered = g.op1({"scatter", OpKind::Copy, {}}, {sorted[0], sorted[1], topp_mask},
                          TensorInfo{"logits_filtered", nv, R::Fp32, C::Logits}, {l, l32, probs_sort});
    // random_sample: probs = softmax(logits); q = empty_like(probs).exponential_(); argmax(probs / q).
    int probs = g.op1({"softmax", OpKind::Softmax, {}}, {scattered}, TensorInfo{"probs", nv, R::Fp32, C::Logits}, {l, l32});
    int q = g.op1({"exponential", OpKind::Elementwise, {}}, {}, TensorInfo{"exp_noise", nv, R::Fp32, C::Logits}, {l, l32, probs});
    g.op1({"argmax", OpKind::Elementwise, {}}, {probs, q}, TensorInfo{"sampled", {D::Batch, D::Kept}, R::Index, C::Logits,
                                                                  Lifetime::Persistent},
          {l, l32});
    g.finalize();
    return g;
}

// Graphs are immutable once built; the cache only grows (a handful of configurations).
std::mutex cache_mutex;
std::map<std::string, std::unique_ptr<OpGraph>>& cache() {
    static std::map<std::string, std::unique_ptr<OpGraph>> graphs;
    return graphs;
}

template <typename Build>
const OpGraph& cached(const std::string& key, Build build) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto& slot = cache()[key];
    if (!slot) slot = std::make_unique<OpGraph>(build());
    return *slot;
}

}  // namespace

const OpGraph& decoder_layer_graph(const GraphConfig& cfg) {
    return cached("layer/" + cfg.key(),
                  [&] { return cfg.family == RuntimeFamily::Vllm ? build_vllm(cfg) : build_transformers(cfg); });
}

const OpGraph& head_graph(bool model_locals) {
    return cached(model_locals ? "head/locals" : "head", [&] { return build_head(model_locals); });
}

const OpGraph& vllm_sampler_graph() { return cached("vllm_sampler", [] { return build_sampler(); }); }

}  // namespace memtax
