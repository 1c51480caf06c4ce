#include "report/report.hpp"
#include "report/printer.hpp"
#include "report/table.hpp"

#include <fmt/format.h>

#include <map>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <initializer_list>
#include <tuple>
#include <type_traits>
#include <variant>

namespace memtax {

namespace {

using ojson = nlohmann::ordered_json;

std::string gib(u64 b) { return fmt::format("{:.2f}", to_gib(b)); }

std::string headline(const Estimate& e) {
    const auto& w = e.workload;
    return fmt::format("{} on {}× {} (TP {}{}{}, {} replica{}), {}, batch {} ({} per replica), context {}, runtime {} ({} attention)",
                       e.model().display_name, e.deployment.gpus, e.gpu().display_name, e.deployment.tp,
                       e.deployment.ep > 1 ? fmt::format(", EP {}", e.deployment.ep) : "",
                       e.deployment.pp > 1 ? fmt::format(", PP {}: stage {} with layers {}-{} reported", e.deployment.pp, e.pp_stage,
                                                         e.stage_first_layer, e.stage_first_layer + e.stage_layers - 1)
                                           : "",
                       e.replicas, e.replicas == 1 ? "" : "s", to_string(w.mode), w.batch, e.batch_per_replica, group_digits(w.context),
                       w.runtime.name, to_string(w.runtime.attention));
}

}  // namespace

std::string architecture_summary(const ModelSpec& m) { return architecture_summary(BlockRegistry::builtin(), m); }

namespace {

// A model or GPU profile as JSON: the same object in an estimate's resolved inputs and in
// the `models`/`gpus` listings.
ojson model_json(const ModelSpec& m, u64 parameters) {
    ojson j = {{"name", m.name},
               {"display_name", m.display_name},
               {"source", m.source},
               {"family", m.family},
               {"num_layers", m.num_layers},
               {"hidden_size", m.hidden_size},
               {"num_attention_heads", m.num_attention_heads},
               {"num_key_value_heads", m.num_key_value_heads},
               {"head_dim", m.head_dim},
               {"intermediate_size", m.intermediate_size},
               {"vocab_size", m.vocab_size},
               {"max_context", m.max_context},
               {"tie_word_embeddings", m.tie_word_embeddings},
               {"norm", to_string(m.norm)},
               {"activation", m.activation},
               {"sliding_window", m.sliding_window},
               {"dtype", m.dtype.name},
               {"parameters", parameters},
               {"active_parameters", active_parameter_count(m)},
               {"architecture", architecture_summary(m)},
               {"stated_parameter_count", m.stated_parameter_count},
               {"stated_active_parameter_count", m.stated_active_parameter_count},
               {"stated_parameter_source", m.stated_parameter_source}};
    // Layer variants' own parameters (a profile's group mappings), when the model has any.
    for (const auto& [group, g] : m.own_params)
        for (const auto& [key, v] : g.values) j["own_params"][group][key] = v.first;
    return j;
}

ojson gpu_json(const GpuSpec& g) {
    ojson flops = ojson::object();
    for (const auto& [dtype, rate] : g.peak_flops) flops[dtype] = rate.value;
    ojson sources = ojson::object();
    for (const auto& [field, src] : g.sources) sources[field] = src;
    return {{"name", g.name},
            {"display_name", g.display_name},
            {"vendor", g.vendor},
            {"source", g.source},
            {"memory_bytes", g.memory_bytes},
            {"usable_memory_bytes", g.usable_memory_bytes},
            {"hbm_bandwidth_bytes_per_s", g.hbm_bandwidth.value},
            {"peak_flops_per_s", flops},
            {"l2_bytes", g.l2_bytes},
            {"sm_count", g.sm_count},
            {"interconnect", g.interconnect},
            {"interconnect_bandwidth_bytes_per_s", g.interconnect_bandwidth.value},
            {"device_names", g.device_names},
            {"sources", sources}};
}

ojson runtime_json(const RuntimeSpec& r);

ojson inputs_json(const Estimate& e) {
    const auto& w = e.workload;
    ojson workload = {{"mode", to_string(w.mode)},
                      {"batch", w.batch},
                      {"batch_per_replica", e.batch_per_replica},
                      {"context", w.context},
                      {"runtime", w.runtime.name},
                      {"attention", to_string(w.runtime.attention)},
                      {"weight_dtype", w.weight_dtype->name},
                      {"kv_dtype", w.kv_dtype->name},
                      {"softmax_dtype", w.softmax_dtype->name},
                      {"logits_dtype", w.logits_dtype->name},
                      {"logits_kept", e.logits_kept}};
    ojson dep = {{"gpus", e.deployment.gpus},     {"tp", e.deployment.tp},  {"pp", e.deployment.pp},
                 {"replicas", e.replicas},        {"pp_stage", e.pp_stage}, {"stage_first_layer", e.stage_first_layer},
                 {"stage_layers", e.stage_layers}};
    return {{"model", model_json(e.model(), e.parameters)},
            {"gpu", gpu_json(e.gpu())},
            {"runtime", runtime_json(w.runtime)},
            {"deployment", dep},
            {"workload", workload}};
}

// A runtime family's section as a JSON object, its fields in order.
ojson section_json(const Section& sec) {
    ojson j = ojson::object();
    for (const auto& f : sec.fields) std::visit([&](const auto& v) { j[f.key] = v; }, f.value);
    return j;
}

std::string field_text(const SectionField& f) {
    return std::visit(
        [](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, u64>)
                return group_digits(v);
            else if constexpr (std::is_same_v<T, double>)
                return fmt::format("{:.2f}", v);
            else if constexpr (std::is_same_v<T, bool>)
                return v ? "yes" : "no";
            else
                return v;
        },
        f.value);
}

ojson per_gpu_json(const Estimate& e) {
    return {{"weights_bytes", e.weights},
            {"kv_cache_bytes", e.kv_cache},
            {"kv_cache_visible_bytes", e.kv_cache_visible},
            {"logits_output_bytes", e.logits_output},
            {"attention_matrix_bytes", e.attention_matrix},
            {"activation_peak_bytes", e.activation_peak},
            {"logits_bytes", e.logits},
            {"runtime_overhead_bytes", e.runtime_overhead},
            {"total_bytes", e.total},
            {"forward_peak_bytes", e.forward_peak},
            {"resident_before_step_bytes", e.resident_before},
            {"capacity_bytes", e.capacity},
            // Signed: usable memory left (negative: missing). Not the verdict itself — under vLLM a
            // step can leave memory free and still not hold the sequences wanted.
            {"headroom_bytes",
             e.capacity >= e.total ? static_cast<std::int64_t>(e.capacity - e.total) : -static_cast<std::int64_t>(e.total - e.capacity)},
            {"fits", e.fits},
            {"peak_at", e.peak_at},
            {"parameters", e.parameters_per_gpu}};
}

ojson tool_json(const ToolInfo& t) { return {{"name", "memtax"}, {"version", t.version}, {"git_sha", t.git_sha}}; }

// Compact JSON that never throws on encoding (every input string was checked where it was read).
std::string dump_json(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

}  // namespace

namespace {

std::string seconds(double s) {
    if (s >= 1) return fmt::format("{:.3f} s", s);
    if (s >= 1e-3) return fmt::format("{:.3f} ms", s * 1e3);
    return fmt::format("{:.1f} µs", s * 1e6);
}

// The formula behind each time number, for --explain.
std::vector<std::string> explain_time(const TimeEstimate& t, const Estimate& e) {
    std::vector<std::string> out;
    const GpuSpec& g = e.gpu();
    out.push_back(fmt::format("achievable bandwidth = {:.3g} B/s peak × {} efficiency = {:.4g} B/s{}", g.hbm_bandwidth.value,
                              g.bandwidth_efficiency, t.bandwidth_bytes_per_s,
                              t.calibrated ? " (calibrated)" : " (assumed, uncalibrated)"));
    out.push_back(fmt::format("achievable {} matrix rate = {:.4g} FLOP/s peak × {} = {:.4g} FLOP/s", t.rate_dtype,
                              t.peak_matmul_flops_per_s, g.matmul_efficiency, t.matmul_flops_per_s));
    out.push_back(fmt::format("op time = max(FLOPs / {:.4g}, bytes / {:.4g}) + launch {:.3g} s; elementwise ops memory-bound",
                              t.matmul_flops_per_s, t.bandwidth_bytes_per_s, t.launch_overhead_s));
    out.push_back(fmt::format(
        "ridge point = {:.4g} / {:.4g} = {:.1f} FLOP/B; weight matmuls compute-bound from 2·T / {} B ≥ ridge: T ≥ {} tokens per step",
        t.matmul_flops_per_s, t.bandwidth_bytes_per_s, t.ridge_flops_per_byte, static_cast<double>(e.workload.weight_dtype->bits) / 8.0,
        t.crossover_tokens));
    if (!t.first_token.rule.empty()) out.push_back(t.first_token.rule);
    out.push_back(
        fmt::format("ttft_s = Σ prefill op times = {:.6g} s ({} FLOPs, {} B); TPOT = Σ decode op times = {:.6g} s ({} FLOPs, {} B)",
                    t.ttft_s, group_digits(t.prefill.flops), group_digits(t.prefill.bytes), t.tpot_s, group_digits(t.decode.flops),
                    group_digits(t.decode.bytes)));
    out.push_back(fmt::format("tokens/s = batch {} / TPOT = {:.6g}", e.workload.batch, t.tokens_per_s));
    if (const auto& h = e.workload.runtime.host)
        out.push_back(fmt::format(
            "host dispatch ({}): {:.4g} s per step + {:.4g} s per op; a step ends at the later of the host's clock and the GPU's, "
            "an op starting once queued and once the op before it has finished",
            e.workload.runtime.name, h->per_step_s, h->per_op_s));
    if (e.deployment.tp > 1)
        out.push_back(fmt::format(
            "TP all-reduce (ring, {}): 2(n-1)/n · message / bus bandwidth + 2(n-1) · latency, n = {}, 2 per layer + 1 for the embedding",
            t.topology, e.deployment.tp));
    if (e.deployment.pp > 1)
        out.push_back(
            fmt::format("PP transfer ({}): message / path bandwidth + path latency, {} boundaries", t.topology, e.deployment.pp - 1));
    return out;
}

std::string time_table(const TimeEstimate& t, const Estimate& e, bool explain) {
    std::string out = fmt::format("\nTime (roofline; {} {}: {:.3g} B/s, {} {:.4g} FLOP/s, launch {}; {})\n", e.gpu().name,
                                  t.calibrated ? "calibrated" : "assumed efficiencies", t.bandwidth_bytes_per_s, t.rate_dtype,
                                  t.matmul_flops_per_s, seconds(t.launch_overhead_s), t.topology);
    const FirstToken& f = t.first_token;
    if (f.schedule == "static batch") {
        out += fmt::format("  TTFT (static batch: every request waits for the prefill of {} prompts × {} tokens)   {}\n",
                           e.batch_per_replica, group_digits(e.workload.context), seconds(t.ttft_s));
    } else {
        out += fmt::format("  TTFT ({}, ≤ {} tokens a step; {} requests arriving together)\n", f.schedule, group_digits(f.step_tokens),
                           f.requests);
        out += fmt::format("    first request {}   mean {}   last request {}   ({} steps)\n", seconds(f.first_s), seconds(f.mean_s),
                           seconds(f.last_s), f.steps);
        out += fmt::format("  prefill of the whole batch as one forward (ttft_s)   {}\n", seconds(t.ttft_s));
    }
    out += fmt::format("  TPOT (one decode step of {} sequences at KV length {})   {}\n", e.batch_per_replica,
                       group_digits(e.workload.context), seconds(t.tpot_s));
    out += fmt::format("  decode throughput                     {:.1f} tokens/s (batch {})\n", t.tokens_per_s, e.workload.batch);
    out += fmt::format("  ridge point                           {:.1f} FLOP/B; weight matmuls compute-bound from {} tokens per step\n",
                       t.ridge_flops_per_byte, t.crossover_tokens);
    for (const auto* st : {&t.prefill, &t.decode}) {
        const bool pf = st == &t.prefill;
        out += fmt::format(
            "\n  {}: {} — {:.3g} FLOP/B, {:.1f}% of the GPU's {} matrix peak used{}\n", pf ? "prefill" : "decode step",
            seconds(st->seconds), st->arithmetic_intensity, st->compute_utilisation * 100, t.rate_dtype,
            st->attention_matrix_bytes
                ? fmt::format("; S×S tensors move {} B ({})", group_digits(st->attention_matrix_bytes), seconds(st->attention_matrix_s))
                : "");
        if (st->host_s > 0)
            out += fmt::format("  the host dispatches {} ops in {}, the GPU is busy {}: {}-bound\n", st->host_ops, seconds(st->host_s),
                               seconds(st->gpu_s), st->host_s > st->gpu_s ? "host" : "GPU");
        out += fmt::format("  {:<22} {:>7} {:>22} {:>20} {:>11}  {}\n", "op kind", "kernels", "FLOPs", "bytes", "time", "bound");
        for (const auto& k : st->kinds)
            out += fmt::format("  {:<22} {:>7} {:>22} {:>20} {:>11}  {}\n", k.kind, k.ops, group_digits(k.flops), group_digits(k.bytes),
                               seconds(k.seconds), k.bound);
    }
    if (explain) {
        out += "\n  How the times are computed\n";
        for (const auto& line : explain_time(t, e)) out += "    " + line + "\n";
    }
    return out;
}

ojson step_json(const StepTime& st) {
    ojson kinds = ojson::array();
    for (const auto& k : st.kinds)
        kinds.push_back(
            {{"kind", k.kind}, {"kernels", k.ops}, {"flops", k.flops}, {"bytes", k.bytes}, {"seconds", k.seconds}, {"bound", k.bound}});
    return {{"seconds", st.seconds},
            {"flops", st.flops},
            {"bytes", st.bytes},
            {"weight_bytes", st.weight_bytes},
            {"kv_bytes", st.kv_bytes},
            {"attention_matrix_bytes", st.attention_matrix_bytes},
            {"attention_matrix_seconds", st.attention_matrix_s},
            {"communication_seconds", st.communication_s},
            {"gpu_seconds", st.gpu_s},
            {"host_seconds", st.host_s},
            {"host_ops", st.host_ops},
            {"arithmetic_intensity_flops_per_byte", st.arithmetic_intensity},
            {"achieved_flops_per_s", st.achieved_flops_per_s},
            {"compute_utilisation", st.compute_utilisation},
            {"kinds", kinds}};
}

ojson time_json(const TimeEstimate& t) {
    const FirstToken& f = t.first_token;
    return {{"ttft_s", t.ttft_s},
            {"tpot_s", t.tpot_s},
            {"first_token",
             {{"schedule", f.schedule},
              {"requests", f.requests},
              {"step_tokens", f.step_tokens},
              {"steps", f.steps},
              {"first_s", f.first_s},
              {"mean_s", f.mean_s},
              {"last_s", f.last_s}}},
            {"tokens_per_s", t.tokens_per_s},
            {"ridge_flops_per_byte", t.ridge_flops_per_byte},
            {"crossover_tokens", t.crossover_tokens},
            {"achievable",
             {{"bandwidth_bytes_per_s", t.bandwidth_bytes_per_s},
              {"matmul_flops_per_s", t.matmul_flops_per_s},
              {"peak_matmul_flops_per_s", t.peak_matmul_flops_per_s},
              {"rate_dtype", t.rate_dtype},
              {"launch_overhead_s", t.launch_overhead_s},
              {"calibrated", t.calibrated}}},
            {"topology", t.topology},
            {"prefill", step_json(t.prefill)},
            {"decode", step_json(t.decode)}};
}

}  // namespace

std::string render_table(const Estimate& e, bool explain, const TimeEstimate* time) {
    std::string out = headline(e) + "\n";
    out += fmt::format("\nPer GPU (1 GiB = 2^30 bytes)\n{:<20} {:>10} {:>18}\n", "component", "GiB", "bytes");
    auto row = [&](const char* name, u64 v) { out += fmt::format("{:<20} {:>10} {:>18}\n", name, gib(v), group_digits(v)); };
    row("weights", e.weights);
    row("KV cache", e.kv_cache);
    row("attention matrix", e.attention_matrix);
    row("activations", e.activation_peak);
    row("logits", e.logits);
    row("runtime overhead", e.runtime_overhead);
    out += fmt::format("{:-<50}\n", "");
    row("total", e.total);
    row("usable capacity", e.capacity);
    row("forward peak", e.forward_peak);
    out += fmt::format("forward peak at: {}\n", e.peak_at);
    if (!e.kv_note.empty()) out += e.kv_note + "\n";
    for (const auto& sec : e.sections) {
        out += fmt::format("\n{}\n", sec.title);
        for (const auto& f : sec.fields) out += fmt::format("  {:<38} {:>18}\n", f.label.empty() ? f.key : f.label, field_text(f));
    }
    out += "\nPer layer type (per layer, GiB)\n";
    out += fmt::format("{:<18} {:<10} {:>6} {:>10} {:>10} {:>12} {:>11}  {}\n", "token mixer", "channel", "layers", "weights", "KV",
                       "attn matrix", "layer peak", "peak op");
    for (const auto& r : e.layers)
        out +=
            fmt::format("{:<18} {:<10} {:>6} {:>10} {:>10} {:>12} {:>11}  {}\n", r.token_mixer, r.channel_mixer, r.count,
                        gib(r.weights_bytes), gib(r.kv_cache_bytes), gib(r.attention_matrix_bytes), gib(r.transient_peak_bytes), r.peak_op);
    out += fmt::format("\n{}\n", e.verdict);
    if (explain) {
        out += "\nHow each number is computed\n";
        for (const auto& t : e.components) out += fmt::format("  {:<26} {:>18} B  = {}\n", t.name, group_digits(t.bytes), t.formula);
        if (!e.live_at_peak.empty()) {
            out += fmt::format("\nTensors live at the forward peak ({}), besides the resident weights and KV cache\n", e.peak_at);
            for (const auto& l : e.live_at_peak) out += fmt::format("  {:<40} {:>18} B  {}\n", l.name, group_digits(l.bytes), l.where);
        }
    }
    if (time) out += time_table(*time, e, explain);
    return out;
}

namespace {
ojson layers_json(const Estimate& e) {
    ojson rows = ojson::array();
    for (const auto& r : e.layers)
        rows.push_back({{"kind", r.token_mixer},
                        {"channel_mixer", r.channel_mixer},
                        {"layers", r.count},
                        {"weights_bytes", r.weights_bytes},
                        {"kv_cache_bytes", r.kv_cache_bytes},
                        {"attention_matrix_bytes", r.attention_matrix_bytes},
                        {"transient_peak_bytes", r.transient_peak_bytes},
                        {"peak_op", r.peak_op}});
    return rows;
}
}  // namespace

std::string render_json(const Estimate& e, const ToolInfo& tool, bool explain, const TimeEstimate* time) {
    ojson j = {{"schema", "memtax.estimate/1"}, {"tool", tool_json(tool)},       {"inputs", inputs_json(e)},
               {"per_gpu", per_gpu_json(e)},    {"layer_kinds", layers_json(e)}, {"verdict", e.verdict}};
    for (const auto& sec : e.sections) j[sec.name] = section_json(sec);
    if (time) {
        j["time"] = time_json(*time);
        if (explain) j["time"]["explain"] = explain_time(*time, e);
    }
    if (explain) {
        ojson terms = ojson::array();
        for (const auto& t : e.components)
            terms.push_back({{"name", t.name}, {"category", t.category}, {"bytes", t.bytes}, {"formula", t.formula}});
        j["explain"] = terms;
        ojson live = ojson::array();
        for (const auto& l : e.live_at_peak) live.push_back({{"name", l.name}, {"bytes", l.bytes}, {"where", l.where}});
        j["live_at_peak"] = live;
    }
    return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

namespace {

std::string fits_text(const Estimate& e) {
    return e.fits                    ? "yes"
           : e.max_concurrency_milli ? fmt::format("no ({:.2f} sequences)", static_cast<double>(e.max_concurrency_milli) / 1000.0)
           : e.total > e.capacity    ? fmt::format("no (+{})", format_bytes_gib(e.total - e.capacity))
                                     : "no";
}

std::string raw_value(const SectionField& f) {
    return std::visit(
        [](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, u64>)
                return std::to_string(v);
            else if constexpr (std::is_same_v<T, double>)
                return fmt::format("{:.9g}", v);
            else if constexpr (std::is_same_v<T, bool>)
                return v ? "true" : "false";
            else
                return v;
        },
        f.value);
}

// Every number of an estimate as (section, name, shown, exact, unit, note) rows: the CSV and the
// Markdown printers both render these, so neither can drop what the other shows.
Table estimate_rows(const Estimate& e, bool explain, const TimeEstimate* time) {
    Table t;
    t.add_column("section", "section");
    t.add_column("name", "name");
    t.add_column("value", "value", true);
    t.add_column("unit", "unit");
    t.add_column("note", "note");
    auto add = [&](const std::string& sec, const std::string& name, const std::string& shown, const std::string& exact,
                   const std::string& unit, const std::string& note = {}) {
        t.row();
        t.cell(sec);
        t.cell(name);
        t.cell(shown, exact);
        t.cell(unit);
        t.cell(note);
    };
    auto bytes = [&](const std::string& sec, const std::string& name, u64 v, const std::string& note = {}) {
        add(sec, name, group_digits(v), std::to_string(v), "B", note.empty() ? fmt::format("{} GiB", gib(v)) : note);
    };
    const auto& w = e.workload;
    add("inputs", "model", e.model().name, "", "");
    add("inputs", "gpu", e.gpu().name, "", "");
    add("inputs", "gpus", std::to_string(e.deployment.gpus), "", "");
    add("inputs", "tp", std::to_string(e.deployment.tp), "", "");
    add("inputs", "pp", std::to_string(e.deployment.pp), "", "");
    add("inputs", "replicas", std::to_string(e.replicas), "", "");
    add("inputs", "runtime", w.runtime.name, "", "");
    add("inputs", "mode", to_string(w.mode), "", "");
    add("inputs", "batch", std::to_string(w.batch), "", "sequences");
    add("inputs", "batch_per_replica", std::to_string(e.batch_per_replica), "", "sequences");
    add("inputs", "context", group_digits(w.context), std::to_string(w.context), "tokens");
    add("inputs", "weight_dtype", w.weight_dtype->name, "", "");
    add("inputs", "kv_dtype", w.kv_dtype->name, "", "");
    add("inputs", "logits_kept", std::to_string(e.logits_kept), "", "positions", e.logits_kept ? "" : "0 = all");
    bytes("per_gpu", "weights", e.weights);
    bytes("per_gpu", "kv_cache", e.kv_cache);
    bytes("per_gpu", "attention_matrix", e.attention_matrix);
    bytes("per_gpu", "activation_peak", e.activation_peak);
    bytes("per_gpu", "logits", e.logits);
    bytes("per_gpu", "runtime_overhead", e.runtime_overhead);
    bytes("per_gpu", "total", e.total);
    bytes("per_gpu", "capacity", e.capacity);
    bytes("per_gpu", "forward_peak", e.forward_peak, "at " + e.peak_at);
    const bool room = e.capacity >= e.total;
    const u64 headroom = room ? e.capacity - e.total : e.total - e.capacity;
    add("per_gpu", "headroom", fmt::format("{}{}", room ? "" : "-", group_digits(headroom)), fmt::format("{}{}", room ? "" : "-", headroom),
        "B");
    add("per_gpu", "parameters", group_digits(e.parameters_per_gpu), std::to_string(e.parameters_per_gpu), "parameters");
    add("result", "fits", e.fits ? "true" : "false", "", "", fits_text(e));
    add("result", "verdict", e.verdict, "", "");
    for (const auto& sec : e.sections)
        for (const auto& f : sec.fields) add(sec.name, f.key, field_text(f), raw_value(f), f.key.ends_with("_bytes") ? "B" : "", f.label);
    for (const auto& r : e.layers) {
        const std::string k = r.token_mixer + "+" + r.channel_mixer;
        add("per_layer", k + ".layers", std::to_string(r.count), "", "layers");
        bytes("per_layer", k + ".weights", r.weights_bytes);
        bytes("per_layer", k + ".kv_cache", r.kv_cache_bytes);
        bytes("per_layer", k + ".attention_matrix", r.attention_matrix_bytes);
        bytes("per_layer", k + ".transient_peak", r.transient_peak_bytes, "at " + r.peak_op);
    }
    if (time) {
        const TimeEstimate& tm = *time;
        auto secs = [&](const std::string& name, double v, const std::string& note) {
            add("time", name, seconds(v), fmt::format("{:.9g}", v), "s", note);
        };
        secs("ttft_s", tm.ttft_s, tm.ttft_meaning);
        secs("tpot_s", tm.tpot_s, tm.tpot_meaning);
        add("time", "tokens_per_s", fmt::format("{:.1f}", tm.tokens_per_s), fmt::format("{:.9g}", tm.tokens_per_s), "tokens/s",
            "batch / TPOT");
        add("time", "ridge_flops_per_byte", fmt::format("{:.1f}", tm.ridge_flops_per_byte), fmt::format("{:.9g}", tm.ridge_flops_per_byte),
            "FLOP/B");
        add("time", "crossover_tokens", std::to_string(tm.crossover_tokens), "", "tokens",
            "weight matmuls compute-bound from this many tokens per step");
        for (const auto* st : {&tm.prefill, &tm.decode}) {
            const std::string step = st == &tm.prefill ? "prefill" : "decode";
            secs(step + ".seconds", st->seconds, "");
            if (st->host_s > 0) {
                secs(step + ".host_seconds", st->host_s, fmt::format("the host's dispatch of {} ops", st->host_ops));
                secs(step + ".gpu_seconds", st->gpu_s, "the GPU's kernels alone");
            }
            add("time", step + ".flops", group_digits(st->flops), std::to_string(st->flops), "FLOP");
            add("time", step + ".bytes", group_digits(st->bytes), std::to_string(st->bytes), "B");
            add("time", step + ".compute_utilisation", fmt::format("{:.1f}%", st->compute_utilisation * 100),
                fmt::format("{:.6g}", st->compute_utilisation), "fraction");
            for (const auto& k : st->kinds) secs(step + "." + k.kind, k.seconds, fmt::format("{} kernels, {}-bound", k.ops, k.bound));
        }
        if (explain)
            for (const auto& line : explain_time(tm, e)) add("explain_time", "formula", line, "", "");
    }
    if (explain) {
        for (const auto& c : e.components) bytes("explain", c.name, c.bytes, c.formula);
        for (const auto& l : e.live_at_peak) bytes("live_at_peak", l.name, l.bytes, l.where);
    }
    return t;
}

}  // namespace

std::string render_csv(const Estimate& e, bool explain, const TimeEstimate* time) { return table_csv(estimate_rows(e, explain, time)); }

std::string render_markdown(const Estimate& e, bool explain, const TimeEstimate* time) {
    std::string out = fmt::format("## memtax estimate\n\n{}\n\n**Verdict:** {}\n\n", markdown_cell(headline(e)), markdown_cell(e.verdict));
    Table t = estimate_rows(e, explain, time);
    // The inputs are the headline; the rest as one table per section.
    std::string current;
    Table part;
    auto flush = [&]() {
        if (!part.text.empty()) out += fmt::format("### {}\n\n{}\n", current, table_markdown(part));
        part = Table{};
        part.add_column("name", "name");
        part.add_column("value", "value", true);
        part.add_column("unit", "unit");
        part.add_column("note", "note");
    };
    flush();
    for (size_t r = 0; r < t.text.size(); ++r) {
        const std::string& sec = t.text[r][0];
        if (sec == "inputs" || (sec == "result" && t.text[r][1] == "verdict")) continue;
        if (sec != current) {
            flush();
            current = sec;
        }
        part.row();
        for (size_t c = 1; c < 5; ++c) part.cell(t.text[r][c]);
    }
    flush();
    return out;
}

Table grid_table() {
    Table t;
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"model", "model", false},
                                                                           {"gpu", "gpu", false},
                                                                           {"gpus", "gpus", true},
                                                                           {"tp", "tp", true},
                                                                           {"runtime", "runtime", false},
                                                                           {"mode", "mode", false},
                                                                           {"batch", "batch", true},
                                                                           {"context", "context", true},
                                                                           {"kv_dtype", "kv", false},
                                                                           {"weights_bytes", "weights GiB", true},
                                                                           {"kv_cache_bytes", "KV GiB", true},
                                                                           {"attention_matrix_bytes", "attn GiB", true},
                                                                           {"activation_peak_bytes", "act GiB", true},
                                                                           {"logits_bytes", "logits GiB", true},
                                                                           {"runtime_overhead_bytes", "overhead GiB", true},
                                                                           {"total_bytes", "total GiB", true},
                                                                           {"capacity_bytes", "usable GiB", true},
                                                                           {"fits", "fits", false},
                                                                           {"verdict", "verdict", false}})
        t.add_column(k, title, right);
    return t;
}

