// Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434 §2.1; DeepSeek-V3). Keys and
// values are rebuilt per head from a compressed latent c_KV of kv_lora_rank channels, and one
// rotary key of qk_rope_head_dim is shared by all heads; queries may go through their own
// low-rank path (q_lora_rank). Two cache layouts exist: the expanded per-head key (qk_nope +
// qk_rope channels) and value (v_head_dim), heads · (qk_head_dim + v_head_dim) elements per token
// (what transformers 4.x kept: 81,920 B per token per layer for DeepSeek-V3 in bf16), and the
// latent with the rotary key, kv_lora_rank + qk_rope_head_dim elements per token (576 for
// DeepSeek-V3). Both runtimes modelled here keep the latent: vLLM's MLAAttentionSpec (one
// tensor) and transformers 5 (DeepseekV3Attention caches kv_nope and k_rot before expanding,
// measured on an H200 with transformers 5.17).
#include <fmt/format.h>

#include "blocks/block.hpp"

namespace memtax {
namespace {

using S = Sym;
using R = DtypeRole;
using C = Category;
using blk::act;
using blk::tokens;

u64 latent(const ModelSpec& m) { return checked_add(m.mla.kv_lora_rank, m.mla.qk_rope_head_dim, "mla latent"); }

// Both runtimes keep the latent: vLLM as one tensor, transformers as two (latent, rotary key).
CacheSpec cache(const BlockEnv& env, u64 tensors) {
    CacheSpec c{latent(env.model), tensors, 0};
    c.layout = "latent";
    return c;
}

// The query path: q_a_proj → q_a_layernorm → q_b_proj with a q_lora_rank, else q_proj.
int queries(OpGraph& g, const BlockEnv& env, int x) {
    const ModelSpec& m = env.model;
    const u64 h = m.hidden_size, qd = checked_mul(blk::heads_per_gpu(env.model, env.shard.tp), m.mla.qk_head_dim(), "q");
    if (m.mla.q_lora_rank == 0) return g.op1(blk::linear("q_proj", OpGroup::Projection, h, qd, "q_proj"), {x}, act("q", tokens(qd)));
    const u64 r = m.mla.q_lora_rank;
    int qa = g.op1(blk::linear("q_a_proj", OpGroup::Projection, h, r, "q_a_proj"), {x}, act("q_a", tokens(r)));
    int qn = g.op1(blk::rms_norm("q_a_layernorm", 1, r), {qa}, act("q_a_normed", tokens(r)));
    return g.op1(blk::linear("q_b_proj", OpGroup::Projection, r, qd, "q_b_proj"), {qn}, act("q", tokens(qd)));
}

// transformers' DeepseekV3Attention (5.x), eager or SDPA. The cache keeps the compressed
// latent: the normed kv_lora_rank slice and the rotated shared key, as two single-head tensors
// (an empty cache keeps the tensors themselves). Every step then re-expands all cached tokens
// with kv_b_proj into per-head keys (a new tensor) and values (a view of the projection).
// The method's locals (queries, the projections, the expanded K/V) live until it returns.
int build_transformers(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const MlaSpec& a = m.mla;
    const RuntimeSpec& rt = env.runtime;
    const u64 H = blk::heads_per_gpu(env.model, env.shard.tp), h = m.hidden_size;
    const u64 qk = a.qk_head_dim(), rope = a.qk_rope_head_dim, vd = a.v_head_dim, lora = a.kv_lora_rank;
    const u64 q_dim = checked_mul(H, qk, "q"), v_dim = checked_mul(H, vd, "v"), kvb = checked_mul(H, a.qk_nope_head_dim + vd, "kv_b");
    const int xn = io.x;
    int nope_old = g.input(TensorInfo{"latent_cache_old", Size(lora, {S::Batch, S::SkvOld}), R::Kv, C::KvCache});
    int rot_old = g.input(TensorInfo{"rope_key_cache_old", Size(rope, {S::Batch, S::SkvOld}), R::Kv, C::KvCache});
    int q = queries(g, env, xn);
    int ckv = g.op1(blk::linear("kv_a_proj_with_mqa", OpGroup::Projection, h, latent(m), "kv_a_proj_with_mqa"), {xn},
                    act("compressed_kv", tokens(latent(m))));
    int ckn = g.op1(blk::rms_norm("kv_a_layernorm", 1, lora), {ckv}, act("kv_latent_normed", tokens(lora)));
    // Rotary on the rope slices (interleaved layout: each slice is first copied contiguous).
    const Size qr_size(checked_mul(H, rope, "q_rot"), {S::Batch, S::Sq}), kr_size(rope, {S::Batch, S::Sq});
    int qr = g.op1({"rotary_q",
                    OpKind::Rotary,
                    OpGroup::Rotary,
                    Size(checked_mul(3 * H, rope, "rotary"), {S::Batch, S::Sq}),
                    {},
                    {{qr_size, R::Act}, {qr_size, R::Act}, {qr_size, R::Act}}},
                   {q}, act("q_rot", qr_size));
    int kr = g.op1({"rotary_k",
                    OpKind::Rotary,
                    OpGroup::Rotary,
                    Size(3 * rope, {S::Batch, S::Sq}),
                    {},
                    {{kr_size, R::Act}, {kr_size, R::Act}, {kr_size, R::Act}}},
                   {ckv}, act("k_rot", kr_size), {qr});
    const AliasRule fresh = env.dtype(R::Kv) == env.dtype(R::Act) ? AliasRule::IfFreshCache : AliasRule::None;
    int lc = g.op1({"latent_cache_update", OpKind::Copy, OpGroup::KvCache, {}, {}, {}}, {ckn, nope_old},
                   TensorInfo{"latent_cache", Size(lora, {S::Batch, S::SkvNew}), R::Kv, C::KvCache, Lifetime::Persistent, fresh});
    int rc = g.op1({"rope_key_cache_update", OpKind::Copy, OpGroup::KvCache, {}, {}, {}}, {kr, rot_old},
                   TensorInfo{"rope_key_cache", Size(rope, {S::Batch, S::SkvNew}), R::Kv, C::KvCache, Lifetime::Persistent, fresh});
    int qs = g.op1({"query_cat", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {q, qr}, act("query_states", tokens(q_dim)));
    // expand_kv over every cached token.
    int kv = g.op1({"kv_b_proj",
                    OpKind::Matmul,
                    OpGroup::Projection,
                    Size(checked_product({2, lora, kvb}, "kv_b"), {S::Batch, S::Skv}),
                    {{"kv_b_proj", checked_mul(lora, kvb, "kv_b"), R::Weight, false, lora}},
                    {}},
                   {lc}, act("kv_expanded", Size(kvb, {S::Batch, S::Skv})), {qs});
    int ks = g.op1({"key_states", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {kv, rc},
                   act("key_states", Size(q_dim, {S::Batch, S::Skv})), {qs});
    std::vector<int> locals = {q, ckv, ckn, qr, kr, qs, kv, ks};
    int attn_out;
    int probs_held = -1;
    const Size ss(H, {S::Batch, S::Sq, S::Skv});
    const Size qk_flops(checked_product({2, H, qk}, "scores"), {S::Batch, S::Sq, S::Skv});
    if (rt.attention == AttentionKernel::Eager) {
        int s0 = g.op1h({"scores_qk", OpKind::Matmul, OpGroup::Attention, qk_flops, {}, {}}, {qs, ks},
                        act("scores", ss, C::AttentionMatrix), locals);
        int s1 = g.op1h({"scores_scale", OpKind::Elementwise, OpGroup::Attention, ss, {}, {}}, {s0},
                        act("scores_scaled", ss, C::AttentionMatrix), locals);
        int s2 = g.op1h({"scores_mask", OpKind::Elementwise, OpGroup::Attention, ss, {}, {}}, {s1},
                        act("scores_masked", ss, C::AttentionMatrix), locals);
        OpInfo softmax{"softmax", OpKind::Softmax, OpGroup::Attention, Size(5 * H, {S::Batch, S::Sq, S::Skv}), {}, {}};
        if (!(env.dtype(R::Softmax) == env.dtype(R::Act)) && env.dtype(R::Act).name != "fp16")
            softmax.workspace.push_back({ss, R::Softmax, C::AttentionMatrix});
        int p32 = g.op1h(std::move(softmax), {s2}, TensorInfo{"probs", ss, R::Softmax, C::AttentionMatrix}, locals);
        const AliasRule same = env.dtype(R::Softmax) == env.dtype(R::Act) ? AliasRule::View : AliasRule::None;
        std::vector<int> hold = locals;
        hold.push_back(s2);
        int p = g.op1h({"probs_cast", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {p32},
                       TensorInfo{"probs_act", ss, R::Act, C::AttentionMatrix, Lifetime::Transient, same}, hold);
        // The values are a view of kv_b_proj's [B, S, H, ·] output transposed to [B, H, S, ·]:
        // matmul folds B and H into one batch dimension, which needs a contiguous copy once
        // there is more than one sequence (measured on the H200: batch 1 exact, batch 2-3 short
        // by exactly this copy without it).
        int vcopy = g.op1h({"value_contiguous", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {kv},
                           act("value_copy", Size(v_dim, {S::Batch, S::Skv, S::MultiSeq})), locals);
        int oh = g.op1h(
            {"probs_v", OpKind::Matmul, OpGroup::Attention, Size(checked_product({2, H, vd}, "pv"), {S::Batch, S::Sq, S::Skv}), {}, {}},
            {p, vcopy}, act("attn_heads", tokens(v_dim)), locals);
        attn_out = g.op1h({"heads_transpose", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {oh}, act("attn_out", tokens(v_dim)), locals);
        if (rt.keeps.attn_weights) probs_held = p;
    } else {
        int mask_add = g.op1({"mask_to_additive", OpKind::Elementwise, OpGroup::Attention, {}, {}, {}}, {},
                             act("mask_additive", Size(1, {S::Batch, S::Sq, S::Skv, S::MaskConv}), C::AttentionMatrix));
        attn_out = g.op1h({"fused_attention",
                           OpKind::Attention,
                           OpGroup::Attention,
                           Size(checked_product({2, H, qk + vd}, "attention"), {S::Batch, S::Sq, S::AttnKeys}),
                           {},
                           {{Size(H, {S::Batch, S::Sq}), R::Fp32}}},
                          {qs, ks, kv, mask_add}, act("attn_out", tokens(v_dim)), locals);
    }
    std::vector<int> holds = io.holds_last;
    holds.push_back(rt.keeps.normed_input ? xn : -1);
    holds.push_back(probs_held);
    holds.insert(holds.end(), locals.begin(), locals.end());
    return g.op1h(blk::linear("o_proj", OpGroup::Projection, v_dim, h, "o_proj"), {attn_out}, act("o", tokens(h)), holds);
}

// vLLM's MLA layer: the fused q_a / kv_a projection (one GEMM when q_lora_rank is set), the
// norms, q_b_proj; the latent and rotary key written to the paged cache inside the attention
// op; prefill expands K/V per head with kv_b_proj, decode absorbs it into the query (the
// profile run is a prefill).
int build_vllm(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const MlaSpec& a = m.mla;
    const u64 H = blk::heads_per_gpu(env.model, env.shard.tp), h = m.hidden_size;
    const u64 qk = a.qk_head_dim(), vd = a.v_head_dim;
    const u64 q_dim = checked_mul(H, qk, "q"), v_dim = checked_mul(H, vd, "v"), kvb = checked_mul(H, a.qk_nope_head_dim + vd, "kv_b");
    int pool = g.input(TensorInfo{"kv_pool_latent", Size(latent(m), {S::Batch, S::SkvOld}), R::Kv, C::KvCache});
    const u64 qa = a.q_lora_rank ? a.q_lora_rank : 0;
    const u64 fused = checked_add(qa, latent(m), "qkv_a");
    int qkv_a = g.op1(blk::linear(qa ? "fused_qkv_a_proj" : "kv_a_proj_with_mqa", OpGroup::Projection, h, fused,
                                  qa ? "fused_qkv_a_proj" : "kv_a_proj_with_mqa"),
                      {io.x}, act("qkv_a", tokens(fused)));
    int q;
    if (qa) {
        int qn = g.op1(blk::rms_norm("q_a_layernorm", 1, qa), {qkv_a}, act("q_a_normed", tokens(qa)));
        q = g.op1(blk::linear("q_b_proj", OpGroup::Projection, qa, q_dim, "q_b_proj"), {qn}, act("q", tokens(q_dim)));
    } else {
        q = g.op1(blk::linear("q_proj", OpGroup::Projection, h, q_dim, "q_proj"), {io.x}, act("q", tokens(q_dim)));
    }
    int ckn = g.op1(blk::rms_norm("kv_a_layernorm", 1, a.kv_lora_rank), {qkv_a}, act("kv_latent_normed", tokens(a.kv_lora_rank)));
    int kv = g.op1(blk::linear("kv_b_proj", OpGroup::Projection, a.kv_lora_rank, kvb, "kv_b_proj"), {ckn}, act("kv_expanded", tokens(kvb)));
    int k = g.op1({"key_cat", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {kv, qkv_a}, act("key_states", tokens(q_dim)));
    int attn = g.op1({"attention",
                      OpKind::Attention,
                      OpGroup::Attention,
                      Size(checked_product({2, H, qk + vd}, "attention"), {S::Batch, S::Sq, S::AttnKeys}),
                      {},
                      {{Size(H, {S::Batch, S::Sq}), R::Fp32}}},
                     {q, k, kv, pool}, act("attn_out", tokens(v_dim)));
    std::vector<int> holds = io.holds_last;
    holds.push_back(qkv_a);
    return g.op1h(blk::linear("o_proj", OpGroup::Projection, v_dim, h, "o_proj"), {attn}, act("o", tokens(h)), holds);
}

u64 mla_param(const ModelSpec& m) { return m.mla.kv_lora_rank; }

VariantHooks hooks() {
    VariantHooks h;
    h.check_split = blk::check_heads_split;
    h.label = [](const ModelSpec&, u64) { return std::string("MLA"); };
    // DeepSeek-V2's choice (arXiv 2405.04434 §2.1): d_c = 4·d_h, d_h^R = d_h/2.
    h.techniques = {{"mla", nullptr, 0, [](ModelSpec& m, u64) {
                         blk::plain_attention_base(m, "mla");
                         const u64 d = m.head_dim;
                         m.mla = MlaSpec{0, 4 * d, d / 2, d, d};
                         m.num_key_value_heads = m.num_attention_heads;
                         for (auto& l : m.layers) l.token_mixer = "mla";
                         m.sliding_window = 0;
                         return fmt::format("latent attention: d_c = 4·d_h = {}, rotary key d_h/2 = {}", 4 * d, d / 2);
                     }}};
    return h;
}

}  // namespace

void register_mla(BlockRegistry& r) {
    r.add(TokenMixer{
        "mla",
        "multi-head latent attention: K/V rebuilt from a kv_lora_rank latent + a shared rotary key; transformers caches "
        "per-head K and V, vLLM the latent (kv_lora_rank + qk_rope_head_dim per token)",
        {{"num_attention_heads", "query heads", [](const ModelSpec& m) { return m.num_attention_heads; }},
         {"mla.kv_lora_rank", "latent channels d_c", mla_param},
         {"mla.qk_rope_head_dim", "rotary key channels d_h^R", [](const ModelSpec& m) { return m.mla.qk_rope_head_dim; }},
         {"mla.qk_nope_head_dim", "per-head key channels without rotary", [](const ModelSpec& m) { return m.mla.qk_nope_head_dim; }},
         {"mla.v_head_dim", "per-head value channels", [](const ModelSpec& m) { return m.mla.v_head_dim; }}},
        {{"transformers", build_transformers, [](const BlockEnv& env) { return cache(env, 2); }},
         {"vllm", build_vllm, [](const BlockEnv& env) { return cache(env, 1); }}},
        hooks(),
        // The rotary slice: only the shared key's qk_rope_head_dim channels rotate.
        [](const ModelSpec& m) { return m.mla.qk_rope_head_dim; }});
}

}  // namespace memtax
