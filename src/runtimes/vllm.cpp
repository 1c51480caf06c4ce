// vLLM (V1 engine): at start-up it runs a dummy forward of max_num_batched_tokens flattened
// tokens and a dummy sampler pass, captures CUDA graphs, and gives whatever remains of
// gpu_memory_utilization × total memory to a pool of KV blocks (vllm/v1/worker/gpu_worker.py
// determine_available_memory, vllm/v1/core/kv_cache_utils.py, vllm/v1/kv_cache_interface.py).
// Everything but the pool's use depends on the engine's settings, not on the point: it is
// computed once, when the plan is compiled; a point only asks how many sequences of its
// context the pool holds.
#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "runtimes/runtime.hpp"
#include "runtimes/shared.hpp"

namespace memtax {
namespace {

using S = Sym;
__extension__ typedef unsigned __int128 u128;
using blk::act;

// vLLM's decoder layer: the residual stream is two tensors (hidden, residual) updated in place
// by fused_add_rms_norm; the layer returns new ones from its MLP.
OpGraph build_layer(const BlockEnv& env, const LayerSpec& layer, const LayerBlocks& blocks, u64 round_to) {
    OpGraph g(fmt::format("vllm_layer/{}+{}", layer.token_mixer, layer.channel_mixer), env.dtypes, round_to);
    const u64 h = env.model.hidden_size;
    const Size th = blk::tokens(h);
    int x = g.input(act("hidden", th));
    int res = g.input(act("residual", th));
    auto norm = [&](const char* name) {
        OpInfo op{name, OpKind::Norm, OpGroup::Norm, Size(4 * h, {S::Batch, S::Sq}), {}, {}};
        op.weights.push_back({name, norm_width(env.model), DtypeRole::Param});
        return op;
    };
    auto in_place = [&](const char* name) {
        return TensorInfo{name, th, DtypeRole::Act, Category::Activation, Lifetime::Transient, AliasRule::Always};
    };
    int xn = g.op1(norm("input_norm"), {x, res}, in_place("hidden_normed"));
    int o = blocks.token.build(g, env, MixerIO{xn, {}, false});
    if (layer.channel_mixer == "none") {
        // A mixer-only block: the residual is added by the next layer's fused norm.
        TensorInfo out = act("hidden_out", th);
        out.lifetime = Lifetime::Persistent;
        out.alias = AliasRule::View;
        g.op1({"mixer_out", OpKind::Copy, OpGroup::Residual, {}, {}, {}}, {o}, out, {res});
        g.finalize();
        return g;
    }
    if (env.model.attn.sandwich_norm) o = g.op1(norm("post_attention_norm"), {o}, act("o_normed", th));
    int on = g.op1(norm(env.model.attn.sandwich_norm ? "pre_feedforward_norm" : "post_attention_norm"), {o, res}, in_place("o_normed"));
    if (env.model.attn.sandwich_norm) {
        int d = blocks.channel.build(g, env, MixerIO{on, {res}, false});
        TensorInfo out = act("hidden_out", th);
        out.lifetime = Lifetime::Persistent;
        g.op1(norm("post_feedforward_norm"), {d}, out, {res});
        g.finalize();
        return g;
    }
    blocks.channel.build(g, env, MixerIO{on, {res}, true});
    g.finalize();
    return g;
}

// vLLM's sampler on its start-up dummy run: logits for Kept requests upcast to fp32, top-k/
// top-p by sorting (fp32 values + int64 indices), softmax, the exponential race of random
// sampling (vllm/v1/sample/ops/topk_topp_sampler.py). Batch = 1; Kept = requests sampled; the
// hidden states of the profile run stay referenced.
OpGraph build_sampler(const CompileInput& in, const std::array<DType, kDtypeRoles>& dt) {
    using R = DtypeRole;
    using C = Category;
    OpGraph g("vllm_sampler", dt, in.runtime.allocator_round_bytes);
    const u64 h = in.model.hidden_size;
    const Size nv(in.model.vocab_size, {S::Batch, S::Kept});
    auto t = [&](const char* name, R r, Lifetime life = Lifetime::Transient) { return TensorInfo{name, nv, r, C::Logits, life}; };
    auto op = [](const char* name, OpKind k) { return OpInfo{name, k, OpGroup::Sampler, {}, {}, {}}; };
    int hidden = g.input(act("last_hidden_states", blk::tokens(h)));
    int hs = g.op1(op("select_logit_rows", OpKind::Copy), {hidden}, act("sample_hidden", Size(h, {S::Batch, S::Kept})));
    int l = g.op1(op("lm_head", OpKind::Matmul), {hs}, act("logits_act", nv, C::Logits), {hidden});
    int l32 = g.op1(op("logits_fp32", OpKind::Copy), {l}, t("logits", R::Fp32), {hidden});
    // apply_top_k_top_p: sort, mask below the k-th value, softmax + cumsum (in place), mask
    // above p, scatter back; its locals live until it returns.
    auto sorted = g.op(op("sort", OpKind::Sort), {l32}, {t("logits_sorted", R::Fp32), t("sort_index", R::Index)}, {l});
    int topk = g.op1(op("top_k_mask", OpKind::Elementwise), {sorted[0]}, t("top_k_mask", R::Bool), {l, l32, sorted[1]});
    int probs_sort = g.op1(op("top_p_softmax", OpKind::Softmax), {sorted[0], topk}, t("probs_sort", R::Fp32), {l, l32, sorted[1]});
    int topp = g.op1(op("top_p_mask", OpKind::Elementwise), {probs_sort}, t("top_p_mask", R::Bool), {l, l32, sorted[0], sorted[1]});
    int filtered = g.op1(op("scatter", OpKind::Copy), {sorted[0], sorted[1], topp}, t("logits_filtered", R::Fp32), {l, l32, probs_sort});
    // random_sample: probs = softmax(logits); q = empty_like(probs).exponential_(); argmax(probs / q).
    int probs = g.op1(op("softmax", OpKind::Softmax), {filtered}, t("probs", R::Fp32), {l, l32});
    int q = g.op1(op("exponential", OpKind::Elementwise), {}, t("exp_noise", R::Fp32), {l, l32, probs});
    g.op1(op("argmax", OpKind::Elementwise), {probs, q},
          TensorInfo{"sampled", Size(1, {S::Batch, S::Kept}), R::Index, C::Logits, Lifetime::Persistent}, {l, l32});
    g.finalize();
    return g;
}

class VllmPlan final : public RuntimePlan {
public:
    explicit VllmPlan(const CompileInput& in);
    void evaluate(const Point& p, PointResult& r) const noexcept override;
    void describe(const Point& p, const PointResult& r, Breakdown& out) const override;
    u64 weights() const override { return weights_; }
    u64 parameters() const override { return parameters_; }
    u64 active_parameters() const override { return active_parameters_; }
    std::string overflow_term(const PointResult& r) const override;
    FirstToken first_tokens(const StepCosts& c) const override;
    u64 max_running() const override { return p_.max_num_seqs; }
    Scheduler scheduler() const override { return Scheduler{true, p_.max_num_batched_tokens}; }
    bool expert_parallel() const override { return true; }
    bool sizes_pool_at_startup() const override { return true; }
    std::string ttft_meaning(u64 batch, u64 context) const override;

private:
    using Type = LayerType;
    // The profile forward over `tokens` flattened tokens: ids and positions (int64), then one
    // layer's peak (the residual stream enters each layer, which returns new ones).
    u64 forward_peak(u64 tokens, size_t* type = nullptr, GraphEval* out = nullptr) const;
    u64 blocks_per_request(u64 max_len) const noexcept;