void grid_cells(Table& t, const Estimate& e) {
    t.row();
    t.cell(e.model().name);
    t.cell(e.gpu().name);
    t.cell(std::to_string(e.deployment.gpus));
    t.cell(std::to_string(e.deployment.tp));
    t.cell(e.workload.runtime.name);
    t.cell(to_string(e.workload.mode));
    t.cell(std::to_string(e.workload.batch));
    t.cell(group_digits(e.workload.context), std::to_string(e.workload.context));
    t.cell(e.workload.kv_dtype->name);
    for (u64 v : {e.weights, e.kv_cache, e.attention_matrix, e.activation_peak, e.logits, e.runtime_overhead, e.total, e.capacity})
        t.cell(gib(v), std::to_string(v));
    t.cell(fits_text(e), e.fits ? "true" : "false");
    t.cell(e.verdict);
}

std::string whatif_table_header() {
    return "memtax what-if: per-GPU memory of an inference step (1 GiB = 2^30 bytes)\n\n" +
           fmt::format("{:<15} {:<14} {:>3} {:<8} {:<7} {:>5} {:>8} {:<8} {:>8} {:>8} {:>8} {:>8} {:>8}  {}\n", "model", "gpus", "tp",
                       "runtime", "mode", "batch", "context", "kv", "weights", "KV", "act+attn", "total", "usable", "fits");
}

