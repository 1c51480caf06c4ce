// The planner's results as Documents: a plan, a sweep, setups side by side.
#include "report/plan_report.hpp"

#include <fmt/format.h>

#include <cmath>

namespace memtax {

std::string gib_cell(u64 b) { return fmt::format("{:.2f}", to_gib(b)); }
std::string seconds_cell(double s) { return s >= 1 ? fmt::format("{:.2f} s", s) : fmt::format("{:.1f} ms", s * 1e3); }
std::string exact_cell(double v) { return fmt::format("{:.9g}", v); }

namespace {

// The TTFT statistic the scenario's SLO holds to, as a column title.
std::string ttft_title(const ScenarioSpec& s) { return s.ttft_percentile ? fmt::format("TTFT p{}", s.ttft_percentile) : "TTFT mean"; }

void candidate_columns(Table& t, const ScenarioSpec& s) {
    const std::string ttft = ttft_title(s);
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"rank", "#", true},
                                                                           {"gpu", "gpu", false},
                                                                           {"gpus", "gpus", true},
                                                                           {"tp", "tp", true},
                                                                           {"pp", "pp", true},
                                                                           {"dp", "dp", true},
                                                                           {"ep", "ep", true},
                                                                           {"weight_dtype", "weights", false},
                                                                           {"kv_dtype", "kv", false},
                                                                           {"runtime", "runtime", false},
                                                                           {"batch_per_replica", "seqs/replica", true},
                                                                           {"total_bytes", "GiB/GPU", true},
                                                                           {"budget_bytes", "budget GiB", true},
                                                                           {"sequences_held", "seqs held", true},
                                                                           {"ttft_s", ttft.c_str(), true},
                                                                           {"ttft_mean_s", "TTFT mean", true},
                                                                           {"tpot_s", "TPOT", true},
                                                                           {"tokens_per_s", "tokens/s", true},
                                                                           {"tokens_per_s_per_gpu", "tok/s/GPU", true},
                                                                           {"tokens_per_s_per_user", "tok/s/user", true},
                                                                           {"goodput_tokens_per_s", "goodput", true},
                                                                           {"cost_per_million_tokens", "$/Mtok", true},
                                                                           {"binding", "binding", false},
                                                                           {"binding_ratio", "use", true}})
        t.add_column(k, title, right);
}

void candidate_row(Table& t, const Candidate& c, size_t rank) {
    t.row();
    t.cell(rank ? std::to_string(rank) : "-");
    t.cell(c.cluster.empty() ? c.gpu : fmt::format("{} ({})", c.gpu, c.cluster), c.gpu);
    t.cell(std::to_string(c.gpus));
    t.cell(std::to_string(c.tp));
    t.cell(std::to_string(c.pp));
    t.cell(std::to_string(c.dp));
    t.cell(std::to_string(c.ep));
    t.cell(c.weight_dtype);
    t.cell(c.kv_dtype);
    t.cell(c.runtime);
    t.cell(std::to_string(c.batch_per_replica));
    t.cell(gib_cell(c.memory.total), std::to_string(c.memory.total));
    t.cell(gib_cell(c.budget_bytes), std::to_string(c.budget_bytes));
    t.cell(fmt::format("{:.2f}", c.concurrency_held), exact_cell(c.concurrency_held));
    t.cell(c.timed ? seconds_cell(c.ttft_s) : "-", c.timed ? exact_cell(c.ttft_s) : "");
    t.cell(c.timed ? seconds_cell(c.ttft_mean_s) : "-", c.timed ? exact_cell(c.ttft_mean_s) : "");
    t.cell(c.timed ? seconds_cell(c.tpot_s) : "-", c.timed ? exact_cell(c.tpot_s) : "");
    for (double v : {c.tokens_per_s, c.tokens_per_s_per_gpu, c.tokens_per_s_per_user, c.goodput_tokens_per_s})
        t.cell(c.timed ? fmt::format("{:.0f}", v) : "-", c.timed ? exact_cell(v) : "");
    t.cell(c.cost_per_million_tokens > 0 ? fmt::format("{:.3f}", c.cost_per_million_tokens) : "-",
           c.cost_per_million_tokens > 0 ? exact_cell(c.cost_per_million_tokens) : "");
    t.cell(c.binding);
    t.cell(fmt::format("{:.0f}%", c.binding_ratio * 100), exact_cell(c.binding_ratio));
}

}  // namespace

Document::Section gates_section(const std::vector<GateResult>& gates, bool passed) {
    Document::Section g{"gates", fmt::format("Gates: {}", passed ? "all pass" : "FAILED"), {}, {}};
    g.table.add_column("gate", "gate");
    g.table.add_column("passed", "result");
    g.table.add_column("detail", "detail");
    for (const auto& x : gates) {
        g.table.row();
        g.table.cell(x.gate);
        g.table.cell(x.passed ? "pass" : "FAIL", x.passed ? "true" : "false");
        g.table.cell(x.detail);
    }
    return g;
}

