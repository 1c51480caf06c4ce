// Multi-head / grouped-query / multi-query attention with rotary embeddings, over every key
// (full_attention), over the last `sliding_window` keys (sliding_attention: Mistral, Qwen2's
// upper layers, Gemma-2/3 and gpt-oss local layers), or over a sparse pattern of local, global
// and random-block keys (sparse_attention: Longformer, arXiv 2004.05150; BigBird, arXiv
// 2007.14062), or over the keys of the query's own chunk of attention_chunk_size tokens
// (chunked_attention: Llama-4's local layers). Per sequence it caches K and V: 2 · kv_heads · head_dim elements per token.
// Variants read from the model: per-head q/k RMSNorm (Qwen3, Gemma-3), tanh soft-capping of the
// scores (Gemma-2), a learned sink logit per head in the softmax (gpt-oss).
#include <fmt/format.h>

#include <algorithm>

#include "blocks/block.hpp"
#include "core/format.hpp"

namespace memtax {
namespace {

using S = Sym;
using R = DtypeRole;
using C = Category;
using blk::act;
using blk::tokens;

u64 kv_heads(const ModelSpec& m) { return m.num_key_value_heads; }

// Heads and widths per GPU under tensor parallelism (Megatron's column split of q/k/v).
struct Heads {
    u64 heads_q = 0, heads_kv = 0, q_dim = 0, kv_dim = 0;
};
Heads heads(const BlockEnv& env) {
    const ModelSpec& m = env.model;
    Heads s;
    s.heads_q = blk::heads_per_gpu(m, env.shard.tp);
    s.heads_kv = blk::kv_heads_per_gpu(m, env.shard.tp);
    s.q_dim = checked_mul(s.heads_q, m.head_dim, "q_dim");
    s.kv_dim = checked_mul(s.heads_kv, m.head_dim, "kv_dim");
    return s;
}

CacheSpec kv_cache(const BlockEnv& env, u64 window) { return CacheSpec{checked_mul(2, heads(env).kv_dim, "kv cache"), 2, window}; }
CacheSpec full_cache(const BlockEnv& env) { return kv_cache(env, 0); }
CacheSpec window_cache(const BlockEnv& env) { return kv_cache(env, env.model.sliding_window); }
// A chunked layer. transformers keeps it as a sliding window of the chunk's size
// (cache_utils.DynamicCache: "from a cache point of view, both sliding and chunked are the same
// ... only the mask changes"), so its cache and its update are the sliding layer's; vLLM gives
// it a ChunkedLocalAttentionSpec (the `chunked` flag).
CacheSpec chunk_cache(const BlockEnv& env) {
    CacheSpec c = kv_cache(env, env.model.attention_chunk_size);
    c.chunked = true;
    return c;
}

// Keys a sparse query attends at most: its local window, the global tokens, the random blocks.
u64 sparse_keys(const ModelSpec& m) {
    return checked_add(checked_add(m.attn.sparse_local, m.attn.sparse_global, "sparse keys"),
                       checked_mul(m.attn.sparse_random_blocks, m.attn.sparse_block, "sparse keys"), "sparse keys");
}

// transformers' LlamaAttention / MistralAttention / Qwen2Attention in eager PyTorch.
// `joint_update`: DynamicSlidingWindowLayer.update concatenates K and V before releasing either
// old tensor, and always copies (onto empty tensors in prefill); DynamicLayer.update rebinds K
// before V's cat, and an empty cache keeps the new tensors themselves.
int build_transformers(OpGraph& g, const BlockEnv& env, const MixerIO& io, bool joint_update, bool sparse) {
    const ModelSpec& m = env.model;
    const Heads s = heads(env);
    const RuntimeSpec& rt = env.runtime;
    const KeepsAlive& keep = rt.keeps;
    const u64 h = m.hidden_size, d = m.head_dim;
    const Size q_size = tokens(s.q_dim), kv_size = tokens(s.kv_dim);
    const int xn = io.x;
    // The layer's cache storage before the step (empty in prefill).
    const Size old_size(s.kv_dim, {S::Batch, S::SkvOld});
    int k_old = g.input(TensorInfo{"k_cache_old", old_size, R::Kv, C::KvCache});
    int v_old = g.input(TensorInfo{"v_cache_old", old_size, R::Kv, C::KvCache});
    int q, k, v, qkv = -1;
    if (m.fused_projections) {
        // Phi-3: one qkv_proj; q, k, v are slices of its output, which the method's `qkv` local
        // keeps alive until it returns.
        const u64 all = checked_add(s.q_dim, checked_mul(2, s.kv_dim, "qkv"), "qkv");
        qkv = g.op1(blk::linear("qkv_proj", OpGroup::Projection, h, all, "qkv_proj", m.qkv_bias ? "qkv_bias" : nullptr), {xn},
                    act("qkv", tokens(all)));
        auto view = [&](const char* name, Size sz) {
            return g.op1({name, OpKind::Copy, OpGroup::Projection, {}, {}, {}}, {qkv},
                         TensorInfo{name, sz, R::Act, C::Activation, Lifetime::Transient, AliasRule::View});
        };
        q = view("q", q_size);
        k = view("k", kv_size);
        v = view("v", kv_size);
    } else {
        q = g.op1(blk::linear("q_proj", OpGroup::Projection, h, s.q_dim, "q_proj", m.qkv_bias ? "q_bias" : nullptr), {xn},
                  act("q", q_size));
        k = g.op1(blk::linear("k_proj", OpGroup::Projection, h, s.kv_dim, "k_proj", m.qkv_bias ? "k_bias" : nullptr), {xn},
                  act("k", kv_size));
        v = g.op1(blk::linear("v_proj", OpGroup::Projection, h, s.kv_dim, "v_proj", m.qkv_bias ? "v_bias" : nullptr), {xn},
                  act("v", kv_size));
    }
    const bool upcast = !(env.dtype(R::Act) == env.dtype(R::Fp32));
    if (m.attn.qk_norm) {
        // q_norm / k_norm over each head's channels (Qwen3Attention, Gemma3Attention).
        OpInfo qn = blk::rms_norm("q_norm", s.heads_q, d), kn = blk::rms_norm("k_norm", s.heads_kv, d);
        blk::eager_rms_norm_launches(qn, s.heads_q, d, upcast);
        blk::eager_rms_norm_launches(kn, s.heads_kv, d, upcast);
        q = g.op1(std::move(qn), {q}, act("q_normed", q_size));
        k = g.op1(std::move(kn), {k}, act("k_normed", kv_size));
    }
    // Rotary embedding: q*cos and rotate_half(q)*sin are live beside input and output; 3 FLOPs
    // an element. apply_rotary_pos_emb returns both rotated tensors before q and k are rebound.
    OpInfo rq{"rotary_q", OpKind::Rotary, OpGroup::Rotary, Size(3 * s.q_dim, {S::Batch, S::Sq}), {}, {{q_size, R::Act}, {q_size, R::Act}}};
    OpInfo rk{
        "rotary_k", OpKind::Rotary, OpGroup::Rotary, Size(3 * s.kv_dim, {S::Batch, S::Sq}), {}, {{kv_size, R::Act}, {kv_size, R::Act}}};
    blk::eager_rotary_launches(rq, s.q_dim);
    blk::eager_rotary_launches(rk, s.kv_dim);
    int qr = g.op1(std::move(rq), {q}, act("q_rot", q_size));
    int kr = g.op1(std::move(rk), {k}, act("k_rot", kv_size), {q});
    // Until self_attn returns, the decoder layer's variable keeps the normed input and the
    // attention module's `query_states` keeps the rotated queries.
    auto finish = [&](int attn_out, int probs_held) {
        std::vector<int> holds = io.holds_last;
        holds.push_back(keep.normed_input ? xn : -1);
        holds.push_back(keep.query_states ? qr : -1);
        holds.push_back(probs_held);
        holds.push_back(qkv);
        return g.op1h(blk::linear("o_proj", OpGroup::Projection, s.q_dim, h, "o_proj", m.o_bias ? "o_bias" : nullptr), {attn_out},
                      act("o", tokens(h)), holds);
    };
    // The cache update: torch.cat makes the layer's new storage while the old one is still
    // referenced; the old is released when the cache attribute is rebound.
    const Size new_size(s.kv_dim, {S::Batch, S::SkvNew});
    // Its kernels: over an existing contiguous cache a vectorized cat (old and new read, the new
    // storage written); over a window layer's sliced view, and onto the empty cache of a prefill
    // (a cat of the transposed projection), a strided gather.
    auto cache_launches = [&](OpInfo& op, DtypeRole in) {
        op.launches.push_back({LaunchClass::Vectorized, Size(s.kv_dim, {S::Batch, S::SkvNew, S::CacheContig}), R::Kv, 1, R::Kv, 1});
        op.launches.push_back({LaunchClass::Cat, Size(s.kv_dim, {S::Batch, S::SkvNew, S::CacheView}), R::Kv, 1, R::Kv, 1});
        op.launches.push_back({LaunchClass::Cat, Size(s.kv_dim, {S::Batch, S::Sq, S::Prefilling}), in, 1, R::Kv, 1});
    };
    int kc, vc;
    if (joint_update) {
        auto copy = [&](const char* name) { return TensorInfo{name, new_size, R::Kv, C::KvCache, Lifetime::Persistent, AliasRule::None}; };
        OpInfo upd{"kv_cache_update", OpKind::Copy, OpGroup::KvCache, {}, {}, {}};
        cache_launches(upd, R::Act);
        cache_launches(upd, R::Act);
        auto out = g.op(std::move(upd), {kr, v, k_old, v_old}, {copy("k_cache"), copy("v_cache")});
        kc = out[0];
        vc = out[1];
    } else {
        // Without a quantising copy (cache dtype = compute dtype) an empty cache keeps the tensor.
        const AliasRule fresh = env.dtype(R::Kv) == env.dtype(R::Act) ? AliasRule::IfFreshCache : AliasRule::None;
        auto cache_out = [&](const char* name) { return TensorInfo{name, new_size, R::Kv, C::KvCache, Lifetime::Persistent, fresh}; };
        OpInfo ku{"k_cache_update", OpKind::Copy, OpGroup::KvCache, {}, {}, {}},
            vu{"v_cache_update", OpKind::Copy, OpGroup::KvCache, {}, {}, {}};
        cache_launches(ku, R::Act);
        cache_launches(vu, R::Act);
        kc = g.op1(std::move(ku), {kr, k_old}, cache_out("k_cache"));
        vc = g.op1(std::move(vu), {v, v_old}, cache_out("v_cache"));
    }
    // repeat_kv with one query head per KV head returns its input.
    const AliasRule no_gqa = s.heads_q == s.heads_kv ? AliasRule::View : AliasRule::None;
    int attn_out;
    int probs_held = -1;
    if (rt.attention == AttentionKernel::Eager) {
        // eager_attention_forward: repeat_kv materialises K and V per query head (GQA),
        // scores = (Q Kᵀ) · scale + mask, softmax in the softmax dtype, cast back, P V.
        const Size rep(s.heads_q * d, {S::Batch, S::Skv});
        // A sparse layer's kernel keeps only the scores of the keys each query attends.
        const Size ss(s.heads_q, {S::Batch, S::Sq, sparse ? S::AttnKeys : S::Skv});
        const Size qk_flops(checked_product({2, s.heads_q, d}, "scores"), {S::Batch, S::Sq, sparse ? S::AttnKeys : S::Skv});
        // repeat_kv: expand (a stride-0 view) and reshape, which copies from the broadcast source.
        OpInfo rk_op{"repeat_k", OpKind::Copy, OpGroup::Attention, {}, {}, {}},
            rv_op{"repeat_v", OpKind::Copy, OpGroup::Attention, {}, {}, {}};
        if (s.heads_q != s.heads_kv) {
            rk_op.launches.push_back({LaunchClass::StridedCopy, rep, R::Kv, 1, R::Act, 1});
            rv_op.launches.push_back({LaunchClass::StridedCopy, rep, R::Kv, 1, R::Act, 1});
        }
        int krep = g.op1(std::move(rk_op), {kc}, TensorInfo{"k_repeated", rep, R::Act, C::Activation, Lifetime::Transient, no_gqa});
        int vrep = g.op1(std::move(rv_op), {vc}, TensorInfo{"v_repeated", rep, R::Act, C::Activation, Lifetime::Transient, no_gqa});
        OpInfo qk{"scores_qk", OpKind::Matmul, OpGroup::Attention, qk_flops, {}, {}};
        qk.saves_inputs = 0b11;
        int s0 = g.op1(std::move(qk), {qr, krep}, act("scores", ss, C::AttentionMatrix));
        int s1 = g.op1({"scores_scale", OpKind::Elementwise, OpGroup::Attention, ss, {}, {}}, {s0},
                       act("scores_scaled", ss, C::AttentionMatrix));
        if (m.attn.softcap) {
            // Gemma-2: scores / cap, tanh, × cap, each a new S×S tensor.
            s1 = g.op1({"softcap_div", OpKind::Elementwise, OpGroup::Attention, ss, {}, {}}, {s1},
                       act("scores_div", ss, C::AttentionMatrix));
            OpInfo th{"softcap_tanh", OpKind::Elementwise, OpGroup::Attention, Size(4 * s.heads_q, {S::Batch, S::Sq, S::Skv}), {}, {}};
            th.saves_output = true;
            s1 = g.op1(std::move(th), {s1}, act("scores_tanh", ss, C::AttentionMatrix));
            s1 = g.op1({"softcap_mul", OpKind::Elementwise, OpGroup::Attention, ss, {}, {}}, {s1},
                       act("scores_capped", ss, C::AttentionMatrix));
        }
        // + the causal mask, broadcast over the heads: a strided kernel.
        OpInfo mask_op{"scores_mask", OpKind::Elementwise, OpGroup::Attention, ss, {}, {}};
        mask_op.launches.push_back({LaunchClass::Strided, ss, R::Act, 1, R::Act, 1});
        int s2 = g.op1(std::move(mask_op), {s1}, act("scores_masked", ss, C::AttentionMatrix));
        // attn_output.transpose(1, 2).contiguous(): a copy from the transposed heads, except with
        // one query token, where the transposed view is already contiguous.
        const Launch transpose_copy{LaunchClass::StridedCopy, Size(s.q_dim, {S::Batch, S::Sq, S::Prefilling}), R::Act, 1, R::Act, 1};
        if (m.attn.sinks) {
            // gpt-oss eager_attention_forward: the sink logit of each head is appended as one more
            // column (cat), the row max subtracted (a new tensor), softmax in the compute dtype;
            // the probabilities drop the sink column as a view.
            const Size sk(s.heads_q, {S::Batch, S::Sq, S::SkvSink});
            OpInfo cat{"sinks_cat", OpKind::Copy, OpGroup::Attention, {}, {}, {}};
            cat.weights.push_back({"sinks", s.heads_q, DtypeRole::Param});
            int c = g.op1(std::move(cat), {s2}, act("scores_with_sink", sk, C::AttentionMatrix));
            // `attn_weights` (the masked scores) stays referenced until it is rebound after the softmax.
            int c2 = g.op1({"sinks_sub_max", OpKind::Elementwise, OpGroup::Attention, sk, {}, {}}, {c},
                           act("scores_shifted", sk, C::AttentionMatrix), {s2});
            OpInfo sm{"softmax", OpKind::Softmax, OpGroup::Attention, Size(5 * s.heads_q, {S::Batch, S::Sq, S::SkvSink}), {}, {}};
            sm.saves_output = true;
            sm.launches.push_back({LaunchClass::Softmax, sk, R::Act, 1, R::Act, 1});
            int pr = g.op1(std::move(sm), {c2}, act("probs_with_sink", sk, C::AttentionMatrix), {s2});
            OpInfo pv{"probs_v", OpKind::Matmul, OpGroup::Attention, qk_flops, {}, {}};
            pv.saves_inputs = 0b11;
            int oh = g.op1(std::move(pv), {pr, vrep}, act("attn_heads", tokens(s.q_dim)));
            OpInfo tr{"heads_transpose", OpKind::Copy, OpGroup::Attention, {}, {}, {}};
            tr.launches.push_back(transpose_copy);
            attn_out = g.op1(std::move(tr), {oh}, act("attn_out", q_size), {krep, vrep});
            if (keep.attn_weights) probs_held = pr;
            return finish(attn_out, probs_held);
        }
        // softmax(x, dtype=fp32) converts a bf16 input to an fp32 copy first; only a CUDA fp16
        // input takes the fused half-to-float path (ATen SoftMax.cpp, softmax()), and nothing is
        // converted when the dtypes already agree. 5 FLOPs an element (max, sub, exp, sum, div).
        OpInfo softmax{"softmax", OpKind::Softmax, OpGroup::Attention, Size(5 * s.heads_q, {S::Batch, S::Sq, S::Skv}), {}, {}};
        softmax.saves_output = true;
        // Its backward (SoftmaxBackward0 into the structured CUDA kernel) holds two buffers of the
        // output's size in the softmax dtype beside the incoming gradient, before the upcast's
        // backward makes the input's gradient (allocator trace on the H200,
        // kernels/torch/trace_train_peak.py).
        softmax.backward_workspace = {{ss, R::Softmax, C::AttentionMatrix}, {ss, R::Softmax, C::AttentionMatrix}};
        if (!(env.dtype(R::Softmax) == env.dtype(R::Act)) && env.dtype(R::Act).name != "fp16") {
            softmax.workspace.push_back({ss, R::Softmax, C::AttentionMatrix});
            softmax.launches.push_back({LaunchClass::Strided, ss, R::Act, 1, R::Softmax, 1});  // the converting copy
            softmax.launches.push_back({LaunchClass::Softmax, ss, R::Softmax, 1, R::Softmax, 1});
        } else {
            softmax.launches.push_back({LaunchClass::Softmax, ss, R::Act, 1, R::Softmax, 1});
        }
        int p32 = g.op1(std::move(softmax), {s2}, TensorInfo{"probs", ss, R::Softmax, C::AttentionMatrix});
        // `attn_weights = softmax(attn_weights, dtype=fp32).to(q.dtype)`: the masked scores stay
        // referenced until the whole right-hand side is done.
        const AliasRule same = env.dtype(R::Softmax) == env.dtype(R::Act) ? AliasRule::View : AliasRule::None;
        int p = g.op1({"probs_cast", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {p32},
                      TensorInfo{"probs_act", ss, R::Act, C::AttentionMatrix, Lifetime::Transient, same}, {s2});
        if (rt.training.dropout) {
            // Attention dropout (training): a new tensor and its 1-byte mask, kept for backward.
            OpInfo drop{"attn_dropout", OpKind::Elementwise, OpGroup::Attention, ss, {}, {}};
            drop.saved = {{ss, R::Bool, C::AttentionMatrix}};
            p = g.op1(std::move(drop), {p}, act("probs_dropped", ss, C::AttentionMatrix));
        }
        OpInfo pv{"probs_v", OpKind::Matmul, OpGroup::Attention, qk_flops, {}, {}};
        pv.saves_inputs = 0b11;
        int oh = g.op1(std::move(pv), {p, vrep}, act("attn_heads", tokens(s.q_dim)));
        // repeat_kv's results are locals of eager_attention_forward, alive until it returns.
        OpInfo tr{"heads_transpose", OpKind::Copy, OpGroup::Attention, {}, {}, {}};
        tr.launches.push_back(transpose_copy);
        attn_out = g.op1(std::move(tr), {oh}, act("attn_out", q_size), {krep, vrep});
        if (keep.attn_weights) probs_held = p;
    } else {
        // SDPA/flash: no S×S tensor, only per-row softmax statistics (fp32 log-sum-exp). When
        // the runtime repeats K/V for the kernel (Repeat = 1) the copies are made first; a bool
        // mask is turned into an additive one in the compute dtype (ATen
        // convert_boolean_attn_mask: where(mask, 0, -inf), no temporary besides the result).
        const Size rep(s.heads_q * d, {S::Batch, S::Skv, S::Repeat});
        OpInfo rk_op{"repeat_k", OpKind::Copy, OpGroup::Attention, {}, {}, {}},
            rv_op{"repeat_v", OpKind::Copy, OpGroup::Attention, {}, {}, {}};
        if (s.heads_q != s.heads_kv) {
            rk_op.launches.push_back({LaunchClass::StridedCopy, rep, R::Kv, 1, R::Act, 1});
            rv_op.launches.push_back({LaunchClass::StridedCopy, rep, R::Kv, 1, R::Act, 1});
        }
        int krep = g.op1(std::move(rk_op), {kc}, TensorInfo{"k_repeated", rep, R::Act, C::Activation, Lifetime::Transient, no_gqa});
        int vrep = g.op1(std::move(rv_op), {vc}, TensorInfo{"v_repeated", rep, R::Act, C::Activation, Lifetime::Transient, no_gqa});
        int mask_add = g.op1({"mask_to_additive", OpKind::Elementwise, OpGroup::Attention, {}, {}, {}}, {},
                             act("mask_additive", Size(1, {S::Batch, S::Sq, S::Skv, S::MaskConv}), C::AttentionMatrix));
        // Q·Kᵀ and P·V over the keys each query attends: 4 FLOPs per query, key and channel.
        OpInfo fused{"fused_attention",
                     OpKind::Attention,
                     OpGroup::Attention,
                     Size(checked_product({4, s.heads_q, d}, "attention"), {S::Batch, S::Sq, S::AttnKeys}),
                     {},
                     {{Size(s.heads_q, {S::Batch, S::Sq}), R::Fp32}}};
        // A sink-aware kernel (FlashAttention-3 with sinks) reads the per-head sink logits.
        if (m.attn.sinks) fused.weights.push_back({"sinks", s.heads_q, DtypeRole::Param});
        // Training: the kernel keeps q, k, v, its output and the fp32 log-sum-exp per query and head.
        fused.saves_inputs = 0b111;
        fused.saves_output = true;
        fused.saved.push_back({Size(s.heads_q, {S::Batch, S::Sq}), R::Fp32});
        // With native GQA the kernel reads (and keeps) K and V themselves, not the zero-sized
        // repeats standing in the graph for the copies it did not make: the cache's storages
        // (C::KvCache says so: a cache the caller keeps adds nothing to them).
        if (s.heads_q != s.heads_kv) {
            fused.saved.push_back({Size(s.kv_dim, {S::Batch, S::Skv, S::NativeGqa}), R::Act, C::KvCache});
            fused.saved.push_back({Size(s.kv_dim, {S::Batch, S::Skv, S::NativeGqa}), R::Act, C::KvCache});
        }
        attn_out = g.op1(std::move(fused), {qr, krep, vrep, mask_add}, act("attn_out", q_size));
    }
    return finish(attn_out, probs_held);
}

// vLLM's attention layer: one merged QKV projection; rotary in place on the q and k views; the
// attention kernel writes its output buffer and the new K/V into the preallocated pool.
int build_vllm(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const Heads s = heads(env);
    const u64 h = m.hidden_size;
    // The paged KV the attention reads (SkvOld tokens in all; 0 in the start-up profile run,
    // which has no cache yet).
    const Size pool(s.kv_dim, {S::Batch, S::SkvOld});
    int kv_k = g.input(TensorInfo{"kv_pool_k", pool, R::Kv, C::KvCache});
    int kv_v = g.input(TensorInfo{"kv_pool_v", pool, R::Kv, C::KvCache});
    const u64 qkv_dim = checked_add(s.q_dim, checked_mul(2, s.kv_dim, "qkv"), "qkv");
    int qkv = g.op1(blk::linear("qkv_proj", OpGroup::Projection, h, qkv_dim, "qkv_proj", m.qkv_bias ? "qkv_bias" : nullptr), {io.x},
                    act("qkv", tokens(qkv_dim)));
    OpInfo op{"attention",
              OpKind::Attention,
              OpGroup::Attention,
              Size(checked_product({4, s.heads_q, m.head_dim}, "attention"), {S::Batch, S::Sq, S::AttnKeys}),
              {},
              {{Size(s.heads_q, {S::Batch, S::Sq}), R::Fp32}}};
    if (m.attn.sinks) op.weights.push_back({"sinks", s.heads_q, DtypeRole::Param});
    int attn = g.op1(std::move(op), {qkv, kv_k, kv_v}, act("attn_out", tokens(s.q_dim)));
    // `qkv` and its views are locals of the attention module until it returns.
    std::vector<int> holds = io.holds_last;
    holds.push_back(qkv);
    return g.op1h(blk::linear("o_proj", OpGroup::Projection, s.q_dim, h, "o_proj", m.o_bias ? "o_bias" : nullptr), {attn},
                  act("o", tokens(h)), holds);
}

std::vector<ParamDecl> params(bool sliding, bool sparse = false, bool chunked = false) {
    std::vector<ParamDecl> p = {
        {"num_attention_heads", "query heads", [](const ModelSpec& m) { return m.num_attention_heads; }},
        {"num_key_value_heads", "KV heads (= query heads: MHA; 1: MQA)", kv_heads},
        {"head_dim", "channels per head", [](const ModelSpec& m) { return m.head_dim; }},
    };
    if (sliding) p.push_back({"sliding_window", "tokens each query attends", [](const ModelSpec& m) { return m.sliding_window; }});
    if (chunked)
        p.push_back({"attention_chunk_size", "tokens per chunk: a query attends its own chunk's keys",
                     [](const ModelSpec& m) { return m.attention_chunk_size; }});
    if (sparse)
        p.push_back({"attention.sparse_local", "keys each query attends: local window + global tokens + random blocks", sparse_keys});
    return p;
}

// The model's own label: MHA, GQA or MQA by its KV heads.
std::string full_label(const ModelSpec& m, u64) {
    return m.num_key_value_heads == m.num_attention_heads ? "MHA" : m.num_key_value_heads == 1 ? "MQA" : "GQA";
}

u64 rotary(const ModelSpec& m) { return checked_mul(m.attn.rotary_tables, m.head_dim, "rotary tables"); }

// compare's rewrites into these variants keep the model's heads; an MLA or SSM base is rewritten
// whole.
std::string gqa_family(ModelSpec& m, u64 kv, const char* what) {
    blk::plain_attention_base(m, what);
    const u64 h = m.num_attention_heads;
    if (kv == 0) kv = m.num_key_value_heads < h ? m.num_key_value_heads : std::max<u64>(1, h / 8);
    while (h % kv) --kv;
    m.num_key_value_heads = kv;
    for (auto& l : m.layers) l.token_mixer = "full_attention";
    m.sliding_window = 0;
    return fmt::format("full attention, {} KV head{} for {} query heads", kv, kv == 1 ? "" : "s", h);
}

void windowed(ModelSpec& m, u64 window, const char* what) {
    blk::plain_attention_base(m, what);
    m.sliding_window = window;
    for (auto& l : m.layers) l.token_mixer = "sliding_attention";
}

std::vector<Technique> full_techniques() {
    return {{"mha", nullptr, 0, [](ModelSpec& m, u64) { return gqa_family(m, m.num_attention_heads, "mha"); }},
            {"gqa", nullptr, 0, [](ModelSpec& m, u64) { return gqa_family(m, 0, "gqa"); }},
            {"mqa", nullptr, 0, [](ModelSpec& m, u64) { return gqa_family(m, 1, "mqa"); }}};
}

std::vector<Technique> sliding_techniques() {
    return {{"sliding", "W", 4096,
             [](ModelSpec& m, u64 w) {
                 windowed(m, w, "sliding");
                 return fmt::format("every layer attends the last {} tokens", group_digits(w));
             }},
            // StreamingLLM (arXiv 2309.17453): 4 attention-sink tokens + a recent window; the
            // cache holds the budget, whatever the context.
            {"evict", "N", 4 + 2044, [](ModelSpec& m, u64 budget) {
                 windowed(m, budget, "evict");
                 return fmt::format("eviction: the cache keeps {} tokens per layer (attention sinks + recent window)",
                                    group_digits(budget));
             }}};
}

std::vector<Technique> sparse_techniques() {
    // BigBird's ITC layout (arXiv 2007.14062): 3 blocks of 64 local, 2 global, 3 random.
    return {{"sparse", nullptr, 0, [](ModelSpec& m, u64) {
                 blk::plain_attention_base(m, "sparse");
                 m.attn.sparse_block = 64;
                 m.attn.sparse_local = 3 * 64;
                 m.attn.sparse_global = 2 * 64;
                 m.attn.sparse_random_blocks = 3;
                 for (auto& l : m.layers) l.token_mixer = "sparse_attention";
                 m.sliding_window = 0;
                 return std::string(
                     "block-sparse attention: 192 local + 128 global + 3 random blocks of 64 keys per query (BigBird); every token "
                     "stays cached");
             }}};
}

VariantHooks hooks(std::string (*label)(const ModelSpec&, u64), std::vector<Technique> t) {
    VariantHooks h;
    h.check_split = blk::check_heads_split;
    h.label = label;
    h.techniques = std::move(t);
    return h;
}

}  // namespace

void register_attention(BlockRegistry& r) {
    r.add(TokenMixer{
        "full_attention",
        "multi-head / grouped-query attention over every key, with rotary embeddings; caches K and V",
        params(false),
        {{"transformers", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return build_transformers(g, env, io, false, false); },
          full_cache},
         {"vllm", build_vllm, full_cache}},
        hooks(full_label, full_techniques()),
        rotary});
    r.add(TokenMixer{
        "sliding_attention",
        "grouped-query attention over the last sliding_window keys; caches K and V of at most the window",
        params(true),
        {{"transformers", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return build_transformers(g, env, io, true, false); },
          window_cache},
         {"vllm", build_vllm, window_cache}},
        hooks([](const ModelSpec& m, u64) { return fmt::format("sliding {}", m.sliding_window); }, sliding_techniques()),
        rotary});
    r.add(TokenMixer{
        "chunked_attention",
        "grouped-query attention over the keys of the query's own chunk of attention_chunk_size tokens (Llama-4's local "
        "layers); transformers caches it as a window of the chunk, vLLM as chunked local attention",
        params(false, false, true),
        {{"transformers", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return build_transformers(g, env, io, true, false); },
          chunk_cache},
         {"vllm", build_vllm, chunk_cache}},
        hooks([](const ModelSpec& m, u64) { return fmt::format("chunked {}", m.attention_chunk_size); }, {}),
        rotary});
    r.add(TokenMixer{
        "sparse_attention",
        "block-sparse attention: each query attends local + global + random-block keys (scores and reads scale with the "
        "non-zeros); caches every token's K and V",
        params(false, true),
        {{"transformers", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return build_transformers(g, env, io, false, true); },
          [](const BlockEnv& env) {
              CacheSpec c = kv_cache(env, 0);
              c.attend_cap = sparse_keys(env.model);
              return c;
          }}},
        hooks(nullptr, sparse_techniques()),
        rotary});
}

}  // namespace memtax