std::string whatif_table_row(const Estimate& e) {
    return fmt::format("{:<15} {:<14} {:>3} {:<8} {:<7} {:>5} {:>8} {:<8} {:>8} {:>8} {:>8} {:>8} {:>8}  {}\n", e.model().name,
                       fmt::format("{}x {}", e.deployment.gpus, e.gpu().name), e.deployment.tp, e.workload.runtime.name,
                       to_string(e.workload.mode), e.workload.batch, e.workload.context, e.workload.kv_dtype->name, gib(e.weights),
                       gib(e.kv_cache), gib(e.activation_peak + e.attention_matrix + e.logits), gib(e.total), gib(e.capacity),
                       fits_text(e));
}

std::string whatif_json_header(const ToolInfo& tool) {
    return fmt::format("{{\n  \"schema\": \"memtax.whatif/1\",\n  \"tool\": {},\n  \"rows\": [", dump_json(tool_json(tool)));
}

std::string whatif_json_row(const Estimate& e, bool first) {
    const ojson row = {{"inputs", inputs_json(e)}, {"per_gpu", per_gpu_json(e)}, {"verdict", e.verdict}};
    return (first ? "\n    " : ",\n    ") + dump_json(row);
}

std::string whatif_json_footer() { return "\n  ]\n}\n"; }

