// compare: one workload (model, GPU, batch, context) across the techniques that cut the memory
// tax — attention variants (MHA, GQA, MQA, MLA, sliding window, sparse), a state-space mixer,
// KV-cache compression (fp8, int8, int4 with group scales) and eviction budgets — or across
// models. Each technique is a transformation of the base model (or of the workload's KV dtype),
// compiled and evaluated by the same engine as `estimate`; the table makes the terms explicit:
// KV or state bytes, their linear growth per token, the constant state per sequence, the S×S
// bytes and their quadratic coefficient, the peak, and the largest context that fits.
#include <fmt/format.h>

#include <fmt/ranges.h>
#include <optional>

#include <algorithm>

#include "cli/common.hpp"
#include "core/number.hpp"
#include "planner/planner.hpp"
#include "report/document.hpp"
#include "report/report.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

struct Variant {
    std::string name, what;
    ModelSpec model;
    std::string kv_dtype;  // empty: the workload's
};

void set_mixer(ModelSpec& m, const std::string& mixer) {
    for (auto& l : m.layers) l.token_mixer = mixer;
}

u64 number_after(const std::string& spec, const std::string& prefix, u64 fallback, const char* what) {
    if (spec.size() <= prefix.size()) return fallback;
    u64 v = 0;
    const NumberParse p = parse_token_count(spec.substr(prefix.size()), v);
    if (p != NumberParse::Ok || v == 0)
        throw InputError(SourcePos{}, "--technique",
                         fmt::format("\"{}\": {} must be a positive token count, e.g. {}4096", spec, what, prefix));
    return v;
}

// The technique names, as listed in --help and in errors.
const std::vector<std::string> kTechniques = {"as-is",  "mha", "gqa",    "mqa",     "mla",     "sliding[-W]",
                                              "sparse", "ssm", "kv-fp8", "kv-int8", "kv-int4", "evict[-N]"};

Variant technique(const ModelSpec& base, const std::string& t) {
    Variant v{t, "", base, ""};
    ModelSpec& m = v.model;
    const bool attends = base.has_attention();
    auto need_heads = [&] {
        if (!attends || base.num_attention_heads == 0)
            throw InputError(SourcePos{}, "--technique", fmt::format("\"{}\" rewrites attention; {} has no attention heads", t, base.name));
        // Attention variants apply to plain attention layers; MLA/SSM bases are rewritten whole.
        m.mla = MlaSpec{};
        m.ssm = SsmSpec{};
        if (m.head_dim == 0) m.head_dim = base.hidden_size / base.num_attention_heads;
    };
    if (t == "as-is") {
        v.what = "the model as published";
    } else if (t == "mha" || t == "gqa" || t == "mqa") {
        need_heads();
        const u64 h = m.num_attention_heads;
        m.num_key_value_heads = t == "mha"   ? h
                                : t == "mqa" ? 1
                                             : (base.num_key_value_heads < h ? base.num_key_value_heads : std::max<u64>(1, h / 8));
        while (t == "gqa" && h % m.num_key_value_heads) --m.num_key_value_heads;
        set_mixer(m, "full_attention");
        m.sliding_window = 0;
        v.what =
            fmt::format("full attention, {} KV head{} for {} query heads", m.num_key_value_heads, m.num_key_value_heads == 1 ? "" : "s", h);
    } else if (t == "mla") {
        need_heads();
        // DeepSeek-V2's choice (arXiv 2405.04434 §2.1): d_c = 4·d_h, d_h^R = d_h/2.
        const u64 d = m.head_dim;
        m.mla = MlaSpec{0, 4 * d, d / 2, d, d};
        m.num_key_value_heads = m.num_attention_heads;
        set_mixer(m, "mla");
        m.sliding_window = 0;
        v.what = fmt::format("latent attention: d_c = 4·d_h = {}, rotary key d_h/2 = {}", 4 * d, d / 2);
    } else if (t.rfind("sliding", 0) == 0) {
        need_heads();
        m.sliding_window = number_after(t, "sliding-", 4096, "the window");
        set_mixer(m, "sliding_attention");
        v.what = fmt::format("every layer attends the last {} tokens", group_digits(m.sliding_window));
    } else if (t == "sparse") {
        need_heads();
        // BigBird's ITC layout (arXiv 2007.14062): 3 blocks of 64 local, 2 global, 3 random.
        m.attn.sparse_block = 64;
        m.attn.sparse_local = 3 * 64;
        m.attn.sparse_global = 2 * 64;
        m.attn.sparse_random_blocks = 3;
        set_mixer(m, "sparse_attention");
        m.sliding_window = 0;
        v.what =
            "block-sparse attention: 192 local + 128 global + 3 random blocks of 64 keys per query (BigBird); every token stays cached";
    } else if (t == "ssm") {
        // Mamba-2 defaults (arXiv 2405.21060): d_state 128, expand 2, head_dim 64, 1 group.
        m.ssm = SsmSpec{"mamba2", 128, 4, 2 * base.hidden_size, 2 * base.hidden_size / 64, 64, 1, 256, 0, true, false};
        if ((2 * base.hidden_size) % 64)
            throw InputError(SourcePos{}, "--technique",
                             fmt::format("\"ssm\" needs 2·hidden ({}) to be a multiple of 64", 2 * base.hidden_size));
        set_mixer(m, "mamba2");
        m.mla = MlaSpec{};
        m.sliding_window = 0;
        v.what =
            "every token mixer a Mamba-2 layer (d_state 128, expand 2): a fixed state per sequence; under transformers without the "
            "mamba-ssm kernels the reference SSD path's fp32 chunk products dominate the peak";
    } else if (t == "kv-fp8" || t == "kv-int8" || t == "kv-int4") {
        v.kv_dtype = t == "kv-fp8" ? "fp8_e4m3" : t == "kv-int8" ? "int8-g64" : "int4-g64";
        v.what = t == "kv-fp8" ? "KV cache in fp8 e4m3 (per-tensor scale)"
                               : fmt::format("KV cache in {} (one fp16 scale per 64 values)", v.kv_dtype);
    } else if (t.rfind("evict", 0) == 0) {
        need_heads();
        // StreamingLLM (arXiv 2309.17453): 4 attention-sink tokens + a recent window; the cache
        // holds the budget, whatever the context.
        const u64 budget = number_after(t, "evict-", 4 + 2044, "the token budget");
        m.sliding_window = budget;
        set_mixer(m, "sliding_attention");
        v.what = fmt::format("eviction: the cache keeps {} tokens per layer (attention sinks + recent window)", group_digits(budget));
    } else {
        throw InputError(
            SourcePos{}, "--technique",
            fmt::format("unknown technique \"{}\"{}; valid: {}", t, did_you_mean(t, kTechniques), fmt::join(kTechniques, ", ")));
    }
    if (t != "as-is") m.name = base.name + "+" + t;
    // A technique that changes the layer kinds drops MoE placement only if it does not apply.
    validate_model(m);
    return v;
}