    ModelSpec model_;
    RuntimeSpec rt_;
    VllmParams p_;
    ShardSizes shard_;
    DtypePolicy dt_;
    std::array<DType, kDtypeRoles> dtypes_;
    bool has_head_, has_embedding_;
    std::vector<Type> types_;
    OpGraph embedding_, head_, sampler_;
    u64 parameters_ = 0, active_parameters_ = 0;
    std::vector<Component> weight_components_;
    u64 weights_ = 0, capacity_ = 0;
    std::string overhead_source_;
    // Start-up results, per GPU.
    u64 requested_ = 0, forward_peak_ = 0, sampler_peak_ = 0, sampler_requests_ = 0, graph_pool_ = 0, non_torch_ = 0;
    u64 logits_ = 0, available_ = 0, page_ = 0, group_ = 0, num_blocks_ = 0, n_full_ = 0, n_window_ = 0, window_ = 0;
    // KV groups (vLLM's hybrid allocator): state layers (Mamba) keep one page per request; the
    // attention block size may be raised so one attention page holds a state page.
    u64 n_state_ = 0, block_ = 0, groups_full_ = 0, groups_window_ = 0, groups_state_ = 0, state_bytes_ = 0, padding_layers_ = 0;
    u64 n_chunk_ = 0, chunk_ = 0, groups_chunk_ = 0;  // chunked local attention (Llama-4)
    bool kv_positive_ = false;
    // Blocks of one max_model_len request when max_model_len is given (0 otherwise: it is then
    // the point's context, whose blocks each point computes anyway).
    u64 model_len_blocks_ = 0;
    u64 model_len_of(u64 context) const noexcept { return p_.max_model_len ? p_.max_model_len : context; }
    u64 model_len_blocks(u64 context_blocks) const noexcept { return p_.max_model_len ? model_len_blocks_ : context_blocks; }
    // The block size and why (vLLM forces one per MLA backend), and the MLA backend picked.
    std::string block_rule_;
    std::string peak_at_;
    std::vector<LiveItem> live_at_peak_;
};

Bindings profile_bindings(u64 tokens);

VllmPlan::VllmPlan(const CompileInput& in)
    : model_(in.model),
      rt_(in.runtime),
      p_(*in.runtime.vllm),
      shard_(in.shard),
      dt_(in.dtypes),
      dtypes_(graph_dtypes(in.model, in.dtypes, in.model.dtype)),
      has_head_(in.has_head),
      has_embedding_(in.has_embedding),
      embedding_(build_embedding_graph(in, dtypes_)),
      head_(build_head_graph(in, dtypes_, false, false)),
      sampler_(build_sampler(in, dtypes_)) {
    if (!dt_.kv.whole_bytes())
        throw InputError(SourcePos{}, "workload.kv_dtype", fmt::format("vLLM has no {} KV cache; use bf16, fp16 or fp8_e4m3", dt_.kv.name));
    const BlockEnv env{model_, shard_, rt_, "vllm", dtypes_};
    types_ = build_layer_types(in, env, build_layer);
    // Layers by kind of cache: full attention, windowed, or a fixed state (Mamba); the largest
    // per-token entry and per-sequence state size the pages.
    u64 per_token = 0;
    for (const auto& t : types_) {
        if (t.cache.elements_per_sequence) {
            n_state_ += t.count;
            state_bytes_ = std::max(state_bytes_, model_.dtype.bytes(t.cache.elements_per_sequence, "mamba page"));
            continue;
        }
        if (t.cache.chunked) {
            n_chunk_ += t.count;
            chunk_ = t.cache.window;
        } else {
            (t.cache.window ? n_window_ : n_full_) += t.count;
            if (t.cache.window) window_ = t.cache.window;
        }
        per_token = std::max(per_token, t.cache.elements_per_token);
    }
    StageWeights w = stage_weights(model_, types_, has_embedding_ ? &embedding_ : nullptr, has_head_ ? &head_ : nullptr, shard_.tp);
    weights_ = w.bytes;
    parameters_ = w.parameters;
    active_parameters_ = w.active_parameters;
    weight_components_ = std::move(w.components);
    capacity_ = in.gpu.usable_memory_bytes;
    const ContextOverhead& oh = rt_.overhead_for(in.gpu.name);
    overhead_source_ = oh.source;
    non_torch_ = oh.bytes;

    size_t peak_type = 0;
    GraphEval lev;
    forward_peak_ = forward_peak(p_.max_num_batched_tokens, &peak_type, &lev);
    sampler_requests_ = std::min(p_.max_num_seqs, p_.max_num_batched_tokens);
    peak_at_ =
        std::string("profile forward ") + (lev.peak_op >= 0 ? types_[peak_type].graph.ops()[static_cast<size_t>(lev.peak_op)].name : "");
    if (lev.peak_op >= 0)
        for (const auto& l : types_[peak_type].graph.live_at(profile_bindings(p_.max_num_batched_tokens), lev.peak_op))
            live_at_peak_.push_back(
                {l.name, l.bytes, fmt::format("{}, profile forward ({})", to_string(l.category), types_[peak_type].spec.token_mixer)});
    if (has_head_) {  // only the last pipeline stage samples
        Bindings b;
        b[S::Batch] = 1;
        b[S::Sq] = p_.max_num_batched_tokens;
        b[S::Kept] = sampler_requests_;
        const GraphEval g = sampler_.evaluate(b);
        if (g.overflow) throw OverflowError(sampler_.item_name(g.overflow_tensor));
        sampler_peak_ = g.peak_bytes;
        if (sampler_peak_ > forward_peak_) {
            logits_ = g.at_peak[Category::Logits];
            peak_at_ = std::string("sampler ") + sampler_.ops()[static_cast<size_t>(g.peak_op)].name;
            live_at_peak_.clear();
            for (const auto& l : sampler_.live_at(b, g.peak_op))
                live_at_peak_.push_back({l.name, l.bytes, fmt::format("{}, profile sampler", to_string(l.category))});
        }
    }
    const u64 act_peak = std::max(forward_peak_, sampler_peak_);
    graph_pool_ = p_.cudagraph_max_capture_size ? forward_peak(p_.cudagraph_max_capture_size) : 0;
    // requested = total × utilisation, in exact integer arithmetic (ppm).
    requested_ = mul_frac(capacity_, p_.gpu_memory_utilization_ppm, 1000000);
    const u64 non_kv =
        checked_add(checked_add(weights_, act_peak, "vllm non-kv"), checked_add(non_torch_, graph_pool_, "vllm non-kv"), "vllm non-kv");
    if (p_.kv_cache_memory_bytes) {
        // --kv-cache-memory-bytes: the pool is the size given, whatever utilisation says
        // (gpu_worker.determine_available_memory returns it); it must fit beside the rest.
        requested_ = checked_add(non_kv, p_.kv_cache_memory_bytes, "vllm requested");
        kv_positive_ = requested_ <= capacity_;
        available_ = kv_positive_ ? p_.kv_cache_memory_bytes : 0;
    } else {
        kv_positive_ = requested_ > non_kv;
        available_ = kv_positive_ ? requested_ - non_kv : 0;
    }
    // Pages (vLLM kv_cache_interface.py): an attention page is block_size tokens of one layer's
    // cached tensors (K and V, or MLA's one latent); a Mamba page is one sequence's conv + SSM
    // state (in the model's dtype: mamba_cache_dtype "auto").
    const u64 token_bytes = per_token ? dt_.kv.bytes(per_token, "kv page") : 0;
    block_ = p_.block_size;
    block_rule_ = "block_size";
    if (model_.mla.kv_lora_rank) {
        // MLA's backends force their page size (vllm/platforms/cuda.py check_and_update_config):
        // FlashMLA (the default on Hopper, SM 9.x) and FlashInfer-MLA (the default on Blackwell,
        // SM 10.x) need a multiple of 64 (FlashInfer-MLA also takes 32), CUTLASS-MLA a multiple
        // of 128; Triton MLA (older GPUs) takes any.
        std::string backend = p_.attention_backend;
        const unsigned cc = in.gpu.compute_capability;
        if (backend.empty()) backend = cc / 10 == 9 ? "FLASHMLA" : cc / 10 == 10 ? "FLASHINFER_MLA" : "TRITON_MLA";
        const u64 before = block_;
        if (backend == "FLASHMLA" && block_ % 64 != 0) block_ = 64;
        if (backend == "FLASHINFER_MLA" && block_ != 32 && block_ % 64 != 0) block_ = 64;
        if (backend == "CUTLASS_MLA" && block_ % 128 != 0) block_ = 128;
        block_rule_ = block_ != before ? fmt::format("{} forces {} (block_size {} asked; vllm/platforms/cuda.py)", backend, block_, before)
                                       : fmt::format("block_size, kept by {}", backend);
    }
    if (n_state_ && token_bytes) {
        // Attention + Mamba (model_executor/models/config.py): the attention block grows to a
        // multiple of 16 tokens whose page holds a Mamba page; the Mamba page is padded up to it.
        block_ = checked_mul(16, ceil_div(state_bytes_, checked_mul(16, token_bytes, "kv page")), "kv block");
        block_ = std::max(block_, p_.block_size);
    }
    page_ = token_bytes ? checked_mul(block_, token_bytes, "kv page") : state_bytes_;
    // Hybrid grouping (kv_cache_utils.py): layers bucketed by spec; a group has as many layers
    // as the smallest bucket (the largest, when it is under 1.5× the smallest); each bucket
    // fills whole groups (the last padded); a block id spans one layer of every group.
    std::vector<u64> buckets;
    for (u64 n : {n_full_, n_window_, n_chunk_, n_state_})
        if (n) buckets.push_back(n);
    const u64 lo = *std::min_element(buckets.begin(), buckets.end()), hi = *std::max_element(buckets.begin(), buckets.end());
    group_ = buckets.size() == 1 ? hi : (hi * 2 < lo * 3 ? hi : lo);
    groups_full_ = ceil_div(n_full_, group_);
    groups_window_ = ceil_div(n_window_, group_);
    groups_chunk_ = ceil_div(n_chunk_, group_);
    groups_state_ = ceil_div(n_state_, group_);
    padding_layers_ = (groups_full_ + groups_window_ + groups_chunk_ + groups_state_) * group_ - model_.num_layers;
    num_blocks_ = available_ / checked_mul(page_, group_, "kv page");
    if (p_.max_model_len) model_len_blocks_ = blocks_per_request(p_.max_model_len);
}

// Keys a query of a windowed or chunked layer attends, on average over a prefill of `len` tokens
// (query i, from 1: min(i, W) for a window W; its place in its chunk, (i − 1) mod C + 1, for a
// chunk C), or for the one query of a decode step at `len` tokens.
u64 attended_keys(const CacheSpec& c, bool prefill, u64 len) {
    const u128 W = c.window, n = len;
    if (!prefill) return static_cast<u64>(c.chunked ? (n - 1) % W + 1 : std::min(n, W));
    u128 sum;
    if (c.chunked) {
        const u128 full = n / W, rest = n % W;
        sum = full * (W * (W + 1) / 2) + rest * (rest + 1) / 2;
    } else {
        sum = n <= W ? n * (n + 1) / 2 : W * (W + 1) / 2 + (n - W) * W;
    }
    return static_cast<u64>(sum / n);  // floored, as a full layer's (len + 1) / 2
}

// The dummy forward's point: `tokens` flattened tokens attending to themselves, no cache yet.
Bindings profile_bindings(u64 tokens) {
    Bindings b;
    b[S::Batch] = 1;
    b[S::Sq] = tokens;
    b[S::Skv] = tokens;
    b[S::Kept] = 1;
    return b;
}

u64 VllmPlan::forward_peak(u64 tokens, size_t* type, GraphEval* out) const {
    const Bindings b = profile_bindings(tokens);
    u64 best = 0;
    for (size_t i = 0; i < types_.size(); ++i) {
        const GraphEval g = types_[i].graph.evaluate(b);
        if (g.overflow) throw OverflowError(types_[i].graph.item_name(g.overflow_tensor));
        if (i == 0 || g.peak_bytes > best) {
            best = g.peak_bytes;
            if (type) *type = i;
            if (out) *out = g;
        }
    }
    u64 ids = checked_mul(tokens, 8, "token ids");
    if (rt_.allocator_round_bytes > 1 && ids % rt_.allocator_round_bytes)
        ids += rt_.allocator_round_bytes - ids % rt_.allocator_round_bytes;
    return checked_add(best, checked_mul(2, ids, "token ids"), "vllm forward");
}

u64 VllmPlan::blocks_per_request(u64 max_len) const noexcept {
    const u64 full_blocks = ceil_div(max_len, block_);
    // A windowed layer keeps window - 1 + the tokens of one step, plus one block of slack; a
    // Mamba layer one page per request.
    const u64 window_blocks = ceil_div(std::min(window_ - (window_ ? 1 : 0) + p_.max_num_batched_tokens, max_len), block_) + 1;
    // A chunked layer (ChunkedLocalAttentionSpec.max_admission_blocks_per_request) holds at most
    // one chunk plus the tokens of one step.
    const u64 chunk_blocks = ceil_div(std::min(chunk_ + p_.max_num_batched_tokens, max_len), block_);
    return groups_full_ * full_blocks + groups_window_ * window_blocks + groups_chunk_ * chunk_blocks + groups_state_;
}

void VllmPlan::evaluate(const Point& p, PointResult& r) const noexcept {
    bool ovf = false;
    // Requests of p.context tokens; the engine admits up to max_model_len (default: the same).
    const u64 max_len = p.context, B = p.batch, model_len = model_len_of(p.context);
    r.logits_kept = 1;
    r.weights = weights_;
    r.resident_before = weights_;
    r.capacity = capacity_;
    r.attention_matrix = 0;
    r.logits = logits_;
    r.forward_peak = std::max(forward_peak_, sampler_peak_);
    r.activation_peak = r.forward_peak - logits_;
    r.logits_output = 0;
    r.peak_layer = -1;
    r.peak_site = -1;
    r.peak_op = -1;
    const u64 per_request = blocks_per_request(max_len);
    // num_blocks / per_request, ×1000, floored; the product is checked.
    u64 milli;
    ovf |= __builtin_mul_overflow(num_blocks_ / per_request, 1000, &milli);
    r.max_concurrency_milli = milli + mul_frac(num_blocks_ % per_request, 1000, per_request);
    u64 pool;
    ovf |= __builtin_mul_overflow(num_blocks_, page_, &pool) || __builtin_mul_overflow(pool, group_, &pool);
    r.kv_cache = pool;
    // Per sequence at the workload's context (the cache the step reads); a windowed layer keeps
    // at most its window.
    u64 visible = 0;
    for (const auto& t : types_) {
        if (t.cache.elements_per_sequence) {
            u64 layer;
            ovf |= __builtin_mul_overflow(state_bytes_, B, &layer) || __builtin_mul_overflow(layer, t.count, &layer) ||
                   __builtin_add_overflow(visible, layer, &visible);
            continue;
        }
        const u64 tokens = t.cache.window ? std::min(max_len, t.cache.window) : max_len;
        u64 n, per_tensor, layer;
        ovf |= __builtin_mul_overflow(B, tokens, &n) || __builtin_mul_overflow(n, t.cache.elements_per_token / t.cache.tensors, &n) ||
               !dt_.kv.try_bytes(n, per_tensor) || __builtin_mul_overflow(per_tensor, t.cache.tensors * t.count, &layer) ||
               __builtin_add_overflow(visible, layer, &visible);
    }
    r.kv_cache_visible = visible;
    r.runtime_overhead = non_torch_ + graph_pool_;
    u64 total = 0;
    for (u64 v : {weights_, r.kv_cache, r.activation_peak, r.logits, r.runtime_overhead}) ovf |= __builtin_add_overflow(total, v, &total);
    r.total = total;
    // vLLM refuses to start without KV memory, and serves `batch` sequences of `context` tokens at
    // once only if the pool holds them.
    // vLLM schedules at most max_num_seqs sequences at once; the rest wait.
    // vLLM refuses to start unless one max_model_len request fits the pool, and refuses a
    // request longer than max_model_len.
    r.fits = kv_positive_ && num_blocks_ > 0 && num_blocks_ / per_request >= B && B <= p_.max_num_seqs && max_len <= model_len &&
             num_blocks_ >= model_len_blocks(per_request);
    r.status = ovf ? PointStatus::Overflow : PointStatus::Ok;
}

std::string VllmPlan::overflow_term(const PointResult&) const { return "vLLM KV pool and the cache the sequences read"; }

void VllmPlan::describe(const Point& p, const PointResult& r, Breakdown& out) const {
    const u64 B = p.batch, max_len = p.context;
    const bool prefill = p.mode == Mode::Prefill;
    const bool full = out.detail == Detail::Full;
    if (full) {
        out.peak_at = peak_at_;
        out.live_at_peak = live_at_peak_;
    }
    const u64 per_request = blocks_per_request(max_len);
    const u64 full_blocks = ceil_div(max_len, block_);
    // The workload's own step, for the time model: B sequences flattened into one batch of
    // tokens; decode reads every sequence's KV from the pool.
    Bindings b;
    b[S::Batch] = 1;
    b[S::Sq] = prefill ? checked_mul(B, max_len, "tokens") : B;
    b[S::Skv] = max_len;
    b[S::SkvOld] = prefill ? 0 : checked_mul(B, max_len, "kv read");
    b[S::AttnKeys] = prefill ? (max_len + 1) / 2 : max_len;
    b[S::Kept] = B;
    const Bindings profile = profile_bindings(p_.max_num_batched_tokens);
    for (const auto& t : types_) {
        const GraphEval ev = t.graph.evaluate(profile);
        LayerRow row{
            t.spec.token_mixer,
            t.spec.channel_mixer,
            t.count,
            t.graph.weight_bytes(),
            t.cache.elements_per_sequence
                ? page_
                : checked_mul(page_, t.cache.window ? std::min(full_blocks, ceil_div(t.cache.window, block_) + 1) : full_blocks, "kv"),
            ev.attention_matrix_max,
            ev.peak_bytes - ev.at_peak[Category::KvCache],
            ev.peak_op >= 0 ? t.graph.ops()[static_cast<size_t>(ev.peak_op)].name : ""};
        out.layers.push_back(row);
        // A windowed or chunked layer's kernel reads only the keys its queries attend.
        Bindings bt = b;
        if (t.cache.window) {
            const u64 keys = attended_keys(t.cache, prefill, max_len);
            bt[S::AttnKeys] = keys;
            if (!prefill) bt[S::SkvOld] = checked_mul(B, keys, "kv read");
        }
        out.step_graphs.push_back(GraphUse{&t.graph, bt, t.model_count, true, 0,
                                           model_.dtype.bytes(checked_product({1, b[S::Sq], model_.hidden_size}, "message"), "message")});
    }
    if (has_head_) out.step_graphs.push_back(GraphUse{&head_, b, 1, false, 0, 0});
    if (!full) return;

    Section s{"vllm",
              p_.kv_cache_memory_bytes
                  ? fmt::format("vLLM start-up (kv_cache_memory_bytes given; the rest + KV = {} B)", group_digits(requested_))
                  : fmt::format("vLLM start-up (gpu_memory_utilization × usable = {} B)", group_digits(requested_)),
              {}};
    auto f = [&](const char* key, auto v, const std::string& label) { s.fields.push_back({key, v, label}); };
    f("requested_bytes", requested_, "requested (bytes)");
    f("profile_tokens", p_.max_num_batched_tokens, "profile forward peak (tokens)");
    f("sampler_requests", sampler_requests_, "profile sampler requests");
    f("profile_forward_peak_bytes", forward_peak_, "profile forward peak (bytes)");
    f("profile_sampler_peak_bytes", sampler_peak_, "profile sampler peak (bytes)");
    f("cudagraph_pool_bytes", graph_pool_, "CUDA-graph pool (bytes)");
    f("non_torch_bytes", non_torch_, "non-torch memory (bytes)");
    f("available_kv_bytes", available_, "available for KV (bytes)");
    f("block_size", block_, fmt::format("block size (tokens): {}", block_rule_));
    f("kv_groups", groups_full_ + groups_window_ + groups_chunk_ + groups_state_, "KV groups (by cache kind)");
    f("padding_layers", padding_layers_, "padding layers in the last groups");
    if (state_bytes_) f("mamba_state_bytes", state_bytes_, "Mamba state per sequence per layer (bytes)");
    f("page_bytes", page_, "page: one block of one layer (bytes)");
    f("layers_per_block", group_, "layers per block id");
    f("num_blocks", num_blocks_, "KV blocks");
    f("blocks_per_request", per_request, "blocks per request at the context");
    f("max_concurrency", static_cast<double>(r.max_concurrency_milli) / 1000.0, "maximum concurrency");
    f("max_concurrent_requests", num_blocks_ / per_request, "maximum concurrent requests");
    // The start-up log's own lines (vllm/v1/worker/gpu_worker.py "Available KV cache memory";
    // vllm/v1/core/kv_cache_utils.py: max concurrency = num_blocks / blocks per max_model_len
    // request, "GPU KV cache size" = int(max concurrency · max_model_len) tokens).
    const u64 model_len = model_len_of(max_len), model_len_needed = model_len_blocks(per_request);
    const double log_concurrency = static_cast<double>(num_blocks_) / static_cast<double>(model_len_needed);
    const u64 log_tokens = mul_frac(num_blocks_, model_len, model_len_needed);
    const double available_gib = static_cast<double>(available_) / static_cast<double>(u64{1} << 30);
    f("max_model_len", model_len, p_.max_model_len ? "max_model_len" : "max_model_len (the workload's context)");
    f("log_available_kv_gib", available_gib, fmt::format("log: Available KV cache memory: {:.2f} GiB", available_gib));
    f("log_kv_cache_tokens", log_tokens, fmt::format("log: GPU KV cache size: {} tokens", group_digits(log_tokens)));
    f("log_max_concurrency", log_concurrency,
      fmt::format("log: Maximum concurrency for {} tokens per request: {:.2f}x", group_digits(model_len), log_concurrency));
    f("max_num_seqs", p_.max_num_seqs, "max_num_seqs");
    if (p_.kv_cache_memory_bytes)
        f("kv_cache_memory_bytes", p_.kv_cache_memory_bytes, "kv_cache_memory_bytes (gpu_memory_utilization not used)");
    else
        f("gpu_memory_utilization", static_cast<double>(p_.gpu_memory_utilization_ppm) / 1e6, "gpu_memory_utilization");
    out.sections.push_back(std::move(s));

    out.components.insert(out.components.end(), weight_components_.begin(), weight_components_.end());
    out.components.push_back(
        {"kv_cache", "kv_cache", r.kv_cache,
         fmt::format("vLLM pool: num_blocks · page · layers per block = {} · {} · {}, page = block {} tokens of a layer's cache "
                     "({} per token: {}){}; num_blocks = available {} B // (page · layers)",
                     group_digits(num_blocks_), group_digits(page_), group_, block_, types_.front().cache.layout,
                     types_.front().cache.elements_per_token
                         ? fmt::format("{} elements in {}", types_.front().cache.elements_per_token, dt_.kv.name)
                         : std::string("state"),
                     state_bytes_ ? fmt::format(", Mamba state {} B per sequence per layer", group_digits(state_bytes_)) : std::string(),
                     group_digits(available_))});
    out.components.push_back({"attention_matrix", "attention_matrix", 0, "fused paged attention: no S×S tensor"});
    out.components.push_back({"activation_peak", "activations", r.activation_peak,
                              fmt::format("the start-up profile's peak ({}) by op-graph liveness, less its logits", out.peak_at)});
    out.components.push_back({"logits", "logits", r.logits,
                              fmt::format("vLLM sampler tensors live at the profile peak ({} requests · vocab {}: logits in {} and fp32, "
                                          "sorted values and int64 indices, masks, probabilities)",
                                          sampler_requests_, group_digits(model_.vocab_size), model_.dtype.name)});
    out.components.push_back({"runtime_overhead", "overhead", r.runtime_overhead,
                              fmt::format("CUDA context + library workspaces of {} ({}) + CUDA-graph pool {} B", rt_.name, overhead_source_,
                                          group_digits(graph_pool_))});
    out.components.push_back({"forward_peak", "peak", r.forward_peak, fmt::format("the start-up profile's peak, at {}", out.peak_at)});
    out.components.push_back({"total", "total", r.total, "weights + kv_cache + activation_peak + logits + runtime_overhead"});

    if (kv_positive_ && max_len > model_len)
        out.verdict = fmt::format(
            "does not fit: requests of {} tokens exceed max_model_len {}; vLLM refuses them (raise runtime_settings.max_model_len)",
            group_digits(max_len), group_digits(model_len));
    else if (kv_positive_ && num_blocks_ < model_len_needed)
        out.verdict = fmt::format(
            "does not fit: vLLM does not start: one request of max_model_len {} tokens needs {} KV blocks, the pool has {} (lower "
            "runtime_settings.max_model_len or give the KV cache more memory)",
            group_digits(model_len), group_digits(model_len_needed), group_digits(num_blocks_));
    else if (B > p_.max_num_seqs && kv_positive_)
        out.verdict = fmt::format(
            "does not fit: {} sequences wanted at once, but max_num_seqs is {}: vLLM schedules at most {} and queues the rest "
            "(raise runtime_settings.max_num_seqs, or add replicas with deployment.gpus); the KV pool ({} blocks) holds {:.2f} sequences "
            "of {} tokens",
            B, p_.max_num_seqs, p_.max_num_seqs, group_digits(num_blocks_), static_cast<double>(r.max_concurrency_milli) / 1000.0,
            group_digits(max_len));
    else if (!kv_positive_ && p_.kv_cache_memory_bytes)
        out.verdict = fmt::format(
            "does not fit: weights {} + activation peak {} + non-torch {} + CUDA graphs {} + the KV cache asked for {} exceed the card's "
            "{}",
            format_bytes_gib(weights_), format_bytes_gib(std::max(forward_peak_, sampler_peak_)), format_bytes_gib(non_torch_),
            format_bytes_gib(graph_pool_), format_bytes_gib(p_.kv_cache_memory_bytes), format_bytes_gib(capacity_));
    else if (!kv_positive_)
        out.verdict = fmt::format(
            "does not fit: weights {} + activation peak {} + non-torch {} + CUDA graphs {} exceed the {} vLLM may use; no memory for the "
            "KV cache",
            format_bytes_gib(weights_), format_bytes_gib(std::max(forward_peak_, sampler_peak_)), format_bytes_gib(non_torch_),
            format_bytes_gib(graph_pool_), format_bytes_gib(requested_));
    else
        out.verdict = fmt::format("{}: {} KV blocks of {} tokens ({}) hold {:.2f} sequences of {} tokens; {} wanted",
                                  r.fits ? "fits" : "does not fit", group_digits(num_blocks_), block_, format_bytes_gib(r.kv_cache),
                                  static_cast<double>(r.max_concurrency_milli) / 1000.0, group_digits(max_len), B);
}

}  // namespace

void apply_engine_args(RuntimeSpec& r, const EngineArgs& a) {
    if (!r.vllm) {
        const std::string given = a.first_given();
        if (!given.empty()) throw InputError(SourcePos{}, given, fmt::format("is a vLLM engine argument; runtime {} is not vLLM", r.name));
        return;
    }
    if (a.block_size) {
        // vLLM's CacheConfig.block_size: BlockSize = Literal[1, 8, 16, 32, 64, 128, 256]
        // (vllm/config/cache.py); any other is refused when the engine starts.
        static constexpr u64 kBlockSizes[] = {1, 8, 16, 32, 64, 128, 256};
        if (std::find(std::begin(kBlockSizes), std::end(kBlockSizes), *a.block_size) == std::end(kBlockSizes))
            throw InputError(SourcePos{}, "runtime_settings.block_size",
                             fmt::format("{} tokens is not a vLLM block size; valid: 1, 8, 16, 32, 64, 128, 256", *a.block_size));
        r.vllm->block_size = *a.block_size;
    }
    if (a.gpu_memory_utilization_ppm) r.vllm->gpu_memory_utilization_ppm = *a.gpu_memory_utilization_ppm;
    if (a.max_model_len) r.vllm->max_model_len = *a.max_model_len;
    if (a.kv_cache_memory_bytes) r.vllm->kv_cache_memory_bytes = *a.kv_cache_memory_bytes;
    // --enforce-eager: no CUDA graphs are captured, so no graph pool.
    if (a.enforce_eager && *a.enforce_eager) r.vllm->cudagraph_max_capture_size = 0;
    if (a.attention_backend) {
        static const char* const kMlaBackends[] = {"FLASHMLA", "FLASHINFER_MLA", "CUTLASS_MLA", "TRITON_MLA"};
        if (std::find_if(std::begin(kMlaBackends), std::end(kMlaBackends), [&](const char* b) { return *a.attention_backend == b; }) ==
            std::end(kMlaBackends))
            throw InputError(
                SourcePos{}, "runtime_settings.attention_backend",
                fmt::format("\"{}\" is not an MLA backend memtax models; valid: FLASHMLA, FLASHINFER_MLA, CUTLASS_MLA, TRITON_MLA",
                            *a.attention_backend));
        r.vllm->attention_backend = *a.attention_backend;
    }
    if (a.max_num_seqs) r.vllm->max_num_seqs = *a.max_num_seqs;
    if (a.max_num_batched_tokens) r.vllm->max_num_batched_tokens = *a.max_num_batched_tokens;
}

FirstToken VllmPlan::first_tokens(const StepCosts& c) const {
    // vLLM's scheduler, step by step, for the requests of one replica arriving together. A step's
    // time: its tokens at the whole-batch prefill's time per token (attention over the prompts
    // included), but never below one forward that reads the weights once (a decode step of one
    // sequence: small steps are bound by the weight read and the launches).
    const u64 B = std::min(c.batch, p_.max_num_seqs), P = c.prompt_tokens, C = p_.max_num_batched_tokens;
    const double prompt_tokens = static_cast<double>(c.batch) * static_cast<double>(P);
    const double per_token = prompt_tokens > 0 ? c.batch_prefill_s / prompt_tokens : 0;
    const double floor_s = c.smallest_step_s ? c.smallest_step_s() : 0;
    FirstToken f;
    f.schedule = "continuous batching, chunked prefill";
    f.rule = fmt::format(
        "vLLM TTFT: step by step, running requests first (1 token each), then prompt chunks in arrival order, ≤ {} tokens a step; "
        "step time = max(tokens · ttft_s / prompt tokens, one decode step of 1 sequence)",
        C);
    f.requests = B;
    f.step_tokens = C;
    u64 next = 0, left = P, decoding = 0;  // next request to prefill, its prompt tokens left
    double now = 0, sum = 0;
    while (next < B && P > 0) {
        // Running requests first: one decode token each (at most C of them), then prompt chunks.
        u64 budget = C > decoding ? C - decoding : 0, tokens = std::min(decoding, C), finished = 0;
        if (budget == 0)
            break;  // decodes fill every step (max_num_batched_tokens <= running requests): the rest wait on outputs we do not model
        // Steps that only advance the current prompt (none finishes) are alike — the running
        // decodes plus `budget` prompt tokens — so they are taken at once: the loop runs about
        // twice per request, not once per step (a small token budget would mean billions).
        if (left > budget) {
            const u64 k = (left - 1) / budget;
            now += static_cast<double>(k) * std::max(static_cast<double>(C) * per_token, floor_s);
            f.steps += k;
            left -= k * budget;
        }
        while (budget > 0 && next < B) {
            const u64 take = std::min(budget, left);
            budget -= take;
            tokens += take;
            left -= take;
            if (left == 0) {
                ++finished;
                ++next;
                left = P;
            }
        }
        now += std::max(static_cast<double>(tokens) * per_token, floor_s);
        ++f.steps;
        if (finished) {
            if (f.first_s == 0) f.first_s = now;
            sum += now * static_cast<double>(finished);
            f.last_s = now;
        }
        decoding += finished;
    }
    f.requests = next;
    f.mean_s = next ? sum / static_cast<double>(next) : 0;
    return f;
}

std::string VllmPlan::ttft_meaning(u64 batch, u64) const {
    return fmt::format(
        "time to first token of one request: vLLM continuous batching, chunked prefill of at most {} tokens per step, "
        "the {} requests arriving together (ttft_s: the whole batch's prompt tokens as one forward)",
        p_.max_num_batched_tokens, batch);
}

namespace {
Section vllm_settings(const RuntimeSpec& r) {
    Section s{"vllm", "vLLM engine arguments", {}};
    if (!r.vllm) return s;
    const VllmParams& v = *r.vllm;
    s.fields = {{"block_size", v.block_size, "block_size"},
                {"gpu_memory_utilization", static_cast<double>(v.gpu_memory_utilization_ppm) / 1e6, "gpu_memory_utilization"},
                {"max_num_seqs", v.max_num_seqs, "max_num_seqs"},
                {"max_num_batched_tokens", v.max_num_batched_tokens, "max_num_batched_tokens"},
                {"cudagraph_max_capture_size", v.cudagraph_max_capture_size, "cudagraph_max_capture_size"}};
    return s;
}
}  // namespace

// The `vllm serve` line of a deployment: vLLM's own engine arguments (vllm/engine/arg_utils.py),
// which the checks on flags below cli/ allow on lines marked as the runtime's own flags.
std::string vllm_serve(const RuntimeSpec& r, const ServeLaunch& l) {
    const VllmParams v = r.vllm.value_or(VllmParams{});
    // memtax's fp8 dtypes by vLLM's --kv-cache-dtype names; the model's own dtype is "auto".
    const std::string kv = l.kv_dtype.empty() ? "auto" : l.kv_dtype;
    std::string cmd = fmt::format("vllm serve {}", l.model);
    cmd += fmt::format(" --tensor-parallel-size {} --pipeline-parallel-size {}", l.tp, l.pp);  // the runtime's own flags
    if (l.dp > 1) cmd += fmt::format(" --data-parallel-size {}", l.dp);                        // the runtime's own flags
    if (l.expert_parallel) cmd += " --enable-expert-parallel";                                 // the runtime's own flags
    // An engine argument's max_model_len is the server's; the deployment's context otherwise.
    const u64 model_len = v.max_model_len ? v.max_model_len : l.max_model_len;
    cmd += fmt::format(" --kv-cache-dtype {} --max-model-len {}", kv, model_len);  // the runtime's own flags
    const double util = static_cast<double>(v.gpu_memory_utilization_ppm) / 1e6;
    cmd += fmt::format(" --max-num-seqs {}", v.max_num_seqs);                                                 // the runtime's own flags
    cmd += fmt::format(" --max-num-batched-tokens {}", v.max_num_batched_tokens);                             // the runtime's own flags
    cmd += fmt::format(" --gpu-memory-utilization {:g}", util);                                               // the runtime's own flags
    cmd += fmt::format(" --block-size {}", v.block_size);                                                     // the runtime's own flags
    if (v.cudagraph_max_capture_size == 0) cmd += " --enforce-eager";                                         // the runtime's own flags
    if (v.kv_cache_memory_bytes) cmd += fmt::format(" --kv-cache-memory-bytes {}", v.kv_cache_memory_bytes);  // the runtime's own flags
    if (!v.attention_backend.empty()) cmd += fmt::format(" --attention-backend {}", v.attention_backend);     // the runtime's own flags
    return cmd;
}

RuntimeRegistry::Family vllm_family() { return {"vllm", compile_vllm, vllm_settings, false, vllm_serve}; }

std::unique_ptr<RuntimePlan> compile_vllm(const CompileInput& in) {
    if (!in.runtime.vllm) throw InputError(SourcePos{in.runtime.file, 0, 0}, "vllm", "a vllm runtime profile needs its vllm: block");
    const RuntimeSpec::Training& t = in.runtime.training;
    if (t.dropout || t.fused_layernorm || t.selective_recompute || t.sequence_parallel)
        throw InputError(in.runtime.training_pos, "training",
                         "vLLM serves; training is modelled for the transformers and megatron families");
    return std::make_unique<VllmPlan>(in);
}

}  // namespace memtax