std::string whatif_csv_header() { return table_csv(grid_table()); }

std::string whatif_csv_row(const Estimate& e) {
    Table t = grid_table();
    grid_cells(t, e);
    return table_csv(t, false);
}

std::string whatif_markdown_header() {
    return "## memtax what-if: per-GPU memory of an inference step (1 GiB = 2^30 bytes)\n\n" + table_markdown(grid_table());
}

std::string whatif_markdown_row(const Estimate& e) {
    Table t = grid_table();
    grid_cells(t, e);
    return table_markdown(t, false);
}

namespace {

// The config's parameter count next to the stated one: a typo in a profile shows up here.
std::string stated_vs_derived(const ModelSpec& m, u64 derived) {
    if (m.stated_parameter_count == 0) return "-";
    double diff = (static_cast<double>(derived) - static_cast<double>(m.stated_parameter_count)) /
                  static_cast<double>(m.stated_parameter_count) * 100.0;
    return fmt::format("{:+.2f}%", diff);
}

}  // namespace

Table models_table(const std::vector<ModelSpec>& models) {
    Table t;
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"name", "name", false},
                                                                           {"display_name", "display name", false},
                                                                           {"layers", "layers", true},
                                                                           {"hidden_size", "hidden", true},
                                                                           {"num_attention_heads", "heads", true},
                                                                           {"num_key_value_heads", "kv heads", true},
                                                                           {"head_dim", "head_dim", true},
                                                                           {"intermediate_size", "inter", true},
                                                                           {"vocab_size", "vocab", true},
                                                                           {"max_context", "max context", true},
                                                                           {"sliding_window", "window", true},
                                                                           {"dtype", "dtype", false},
                                                                           {"parameters", "parameters", true},
                                                                           {"active_parameters", "active", true},
                                                                           {"stated_parameter_count", "stated", true},
                                                                           {"stated_vs_derived", "diff", true},
                                                                           {"architecture", "layer mix", false},
                                                                           {"aliases", "aliases", false}})
        t.add_column(k, title, right);
    for (const auto& m : models) {
        const u64 params = parameter_count(m);
        t.row();
        t.cell(m.name);
        t.cell(m.display_name);
        for (u64 v :
             {m.num_layers, m.hidden_size, m.num_attention_heads, m.num_key_value_heads, m.head_dim, m.intermediate_size, m.vocab_size})
            t.cell(std::to_string(v));
        t.cell(group_digits(m.max_context), std::to_string(m.max_context));
        t.cell(m.sliding_window ? group_digits(m.sliding_window) : "-", std::to_string(m.sliding_window));
        t.cell(m.dtype.name);
        t.cell(group_digits(params), std::to_string(params));
        const u64 active = active_parameter_count(m);
        t.cell(group_digits(active), std::to_string(active));
        t.cell(m.stated_parameter_count ? group_digits(m.stated_parameter_count) : "-", std::to_string(m.stated_parameter_count));
        t.cell(stated_vs_derived(m, params));
        t.cell(architecture_summary(m));
        t.cell(fmt::format("{}", fmt::join(m.aliases, " ")));
    }
    return t;
}

