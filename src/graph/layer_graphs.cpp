#include "graph/layer_graphs.hpp"


namespace memtax {

const char* to_string(AttentionKernel k) { return k == AttentionKernel::Eager ? "eager" : "fused"; }
const char* to_string(Mode m) { return m == Mode::Prefill ? "prefill" : "decode"; }

namespace {

using D = Dim;
using R = DtypeRole;
using C = Category;

TensorInfo act(const char* name, Shape s, C cat = C::Activation) { return TensorInfo{name, s, R::Act, cat}; }

OpGraph build_decoder(AttentionKernel kernel) {
    OpGraph g(std::string("decoder_layer/") + to_string(kernel));
    const Shape bsh{D::Batch, D::Sq, D::Hidden};
    // RMSNorm upcasts to fp32 and casts back: one fp32 and one act-dtype temporary live
    // beside input and output (transformers LlamaRMSNorm.forward).
    const std::vector<Workspace> norm_ws = {{bsh, R::Fp32}, {bsh, R::Act}};

    int x = g.input(act("x_in", bsh));
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
    // The cache stores K and V of the new tokens; in the compute dtype it keeps the very
    // tensors (no copy), otherwise a quantising copy in the KV dtype.
    int kc = g.op1({"k_cache_write", OpKind::Copy, {}}, {kr},
                   TensorInfo{"k_cache", kv_shape, R::Kv, C::KvCache, Lifetime::Persistent, AliasRule::IfKvIsAct});
    int vc = g.op1({"v_cache_write", OpKind::Copy, {}}, {v},
                   TensorInfo{"v_cache", kv_shape, R::Kv, C::KvCache, Lifetime::Persistent, AliasRule::IfKvIsAct});

    const Shape heads_out{D::Batch, D::HeadsQ, D::Sq, D::HeadDim};
    int attn_out;
    int probs_held = -1;
    if (kernel == AttentionKernel::Eager) {
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
        probs_held = p;  // returned as attn_weights, referenced until the attention module returns
    } else {
        // Flash/SDPA: no S×S tensor; only the per-row softmax statistics (fp32 log-sum-exp)
        // as workspace. The output is already laid out [B, S, H, d], so no transpose copy.
        attn_out = g.op1({"fused_attention", OpKind::Attention, {{{D::Batch, D::HeadsQ, D::Sq}, R::Fp32}}},
                         {qr, kc, vc}, act("attn_out", q_shape));
    }
    // Until self_attn returns, the decoder layer's variable keeps the normed input and the
    // attention module's `query_states` keeps the rotated queries.
    std::vector<int> attn_holds = {xn, qr};
    if (probs_held >= 0) attn_holds.push_back(probs_held);
    int o = g.op1({"o_proj", OpKind::Matmul, {}}, {attn_out}, act("o", bsh), attn_holds);
    int x2 = g.op1({"residual_attn", OpKind::Elementwise, {}}, {x, o}, act("x_mid", bsh));
    int xn2 = g.op1({"post_attention_norm", OpKind::Norm, norm_ws}, {x2}, act("x_norm2", bsh));
    const Shape bsi{D::Batch, D::Sq, D::Inter};
    // act_fn(gate_proj(x)) * up_proj(x): gate dies once activated.
    int gate = g.op1({"gate_proj", OpKind::Matmul, {}}, {xn2}, act("gate", bsi));
    int a = g.op1({"activation", OpKind::Elementwise, {}}, {gate}, act("gate_act", bsi));
    int up = g.op1({"up_proj", OpKind::Matmul, {}}, {xn2}, act("up", bsi));
    int m = g.op1({"gate_mul_up", OpKind::Elementwise, {}}, {a, up}, act("mlp_hidden", bsi));
    // The normed input stays referenced until the MLP module returns.
    int down = g.op1({"down_proj", OpKind::Matmul, {}}, {m}, act("down", bsh), {xn2});
    TensorInfo out = act("x_out", bsh);
    out.lifetime = Lifetime::Persistent;
    // The model's loop variable keeps the layer input alive until the layer returns.
    g.op1({"residual_mlp", OpKind::Elementwise, {}}, {x2, down}, out, {x});
    g.finalize();
    return g;
}

OpGraph build_head() {
    OpGraph g("head");
    const Shape bsh{D::Batch, D::Sq, D::Hidden};
    int x = g.input(act("x_last", bsh));
    // The base model's locals live until it returns, after the final norm: the masks, the
    // rotary tables, the token positions (int64) and the embedding output (`inputs_embeds`).
    int mask = g.input(act("attention_masks", {D::MaskElems}, C::AttentionMatrix));
    int tables = g.input(act("rotary_tables", {D::TableElems}));
    int positions = g.input(TensorInfo{"cache_position", {D::Sq}, R::Index});
    int embeds = g.input(act("inputs_embeds", bsh));
    int xf = g.op1({"final_norm", OpKind::Norm, {{bsh, R::Fp32}, {bsh, R::Act}}}, {x},
                   act("x_final", bsh), {mask, tables, positions, embeds});
    const Shape logits{D::Batch, D::Kept, D::Vocab};
    int l = g.op1({"lm_head", OpKind::Matmul, {}}, {xf}, act("logits_act", logits, C::Logits));
    TensorInfo lo{"logits", logits, R::Logits, C::Logits, Lifetime::Persistent, AliasRule::IfLogitsIsAct};
    g.op1({"logits_cast", OpKind::Copy, {}}, {l}, lo);
    g.finalize();
    return g;
}

}  // namespace

const OpGraph& decoder_layer_graph(AttentionKernel kernel) {
    // Built once, on first use; afterwards read-only.
    static const OpGraph eager = build_decoder(AttentionKernel::Eager), fused = build_decoder(AttentionKernel::Fused);
    return kernel == AttentionKernel::Eager ? eager : fused;
}

const OpGraph& head_graph() {
    static const OpGraph head = build_head();
    return head;
}

}  // namespace memtax
