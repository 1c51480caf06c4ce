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

const char* to_string(Execution e) { return e == Execution::Vllm ? "vllm" : "transformers"; }
}  // namespace

const TokenMixer& BlockRegistry::token_mixer(const std::string& name, const std::string& field) const {
    return find(token_, name, field, "token mixer");
}

const ChannelMixer& BlockRegistry::channel_mixer(const std::string& name, const std::string& field) const {
    return find(channel_, name, field, "channel mixer");
}

void check_layer(const BlockRegistry& reg, const ModelSpec& m, size_t i, Execution exec) {
    const LayerSpec& l = m.layers.at(i);
    auto check = [&](const auto& v, const char* part) {
        const std::string field = fmt::format("model.layers[{}].{}", i, part);
        if (std::find(v.executions.begin(), v.executions.end(), exec) == v.executions.end())
            throw InputError(m.pos_of("layer_types"), field,
                             fmt::format("{} has no {} execution in this version of memtax", v.name, to_string(exec)));
        for (const auto& p : v.params)
            if (p.value(m) == 0)
                throw InputError(m.pos_of(p.name), "model." + std::string(p.name),
                                 fmt::format("{} (layer {}) needs {}: {}", v.name, i, p.name, p.description));
    };
    check(reg.token_mixer(l.token_mixer, fmt::format("model.layers[{}].token_mixer", i)), "token_mixer");
    check(reg.channel_mixer(l.channel_mixer, fmt::format("model.layers[{}].channel_mixer", i)), "channel_mixer");
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
    OpInfo op{name, OpKind::Norm, OpGroup::Norm, Size(checked_mul(4 * rows, width, name), {Sym::Batch, Sym::Sq}), {}, {{s, DtypeRole::Fp32}, {s, DtypeRole::Act}}};
    op.weights.push_back({name, width, DtypeRole::Param});
    // Training: pow and mul keep the fp32 copy, rsqrt its [rows] result, the weight's mul the
    // normalized values cast back (the output is kept by whoever reads it).
    op.saved = {{s, DtypeRole::Fp32}, {s, DtypeRole::Act}, {Size(rows, {Sym::Batch, Sym::Sq}), DtypeRole::Fp32}};
    return op;
}
}  // namespace blk

}  // namespace memtax