class CompareCommand final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* c =
            app.add_subcommand("compare", "one workload across memory-saving techniques or models: KV/state, S×S, peak, largest context");
        c->add_option("--model", models_, "model(s); with one model, --technique variants of it (default: llama-3.1-8b)")->delimiter(',');
        c->add_option("--technique", techniques_,
                      fmt::format("variants of the first model: {} (default: all)", fmt::join(kTechniques, ", ")))
            ->delimiter(',');
        c->add_option("--gpu", a_.gpu, "GPU profile")->capture_default_str();
        c->add_option("--context", a_.context, "context (default: 8192, or the model's max if smaller)")->transform(token_count());
        c->add_option("--batch", a_.batch, "sequences")->transform(positive_int())->capture_default_str();
        c->add_option("--mode", a_.mode, "prefill | decode")->check(CLI::IsMember({"prefill", "decode"}))->capture_default_str();
        c->add_option("--runtime", a_.runtime, "hf-sdpa (default) | hf-eager | vllm | a runtime YAML profile");
        c->add_option("--kv-dtype", a_.kv_dtype, "KV cache dtype for every row (a kv-* technique overrides it)");
        c->add_flag("--allow-long-context", a_.allow_long_context, "search past each model's max_context for the largest context");
        add_format_option(c, a_.format);
        c->add_option("--output,-o", a_.output, "write the report to this file (atomically)");
        return c;
    }
    int run(std::ostream& out, std::ostream&) override {
        const Printer& print = printer(a_.format);
        if (models_.empty()) models_.push_back("llama-3.1-8b");
        std::vector<Variant> rows;
        if (models_.size() > 1) {
            if (!techniques_.empty())
                throw InputError(SourcePos{}, "--technique",
                                 "compares variants of one model; give one --model, or several models without --technique");
            for (const auto& name : models_) {
                ModelSpec m = model_from(name, "");
                rows.push_back(Variant{m.name, architecture_summary(m), m, ""});
            }
        } else {
            const ModelSpec base = model_from(models_.front(), "");
            std::vector<std::string> list = techniques_;
            if (list.empty())
                list = {"as-is", "mha", "gqa", "mqa", "mla", "sliding", "sparse", "ssm", "kv-fp8", "kv-int8", "kv-int4", "evict"};
            for (const auto& t : list) rows.push_back(technique(base, t));
        }
        const GpuSpec g = resolve_gpu(a_.gpu);
        Document d;
        d.schema = "memtax.compare/1";
        Table& t = d.sections.emplace_back(Document::Section{"rows", "Techniques", {}, {}}).table;
        for (auto [k, title, right] :
             std::initializer_list<std::tuple<const char*, const char*, bool>>{{"name", "technique", false},
                                                                               {"kv_bytes", "KV/state GiB", true},
                                                                               {"kv_bytes_per_token", "KV B/token", true},
                                                                               {"state_bytes_per_sequence", "state B/seq", true},
                                                                               {"attention_matrix_bytes", "S×S GiB", true},
                                                                               {"attention_bytes_per_token2", "S×S B/token²", true},
                                                                               {"forward_peak_bytes", "peak GiB", true},
                                                                               {"total_bytes", "total GiB", true},
                                                                               {"fits", "fits", false},
                                                                               {"max_context", "max context", true},
                                                                               {"what", "what", false}})
            t.add_column(k, title, right);
        u64 context = 0;
        std::string runtime_name;
        for (const auto& v : rows) {
            EstimateArgs ea = a_;
            ea.model = v.model.name;
            if (!v.kv_dtype.empty()) ea.kv_dtype = v.kv_dtype;
            const Workload w = workload_from(ea, v.model);
            context = w.context;
            runtime_name = w.runtime.name;
            const Plan plan = Plan::compile(v.model, g, Deployment{}, w);
            const Point p = plan.point_of(w);
            const PointResult r = plan.evaluate(p);
            if (r.status != PointStatus::Ok) plan.estimate(p);  // throws the reason
            // Linear and constant terms of the cache, from two contexts (decode, batch 1 per
            // sequence): KV(c) = state + per_token · c for attention; windows cap it.
            // The growth at this context: between it and twice it (a window already full adds nothing).
            const u64 c1 = std::max<u64>(2, w.context), c2 = 2 * c1;
            // The terms are the cache's shape, not a promise to serve the context: they are read
            // past the model's max_context too (twice a context beyond half of it would be refused,
            // and a refused point must not read as zero growth), on a plan compiled for that only
            // when twice the context passes the limit.
            std::optional<Plan> unbounded;
            if (c2 > v.model.max_context && !w.allow_long_context) {
                Workload u = w;
                u.allow_long_context = true;
                unbounded.emplace(Plan::compile(v.model, g, Deployment{}, u));
            }
            const Plan& shape = unbounded ? *unbounded : plan;
            auto kv_at = [&](u64 c) {
                const Point q_at{Mode::Decode, 1, c};
                const PointResult q = shape.evaluate(q_at);
                if (q.status != PointStatus::Ok) shape.estimate(q_at);  // throws the reason
                return q.kv_cache_visible;
            };
            const u64 k1 = kv_at(c1), k2 = kv_at(c2);
            const u64 per_token = k2 >= k1 ? (k2 - k1) / (c2 - c1) : 0;
            const u64 state = k1 >= per_token * c1 ? k1 - per_token * c1 : 0;
            // The S×S coefficient: attention-matrix bytes over batch · Sq · Skv at this point.
            const u64 sq = p.mode == Mode::Prefill ? p.context : 1;
            const double quad = r.attention_matrix
                                    ? static_cast<double>(r.attention_matrix) /
                                          (static_cast<double>(p.batch) * static_cast<double>(sq) * static_cast<double>(p.context))
                                    : 0.0;
            const u64 limit = a_.allow_long_context ? u64{1} << 32 : v.model.max_context;
            const u64 mc = max_context(plan, p.mode, p.batch, limit);
            t.row();
            t.cell(v.name);
            t.cell(fmt::format("{:.3f}", to_gib(r.kv_cache_visible)), std::to_string(r.kv_cache_visible));
            t.cell(group_digits(per_token), std::to_string(per_token));
            t.cell(group_digits(state), std::to_string(state));
            t.cell(fmt::format("{:.3f}", to_gib(r.attention_matrix)), std::to_string(r.attention_matrix));
            t.cell(quad > 0 ? fmt::format("{:.3g}", quad) : "0", fmt::format("{:.9g}", quad));
            t.cell(fmt::format("{:.3f}", to_gib(r.forward_peak)), std::to_string(r.forward_peak));
            t.cell(fmt::format("{:.2f}", to_gib(r.total)), std::to_string(r.total));
            t.cell(r.fits ? "yes" : "no", r.fits ? "true" : "false");
            t.cell(mc ? group_digits(mc) : "-", std::to_string(mc));
            t.cell(v.what);
        }
        d.title =
            fmt::format("memtax compare: {} on {}, {} batch {} at {} tokens ({})", models_.size() > 1 ? "models" : rows.front().model.name,
                        g.name, a_.mode, a_.batch, group_digits(context), runtime_name);
        d.notes.push_back(
            "per GPU. KV/state: the cache the sequences keep (a window or an eviction budget caps it; a state-space layer keeps a "
            "fixed state). KV B/token is its linear growth per token of context, state B/seq the part that does not grow.");
        d.notes.push_back(
            "S×S: the attention-matrix bytes live at the peak (eager attention materialises them; fused kernels do not); "
            "S×S B/token² is that over batch · query tokens · keys, the quadratic term. max context: the largest context "
            "that fits at this batch (bisection over the same engine).");
        emit(print.document(d, tool_info()), a_.output, out);
        return 0;
    }

private:
    std::vector<std::string> models_, techniques_;
    EstimateArgs a_;
};

}  // namespace

std::unique_ptr<Command> make_compare() { return std::make_unique<CompareCommand>(); }

}  // namespace memtax::cli
