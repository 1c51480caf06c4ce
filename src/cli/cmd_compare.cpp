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

// The technique names, as listed in --help and in errors: the model as it is, every layer
// variant's rewrites (src/blocks/: each variant declares its own), the KV-cache dtypes.
const std::vector<std::string> kKvTechniques = {"kv-fp8", "kv-int8", "kv-int4"};
std::vector<std::string> technique_names(bool syntax) {
    std::vector<std::string> out = {"as-is"};
    for (const Technique& t : techniques(BlockRegistry::builtin())) out.push_back(syntax ? t.syntax() : t.name);
    out.insert(out.end(), kKvTechniques.begin(), kKvTechniques.end());
    return out;
}

Variant technique(const ModelSpec& base, const std::string& t) {
    Variant v{t, "", base, ""};
    ModelSpec& m = v.model;
    if (t == "as-is") {
        v.what = "the model as published";
        return v;
    }
    if (std::find(kKvTechniques.begin(), kKvTechniques.end(), t) != kKvTechniques.end()) {
        v.kv_dtype = t == "kv-fp8" ? "fp8_e4m3" : t == "kv-int8" ? "int8-g64" : "int4-g64";
        v.what = t == "kv-fp8" ? "KV cache in fp8 e4m3 (per-tensor scale)"
                               : fmt::format("KV cache in {} (one fp16 scale per 64 values)", v.kv_dtype);
        m.name = base.name + "+" + t;
        return v;
    }
    for (const Technique& x : techniques(BlockRegistry::builtin())) {
        const std::string name = x.name;
        const bool bare = t == name, with_argument = x.argument && t.rfind(name + "-", 0) == 0;
        if (!bare && !with_argument) continue;
        u64 n = x.fallback;
        if (with_argument) {
            const NumberParse p = parse_token_count(t.substr(name.size() + 1), n);
            if (p != NumberParse::Ok || n == 0)
                throw InputError(
                    SourcePos{}, "--technique",
                    fmt::format("\"{}\": the {} after \"{}-\" must be a positive token count, e.g. {}-4096", t, x.argument, name, name));
        }
        v.what = x.apply(m, n);
        m.name = base.name + "+" + t;
        validate_model(m);
        return v;
    }
    const std::vector<std::string> names = technique_names(true);
    throw InputError(
        SourcePos{}, "--technique",
        fmt::format("unknown technique \"{}\"{}; valid: {}", t, did_you_mean(t, technique_names(false)), fmt::join(names, ", ")));
}

class CompareCommand final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* c =
            app.add_subcommand("compare", "one workload across memory-saving techniques or models: KV/state, S×S, peak, largest context");
        c->add_option("--model", models_, "model(s); with one model, --technique variants of it (default: llama-3.1-8b)")->delimiter(',');
        c->add_option("--technique", techniques_,
                      fmt::format("variants of the first model: {} (default: all)", fmt::join(technique_names(true), ", ")))
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
            if (list.empty()) list = technique_names(false);
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
