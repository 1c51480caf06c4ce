// What every runtime family shares: the dispatch to a family, the dtype of each graph role, and
// the graphs of the parts around the decoder layers (the embedding, the head).
#include <fmt/format.h>

#include "runtimes/runtime.hpp"
#include "runtimes/shared.hpp"

#include <algorithm>

namespace memtax {

const char* to_string(Mode m) { return m == Mode::Prefill ? "prefill" : "decode"; }

const char* to_string(Recompute r) { return r == Recompute::None ? "none" : r == Recompute::Selective ? "selective" : "full"; }

TrainActivations RuntimePlan::train(const TrainPoint&) const {
    throw InputError({}, "workload.mode",
                     "this runtime family does not model training; use a transformers runtime (hf-train, hf-train-eager)");
}

FirstToken RuntimePlan::first_tokens(const StepCosts& c) const {
    // A static batch: every request's first token comes with the one prefill of the whole batch.
    const double t = c.batch_prefill_s;
    return FirstToken{"static batch", c.batch, checked_mul(c.batch, c.prompt_tokens, "batch prompt tokens"), 1, t, t, t, {}};
}

std::string RuntimePlan::ttft_meaning(u64 batch, u64 context) const {
    return fmt::format(
        "time to first token: a static batch prefills its {} prompts of {} tokens in one forward, so every request's first token "
        "comes after the whole batch's prefill",
        batch, group_digits(context));
}

std::string RuntimePlan::tpot_meaning(u64 batch, u64 context) const {
    return fmt::format("time per output token: one decode step of {} sequences at KV length {}", batch, group_digits(context));
}

const RuntimeRegistry& RuntimeRegistry::builtin() {
    // Built once, immutable afterwards; a new family file adds one line here.
    static const RuntimeRegistry reg = [] {
        RuntimeRegistry r;
        r.add(transformers_family());
        r.add(vllm_family());
        r.add(megatron_family());
        return r;
    }();
    return reg;
}

void RuntimeRegistry::add(Family f) {
    for (const auto& g : families_)
        if (g.name == f.name) throw InternalError(fmt::format("runtime family {} registered twice", f.name));
    families_.push_back(std::move(f));
}

std::vector<std::string> RuntimeRegistry::names() const {
    std::vector<std::string> out;
    for (const auto& f : families_) out.push_back(f.name);
    return out;
}

const RuntimeRegistry::Family& RuntimeRegistry::family(const RuntimeSpec& r) const {
    for (const auto& f : families_)
        if (f.name == r.family) return f;
    const std::vector<std::string> valid = names();
    throw InputError(r.family_pos, "family",
                     fmt::format("unknown runtime family \"{}\"{} in {}; valid: {}", r.family, did_you_mean(r.family, valid), r.name,
                                 fmt::join(valid, ", ")));
}

std::unique_ptr<RuntimePlan> compile_runtime(const CompileInput& in) {
    const RuntimeRegistry& reg = in.runtimes ? *in.runtimes : RuntimeRegistry::builtin();
    return reg.family(in.runtime).compile(in);
}

std::array<DType, kDtypeRoles> graph_dtypes(const ModelSpec& m, const DtypePolicy& p, const DType& mask) {
    std::array<DType, kDtypeRoles> d;
    auto set = [&](DtypeRole r, const DType& v) { d[static_cast<size_t>(r)] = v; };
    DType fp32;
    parse_dtype("fp32", fp32);
    set(DtypeRole::Act, m.dtype);
    set(DtypeRole::Softmax, p.softmax);
    set(DtypeRole::Kv, p.kv);
    set(DtypeRole::Logits, p.logits);
    set(DtypeRole::Fp32, fp32);
    set(DtypeRole::Index, DType{"int64", 64, 0, 0});
    set(DtypeRole::Bool, DType{"bool", 8, 0, 0});
    set(DtypeRole::Mask, mask);
    set(DtypeRole::Weight, p.weight);
    set(DtypeRole::Param, p.weight.bits >= 16 && p.weight.group_size == 0 ? p.weight : m.dtype);
    set(DtypeRole::ExpertWeight, p.expert_weight.name.empty() ? p.weight : p.expert_weight);
    return d;
}

std::optional<u64> section_u64(const Breakdown& b, const std::string& section, const std::string& key) {
    for (const auto& s : b.sections)
        if (s.name == section)
            for (const auto& f : s.fields)
                if (f.key == key)
                    if (const u64* v = std::get_if<u64>(&f.value)) return *v;
    return std::nullopt;
}

u64 norm_width(const ModelSpec& m) { return m.norm == NormKind::RMSNorm ? m.hidden_size : checked_mul(2, m.hidden_size, "norm"); }

OpGraph build_embedding_graph(const CompileInput& in, const std::array<DType, kDtypeRoles>& dt) {
    OpGraph g("embedding", dt, in.runtime.allocator_round_bytes);
    const u64 h = in.model.hidden_size;
    int ids = g.input(TensorInfo{"input_ids", Size(1, {Sym::Batch, Sym::Sq}), DtypeRole::Index});
    // The vocab-parallel embedding: this GPU's rows, in the model's dtype.
    OpInfo op{"embed_tokens", OpKind::Embedding, OpGroup::Embedding, {}, {}, {}};
    op.weights.push_back({"embed_tokens", checked_mul(in.shard.vocab, h, "embedding"), DtypeRole::Param});
    TensorInfo out = blk::act("inputs_embeds", blk::tokens(h));
    out.lifetime = Lifetime::Persistent;
    g.op1(std::move(op), {ids}, out);
    g.finalize();
    return g;
}

OpGraph build_head_graph(const CompileInput& in, const std::array<DType, kDtypeRoles>& dt, bool model_locals, bool eager_launches) {
    OpGraph g(model_locals ? "head/locals" : "head", dt, in.runtime.allocator_round_bytes);
    const ModelSpec& m = in.model;
    const u64 h = m.hidden_size;
    const Size bsh = blk::tokens(h);
    int x = g.input(blk::act("x_last", bsh));
    std::vector<int> holds;
    if (model_locals) {
        // The base model's locals live until it returns, after the final norm: the masks, the
        // rotary tables (cos and sin: 2 · Sq · head_dim), the token positions (int64) and the
        // embedding output (`inputs_embeds`).
        holds.push_back(g.input(TensorInfo{"attention_masks", Size(1, {Sym::MaskElems}), DtypeRole::Mask, Category::AttentionMatrix}));
        holds.push_back(g.input(blk::act("rotary_tables", Size(checked_mul(2, rotary_width(in.blocks, m), "rotary"), {Sym::Sq}))));
        holds.push_back(g.input(TensorInfo{"cache_position", Size(1, {Sym::Sq}), DtypeRole::Index}));
        holds.push_back(g.input(blk::act("inputs_embeds", bsh)));
    }
    OpInfo norm{
        "final_norm", OpKind::Norm, OpGroup::Norm, Size(4 * h, {Sym::Batch, Sym::Sq}), {}, {{bsh, DtypeRole::Fp32}, {bsh, DtypeRole::Act}}};
    norm.weights.push_back({"final_norm", norm_width(m), DtypeRole::Param});
    if (in.runtime.training.fused_layernorm) {
        norm.saves_inputs = 1;
        norm.saved = {{Size(2, {Sym::Batch, Sym::Sq}), DtypeRole::Fp32}};
    } else {
        norm.saved = {
            {bsh, DtypeRole::Fp32}, {bsh, DtypeRole::Act, Category::Activation, true}, {Size(1, {Sym::Batch, Sym::Sq}), DtypeRole::Fp32}};
        if (eager_launches && m.norm == NormKind::RMSNorm)
            blk::eager_rms_norm_launches(norm, 1, h,
                                         !(dt[static_cast<size_t>(DtypeRole::Act)] == dt[static_cast<size_t>(DtypeRole::Fp32)]));
    }
    int xf = g.op1h(std::move(norm), {x}, blk::act("x_final", bsh), holds);
    // The vocab-parallel head: this GPU's rows; the logits are then gathered onto one GPU. A
    // tied head reads the embedding's storage where the stage holds the embedding.
    const Size logits(m.vocab_size, {Sym::Batch, Sym::Kept});
    OpInfo head{
        "lm_head", OpKind::Matmul, OpGroup::LmHead, Size(checked_product({2, h, in.shard.vocab}, "lm_head"), {Sym::Batch, Sym::Kept}), {},
        {}};
    head.saves_inputs = 1;
    head.weight_saves = 1;
    head.weights.push_back(
        {"lm_head", checked_mul(h, in.shard.vocab, "lm_head"), DtypeRole::Param, m.tie_word_embeddings && in.has_embedding});
    int l = g.op1(std::move(head), {xf}, blk::act("logits_act", logits, Category::Logits));
    if (m.attn.final_softcap) {
        // Gemma-2: logits / cap, tanh, × cap, each a new tensor of the logits' size.
        l = g.op1({"final_softcap_div", OpKind::Elementwise, OpGroup::LmHead, {}, {}, {}}, {l},
                  blk::act("logits_div", logits, Category::Logits));
        l = g.op1({"final_softcap_tanh", OpKind::Elementwise, OpGroup::LmHead, {}, {}, {}}, {l},
                  blk::act("logits_tanh", logits, Category::Logits));
        l = g.op1({"final_softcap_mul", OpKind::Elementwise, OpGroup::LmHead, {}, {}, {}}, {l},
                  blk::act("logits_capped", logits, Category::Logits));
    }
    const AliasRule same =
        dt[static_cast<size_t>(DtypeRole::Logits)] == dt[static_cast<size_t>(DtypeRole::Act)] ? AliasRule::View : AliasRule::None;
    g.op1({"logits_cast", OpKind::Copy, OpGroup::LmHead, {}, {}, {}}, {l},
          TensorInfo{"logits", logits, DtypeRole::Logits, Category::Logits, Lifetime::Persistent, same});
    g.finalize();
    return g;
}

namespace {
// "q_proj 4,096·4,096 bf16 + ..." for the weights of a graph.
std::string weight_list(const OpGraph& g) {
    std::string out;
    for (const auto& op : g.ops())
        for (const auto& w : op.weights) {
            if (w.shared) continue;
            out += fmt::format("{}{} {} {}", out.empty() ? "" : " + ", w.name, group_digits(w.elements), g.dtype(w.dtype).name);
        }
    return out.empty() ? "none" : out;
}
}  // namespace

std::vector<LayerType> build_layer_types(const CompileInput& in, const BlockEnv& env, LayerBuilder build,
                                         std::vector<std::uint32_t>* type_of) {
    std::vector<LayerType> types;
    for (size_t i = 0; i < in.model.layers.size(); ++i) {
        const LayerSpec& l = in.model.layers[i];
        auto it = std::find_if(types.begin(), types.end(), [&](const LayerType& t) { return t.spec == l; });
        if (it == types.end()) {
            const LayerBlocks blocks = layer_blocks(in.blocks, in.model, i, env.execution);
            types.push_back(LayerType{l, blocks.token.cache(env), build(env, l, blocks, in.runtime.allocator_round_bytes), 0, 0});
            it = types.end() - 1;
        }
        ++it->count;
        if (type_of) type_of->push_back(static_cast<std::uint32_t>(it - types.begin()));
    }
    for (auto& t : types) t.model_count = static_cast<u64>(std::count(in.full_model.layers.begin(), in.full_model.layers.end(), t.spec));
    return types;
}

StageWeights stage_weights(const ModelSpec& m, const std::vector<LayerType>& types, const OpGraph* embedding, const OpGraph* head, u64 tp) {
    StageWeights w;
    for (const auto& t : types) {
        w.bytes = checked_add(w.bytes, checked_mul(t.graph.weight_bytes(), t.count, "weights"), "weights");
        w.parameters = checked_add(w.parameters, checked_mul(t.graph.weight_elements(), t.count, "parameters"), "parameters");
        w.active_parameters =
            checked_add(w.active_parameters, checked_mul(t.graph.active_weight_elements(), t.count, "parameters"), "parameters");
    }
    for (const OpGraph* g : {embedding, head})
        if (g) {
            w.bytes = checked_add(w.bytes, g->weight_bytes(), "weights");
            w.parameters = checked_add(w.parameters, g->weight_elements(), "parameters");
            w.active_parameters = checked_add(w.active_parameters, g->active_weight_elements(), "parameters");
        }
    if (embedding)
        w.components.push_back({"weights.embedding", "weights", embedding->weight_bytes(),
                                fmt::format("vocab/tp · hidden in {}: {}", m.dtype.name, weight_list(*embedding))});
    if (head)
        w.components.push_back(
            {"weights.head", "weights", head->weight_bytes(),
             fmt::format("final norm and LM head{}: {}", m.tie_word_embeddings && embedding ? " (tied: the embedding's storage)" : "",
                         weight_list(*head))});
    if (embedding && m.vision_encoder_parameters) {
        // The vision encoder rides with the first stage, its parameters split over the TP GPUs.
        const u64 p = ceil_div(m.vision_encoder_parameters, std::max<u64>(tp, 1)), b = m.dtype.bytes(p, "vision encoder");
        w.bytes = checked_add(w.bytes, b, "weights");
        w.parameters = checked_add(w.parameters, p, "parameters");
        w.components.push_back({"weights.vision_encoder", "weights", b,
                                fmt::format("{} parameters / tp {} in {} (loaded, not run by a text request; {})",
                                            group_digits(m.vision_encoder_parameters), tp, m.dtype.name, m.vision_encoder_source)});
    }
    for (const auto& t : types)
        w.components.push_back({fmt::format("weights.layer[{}+{}]", t.spec.token_mixer, t.spec.channel_mixer), "weights",
                                checked_mul(t.graph.weight_bytes(), t.count, "weights"),
                                fmt::format("{} layers × {} B: {}", t.count, group_digits(t.graph.weight_bytes()), weight_list(t.graph))});
    w.components.push_back({"weights", "weights", w.bytes,
                            m.vision_encoder_parameters && embedding
                                ? "embedding + head + vision encoder + Σ layers, each read off the blocks' weight tensors"
                                : "embedding + head + Σ layers, each read off the blocks' weight tensors"});
    return w;
}

std::string sum_verdict(const PointResult& r) {
    // Components in decreasing size, so the sentence leads with what decided it.
    std::vector<std::pair<std::string, u64>> parts = {{"weights", r.weights},
                                                      {"KV", r.kv_cache},
                                                      {"attention matrix", r.attention_matrix},
                                                      {"activations", r.activation_peak},
                                                      {"logits", r.logits},
                                                      {"overhead", r.runtime_overhead}};
    std::stable_sort(parts.begin(), parts.end(), [](const auto& a, const auto& c) { return a.second > c.second; });
    // Terms that would print as 0.0 GiB are summed into one "other" term in MiB.
    std::string sum;
    u64 small = 0;
    for (const auto& [name, v] : parts) {
        if (v < (1ull << 30) / 20) {
            small += v;
            continue;
        }
        sum += fmt::format("{}{} {}", sum.empty() ? "" : " + ", name, format_bytes_gib(v));
    }
    if (small) sum += fmt::format("{}other {:.1f} MiB", sum.empty() ? "" : " + ", static_cast<double>(small) / kMiB);
    if (r.fits)
        return fmt::format("fits: {} = {} of {} usable, {} free", sum, format_bytes_gib(r.total), format_bytes_gib(r.capacity),
                           format_bytes_gib(r.capacity - r.total));
    return fmt::format("does not fit: {} = {} exceeds {} usable by {}", sum, format_bytes_gib(r.total), format_bytes_gib(r.capacity),
                       format_bytes_gib(r.total - r.capacity));
}

}  // namespace memtax