std::string render_models_json(const std::vector<ModelSpec>& models, const ToolInfo& tool) {
    ojson arr = ojson::array();
    for (const auto& m : models) arr.push_back(model_json(m, parameter_count(m)));
    return ojson{{"schema", "memtax.models/1"}, {"tool", tool_json(tool)}, {"models", arr}}.dump(
               2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
           "\n";
}

std::string render_gpus_json(const std::vector<GpuSpec>& gpus, const ToolInfo& tool) {
    ojson arr = ojson::array();
    for (const auto& g : gpus) arr.push_back(gpu_json(g));
    return ojson{{"schema", "memtax.gpus/1"}, {"tool", tool_json(tool)}, {"gpus", arr}}.dump(
               2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
           "\n";
}

Table gpus_table(const std::vector<GpuSpec>& gpus) {
    Table t;
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"name", "name", false},
                                                                           {"display_name", "display name", false},
                                                                           {"memory_bytes", "memory GiB", true},
                                                                           {"usable_memory_bytes", "usable GiB", true},
                                                                           {"hbm_bandwidth_bytes_per_s", "mem TB/s", true},
                                                                           {"bf16_flops_per_s", "bf16 TFLOP/s", true},
                                                                           {"fp8_flops_per_s", "fp8 TFLOP/s", true},
                                                                           {"sm_count", "SMs/CUs", true},
                                                                           {"interconnect", "interconnect", false},
                                                                           {"time_rates", "time rates", false}})
        t.add_column(k, title, right);
    for (const auto& g : gpus) {
        const auto rate = g.peak_flops.count("bf16") ? g.peak_flops.find("bf16") : g.peak_flops.find("fp16");
        const double bf16 = rate == g.peak_flops.end() ? 0.0 : rate->second.value;
        const auto fp8 = g.peak_flops.find("fp8_e4m3");
        t.row();
        t.cell(g.name);
        t.cell(g.display_name);
        t.cell(fmt::format("{:.2f}", to_gib(g.memory_bytes)), std::to_string(g.memory_bytes));
        t.cell(fmt::format("{:.2f}", to_gib(g.usable_memory_bytes)), std::to_string(g.usable_memory_bytes));
        t.cell(fmt::format("{:.2f}", g.hbm_bandwidth.value / 1e12), fmt::format("{:.6g}", g.hbm_bandwidth.value));
        t.cell(bf16 ? fmt::format("{:.1f}", bf16 / 1e12) : "-", bf16 ? fmt::format("{:.6g}", bf16) : "");
        t.cell(fp8 == g.peak_flops.end() ? "-" : fmt::format("{:.1f}", fp8->second.value / 1e12),
               fp8 == g.peak_flops.end() ? "" : fmt::format("{:.6g}", fp8->second.value));
        t.cell(g.sm_count ? std::to_string(g.sm_count) : "-", std::to_string(g.sm_count));
        t.cell(g.interconnect);
        t.cell(g.calibrated ? "calibrated" : g.warnings.empty() ? "assumed" : "defaults");
    }
    return t;
}

