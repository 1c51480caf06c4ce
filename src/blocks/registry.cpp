#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>

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
const V* find_or_null(const std::vector<V>& list, const std::string& name) {
    for (const auto& v : list)
        if (name == v.name) return &v;
    return nullptr;
}

template <typename V>
const V& find(const std::vector<V>& list, const std::string& name, const std::string& field, const char* what) {
    if (const V* v = find_or_null(list, name)) return *v;
    std::vector<std::string> names;
    for (const auto& v : list) names.push_back(v.name);
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

u64 OwnParams::value(const ModelSpec& m, const char* key) const {
    for (const auto& k : keys) {
        if (std::string_view(k.key) != key) continue;
        const auto g = m.own_params.find(group ? group : "");
        if (g == m.own_params.end()) return k.fallback;
        const auto v = g->second.values.find(key);
        return v == g->second.values.end() ? k.fallback : v->second.first;
    }
    throw InternalError(fmt::format("{} reads {}.{}, which it does not declare", group ? group : "a variant", group ? group : "", key));
}

std::string Technique::syntax() const { return argument ? fmt::format("{}[-{}]", name, argument) : std::string(name); }

namespace {
// Each distinct variant of the model once, token mixers first, in layer order.
struct ModelVariants {
    std::vector<std::pair<const TokenMixer*, u64>> token;
    std::vector<std::pair<const ChannelMixer*, u64>> channel;
};
ModelVariants variants_of(const BlockRegistry& reg, const ModelSpec& m) {
    ModelVariants out;
    auto count = [](auto& list, const auto* v) {
        for (auto& [x, n] : list)
            if (x == v) return void(++n);
        list.push_back({v, 1});
    };
    // By name without formatting a field path unless the name is unknown (80-layer models).
    for (size_t i = 0; i < m.layers.size(); ++i) {
        const LayerSpec& l = m.layers[i];
        const TokenMixer* t = find_or_null(reg.token_mixers(), l.token_mixer);
        const ChannelMixer* c = find_or_null(reg.channel_mixers(), l.channel_mixer);
        if (!t) t = &reg.token_mixer(l.token_mixer, fmt::format("model.layers[{}].token_mixer", i));
        if (!c) c = &reg.channel_mixer(l.channel_mixer, fmt::format("model.layers[{}].channel_mixer", i));
        count(out.token, t);
        count(out.channel, c);
    }
    return out;
}

void check_own(const VariantHooks& h, const char* variant, const ModelSpec& m) {
    if (!h.own.group) return;
    const auto g = m.own_params.find(h.own.group);
    std::vector<std::string> keys;
    for (const auto& k : h.own.keys) keys.push_back(k.key);
    if (g != m.own_params.end()) {
        for (const auto& [key, v] : g->second.values)
            if (std::find(keys.begin(), keys.end(), key) == keys.end())
                throw InputError(
                    v.second, fmt::format("{}.{}", h.own.group, key),
                    fmt::format("{} does not read \"{}\"{}; valid: {}", variant, key, did_you_mean(key, keys), fmt::join(keys, ", ")));
    }
    for (const auto& k : h.own.keys) {
        if (!k.required || (g != m.own_params.end() && g->second.values.count(k.key))) continue;
        throw InputError(g != m.own_params.end() ? g->second.pos : m.pos_of("layer_types"), fmt::format("{}.{}", h.own.group, k.key),
                         fmt::format("{} needs {}: {}", variant, k.key, k.description));
    }
}
}  // namespace

void check_variants(const BlockRegistry& reg, const ModelSpec& m, u64 tp, u64 ep) {
    const ModelVariants v = variants_of(reg, m);
    std::vector<std::string> groups;
    auto check = [&](const auto& list) {
        for (const auto& [x, n] : list) {
            check_own(x->hooks, x->name, m);
            if (x->hooks.own.group) groups.push_back(x->hooks.own.group);
            if (x->hooks.check_split) x->hooks.check_split(m, tp, ep);
        }
    };
    check(v.token);
    check(v.channel);
    for (const auto& [name, g] : m.own_params)
        if (std::find(groups.begin(), groups.end(), name) == groups.end())
            throw InputError(
                g.pos, name,
                fmt::format("no layer variant of {} reads a \"{}\" group{}", m.name, name,
                            groups.empty() ? std::string("; its variants read none")
                                           : fmt::format("{}; valid: {}", did_you_mean(name, groups), fmt::join(groups, ", "))));
    if (ep > 1) {
        bool spreads = false;
        for (const auto& [x, n] : v.channel) spreads |= x->expert_parallel;
        if (!spreads) throw InputError(SourcePos{}, "deployment.ep", fmt::format("{} has no experts to spread; valid: 1", m.name));
    }
}

u64 rotary_width(const BlockRegistry& reg, const ModelSpec& m) {
    u64 w = 0;
    for (const auto& [x, n] : variants_of(reg, m).token)
        if (x->rotary_width) w = std::max(w, x->rotary_width(m));
    return w;
}

std::string architecture_summary(const BlockRegistry& reg, const ModelSpec& m) {
    // By name (a stable order whatever the layer order); a name the registry does not know (a
    // model not yet checked) is shown as it is.
    std::map<std::string, u64> token;
    std::vector<std::pair<std::string, u64>> channel;
    for (const auto& l : m.layers) {
        ++token[l.token_mixer];
        auto c = std::find_if(channel.begin(), channel.end(), [&](const auto& x) { return x.first == l.channel_mixer; });
        if (c == channel.end())
            channel.push_back({l.channel_mixer, 1});
        else
            ++c->second;
    }
    auto label = [&](const auto& list, const std::string& name, u64 n) -> std::optional<std::string> {
        for (const auto& v : list)
            if (name == v.name) return v.hooks.label ? std::optional(v.hooks.label(m, n)) : std::nullopt;
        return std::nullopt;
    };
    std::string out;
    for (const auto& [name, n] : token)
        out += fmt::format("{}{}×{}", out.empty() ? "" : " + ", n, label(reg.token_mixers(), name, n).value_or(name));
    for (const auto& [name, n] : channel)
        if (auto l = label(reg.channel_mixers(), name, n)) out += "; " + *l;
    return out;
}

std::vector<Technique> techniques(const BlockRegistry& reg) {
    std::vector<Technique> out;
    for (const auto& t : reg.token_mixers()) out.insert(out.end(), t.hooks.techniques.begin(), t.hooks.techniques.end());
    for (const auto& c : reg.channel_mixers()) out.insert(out.end(), c.hooks.techniques.begin(), c.hooks.techniques.end());
    return out;
}

namespace blk {
OpInfo linear(const char* name, OpGroup group, u64 in, u64 out, const char* weight, const char* bias) {
    OpInfo op{name, OpKind::Matmul, group, Size(checked_product({2, in, out}, name), {Sym::Batch, Sym::Sq}), {}, {}};
    op.saves_inputs = 1;  // autograd keeps the input for the weight's gradient
    op.weight_saves = 1;
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
    op.saved = {
        {s, DtypeRole::Fp32}, {s, DtypeRole::Act, Category::Activation, true}, {Size(rows, {Sym::Batch, Sym::Sq}), DtypeRole::Fp32}};
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

void check_heads_split(const ModelSpec& m, u64 tp, u64) {
    auto fail = [&](const std::string& msg) { throw InputError(SourcePos{}, "deployment.tp", msg); };
    if (m.num_attention_heads % tp != 0)
        fail(fmt::format("{} does not divide num_attention_heads = {} ({}); valid: a divisor of {}", tp, m.num_attention_heads, m.file,
                         m.num_attention_heads));
    if (m.num_key_value_heads % tp != 0 && tp % m.num_key_value_heads != 0)
        fail(fmt::format("{} and num_key_value_heads = {} ({}) must divide one another", tp, m.num_key_value_heads, m.file));
}

u64 heads_per_gpu(const ModelSpec& m, u64 tp) { return m.num_attention_heads / tp; }

u64 kv_heads_per_gpu(const ModelSpec& m, u64 tp) { return m.num_key_value_heads >= tp ? m.num_key_value_heads / tp : 1; }

void plain_attention_base(ModelSpec& m, const char* technique) {
    if (m.num_attention_heads == 0)
        throw InputError(SourcePos{}, "compare.technique",
                         fmt::format("\"{}\" rewrites attention; {} has no attention heads", technique, m.name));
    m.mla = MlaSpec{};
    m.ssm = SsmSpec{};
    if (m.head_dim == 0) m.head_dim = m.hidden_size / m.num_attention_heads;
}
}  // namespace blk

}  // namespace memtax
