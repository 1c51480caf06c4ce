#include <fmt/format.h>

#include <algorithm>

#include "blocks/block.hpp"

namespace memtax {

const BlockRegistry& BlockRegistry::builtin() {
    // Built once, immutable afterwards; a new variant file adds one line here.
    static const BlockRegistry reg = [] {
        BlockRegistry r;
        register_attention(r);
        register_mla(r);
        register_ssm(r);
        register_mlp(r);
        register_moe(r);
        return r;
    }();
    return reg;
}

void BlockRegistry::add(TokenMixer m) {
    for (auto& t : token_)
        if (std::string(t.name) == m.name) throw InternalError(fmt::format("token mixer {} registered twice", m.name));
    token_.push_back(std::move(m));
}

void BlockRegistry::add(ChannelMixer m) {
    for (auto& t : channel_)
        if (std::string(t.name) == m.name) throw InternalError(fmt::format("channel mixer {} registered twice", m.name));
    channel_.push_back(std::move(m));
}

namespace {
template <typename V>
const V& find(const std::vector<V>& list, const std::string& name, const std::string& field, const char* what) {
    std::vector<std::string> names;
    for (const auto& v : list) {
        if (name == v.name) return v;
        names.push_back(v.name);
    }
    throw InputError(SourcePos{}, field,
                     fmt::format("unknown {} \"{}\"{}; valid: {}", what, name, did_you_mean(name, names), fmt::join(names, ", ")));
}

template <typename V>
const Execution* find_execution(const V& v, std::string_view execution) {
    for (const auto& e : v.executions)
        if (execution == e.name) return &e;
    return nullptr;
}
}  // namespace

const Execution* TokenMixer::under(std::string_view execution) const { return find_execution(*this, execution); }
const Execution* ChannelMixer::under(std::string_view execution) const { return find_execution(*this, execution); }

const TokenMixer& BlockRegistry::token_mixer(const std::string& name, const std::string& field) const {
    return find(token_, name, field, "token mixer");
}

const ChannelMixer& BlockRegistry::channel_mixer(const std::string& name, const std::string& field) const {
    return find(channel_, name, field, "channel mixer");
}

namespace {
// Where layer i was named: its layer_types entry, else the list.
SourcePos layer_pos(const ModelSpec& m, size_t i) {
    const SourcePos p = m.pos_of(fmt::format("layer_types[{}]", i));
    return p.line ? p : m.pos_of("layer_types");
}
}  // namespace

LayerBlocks layer_blocks(const BlockRegistry& reg, const ModelSpec& m, size_t i, std::string_view execution) {
    const LayerSpec& l = m.layers.at(i);
    auto check = [&](const auto& v, const char* part) -> const Execution& {
        const std::string field = fmt::format("model.layers[{}].{}", i, part);
        const Execution* e = v.under(execution);
        if (!e) {
            std::vector<std::string> has;
            for (const auto& x : v.executions) has.push_back(x.name);
            throw InputError(
                layer_pos(m, i), field,
                fmt::format("{} has no {} execution in this version of memtax; it has: {}", v.name, execution, fmt::join(has, ", ")));
        }
        for (const auto& p : v.params)
            if (p.value(m) == 0)
                throw InputError(m.pos_of(p.name), "model." + std::string(p.name),
                                 fmt::format("{} (layer {}) needs {}: {}", v.name, i, p.name, p.description));
        return *e;
    };
    // An unknown name is reported where the profile names the layer.
    auto at_layer = [&](auto&& lookup) -> decltype(auto) {
        try {
            return lookup();
        } catch (const InputError& e) {
            throw InputError(layer_pos(m, i), e.field(), e.message());
        }
    };
    const Execution& token = check(
        at_layer([&]() -> const TokenMixer& { return reg.token_mixer(l.token_mixer, fmt::format("model.layers[{}].token_mixer", i)); }),
        "token_mixer");
    const Execution& channel = check(at_layer([&]() -> const ChannelMixer& {
                                         return reg.channel_mixer(l.channel_mixer, fmt::format("model.layers[{}].channel_mixer", i));
                                     }),
                                     "channel_mixer");
    if (!token.cache) throw InternalError(fmt::format("token mixer {} declares no cache for its {} execution", l.token_mixer, token.name));
    return LayerBlocks{token, channel};
}

namespace blk {
OpInfo linear(const char* name, OpGroup group, u64 in, u64 out, const char* weight, const char* bias) {
    OpInfo op{name, OpKind::Matmul, group, Size(checked_product({2, in, out}, name), {Sym::Batch, Sym::Sq}), {}, {}};
    op.saves_inputs = 1;  // autograd keeps the input for the weight's gradient
    WeightTensor w{weight, checked_mul(in, out, weight), DtypeRole::Weight};
    w.in = in;
    op.weights.push_back(w);
    if (bias) op.weights.push_back({bias, out, DtypeRole::Param});
    return op;
}

OpInfo rms_norm(const char* name, u64 rows, u64 width) {
    const Size s(checked_mul(rows, width, name), {Sym::Batch, Sym::Sq});
    OpInfo op{name,
              OpKind::Norm,
              OpGroup::Norm,
              Size(checked_mul(4 * rows, width, name), {Sym::Batch, Sym::Sq}),
              {},
              {{s, DtypeRole::Fp32}, {s, DtypeRole::Act}}};
    op.weights.push_back({name, width, DtypeRole::Param});
    // Training: pow and mul keep the fp32 copy, rsqrt its [rows] result, the weight's mul the
    // normalized values cast back (the output is kept by whoever reads it).
    op.saved = {{s, DtypeRole::Fp32}, {s, DtypeRole::Act}, {Size(rows, {Sym::Batch, Sym::Sq}), DtypeRole::Fp32}};
    return op;
}

void eager_rms_norm_launches(OpInfo& op, u64 rows, u64 width, bool upcast) {
    using L = LaunchClass;
    using R = DtypeRole;
    const Size e(checked_mul(rows, width, op.name), {Sym::Batch, Sym::Sq}), r(rows, {Sym::Batch, Sym::Sq});
    if (upcast) op.launches.push_back({L::Strided, e, R::Act, 1, R::Fp32, 1});     // hidden_states.to(float32): a converting copy
    op.launches.push_back({L::Vectorized, e, R::Fp32, 1, R::Fp32, 1});             // .pow(2)
    op.launches.push_back({L::Reduce, e, R::Fp32, 1, R::Fp32, 0});                 // .mean(-1, keepdim=True)
    op.launches.push_back({L::Vectorized, r, R::Fp32, 1, R::Fp32, 1});             // + eps
    op.launches.push_back({L::Vectorized, r, R::Fp32, 1, R::Fp32, 1});             // rsqrt
    op.launches.push_back({L::Strided, e, R::Fp32, 1, R::Fp32, 1});                // × rsqrt, broadcast over the row
    if (upcast) op.launches.push_back({L::Vectorized, e, R::Fp32, 1, R::Act, 1});  // .to(input_dtype)
    op.launches.push_back({L::Strided, e, R::Act, 1, R::Act, 1});                  // weight ×, broadcast over the rows
}

void eager_rotary_launches(OpInfo& op, u64 width) {
    using L = LaunchClass;
    using R = DtypeRole;
    // q arrives transposed ([B, Sq, heads, d] viewed as [B, heads, Sq, d]) and cos/sin broadcast
    // over the heads, so every kernel takes TensorIterator's non-vectorized path.
    const Size e(width, {Sym::Batch, Sym::Sq}), half(width / 2, {Sym::Batch, Sym::Sq});
    op.launches.push_back({L::Strided, e, R::Act, 1, R::Act, 1});     // q * cos
    op.launches.push_back({L::Strided, half, R::Act, 1, R::Act, 1});  // -x2
    op.launches.push_back({L::Cat, e, R::Act, 1, R::Act, 1});         // cat((-x2, x1), dim=-1)
    op.launches.push_back({L::Strided, e, R::Act, 1, R::Act, 1});     // rotate_half(q) * sin
    op.launches.push_back({L::Strided, e, R::Act, 2, R::Act, 1});     // the sum
}
}  // namespace blk

}  // namespace memtax