Table clusters_table(const std::vector<ClusterSpec>& clusters) {
    Table t;
    for (auto [k, title, right] :
         std::initializer_list<std::tuple<const char*, const char*, bool>>{{"name", "name", false},
                                                                           {"gpu", "gpu", false},
                                                                           {"nodes", "nodes", true},
                                                                           {"gpus_per_node", "GPUs/node", true},
                                                                           {"intra_node_fabric", "intra-node", false},
                                                                           {"intra_node_bandwidth_bytes_per_s", "GB/s", true},
                                                                           {"intra_node_latency_s", "latency µs", true},
                                                                           {"inter_node_fabric", "inter-node", false},
                                                                           {"inter_node_bandwidth_bytes_per_s", "GB/s", true},
                                                                           {"inter_node_latency_s", "latency µs", true},
                                                                           {"description", "description", false}})
        t.add_column(k, title, right);
    for (const auto& c : clusters) {
        t.row();
        t.cell(c.name);
        t.cell(c.gpu);
        t.cell(std::to_string(c.nodes));
        t.cell(std::to_string(c.gpus_per_node));
        for (const Link* l : {&c.intra_node, &c.inter_node}) {
            const bool used = l == &c.intra_node || c.nodes > 1;
            t.cell(used ? l->fabric : "-", used ? l->fabric : "");
            t.cell(used ? fmt::format("{:.0f}", l->bandwidth_bytes_per_s / 1e9) : "-",
                   used ? fmt::format("{:.6g}", l->bandwidth_bytes_per_s) : "");
            t.cell(used ? fmt::format("{:.2f}", l->latency_s * 1e6) : "-", used ? fmt::format("{:.6g}", l->latency_s) : "");
        }
        t.cell(c.description);
    }
    return t;
}