Document plan_document(const PlanReport& r, size_t top, bool pareto) {
    const ScenarioSpec& s = r.scenario;
    Document d;
    d.schema = "memtax.plan/1";
    d.title = s.description.empty() ? fmt::format("memtax plan {}", s.name) : fmt::format("memtax plan {}: {}", s.name, s.description);
    d.notes.push_back(
        fmt::format("model {}, runtime {}, {}, prompts {} tokens (max {}), outputs {} (max {}), context {}", r.model_name, s.runtime,
                    s.request_rate_per_s ? fmt::format("{:g} requests/s (Poisson arrivals, split over the replicas)", *s.request_rate_per_s)
                    : s.burst            ? fmt::format("a burst of {} requests at once", s.concurrency)
                              : fmt::format("{} users in steady state (each answered request replaced by the user's next)", s.concurrency),
                    group_digits(s.prompt.mean), group_digits(s.prompt.max), group_digits(s.output.mean), group_digits(s.output.max),
                    group_digits(s.context)));
    d.notes.push_back(fmt::format("objective {}; memory headroom {:.1f}%{}{}", to_string(s.objective),
                                  static_cast<double>(s.memory_headroom_ppm) / 1e4, s.ttft_s ? fmt::format(", TTFT ≤ {} s", *s.ttft_s) : "",
                                  s.tpot_s ? fmt::format(", TPOT ≤ {} s", *s.tpot_s) : ""));
    std::string rejected;
    for (const auto& [kind, n] : r.rejected_by) rejected += fmt::format("{}{} {}", rejected.empty() ? "" : ", ", n, kind);
    d.notes.push_back(fmt::format("{} candidates considered: {} feasible{}", r.considered, r.ranked.size(),
                                  rejected.empty() ? "" : fmt::format("; rejected: {}", rejected)));
    if (!s.price_source.empty()) d.notes.push_back("prices: " + s.price_source);
    if (!r.launch.empty()) d.notes.push_back("deploy the best plan: " + r.launch);
    if (r.ranked.empty()) {
        if (r.closest) {
            const Candidate& c = *r.closest;
            d.notes.push_back(
                fmt::format("nothing satisfies the scenario; the closest is {}× {} (TP {}, PP {}, DP {}, {} KV), held back by {}: {} "
                            "({:.0f}% of the limit)",
                            c.gpus, c.gpu, c.tp, c.pp, c.dp, c.kv_dtype, c.binding, c.reason, c.binding_ratio * 100));
        } else {
            d.notes.push_back("nothing satisfies the scenario: no candidate could be built (see the rejections)");
        }
        // What to relax, by how much: each SLO alone, over the candidates that fit in memory.
        for (const auto& x : r.relaxations) {
            if (x.constraint == "memory") {
                const Candidate& c = *x.example;
                d.notes.push_back(
                    fmt::format("memory: the closest candidate over its memory uses {:.0f}% of it ({}× {}, TP {}, PP {}, DP {}, {} KV: {})",
                                x.best * 100, c.gpus, c.gpu, c.tp, c.pp, c.dp, c.kv_dtype, c.reason));
                continue;
            }
            if (x.constraint == "request rate") {
                const Candidate& c = *x.example;
                d.notes.push_back(fmt::format(
                    "request rate: the most any candidate that fits in memory sustains is {:.3g} requests/s ({}× {}, TP {}, PP {}, DP "
                    "{}, {} KV) against {:g} asked: lower the rate by {:.1f}% or allow more GPUs",
                    x.needed, c.gpus, c.gpu, c.tp, c.pp, c.dp, c.kv_dtype, x.limit, (1 - x.needed / x.limit) * 100));
                continue;
            }
            const std::string best =
                fmt::format("{}: the best candidate that fits in memory reaches {:.3f} s against ≤ {:.3f} s ({:+.1f}%)", x.constraint,
                            x.best, x.limit, (x.best / x.limit - 1) * 100);
            if (x.example) {
                const Candidate& c = *x.example;
                d.notes.push_back(
                    fmt::format("{}; relaxing {} alone to {:.3f} s ({:+.1f}%) makes {}× {} (TP {}, PP {}, DP {}, {} KV) feasible", best,
                                x.constraint, x.needed, (x.needed / x.limit - 1) * 100, c.gpus, c.gpu, c.tp, c.pp, c.dp, c.kv_dtype));
            } else if (x.best <= x.limit) {
                d.notes.push_back(best + "; met");
            } else {
                d.notes.push_back(
                    best + fmt::format("; relaxing {} alone is not enough: every such candidate misses another SLO too", x.constraint));
            }
        }
        if (r.binding == "memory" && r.closest)
            d.notes.push_back(
                fmt::format("binds: memory — no layout of at most {} GPUs holds the workload; allow more GPUs, smaller "
                            "KV or weight dtypes, or fewer sequences",
                            s.max_gpus));
        else if (!r.binding.empty())
            d.notes.push_back(fmt::format("binds: {}", r.binding));
    }
    Document::Section plans{
        "plans",
        fmt::format("Best {} of {} feasible plans, by {}", std::min(top, r.ranked.size()), r.ranked.size(), to_string(s.objective)),
        {},
        {}};
    candidate_columns(plans.table, s);
    for (size_t i = 0; i < r.ranked.size() && i < top; ++i) candidate_row(plans.table, r.ranked[i], i + 1);
    if (r.closest) candidate_row(plans.table, *r.closest, 0);
    plans.notes.push_back(
        "seqs held: sequences of the promised context one replica's memory holds (vLLM: its paged KV blocks, block rounding counted); "
        "use: the binding constraint's value over its limit");
    plans.notes.push_back(fmt::format(
        "{}: the statistic the TTFT SLO holds to, over requests, {}; TPOT: requests' mean; tokens/s: the deployment's output "
        "tokens a second from the requests that exist (busy replicas only), per GPU and per user (1 / the mean time between tokens, "
        "token-weighted); goodput: tokens/s of "
        "requests meeting every SLO (docs/planning.md)",
        ttft_title(s), s.burst ? "along the burst's first tokens" : "the fullest replica's under its runtime's scheduler in steady state"));
    d.sections.push_back(std::move(plans));
    if (pareto && !r.pareto.empty()) {
        Document::Section f{
            "pareto",
            fmt::format("Pareto front: {} plans no other beats on both tokens/s per user and tokens/s per GPU", r.pareto.size()),
            {},
            {}};
        const std::string ttft = ttft_title(s);
        for (auto [k, title, right] :
             std::initializer_list<std::tuple<const char*, const char*, bool>>{{"gpu", "gpu", false},
                                                                               {"gpus", "gpus", true},
                                                                               {"tp", "tp", true},
                                                                               {"pp", "pp", true},
                                                                               {"dp", "dp", true},
                                                                               {"ep", "ep", true},
                                                                               {"weight_dtype", "weights", false},
                                                                               {"kv_dtype", "kv", false},
                                                                               {"tokens_per_s_per_user", "tok/s/user", true},
                                                                               {"tokens_per_s_per_gpu", "tok/s/GPU", true},
                                                                               {"tokens_per_s", "tokens/s", true},
                                                                               {"ttft_s", ttft.c_str(), true},
                                                                               {"cost_per_million_tokens", "$/Mtok", true}})
            f.table.add_column(k, title, right);
        for (const Candidate& c : r.pareto) {
            f.table.row();
            f.table.cell(c.cluster.empty() ? c.gpu : fmt::format("{} ({})", c.gpu, c.cluster), c.gpu);
            for (u64 v : {c.gpus, c.tp, c.pp, c.dp, c.ep}) f.table.cell(std::to_string(v));
            f.table.cell(c.weight_dtype);
            f.table.cell(c.kv_dtype);
            for (double v : {c.tokens_per_s_per_user, c.tokens_per_s_per_gpu, c.tokens_per_s})
                f.table.cell(fmt::format("{:.1f}", v), exact_cell(v));
            f.table.cell(seconds_cell(c.ttft_s), exact_cell(c.ttft_s));
            f.table.cell(c.cost_per_million_tokens > 0 ? fmt::format("{:.3f}", c.cost_per_million_tokens) : "-",
                         c.cost_per_million_tokens > 0 ? exact_cell(c.cost_per_million_tokens) : "");
        }
        f.notes.push_back(
            "fastest per user first: moving down the front, each plan gives up speed per user for tokens per GPU (with one GPU "
            "price, $/Mtok falls as tokens/s per GPU rises); every plan off the front is beaten on both by one on it");
        d.sections.push_back(std::move(f));
    }
    if (!r.ranked.empty()) {
        const Candidate& b = r.ranked.front();
        Document::Section mem{
            "best_memory", fmt::format("Per GPU, the best plan ({}× {}, TP {}, PP {}, DP {})", b.gpus, b.gpu, b.tp, b.pp, b.dp), {}, {}};
        mem.table.add_column("component", "component");
        mem.table.add_column("bytes", "bytes", true);
        mem.table.add_column("gib", "GiB", true);
        const std::pair<const char*, u64> rows[] = {{"weights", b.memory.weights},
                                                    {"kv_cache", b.memory.kv_cache},
                                                    {"attention_matrix", b.memory.attention_matrix},
                                                    {"activations", b.memory.activation_peak},
                                                    {"logits", b.memory.logits},
                                                    {"runtime_overhead", b.memory.runtime_overhead},
                                                    {"total", b.memory.total},
                                                    {"usable_capacity", b.memory.capacity}};
        for (const auto& [name, v] : rows) {
            mem.table.row();
            mem.table.cell(name);
            mem.table.cell(group_digits(v), std::to_string(v));
            mem.table.cell(gib_cell(v), exact_cell(to_gib(v)));
        }
        d.sections.push_back(std::move(mem));
    }
    if (!r.gates.empty()) d.sections.push_back(gates_section(r.gates, r.gates_passed));
    return d;
}

