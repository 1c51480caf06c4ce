// Selective state-space mixers: Mamba-2 (SSD, arXiv 2405.21060; mamba2, Bamba, Codestral-Mamba)
// and Mamba-1 (arXiv 2312.00752; Jamba's Mamba layers). Per sequence they keep a fixed state,
// whatever the context: the causal conv's last inputs and the SSM state.
//   Mamba-2: conv [conv_dim, d_conv] (transformers keeps d_conv columns, vLLM d_conv − 1) with
//            conv_dim = inner + 2·n_groups·d_state, and ssm [heads, head_dim, d_state];
//   Mamba-1: conv [inner, d_conv] and ssm [inner, d_state].
// transformers without the mamba-ssm CUDA kernels runs the reference PyTorch path
// (Mamba2Mixer.torch_forward, the chunked "SSD naive" algorithm; Mamba-1's slow_forward, a
// Python scan over the tokens). Both materialise fp32 tensors that are per token × d_state (×
// chunk size for Mamba-2): this is what their activations are made of, and it dwarfs the
// state. vLLM runs the fused kernels, whose activations are the projections.
#include <fmt/format.h>

#include "blocks/block.hpp"

namespace memtax {
namespace {

using S = Sym;
using R = DtypeRole;
using C = Category;
using blk::act;
using blk::tokens;

// The two executions differ in where the state lives and how the scan runs: transformers'
// reference modules (the state in the graph, a conv window of conv_kernel columns, the scan's
// products materialised) and vLLM's kernels (the state in its pool, conv_kernel − 1 columns,
// one fused scan).
enum class Path : std::uint8_t { Transformers, Vllm };

// Widths per GPU under tensor parallelism: heads (Mamba-2) or channels (Mamba-1) split; n_groups
// padded up to a multiple of TP when it does not divide (vLLM mamba_utils).
struct Widths {
    u64 heads = 0, inner = 0, groups = 0, conv_dim = 0;
};
Widths widths(const BlockEnv& env) {
    const SsmSpec& s = env.model.ssm;
    const u64 tp = env.shard.tp;
    Widths w;
    const bool v2 = s.kind == "mamba2";
    w.heads = v2 ? s.num_heads / tp : 0;
    w.inner = s.inner_size / tp;
    w.groups = v2 ? ceil_div(s.n_groups, tp) : 0;
    w.conv_dim = v2 ? checked_add(w.inner, checked_product({2, w.groups, s.state_size}, "conv"), "conv") : w.inner;
    return w;
}

void check_split(const ModelSpec& m, u64 tp, u64) {
    const bool v2 = m.ssm.kind == "mamba2";
    const u64 heads = v2 ? m.ssm.num_heads : m.ssm.inner_size;
    if (heads % tp != 0)
        throw InputError(SourcePos{}, "deployment.tp",
                         fmt::format("{} does not divide the {} SSM {} of {}", tp, heads, v2 ? "heads" : "channels", m.name));
}

u64 conv_columns(const BlockEnv& env, Path path) { return path == Path::Vllm ? env.model.ssm.conv_kernel - 1 : env.model.ssm.conv_kernel; }

u64 ssm_elements(const BlockEnv& env) {
    const SsmSpec& s = env.model.ssm;
    const Widths w = widths(env);
    return s.kind == "mamba2" ? checked_product({w.heads, s.head_dim, s.state_size}, "ssm state")
                              : checked_mul(w.inner, s.state_size, "ssm state");
}

CacheSpec cache(const BlockEnv& env, Path path) {
    CacheSpec c;
    c.tensors = 2;
    c.elements_per_sequence =
        checked_add(checked_mul(widths(env).conv_dim, conv_columns(env, path), "conv state"), ssm_elements(env), "ssm state");
    c.layout = "state";
    return c;
}

// The state tensors a step leaves. A decode step updates the existing ones in place; a prefill
// creates them inside the forward. transformers keeps the conv state in the model's dtype and
// the SSM state in fp32 (measured: transformers 5.17 on an H200, tests/data/measured/
// h200_hf_arch.json). vLLM's live in its preallocated pool, outside the graph.
void state_outputs(OpGraph& g, const BlockEnv& env, Path path, int after) {
    if (path == Path::Vllm) return;
    const u64 conv = checked_mul(widths(env).conv_dim, conv_columns(env, path), "conv state"), ssm = ssm_elements(env);
    int conv_old = g.input(TensorInfo{"conv_state_old", Size(conv, {S::Batch, S::Cached}), R::Act, C::KvCache});
    int ssm_old = g.input(TensorInfo{"ssm_state_old", Size(ssm, {S::Batch, S::Cached}), R::Fp32, C::KvCache});
    g.op1({"conv_state_update", OpKind::Copy, OpGroup::KvCache, {}, {}, {}}, {conv_old, after},
          TensorInfo{"conv_state", Size(conv, {S::Batch, S::StateLive}), R::Act, C::KvCache, Lifetime::Persistent, AliasRule::IfCached});
    g.op1({"ssm_state_update", OpKind::Copy, OpGroup::KvCache, {}, {}, {}}, {ssm_old, after},
          TensorInfo{"ssm_state", Size(ssm, {S::Batch, S::StateLive}), R::Fp32, C::KvCache, Lifetime::Persistent, AliasRule::IfCached});
}

OpInfo weighted(const char* name, OpKind kind, u64 flops_per_token, std::vector<WeightTensor> w = {}) {
    OpInfo op{name, kind, OpGroup::Attention, Size(flops_per_token, {S::Batch, S::Sq}), std::move(w), {}};
    return op;
}

// Mamba2Mixer: in_proj → [gate | x B C | dt]; depthwise causal conv + SiLU on x B C; the SSD
// scan; gated RMSNorm; out_proj.
int mamba2(OpGraph& g, const BlockEnv& env, const MixerIO& io, Path path) {
    const ModelSpec& m = env.model;
    const SsmSpec& s = m.ssm;
    const Widths w = widths(env);
    const u64 h = m.hidden_size, H = w.heads, P = s.head_dim, N = s.state_size, cs = s.chunk_size;
    const u64 inner = w.inner, conv_dim = w.conv_dim;
    const u64 proj = checked_add(checked_add(inner, conv_dim, "in_proj"), H, "in_proj");
    int zxbcdt = g.op1(blk::linear("in_proj", OpGroup::Projection, h, proj, "in_proj", s.proj_bias ? "in_proj_bias" : nullptr), {io.x},
                       act("projected_states", tokens(proj)));
    std::vector<WeightTensor> conv_w = {{"conv1d", checked_mul(conv_dim, s.conv_kernel, "conv"), R::Param}};
    if (s.conv_bias) conv_w.push_back({"conv1d_bias", conv_dim, R::Param});
    conv_w.push_back({"A_log", H, R::Param});
    conv_w.push_back({"D", H, R::Param});
    conv_w.push_back({"dt_bias", H, R::Param});
    int xbc = g.op1(weighted("conv1d", OpKind::Elementwise, checked_mul(2 * s.conv_kernel, conv_dim, "conv"), conv_w), {zxbcdt},
                    act("conv_out", tokens(conv_dim)), {});
    int y;
    std::vector<int> locals = {zxbcdt};
    if (path == Path::Vllm) {
        // mamba_chunk_scan_combined: per-chunk states in fp32 [B, chunks, H, P, N] and the output.
        OpInfo scan = weighted("ssd_scan", OpKind::Attention, checked_product({2, H, P, N, 3}, "ssd"));
        scan.workspace.push_back({Size(ceil_div(checked_product({H, P, N}, "ssd"), cs), {S::Batch, S::Sq}), R::Fp32});
        y = g.op1(std::move(scan), {xbc}, act("scan_out", tokens(inner)));
    } else if (s.kind == "mamba2") {
        // torch_forward ("SSD naive"): x, B, C upcast to fp32 and B, C repeated per head; the
        // intra-chunk weights G = C·B per (token, key in chunk, head, state) are kept as a local
        // while Y_diag = Σ M·x is formed from a [.., chunk, chunk, H, P] product; every local
        // lives until the method returns.
        auto f32 = [&](const char* name, u64 per_token) {
            return TensorInfo{name, Size(per_token, {S::Batch, S::Sq, S::Prefilling}), R::Fp32};
        };
        int x32 = g.op1({"x_fp32", OpKind::Copy, OpGroup::Attention, {}, {}, {}}, {xbc}, f32("hidden_fp32", inner));
        int b32 = g.op1(
            {"B_repeat", OpKind::Copy, OpGroup::Attention, {}, {}, {{Size(s.n_groups * N, {S::Batch, S::Sq, S::Prefilling}), R::Fp32}}},
            {xbc}, f32("B_heads", checked_mul(H, N, "B")));
        int c32 = g.op1(
            {"C_repeat", OpKind::Copy, OpGroup::Attention, {}, {}, {{Size(s.n_groups * N, {S::Batch, S::Sq, S::Prefilling}), R::Fp32}}},
            {xbc}, f32("C_heads", checked_mul(H, N, "C")));
        int dres = g.op1({"D_residual", OpKind::Elementwise, OpGroup::Attention, {}, {}, {}}, {x32}, f32("D_residual", inner));
        int xdt = g.op1({"x_times_dt", OpKind::Elementwise, OpGroup::Attention, {}, {}, {}}, {x32}, f32("hidden_dt", inner));
        // L = exp(segment_sum(A)): [.., H, chunks, chunk, chunk] (masked_fill and cumsum copies).
        const Size chunkH(checked_mul(H, cs, "L"), {S::Batch, S::Sq, S::Prefilling});
        int lseg = g.op1({"segment_sum_exp", OpKind::Elementwise, OpGroup::Attention, {}, {}, {{chunkH, R::Fp32}, {chunkH, R::Fp32}}},
                         {xbc}, f32("L", checked_mul(H, cs, "L")));
        // G = Σ_n C·B over a [.., chunk, chunk, H, N] product (a temporary), M = G·L likewise.
        int gsum = g.op1({"G",
                          OpKind::Matmul,
                          OpGroup::Attention,
                          Size(checked_product({2, cs, H, N}, "G"), {S::Batch, S::Sq}),
                          {},
                          {{Size(checked_product({cs, H, N}, "G"), {S::Batch, S::Sq, S::Prefilling}), R::Fp32}}},
                         {c32, b32}, f32("G", checked_mul(cs, H, "G")));
        int msum = g.op1({"M", OpKind::Elementwise, OpGroup::Attention, {}, {}, {{chunkH, R::Fp32}}}, {gsum, lseg},
                         f32("M", checked_mul(cs, H, "M")));
        locals.insert(locals.end(), {x32, b32, c32, dres, xdt, lseg, gsum, msum});
        // Y_diag = Σ over the chunk of M·x: a [.., chunk, chunk, H, P] product (a temporary).
        int ydiag = g.op1h({"Y_diag",
                            OpKind::Matmul,
                            OpGroup::Attention,
                            Size(checked_product({2, cs, H, P}, "Y"), {S::Batch, S::Sq}),
                            {},
                            {{Size(checked_product({cs, H, P}, "Y"), {S::Batch, S::Sq, S::Prefilling}), R::Fp32}}},
                           {msum, xdt}, f32("Y_diag", inner), locals);
        locals.push_back(ydiag);
        // Chunk states: (B·decay)[..., None, :] · x[..., None] summed over the chunk: a [.., H, P, N] product per token.
        int st = g.op1h({"chunk_states",
                         OpKind::Matmul,
                         OpGroup::Attention,
                         Size(checked_product({2, H, P, N}, "states"), {S::Batch, S::Sq}),
                         {},
                         {{Size(checked_mul(H, N, "B_decay"), {S::Batch, S::Sq, S::Prefilling}), R::Fp32},
                          {Size(checked_product({H, P, N}, "states"), {S::Batch, S::Sq, S::Prefilling}), R::Fp32}}},
                        {b32, xdt}, f32("states", ceil_div(checked_product({H, P, N}, "states"), cs)), locals);
        locals.push_back(st);
        // C · states per token: [.., H, P, N] again, then summed.
        int yoff = g.op1h({"Y_off",
                           OpKind::Matmul,
                           OpGroup::Attention,
                           Size(checked_product({2, H, P, N}, "Y_off"), {S::Batch, S::Sq}),
                           {},
                           {{Size(checked_product({H, P, N}, "C_states"), {S::Batch, S::Sq, S::Prefilling}), R::Fp32}}},
                          {c32, st}, f32("Y_off", inner), locals);
        locals.push_back(yoff);
        // A decode step (cache_position > 0) takes the recurrent path instead: dA = exp(dt·A)
        // in fp32 (A is fp32; dt·A a temporary), dB = dt·B and dBx = dB·x in the compute dtype
        // (dt, B and x are), each [B, H, P, N], and the new state state·dA + dBx in fp32.
        const Size hpn(checked_product({H, P, N}, "decode state"), {S::Batch, S::Cached});
        int da = g.op1h({"decode_dA", OpKind::Elementwise, OpGroup::Attention, hpn, {}, {{hpn, R::Fp32}}}, {xbc},
                        TensorInfo{"dA", hpn, R::Fp32}, locals);
        int db = g.op1h({"decode_dB", OpKind::Elementwise, OpGroup::Attention, hpn, {}, {}}, {xbc}, TensorInfo{"dB", hpn, R::Act}, locals);
        int dbx =
            g.op1h({"decode_dBx", OpKind::Elementwise, OpGroup::Attention, hpn, {}, {}}, {db, xbc}, TensorInfo{"dBx", hpn, R::Act}, locals);
        int ns = g.op1h(
            {"decode_new_state", OpKind::Elementwise, OpGroup::Attention, Size(2 * hpn.coef, {S::Batch, S::Cached}), {}, {{hpn, R::Fp32}}},
            {da, dbx}, TensorInfo{"new_state", hpn, R::Fp32}, locals);
        locals.insert(locals.end(), {da, db, dbx, ns});
        // y: a prefill sums its fp32 parts; a decode multiplies C by a copy of the new state in
        // the compute dtype (ssm_states.to(C.dtype)).
        y = g.op1h({"y",
                    OpKind::Elementwise,
                    OpGroup::Attention,
                    {},
                    {},
                    {{Size(inner, {S::Batch, S::Sq, S::Prefilling}), R::Fp32}, {hpn, R::Act}}},
                   {ydiag, yoff, dres, ns}, act("y", tokens(inner)), locals);
    } else {
        y = -1;
    }
    state_outputs(g, env, path, y);
    // Gated RMSNorm (y · silu(gate), normed in fp32), back to the compute dtype, out_proj.
    OpInfo norm = blk::rms_norm("gated_norm", 1, inner);
    int yn = g.op1h(std::move(norm), {y, zxbcdt}, act("scan_normed", tokens(inner)), locals);
    std::vector<int> holds = io.holds_last;
    holds.push_back(env.runtime.keeps.normed_input ? io.x : -1);  // transformers' keep-alive references (none in vLLM's profile)
    return g.op1h(blk::linear("out_proj", OpGroup::Projection, inner, h, "out_proj", s.proj_bias ? "out_proj_bias" : nullptr), {yn},
                  act("ssm_out", tokens(h)), holds);
}

// MambaMixer (Jamba): in_proj → [x | gate]; conv + SiLU; x_proj → [dt | B | C] with Jamba's
// dt/B/C RMSNorms; dt_proj; the scan. slow_forward materialises exp(A·dt), dt·B and dt·B·x as
// fp32 [B, inner, L, d_state] tensors before a Python loop over the tokens.
int mamba1(OpGraph& g, const BlockEnv& env, const MixerIO& io, Path path) {
    const ModelSpec& m = env.model;
    const SsmSpec& s = m.ssm;
    const u64 h = m.hidden_size, inner = widths(env).inner, N = s.state_size, R_ = s.dt_rank;
    int xz = g.op1(blk::linear("in_proj", OpGroup::Projection, h, 2 * inner, "in_proj", s.proj_bias ? "in_proj_bias" : nullptr), {io.x},
                   act("projected_states", tokens(2 * inner)));
    std::vector<WeightTensor> conv_w = {{"conv1d", checked_mul(inner, s.conv_kernel, "conv"), R::Param}};
    if (s.conv_bias) conv_w.push_back({"conv1d_bias", inner, R::Param});
    int xc = g.op1(weighted("conv1d", OpKind::Elementwise, checked_mul(2 * s.conv_kernel, inner, "conv"), conv_w), {xz},
                   act("conv_out", tokens(inner)));
    const u64 xp = checked_add(R_, 2 * N, "x_proj");
    int ssm_p = g.op1(blk::linear("x_proj", OpGroup::Projection, inner, xp, "x_proj"), {xc}, act("ssm_parameters", tokens(xp)));
    // Jamba's dt_layernorm, b_layernorm, c_layernorm.
    int dtn = g.op1(blk::rms_norm("dt_layernorm", 1, R_), {ssm_p}, act("time_step", tokens(R_)));
    int bn = g.op1(blk::rms_norm("b_layernorm", 1, N), {ssm_p}, act("B", tokens(N)));
    int cn = g.op1(blk::rms_norm("c_layernorm", 1, N), {ssm_p}, act("C", tokens(N)));
    int dt = g.op1(blk::linear("dt_proj", OpGroup::Projection, R_, inner, "dt_proj", "dt_proj_bias"), {dtn},
                   act("discrete_time_step", tokens(inner)));
    std::vector<WeightTensor> a_w = {{"A_log", checked_mul(inner, N, "A"), R::Param}, {"D", inner, R::Param}};
    int y;
    std::vector<int> locals = {xz, xc, ssm_p, dtn, bn, cn};
    if (path == Path::Vllm) {
        OpInfo scan = weighted("selective_scan", OpKind::Attention, checked_product({6, inner, N}, "scan"), a_w);
        y = g.op1(std::move(scan), {xc, dt, bn, cn}, act("scan_out", tokens(inner)));
    } else {
        auto f32 = [&](const char* name, u64 per_token) { return TensorInfo{name, Size(per_token, {S::Batch, S::Sq}), R::Fp32}; };
        const u64 IN = checked_mul(inner, N, "scan");
        int sp = g.op1h({"softplus", OpKind::Elementwise, OpGroup::Attention, {}, {}, {}}, {dt}, act("dt_softplus", tokens(inner)), locals);
        locals.push_back(dt);
        int da = g.op1h(weighted("discrete_A", OpKind::Elementwise, IN, a_w), {sp}, f32("discrete_A", IN), locals);
        locals.push_back(sp);
        int db = g.op1h({"discrete_B", OpKind::Elementwise, OpGroup::Attention, Size(IN, {S::Batch, S::Sq}), {}, {}}, {sp, bn},
                        f32("discrete_B", IN), locals);
        locals.push_back(da);
        // x.float() is a temporary of the product.
        int dbu = g.op1h({"deltaB_u",
                          OpKind::Elementwise,
                          OpGroup::Attention,
                          Size(IN, {S::Batch, S::Sq}),
                          {},
                          {{Size(inner, {S::Batch, S::Sq}), R::Fp32}}},
                         {db, xc}, f32("deltaB_u", IN), locals);
        locals.push_back(db);
        // The recurrent loop appends one [B, inner] output per token (compute dtype) and stacks them.
        y = g.op1h({"scan",
                    OpKind::Elementwise,
                    OpGroup::Attention,
                    Size(checked_mul(4, IN, "scan"), {S::Batch, S::Sq}),
                    {},
                    {{Size(inner, {S::Batch, S::Sq}), R::Act}}},
                   {da, dbu, cn}, act("scan_output", tokens(inner)), locals);
        locals.push_back(dbu);
    }
    state_outputs(g, env, path, y);
    int gated = g.op1h({"gate_silu_mul", OpKind::Elementwise, OpGroup::Attention, Size(5 * inner, {S::Batch, S::Sq}), {}, {}}, {y, xz},
                       act("scan_gated", tokens(inner)), locals);
    std::vector<int> holds = io.holds_last;
    holds.push_back(env.runtime.keeps.normed_input ? io.x : -1);  // transformers' keep-alive references (none in vLLM's profile)
    return g.op1h(blk::linear("out_proj", OpGroup::Projection, inner, h, "out_proj", s.proj_bias ? "out_proj_bias" : nullptr), {gated},
                  act("ssm_out", tokens(h)), holds);
}

std::vector<ParamDecl> params(bool v2) {
    std::vector<ParamDecl> p = {{"ssm", "state size, conv kernel and inner width", [](const ModelSpec& m) { return m.ssm.state_size; }}};
    if (v2)
        p.push_back({"ssm.num_heads", "Mamba-2 heads", [](const ModelSpec& m) { return m.ssm.num_heads; }});
    else
        p.push_back({"ssm.dt_rank", "Mamba-1 dt rank", [](const ModelSpec& m) { return m.ssm.dt_rank; }});
    return p;
}

VariantHooks hooks(bool v2) {
    VariantHooks h;
    h.check_split = check_split;
    h.label =
        v2 ? [](const ModelSpec&, u64) { return std::string("Mamba-2"); } : [](const ModelSpec&, u64) { return std::string("Mamba"); };
    if (v2)
        // Mamba-2 defaults (arXiv 2405.21060): d_state 128, expand 2, head_dim 64, 1 group.
        h.techniques = {
            {"ssm", nullptr, 0, [](ModelSpec& m, u64) {
                 const u64 inner = checked_mul(2, m.hidden_size, "ssm inner");
                 if (inner % 64)
                     throw InputError(SourcePos{}, "compare.technique",
                                      fmt::format("\"ssm\" needs 2·hidden ({}) to be a multiple of 64", inner));
                 m.ssm = SsmSpec{"mamba2", 128, 4, inner, inner / 64, 64, 1, 256, 0, true, false};
                 for (auto& l : m.layers) l.token_mixer = "mamba2";
                 m.mla = MlaSpec{};
                 m.sliding_window = 0;
                 return std::string(
                     "every token mixer a Mamba-2 layer (d_state 128, expand 2): a fixed state per sequence; under transformers "
                     "without the mamba-ssm kernels the reference SSD path's fp32 chunk products dominate the peak");
             }}};
    return h;
}

}  // namespace

void register_ssm(BlockRegistry& r) {
    r.add(TokenMixer{
        "mamba2",
        "Mamba-2 state-space mixer: a fixed conv + SSM state per sequence (no KV growth); transformers' reference path "
        "materialises per-chunk fp32 products",
        params(true),
        {{"transformers", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return mamba2(g, env, io, Path::Transformers); },
          [](const BlockEnv& env) { return cache(env, Path::Transformers); }},
         {"vllm", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return mamba2(g, env, io, Path::Vllm); },
          [](const BlockEnv& env) { return cache(env, Path::Vllm); }}},
        hooks(true)});
    r.add(TokenMixer{
        "mamba",
        "Mamba-1 selective scan (Jamba): a fixed conv + SSM state per sequence; transformers' slow path materialises fp32 "
        "[inner, d_state] tensors per token",
        params(false),
        {{"transformers", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return mamba1(g, env, io, Path::Transformers); },
          [](const BlockEnv& env) { return cache(env, Path::Transformers); }},
         {"vllm", [](OpGraph& g, const BlockEnv& env, const MixerIO& io) { return mamba1(g, env, io, Path::Vllm); },
          [](const BlockEnv& env) { return cache(env, Path::Vllm); }}},
        hooks(false)});
}

}  // namespace memtax