std::string render_clusters_json(const std::vector<ClusterSpec>& clusters, const ToolInfo& tool) {
    ojson arr = ojson::array();
    for (const auto& c : clusters) {
        auto link = [](const Link& l) {
            return ojson{{"fabric", l.fabric}, {"bandwidth_bytes_per_s", l.bandwidth_bytes_per_s}, {"latency_s", l.latency_s}};
        };
        ojson sources = ojson::object();
        for (const auto& [k, v] : c.sources) sources[k] = v;
        ojson j = {{"name", c.name},   {"description", c.description},     {"gpu", c.gpu},
                   {"nodes", c.nodes}, {"gpus_per_node", c.gpus_per_node}, {"intra_node", link(c.intra_node)}};
        if (c.nodes > 1) j["inter_node"] = link(c.inter_node);
        j["sources"] = sources;
        arr.push_back(j);
    }
    return ojson{{"schema", "memtax.clusters/1"}, {"tool", tool_json(tool)}, {"clusters", arr}}.dump(
               2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
           "\n";
}

namespace {

// A runtime family's own settings (vLLM's engine arguments), as its registry entry lists them.
Section family_settings(const RuntimeSpec& r) {
    const RuntimeRegistry::Family& f = RuntimeRegistry::builtin().family(r);
    return f.settings ? f.settings(r) : Section{};
}

ojson runtime_json(const RuntimeSpec& r) {
    ojson overhead = ojson::object();
    for (const auto& [gpu, o] : r.context_overhead) overhead[gpu] = {{"bytes", o.bytes}, {"source", o.source}};
    ojson sources = ojson::object();
    for (const auto& [k, v] : r.sources) sources[k] = v;
    ojson j = {{"name", r.name},
               {"description", r.description},
               {"family", r.family},
               {"attention", to_string(r.attention)},
               {"softmax_dtype", r.softmax_dtype.name},
               {"logits_dtype", r.logits_dtype ? r.logits_dtype->name : "model"},
               {"mask", to_string(r.mask)},
               {"gqa", to_string(r.gqa)},
               {"kv_layout", to_string(r.kv_layout)},
               {"sliding_window_drop", r.sliding_window_drop},
               {"allocator_round_bytes", r.allocator_round_bytes},
               {"context_overhead", overhead},
               {"sources", sources}};
    if (const Section settings = family_settings(r); !settings.fields.empty()) j[settings.name] = section_json(settings);
    return j;
}

}  // namespace

Table runtimes_table(const std::vector<RuntimeSpec>& runtimes) {
    Table t;
    for (auto [k, title] : std::initializer_list<std::pair<const char*, const char*>>{{"name", "name"},
                                                                                      {"family", "family"},
                                                                                      {"attention", "attention"},
                                                                                      {"mask", "mask"},
                                                                                      {"gqa", "gqa"},
                                                                                      {"kv_layout", "kv cache"},
                                                                                      {"engine_arguments", "engine arguments"},
                                                                                      {"description", "description"}})
        t.add_column(k, title);
    for (const auto& r : runtimes) {
        t.row();
        for (const std::string& v : {r.name, r.family, std::string(to_string(r.attention)), std::string(to_string(r.mask)),
                                     std::string(to_string(r.gqa)), std::string(to_string(r.kv_layout))})
            t.cell(v);
        std::string args;
        for (const auto& f : family_settings(r).fields)
            args += fmt::format("{}{} {}", args.empty() ? "" : " · ", f.label.empty() ? f.key : f.label, raw_value(f));
        t.cell(args.empty() ? "-" : args);
        t.cell(r.description);
    }
    return t;
}

std::string render_runtimes_json(const std::vector<RuntimeSpec>& runtimes, const ToolInfo& tool) {
    ojson arr = ojson::array();
    for (const auto& r : runtimes) arr.push_back(runtime_json(r));
    return ojson{{"schema", "memtax.runtimes/1"}, {"tool", tool_json(tool)}, {"runtimes", arr}}.dump(
               2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
           "\n";
}

}  // namespace memtax