const std::vector<StreamColumn>& sweep_columns() {
    static const std::vector<StreamColumn> c = {{"context", "context", Hint::Count},
                                                {"batch", "batch", Hint::Count},
                                                {"tp", "tp", Hint::Count},
                                                {"weights_bytes", "weights", Hint::Bytes},
                                                {"kv_cache_bytes", "KV", Hint::Bytes},
                                                {"attention_matrix_bytes", "attn", Hint::Bytes},
                                                {"activation_peak_bytes", "act", Hint::Bytes},
                                                {"logits_bytes", "logits", Hint::Bytes},
                                                {"total_bytes", "total", Hint::Bytes},
                                                {"capacity_bytes", "usable", Hint::Bytes},
                                                {"fits", "fits", Hint::Flag}};
    return c;
}

void sweep_values(const SweepPoint& p, u64* v) {
    const PointResult& r = p.r;
    const u64 values[kSweepColumns] = {p.context,         p.batch,  p.tp,    r.weights,  r.kv_cache,      r.attention_matrix,
                                       r.activation_peak, r.logits, r.total, r.capacity, r.fits ? 1u : 0u};
    std::copy(std::begin(values), std::end(values), v);
}

Document sweep_head(const SweepReport& r) {
    Document d;
    d.schema = "memtax.sweep/1";
    d.title = fmt::format("memtax sweep: {} on {}, {}, {} (per GPU, 1 GiB = 2^30 bytes)", r.model, r.gpu, r.runtime, to_string(r.mode));
    return d;
}

