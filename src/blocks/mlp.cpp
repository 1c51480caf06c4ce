// Dense MLPs: the gated MLP of Llama/Mistral/Qwen2, act(gate_proj(x)) · up_proj(x) → down_proj
// (gated_mlp), and the plain up → act → down MLP (mlp). No cached state.
#include <fmt/format.h>

#include "blocks/block.hpp"

namespace memtax {
namespace {

using S = Sym;
using blk::act;
using blk::tokens;

// The hidden width per GPU: Megatron's column split of gate/up and row split of down.
u64 inter(const BlockEnv& env) { return env.model.intermediate_size / env.shard.tp; }

// The activation (SiLU/GELU: ~4 FLOPs an element); autograd keeps its input.
OpInfo activation(u64 i) {
    OpInfo op{"activation", OpKind::Elementwise, OpGroup::Mlp, Size(4 * i, {S::Batch, S::Sq}), {}, {}};
    op.saves_inputs = 1;
    return op;
}

// act(gate) · up: autograd keeps both factors.
OpInfo gate_mul_up(u64 i) {
    OpInfo op{"gate_mul_up", OpKind::Elementwise, OpGroup::Mlp, Size(i, {S::Batch, S::Sq}), {}, {}};
    op.saves_inputs = 0b11;
    return op;
}

// transformers' LlamaMLP: act_fn(gate_proj(x)) * up_proj(x); gate dies once activated. The
// activation costs ~4 FLOPs an element (SiLU), the product 1.
int gated_transformers(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const u64 h = m.hidden_size, i = inter(env);
    const char* bias_gate = m.mlp_bias ? "gate_bias" : nullptr;
    if (m.fused_projections) {
        // Phi3MLP: gate_up_proj, then gate and up are halves of its output (the `gate` local keeps
        // it alive until the method returns); up = up · act(gate), down_proj.
        int gu = g.op1(blk::linear("gate_up_proj", OpGroup::Mlp, h, 2 * i, "gate_up_proj", m.mlp_bias ? "gate_up_bias" : nullptr), {io.x},
                       act("gate_up", tokens(2 * i)));
        int a = g.op1(activation(i), {gu}, act("gate_act", tokens(i)));
        int prod = g.op1(gate_mul_up(i), {a, gu}, act("mlp_hidden", tokens(i)));
        std::vector<int> holds = io.holds_last;
        holds.push_back(env.runtime.keeps.mlp_input ? io.x : -1);
        holds.push_back(gu);
        TensorInfo out = act("down", tokens(h));
        if (io.output_is_layer_output) out.lifetime = Lifetime::Persistent;
        return g.op1h(blk::linear("down_proj", OpGroup::Mlp, i, h, "down_proj", m.mlp_bias ? "down_bias" : nullptr), {prod}, out, holds);
    }
    int gate = g.op1(blk::linear("gate_proj", OpGroup::Mlp, h, i, "gate_proj", bias_gate), {io.x}, act("gate", tokens(i)));
    int a = g.op1(activation(i), {gate}, act("gate_act", tokens(i)));
    int up = g.op1(blk::linear("up_proj", OpGroup::Mlp, h, i, "up_proj", m.mlp_bias ? "up_bias" : nullptr), {io.x}, act("up", tokens(i)));
    int prod = g.op1(gate_mul_up(i), {a, up}, act("mlp_hidden", tokens(i)));
    std::vector<int> holds = io.holds_last;
    holds.push_back(env.runtime.keeps.mlp_input ? io.x : -1);
    TensorInfo out = act("down", tokens(h));
    if (io.output_is_layer_output) out.lifetime = Lifetime::Persistent;
    return g.op1h(blk::linear("down_proj", OpGroup::Mlp, i, h, "down_proj", m.mlp_bias ? "down_bias" : nullptr), {prod}, out, holds);
}

// vLLM's merged gate/up projection and SiluAndMul (a new tensor; `x` is rebound, freeing gate_up).
int gated_vllm(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const u64 h = m.hidden_size, i = inter(env), i2 = checked_mul(2, i, "gate_up");
    int gu = g.op1(blk::linear("gate_up_proj", OpGroup::Mlp, h, i2, "gate_up_proj", m.mlp_bias ? "gate_up_bias" : nullptr), {io.x},
                   act("gate_up", tokens(i2)));
    int a = g.op1({"silu_and_mul", OpKind::Elementwise, OpGroup::Mlp, Size(5 * i, {S::Batch, S::Sq}), {}, {}}, {gu},
                  act("mlp_hidden", tokens(i)));
    TensorInfo out = act("hidden_out", tokens(h));
    if (io.output_is_layer_output) out.lifetime = Lifetime::Persistent;
    return g.op1h(blk::linear("down_proj", OpGroup::Mlp, i, h, "down_proj", m.mlp_bias ? "down_bias" : nullptr), {a}, out, io.holds_last);
}

// A plain MLP: up_proj, the activation, down_proj (the up output dies once activated).
int plain(OpGraph& g, const BlockEnv& env, const MixerIO& io) {
    const ModelSpec& m = env.model;
    const u64 h = m.hidden_size, i = inter(env);
    int up = g.op1(blk::linear("up_proj", OpGroup::Mlp, h, i, "up_proj", m.mlp_bias ? "up_bias" : nullptr), {io.x}, act("up", tokens(i)));
    int a = g.op1(activation(i), {up}, act("up_act", tokens(i)));
    std::vector<int> holds = io.holds_last;
    holds.push_back(env.runtime.keeps.mlp_input ? io.x : -1);  // transformers' keep-alive references (none in vLLM's profile)
    TensorInfo out = act("down", tokens(h));
    if (io.output_is_layer_output) out.lifetime = Lifetime::Persistent;
    return g.op1h(blk::linear("down_proj", OpGroup::Mlp, i, h, "down_proj", m.mlp_bias ? "down_bias" : nullptr), {a}, out, holds);
}

int identity(OpGraph& g, const BlockEnv&, const MixerIO& io) {
    return g.op1({"identity", OpKind::Copy, OpGroup::Residual, {}, {}, {}}, {io.x},
                 TensorInfo{"passthrough", blk::tokens(0), DtypeRole::Act, Category::Activation, Lifetime::Transient, AliasRule::View});
}

std::vector<ParamDecl> params() {
    return {{"intermediate_size", "the MLP's hidden width", [](const ModelSpec& m) { return m.intermediate_size; }}};
}

// Megatron's column/row split of the hidden width.
VariantHooks hooks() {
    VariantHooks h;
    h.check_split = [](const ModelSpec& m, u64 tp, u64) {
        if (m.intermediate_size % tp != 0)
            throw InputError(SourcePos{}, "deployment.tp",
                             fmt::format("{} does not divide intermediate_size = {} ({})", tp, m.intermediate_size, m.file));
    };
    return h;
}

}  // namespace

void register_mlp(BlockRegistry& r) {
    r.add(ChannelMixer{"gated_mlp",
                       "gated MLP: act(gate_proj(x)) · up_proj(x) → down_proj",
                       params(),
                       {{"transformers", gated_transformers}, {"vllm", gated_vllm}},
                       hooks()});
    r.add(ChannelMixer{"mlp", "plain MLP: up_proj → act → down_proj", params(), {{"transformers", plain}, {"vllm", plain}}, hooks()});
    // A block without a channel mixer (Mamba-2 models): the runtimes' layer skeletons skip the
    // second half of the layer; built alone it passes its input through.
    r.add(ChannelMixer{"none",
                       "no channel mixer: the block is norm → token mixer → residual (Mamba-2)",
                       {},
                       {{"transformers", identity}, {"vllm", identity}}});
}

}  // namespace memtax
