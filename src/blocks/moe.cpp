// Mixture-of-experts channel mixer (Switch/GShard-style top-k routing; Mixtral arXiv 2401.04088,
// DeepSeekMoE arXiv 2401.06066, Qwen3-MoE, gpt-oss, Jamba): a router scores every expert for
// each token, the top experts_per_token gated MLPs of moe.intermediate_size run on it and their
// outputs are summed with the routing weights; shared experts (DeepSeek) see every token. No
// cached state. Weights: every expert is stored; a step reads only the experts its tokens hit
// (the time model counts E·(1 − (1 − k/E)^T) of them).
//
// Activations follow the runtime's dispatch:
//   transformers "loop": the eager experts forward, a Python loop over the experts hit, each
//     gathering its ~T·k/E tokens (one iteration's tensors are alive at a time), summed into an
//     output with index_add_; the one-hot routing mask [E, k, T] is int64;
//   transformers "grouped": grouped_mm_experts_forward, all T·k (token, expert) rows gathered,
//     sorted by expert and run as one grouped GEMM; its locals live until it returns;
//   vLLM: the fused MoE kernel with its intermediate caches of T·k rows.
#include <fmt/format.h>

#include "blocks/block.hpp"

namespace memtax {
namespace {

using S = Sym;
using R = DtypeRole;
using C = Category;
using blk::act;
using blk::tokens;

// Widths per GPU, as vLLM and Megatron lay the experts out: without expert parallelism every
// GPU holds a TP slice of every expert (vLLM's FusedMoE); with EP the routed experts are spread
// over ep ranks and each is sliced over the tp / ep GPUs that share it (Megatron's expert tensor
// parallelism: EP × ETP = TP). EP = TP is whole experts on each GPU of a replica (vLLM's
// --enable-expert-parallel); EP beyond TP spans data-parallel replicas (wide EP: EP = TP × DP),
// still whole experts. The shared expert is TP-split.
struct Widths {
    u64 experts = 0, moe_inter = 0, shared_inter = 0;
};
u64 expert_tp(u64 tp, u64 ep) { return ep >= tp ? 1 : tp / ep; }
Widths widths(const BlockEnv& env) {
    const MoeSpec& e = env.model.moe;
    const u64 tp = env.shard.tp, ep = env.shard.ep;
    return Widths{e.num_experts / ep, e.intermediate_size / expert_tp(tp, ep), e.shared_intermediate_size / tp};
}

void check_split(const ModelSpec& m, u64 tp, u64 ep) {
    const MoeSpec& e = m.moe;
    if (ep == 0 || e.num_experts % ep != 0)
        throw InputError(
            SourcePos{}, "deployment.ep",
            fmt::format("{} does not divide the {} experts of {}; valid: a divisor of {}", ep, e.num_experts, m.name, e.num_experts));
    auto fail = [&](const std::string& msg) { throw InputError(SourcePos{}, "deployment.tp", msg); };
    if (e.intermediate_size % expert_tp(tp, ep) != 0)
        fail(fmt::format("{} (the GPUs sharing each expert: TP {} / EP {}) does not divide moe.intermediate_size = {}", expert_tp(tp, ep),
                         tp, ep, e.intermediate_size));
    if (e.shared_intermediate_size % tp != 0)
        fail(fmt::format("{} does not divide the shared expert width {}", tp, e.shared_intermediate_size));
}

std::string label(const ModelSpec& m, u64 layers) {
    const MoeSpec& e = m.moe;
    return fmt::format("MoE {}/{} layers, {} experts top-{}{}", layers, m.num_layers, e.num_experts, e.experts_per_token,
                       e.shared_intermediate_size ? " + shared" : "");
}

// Rows of `width` for the tokens one expert gets on average: T·k/E of them (coefficient rounded
// up when k·width is not a multiple of E).
Size per_expert(const MoeSpec& e, u64 width) {
    return Size(ceil_div(checked_mul(e.experts_per_token, width, "moe rows"), e.num_experts), {S::Batch, S::Sq});
}
// The T·k routed rows.
Size routed(const MoeSpec& e, u64 width) { return Size(checked_mul(e.experts_per_token, width, "moe rows"), {S::Batch, S::Sq}); }

// The expert bank's weights, declared on its first GEMM: gate/up [E, h, 2i] and down [E, i, h]
// (+ biases), E = experts on this GPU.
void expert_weights(OpInfo& up, OpInfo& down, const BlockEnv& env) {
    const MoeSpec& e = env.model.moe;
    const Widths w = widths(env);
    const u64 h = env.model.hidden_size, i = w.moe_inter, E = w.experts, k = e.experts_per_token;
    WeightTensor gu{"experts.gate_up_proj", checked_product({E, h, 2 * i}, "experts"), R::ExpertWeight};
    gu.in = h;
    gu.experts = E;
    gu.topk = k;
    WeightTensor dn{"experts.down_proj", checked_product({E, i, h}, "experts"), R::ExpertWeight};
    dn.in = i;
    dn.experts = E;
    dn.topk = k;
    up.weights.push_back(gu);
    down.weights.push_back(dn);
    if (e.expert_bias) {
        up.weights.push_back({"experts.gate_up_proj_bias", checked_mul(E, 2 * i, "experts"), R::Param, false, 0, E, k});
        down.weights.push_back({"experts.down_proj_bias", checked_mul(E, h, "experts"), R::Param, false, 0, E, k});
    }
    // Routed-expert FLOPs per token: k experts × (2·h·2i + 2·i·h).
    up.flops = Size(checked_product({k, 2, h, 2 * i}, "experts"), {S::Batch, S::Sq});
    down.flops = Size(checked_product({k, 2, i, h}, "experts"), {S::Batch, S::Sq});
}

// The router's GEMM hidden → experts and its parameters (a bias for gpt-oss, DeepSeek-V3's fp32
// score-correction bias), as both runtimes run it.
OpInfo router_op(const BlockEnv& env) {
    const MoeSpec& e = env.model.moe;
    const u64 h = env.model.hidden_size, E = e.num_experts;
    OpInfo gate{"router", OpKind::Matmul, OpGroup::Mlp, Size(checked_product({2, h, E}, "router"), {S::Batch, S::Sq}), {}, {}};
    gate.weights.push_back({"router", checked_mul(h, E, "router"), R::Param});
    if (e.router_bias) gate.weights.push_back({"router_bias", E, R::Param});
    if (e.score_correction_bias) gate.weights.push_back({"e_score_correction_bias", E, R::Fp32});
    gate.saves_inputs = 1;  // training: the hidden states, for the router weight's gradient
    gate.weight_saves = 1;
    return gate;
}

// The router: logits [T, E] (DeepSeek-V3 upcasts the hidden states and the weight to fp32 first;
// Mixtral-style routers upcast the logits for the softmax), scores in fp32, top-k weights
// (normalised in place) and int64 indices; gpt-oss's router stays in the compute dtype.
// Returns {weights, indices}.
std::pair<int, int> router(OpGraph& g, const BlockEnv& env, int x) {
    const MoeSpec& e = env.model.moe;
    const u64 h = env.model.hidden_size, E = e.num_experts, k = e.experts_per_token;
    const bool act_router = e.expert_bias;  // gpt-oss: logits, top-k and softmax in the compute dtype
    OpInfo gate = router_op(env);
    const bool fp32_in = e.router_score == "sigmoid";  // DeepSeekV3TopkRouter: F.linear(x.float(), w.float())
    if (fp32_in) {
        gate.workspace.push_back({tokens(h), R::Fp32});
        gate.workspace.push_back({Size(checked_mul(h, E, "router"), {}), R::Fp32});
    }
    const Size te(E, {S::Batch, S::Sq});
    int logits = g.op1(std::move(gate), {x}, TensorInfo{"router_logits", te, fp32_in ? R::Fp32 : R::Act});
    OpInfo sc{"router_scores", OpKind::Softmax, OpGroup::Mlp, Size(5 * E, {S::Batch, S::Sq}), {}, {}};
    if (!fp32_in && !act_router) sc.workspace.push_back({te, R::Fp32});  // logits.float()
    sc.saves_output = true;
    int scores = g.op1(std::move(sc), {logits}, TensorInfo{"router_probs", te, act_router ? R::Act : R::Fp32});
    const R wdt = act_router ? R::Act : R::Fp32;
    const R out_dt = e.fp32_routing_weights ? R::Fp32 : R::Act;
    auto top =
        g.op({"router_topk", OpKind::Sort, OpGroup::Mlp, {}, {}, {}}, {scores},
             {TensorInfo{"topk_weights", Size(k, {S::Batch, S::Sq}), wdt}, TensorInfo{"topk_index", Size(k, {S::Batch, S::Sq}), R::Index}},
             {logits});
    // Normalised in place; a cast to the compute dtype is a new (small) tensor.
    OpInfo norm{"topk_normalise", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}};
    norm.saves_inputs = 1;
    int w = g.op1(std::move(norm), {top[0]},
                  TensorInfo{"routing_weights", Size(k, {S::Batch, S::Sq}), out_dt, C::Activation, Lifetime::Transient,
                             out_dt == wdt ? AliasRule::Always : AliasRule::None},
                  {logits, scores});
    return {w, top[1]};
}

int shared_expert(OpGraph& g, const BlockEnv& env, int x) {
    const u64 h = env.model.hidden_size, i = widths(env).shared_inter;
    int gate = g.op1(blk::linear("shared_gate_proj", OpGroup::Mlp, h, i, "shared_experts.gate_proj"), {x}, act("shared_gate", tokens(i)));
    int a = g.op1({"shared_activation", OpKind::Elementwise, OpGroup::Mlp, Size(4 * i, {S::Batch, S::Sq}), {}, {}}, {gate},
                  act("shared_gate_act", tokens(i)));
    int up = g.op1(blk::linear("shared_up_proj", OpGroup::Mlp, h, i, "shared_experts.up_proj"), {x}, act("shared_up", tokens(i)));
    int prod = g.op1({"shared_mul", OpKind::Elementwise, OpGroup::Mlp, Size(i, {S::Batch, S::Sq}), {}, {}}, {a, up},
                     act("shared_hidden", tokens(i)));
    return g.op1(blk::linear("shared_down_proj", OpGroup::Mlp, i, h, "shared_experts.down_proj"), {prod}, act("shared_out", tokens(h)));
}

// The block's output: the routed experts' sum plus the shared expert's output when there is one
// (else the sum itself, as a view), alive as the layer needs it.
int moe_output(OpGraph& g, const BlockEnv& env, const MixerIO& io, int routed_out, const std::vector<int>& holds) {
    TensorInfo res = act("moe_output", tokens(env.model.hidden_size));
    if (io.output_is_layer_output) res.lifetime = Lifetime::Persistent;
    if (widths(env).shared_inter) {
        int sh = shared_expert(g, env, io.x);
        return g.op1h({"add_shared", OpKind::Elementwise, OpGroup::Mlp, Size(env.model.hidden_size, {S::Batch, S::Sq}), {}, {}},
                      {routed_out, sh}, res, holds);
    }
    res.alias = AliasRule::View;
    return g.op1h({"moe_view", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {routed_out}, res, holds);
}

int build_transformers(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const MoeSpec& e = m.moe;
    const u64 h = m.hidden_size, i = widths(env).moe_inter, E = e.num_experts, k = e.experts_per_token;
    auto [w, idx] = router(g, env, io.x);
    // DeepSeek accumulates in the routing weights' dtype (fp32), the others in the compute dtype.
    const R acc = e.router_score == "sigmoid" ? R::Fp32 : R::Act;
    int out;
    OpInfo up{"experts_gate_up", OpKind::Matmul, OpGroup::Mlp, {}, {}, {}};
    OpInfo down{"experts_down", OpKind::Matmul, OpGroup::Mlp, {}, {}, {}};
    expert_weights(up, down, env);
    // Training: each grouped GEMM keeps its input rows; the activation its input (gate and up
    // halves) and act(gate); the weighting both factors.
    up.saves_inputs = 1;
    down.saves_inputs = 1;
    up.weight_saves = down.weight_saves = 1;  // the grouped GEMMs' inputs, for the experts' gradients
    if (e.dispatch == "grouped") {
        // grouped_mm_experts_forward (transformers 5): sort the S = T·k (token, expert) pairs by
        // expert (values and int64 permutation), gather the hidden rows in that order and the
        // routing weights, one grouped GEMM up (+ gathered biases), gate, one down, weight (in the
        // routing weights' dtype: fp32 unless the router works in the compute dtype, gpt-oss),
        // unsort with an int64 inverse permutation, sum over k. Locals live until it returns.
        const R wdt = e.fp32_routing_weights ? R::Fp32 : R::Act;
        const Size s1(k, {S::Batch, S::Sq});
        auto srt = g.op({"sort_experts", OpKind::Sort, OpGroup::Mlp, {}, {}, {}}, {idx},
                        {TensorInfo{"expert_ids_sorted", s1, R::Index}, TensorInfo{"perm", s1, R::Index}});
        int sel = g.op1({"gather_rows", OpKind::Copy, OpGroup::Mlp, {}, {}, {{s1, R::Index}}}, {io.x, srt[1]},
                        act("selected_hidden_sorted", routed(e, h)));
        int sw =
            g.op1({"gather_weights", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {w, srt[1]}, TensorInfo{"sample_weights_sorted", s1, wdt});
        std::vector<int> locals = {srt[0], srt[1], sel, sw};
        int bias_up = -1;
        if (e.expert_bias) {
            bias_up = g.op1h({"gather_up_bias", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {srt[0]},
                             act("selected_up_bias", routed(e, 2 * i)), locals);
            locals.push_back(bias_up);
        }
        int gu = g.op1h(std::move(up), {sel}, act("proj_out", routed(e, 2 * i)), locals);
        if (e.expert_bias)
            gu = g.op1h({"add_up_bias", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {gu, bias_up},
                        act("proj_out_bias", routed(e, 2 * i)), locals);
        gu = g.op1h({"mask_rows", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {gu}, act("proj_out_masked", routed(e, 2 * i)), locals);
        int ga;
        if (e.expert_bias) {
            // gpt-oss's clamped SwiGLU: gate and up clamped (new tensors), glu = gate·σ(α·gate)
            // (α·gate and σ temporaries), (up + 1) · glu.
            int gc = g.op1h({"gate_clamp", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {gu}, act("gate_clamped", routed(e, i)), locals);
            int uc = g.op1h({"up_clamp", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {gu}, act("up_clamped", routed(e, i)), {gc});
            int glu = g.op1h({"glu",
                              OpKind::Elementwise,
                              OpGroup::Mlp,
                              Size(checked_mul(4 * k, i, "glu"), {S::Batch, S::Sq}),
                              {},
                              {{routed(e, i), R::Act}, {routed(e, i), R::Act}}},
                             {gc}, act("glu", routed(e, i)), {uc, gu});
            ga = g.op1h({"gated_output",
                         OpKind::Elementwise,
                         OpGroup::Mlp,
                         Size(checked_mul(2 * k, i, "glu"), {S::Batch, S::Sq}),
                         {},
                         {{routed(e, i), R::Act}}},
                        {uc, glu}, act("gated_out", routed(e, i)), {gc, gu});
        } else {
            OpInfo ea{"experts_act",           OpKind::Elementwise, OpGroup::Mlp, Size(checked_mul(5 * k, i, "act"), {S::Batch, S::Sq}), {},
                      {{routed(e, i), R::Act}}};
            ea.saves_inputs = 1;
            ea.saved.push_back({routed(e, i), R::Act});
            ga = g.op1h(std::move(ea), {gu}, act("gated_out", routed(e, i)), locals);
        }
        int bias_dn = -1;
        if (e.expert_bias) {
            bias_dn = g.op1h({"gather_down_bias", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {srt[0]},
                             act("selected_down_bias", routed(e, h)), locals);
            locals.push_back(bias_dn);
        }
        int dn = g.op1h(std::move(down), {ga}, act("down_out", routed(e, h)), locals);
        if (e.expert_bias)
            dn = g.op1h({"add_down_bias", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {dn, bias_dn}, act("down_out_bias", routed(e, h)),
                        locals);
        dn = g.op1h({"mask_rows_down", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {dn}, act("down_out_masked", routed(e, h)), locals);
        locals.push_back(dn);
        OpInfo aw{"apply_weights", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}};
        aw.saves_inputs = 0b11;
        int wt = g.op1h(std::move(aw), {dn, sw}, TensorInfo{"weighted_out", routed(e, h), wdt}, locals);
        int inv = g.op1h({"inverse_perm", OpKind::Copy, OpGroup::Mlp, {}, {}, {{s1, R::Index}}}, {srt[1]},
                         TensorInfo{"inv_perm", s1, R::Index}, locals);
        locals.push_back(inv);
        int un = g.op1h({"unsort_rows", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {wt, inv},
                        TensorInfo{"weighted_unsorted", routed(e, h), wdt}, locals);
        out = g.op1h({"sum_topk", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {un}, TensorInfo{"experts_sum", tokens(h), wdt}, locals);
        if (wdt == R::Fp32)
            out = g.op1h({"to_dtype", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {out}, act("experts_out", tokens(h)), locals);
    } else {
        // The eager loop: zeros for the sum, the int64 one-hot mask [E, k, T], then per expert
        // hit: gather its rows, gate_up, act(gate)·up, down, × weights, index_add_ into the sum.
        int sum = g.op1({"zeros_like", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {}, TensorInfo{"experts_sum", tokens(h), acc});
        int mask = g.op1({"one_hot_mask", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {idx},
                         TensorInfo{"expert_mask", Size(checked_mul(k, E, "mask"), {S::Batch, S::Sq}), R::Index}, {sum});
        int cur =
            g.op1({"gather_rows", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {io.x, mask}, act("current_state", per_expert(e, h)), {sum, w});
        // One iteration's GEMMs stand for all: their FLOPs and weights are the whole bank's.
        int gu = g.op1(std::move(up), {cur}, act("gate_up", per_expert(e, 2 * i)), {sum, w, mask});
        int ga = g.op1({"experts_act",
                        OpKind::Elementwise,
                        OpGroup::Mlp,
                        Size(checked_mul(5 * k, i, "act"), {S::Batch, S::Sq}),
                        {},
                        {{per_expert(e, i), R::Act}}},
                       {gu}, act("current_hidden", per_expert(e, i)), {sum, w, mask});
        int dn = g.op1(std::move(down), {ga}, act("expert_out", per_expert(e, h)), {sum, w, mask});
        int wt = g.op1({"apply_weights", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {dn, w}, act("weighted", per_expert(e, h)),
                       {sum, mask});
        out = g.op1({"index_add", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {sum, wt},
                    TensorInfo{"experts_out", tokens(h), acc, C::Activation, Lifetime::Transient, AliasRule::Always}, {mask, w});
    }
    // Back to the compute dtype (a copy when the loop summed in fp32), then the shared expert's output added.
    if (e.dispatch != "grouped" && acc == R::Fp32)
        out = g.op1({"to_dtype", OpKind::Copy, OpGroup::Mlp, {}, {}, {}}, {out}, act("moe_out", tokens(h)));
    std::vector<int> holds = io.holds_last;
    holds.push_back(env.runtime.keeps.mlp_input ? io.x : -1);
    return moe_output(g, env, io, out, holds);
}

// vLLM FusedMoE: router logits, top-k (fp32 weights, int32 ids), the fused kernel's caches
// (gate/up rows T·k·2i, activated T·k·i, down rows T·k·h) and the reduced output.
int build_vllm(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const MoeSpec& e = m.moe;
    const u64 h = m.hidden_size, i = widths(env).moe_inter, E = e.num_experts, k = e.experts_per_token;
    OpInfo gate = router_op(env);
    int logits = g.op1(std::move(gate), {io.x}, act("router_logits", Size(E, {S::Batch, S::Sq})));
    auto top = g.op({"topk", OpKind::Sort, OpGroup::Mlp, {}, {}, {}}, {logits},
                    {TensorInfo{"topk_weights", Size(k, {S::Batch, S::Sq}), R::Fp32},
                     TensorInfo{"topk_ids", Size(ceil_div(k, 2), {S::Batch, S::Sq}), R::Index}});
    OpInfo up{"fused_moe_gate_up", OpKind::Matmul, OpGroup::Mlp, {}, {}, {}};
    OpInfo down{"fused_moe_down", OpKind::Matmul, OpGroup::Mlp, {}, {}, {}};
    expert_weights(up, down, env);
    int gu = g.op1(std::move(up), {io.x, top[0], top[1]}, act("intermediate_cache1", routed(e, 2 * i)), {logits});
    int ga = g.op1({"silu_and_mul", OpKind::Elementwise, OpGroup::Mlp, Size(checked_mul(5 * k, i, "act"), {S::Batch, S::Sq}), {}, {}}, {gu},
                   act("intermediate_cache2", routed(e, i)));
    int dn = g.op1(std::move(down), {ga}, act("intermediate_cache3", routed(e, h)), {gu});
    int out = g.op1({"moe_sum", OpKind::Elementwise, OpGroup::Mlp, {}, {}, {}}, {dn}, act("experts_out", tokens(h)));
    return moe_output(g, env, io, out, io.holds_last);
}

}  // namespace

void register_moe(BlockRegistry& r) {
    r.add(ChannelMixer{
        "moe",
        "mixture of experts: a router picks experts_per_token of num_experts gated MLPs per token (+ shared experts); every "
        "expert is stored, the hit ones are read",
        {{"moe.num_experts", "routed experts", [](const ModelSpec& m) { return m.moe.num_experts; }},
         {"moe.experts_per_token", "experts each token is routed to", [](const ModelSpec& m) { return m.moe.experts_per_token; }},
         {"moe.intermediate_size", "each expert's hidden width", [](const ModelSpec& m) { return m.moe.intermediate_size; }}},
        {{"transformers", build_transformers}, {"vllm", build_vllm}},
        VariantHooks{{}, check_split, label, {}},
        true});
}

}  // namespace memtax