std::optional<Document::Section> sweep_growth(const SweepReport& r) {
    if (r.fits.empty()) return std::nullopt;
    Document::Section f{
        "growth",
        fmt::format("Growth with context (batch {}, TP {}): bytes = c2·s² + c1·s + c0, least squares", r.fit_batch, r.fit_tp),
        {},
        {}};
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"component", "component", false},
                                                                           {"c2_bytes_per_token2", "c2 (B/token²)", true},
                                                                           {"c1_bytes_per_token", "c1 (B/token)", true},
                                                                           {"c0_bytes", "c0 (B)", true},
                                                                           {"per_doubling", "× per doubling", true},
                                                                           {"max_relative_residual", "fit residual", true}})
        f.table.add_column(k, title, right);
    for (const auto& x : r.fits) {
        f.table.row();
        f.table.cell(x.component);
        f.table.cell(fmt::format("{:.4g}", x.c2), exact_cell(x.c2));
        f.table.cell(fmt::format("{:.4g}", x.c1), exact_cell(x.c1));
        f.table.cell(fmt::format("{:.4g}", x.c0), exact_cell(x.c0));
        f.table.cell(std::isfinite(x.per_doubling) ? fmt::format("{:.2f}", x.per_doubling) : "-",
                     std::isfinite(x.per_doubling) ? exact_cell(x.per_doubling) : "");
        f.table.cell(fmt::format("{:.1e}", x.max_relative_residual), exact_cell(x.max_relative_residual));
    }
    f.notes.push_back(
        "× per doubling: the value at the largest context over the value at half of it (the last two points when they are a "
        "doubling, the fitted polynomial otherwise); a quadratic term (eager attention's S×S tensors) tends to ×4, a linear one "
        "(KV cache, fused attention) to ×2");
    return f;
}

Document sweep_document(const SweepReport& r) {
    Document d = sweep_head(r);
    Document::Section pts{"points", "Points", stream_table(sweep_columns()), {}};
    u64 v[kSweepColumns];
    for (const auto& p : r.points) {
        sweep_values(p, v);
        stream_row(pts.table, sweep_columns(), v);
    }
    d.sections.push_back(std::move(pts));
    if (auto g = sweep_growth(r)) d.sections.push_back(std::move(*g));
    return d;
}

}  // namespace memtax
