// scenarios/*.yaml -> ScenarioSpec. Same strictness as the profiles: every key known, every
// value checked, every error `file:line: field: message`.
#include <fmt/format.h>

#include "core/dtype.hpp"
#include "core/number.hpp"
#include "spec/loaders.hpp"
#include "spec/scenario_spec.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

u64 tokens_at(YamlMap& m, const std::string& key, const YAML::Node& n) {
    const std::string s = n.IsScalar() ? n.Scalar() : std::string();
    u64 v = 0;
    const NumberParse p = n.IsScalar() ? parse_token_count(s, v) : NumberParse::Invalid;
    if (p != NumberParse::Ok) throw InputError(m.pos_of(n), m.field(key), number_problem(p, s, true));
    return v;
}

// `key: 32k` or `key: {mean: 12k, max: 30k}`.
TokenCount token_count(YamlMap& parent, const std::string& key) {
    YAML::Node n = parent.node(key);
    if (!n.IsDefined() || n.IsNull()) parent.fail(key, "required field is missing");
    TokenCount t;
    if (n.IsMap()) {
        YamlMap m = parent.required_map(key);
        m.finish({"mean", "max"});
        t.mean = tokens_at(m, "mean", m.node("mean"));
        t.max = tokens_at(m, "max", m.node("max"));
        if (t.mean > t.max) m.fail("mean", fmt::format("{} exceeds max {}", t.mean, t.max));
    } else {
        t.mean = t.max = tokens_at(parent, key, n);
    }
    if (t.max == 0) parent.fail(key, "must be positive");
    return t;
}

std::vector<std::string> names(YamlMap& m, const std::string& key, bool required) {
    std::vector<std::string> v = m.optional_strings(key);
    if (required && v.empty()) m.fail(key, "required: a non-empty list");
    return v;
}

double seconds(YamlMap& m, const std::string& key) {
    const double v = m.required_rate(key);
    if (v > 3600) m.fail(key, fmt::format("{} s is implausible; valid: up to 3600", v));
    return v;
}

u64 percent_ppm(YamlMap& m, const std::string& key) {
    // A percentage with up to 4 decimals, 0 <= p < 100, as parts per million, exactly: 12.5 -> 125,000.
    const std::string s = m.required_string(key);
    u64 whole = 0, frac = 0, frac_digits = 0;
    size_t i = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) whole = whole * 10 + static_cast<u64>(s[i] - '0');
    bool ok = i > 0 && i <= 2;
    if (ok && i < s.size() && s[i] == '.') {
        for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9' && frac_digits < 4; ++i, ++frac_digits)
            frac = frac * 10 + static_cast<u64>(s[i] - '0');
    }
    ok = ok && i == s.size();
    if (!ok) m.fail(key, fmt::format("\"{}\" must be a percentage from 0 to 99.9999", s));
    for (; frac_digits < 4; ++frac_digits) frac *= 10;
    return whole * 10000 + frac;
}

// A profile the scenario names (catalog name or path), resolved as it is read, so that a misspelt
// name is reported at its key's line. An error inside a named file keeps its own position.
template <typename Resolve>
void check_profile(YamlMap& m, const std::string& key, const std::string& name, Resolve resolve) {
    try {
        (void)resolve(name);
    } catch (const InputError& e) {
        if (e.pos().line) throw;
        m.fail(key, e.pos().file.empty() ? e.message() : fmt::format("{}: {}", e.pos().file, e.message()));  // "x.yaml: no such file"
    }
}

// Dtype names, checked and written as memtax spells them ("fp8" is refused with the valid ones).
std::vector<std::string> dtypes(YamlMap& m, const std::string& key) {
    std::vector<std::string> out;
    for (const auto& n : names(m, key, true)) {
        DType d;
        if (!parse_dtype(n, d)) m.fail(key, unknown_dtype_message(n));
        out.push_back(d.name);
    }
    return out;
}

// The constraints every scenario shares: how many GPUs at most (up to `max_gpus_valid`), in
// nodes of how many, and the share of memory kept free.
void read_fleet(ScenarioSpec& s, YamlMap& c, u64 max_gpus_valid) {
    s.max_gpus = c.optional_u64("max_gpus").value_or(8);
    if (s.max_gpus == 0 || s.max_gpus > max_gpus_valid) c.fail("max_gpus", fmt::format("{}; valid: 1 to {}", s.max_gpus, max_gpus_valid));
    s.gpus_per_node = c.optional_u64("gpus_per_node").value_or(8);
    if (s.gpus_per_node == 0 || s.gpus_per_node > 72) c.fail("gpus_per_node", fmt::format("{}; valid: 1 to 72", s.gpus_per_node));
    if (c.has("memory_headroom_percent")) s.memory_headroom_ppm = percent_ppm(c, "memory_headroom_percent");
}

// The objective, the prices it may need and the CI gates: the same keys for every scenario.
void read_ranking(ScenarioSpec& s, YamlMap& map, bool training) {
    if (map.has("objective")) {
        const std::string o = map.required_choice("objective", {"fewest_gpus", "lowest_cost", "highest_throughput"});
        s.objective = o == "lowest_cost"          ? Objective::LowestCost
                      : o == "highest_throughput" ? Objective::HighestThroughput
                                                  : Objective::FewestGpus;
    }
    if (auto p = map.optional_map("prices")) {
        p->finish({"per_gpu_hour", "source"});
        YamlMap per = p->required_map("per_gpu_hour");
        for (const auto& k : per.keys()) {
            check_profile(per, k, k, resolve_gpu);
            s.price_per_gpu_hour[k] = per.required_rate(k);
        }
        s.price_source = p->required_string("source");
    }
    if (s.objective == Objective::LowestCost && !s.clusters.empty() && s.price_per_gpu_hour.empty())
        map.fail("objective", "lowest_cost needs prices.per_gpu_hour for the GPU of every cluster in constraints.clusters");
    if (s.objective == Objective::LowestCost) {
        if (s.price_per_gpu_hour.empty()) map.fail("objective", "lowest_cost needs prices.per_gpu_hour for every GPU in constraints.gpus");
        for (const auto& g : s.gpus)
            if (!s.price_per_gpu_hour.count(g))
                map.fail("prices", fmt::format("no per_gpu_hour price for \"{}\" (constraints.gpus lists it)", g));
    }

    if (auto g = map.optional_map("gates")) {
        if (training)
            for (const char* k : {"max_tpot_s", "max_ttft_s"})
                if (g->has(k)) g->fail(k, "a serving gate; a training scenario's gates: must_fit, max_bytes_per_gpu, min_headroom_percent");
        g->finish({"must_fit", "max_bytes_per_gpu", "min_headroom_percent", "max_tpot_s", "max_ttft_s"});
        s.gate_must_fit = g->optional_bool("must_fit").value_or(false);
        s.gate_max_bytes_per_gpu = g->optional_u64("max_bytes_per_gpu");
        if (g->has("min_headroom_percent")) s.gate_min_headroom_ppm = percent_ppm(*g, "min_headroom_percent");
        if (g->has("max_tpot_s")) s.gate_max_tpot_s = seconds(*g, "max_tpot_s");
        if (g->has("max_ttft_s")) s.gate_max_ttft_s = seconds(*g, "max_ttft_s");
    }
}

// A list of positive integers (`[1, 2, 4]`), each at most `max`.
std::vector<u64> counts(YamlMap& m, const std::string& key, u64 min, u64 max) {
    std::vector<u64> out;
    YAML::Node n = m.node(key);
    if (!n.IsSequence() || n.size() == 0) m.fail(key, "expected a non-empty list of whole numbers");
    for (size_t i = 0; i < n.size(); ++i) {
        const std::string t = n[i].IsScalar() ? n[i].Scalar() : std::string();
        u64 v = 0;
        if (!n[i].IsScalar() || parse_exact_integer(t, v) != NumberParse::Ok || v < min || v > max)
            throw InputError(m.pos_of(n[i]), fmt::format("{}[{}]", m.field(key), i),
                             fmt::format("\"{}\"; valid: a whole number from {} to {}", t, min, max));
        out.push_back(v);
    }
    return out;
}

// `workload.mode: training`: what is trained and how much, the layouts and settings to search.
void read_training(ScenarioSpec& s, YamlMap& map, YamlMap& w) {
    if (map.has("runtime_settings")) map.fail("runtime_settings", "vLLM's engine arguments; a training scenario has none");
    for (const char* k : {"prompt_tokens", "output_tokens", "concurrency", "request_rate_per_s", "arrivals", "context"})
        if (w.has(k))
            w.fail(k, "an inference setting; a training workload takes sequence_length, global_batch, train_tokens, optimizer, precision");
    w.finish({"mode", "sequence_length", "global_batch", "train_tokens", "optimizer", "precision"});
    const RuntimeSpec rt = resolve_runtime(s.runtime);
    TrainingScenario t;
    t.sequence_length = tokens_at(w, "sequence_length", w.node("sequence_length"));
    if (t.sequence_length == 0) w.fail("sequence_length", "must be positive");
    t.global_batch = w.required_u64("global_batch");
    if (t.global_batch == 0 || t.global_batch > 1'000'000)
        w.fail("global_batch", fmt::format("{}; valid: 1 to 1000000 sequences", t.global_batch));
    if (w.has("train_tokens")) {
        t.train_tokens = tokens_at(w, "train_tokens", w.node("train_tokens"));
        if (t.train_tokens == 0) w.fail("train_tokens", "must be positive");
    }
    if (w.has("optimizer")) t.optimizer = w.required_choice("optimizer", {"adamw", "adam", "sgd", "sgd-momentum"});
    if (w.has("precision")) t.precision = w.required_choice("precision", {"mixed", "bf16"});

    YamlMap c = map.required_map("constraints");
    for (const char* k : {"clusters", "tp_across_nodes", "ttft_s", "tpot_s", "ttft_statistic", "kv_dtypes", "weight_dtypes", "attention"})
        if (c.has(k))
            c.fail(k,
                   "an inference constraint; a training scenario takes gpus, max_gpus, gpus_per_node, memory_headroom_percent, "
                   "zero_stages, recompute, micro_batch_sizes, tp, pp, max_days");
    c.finish({"gpus", "max_gpus", "gpus_per_node", "memory_headroom_percent", "zero_stages", "recompute", "micro_batch_sizes", "tp", "pp",
              "max_days"});
    s.gpus = names(c, "gpus", true);
    for (const auto& g : s.gpus) check_profile(c, "gpus", g, resolve_gpu);
    read_fleet(s, c, 65536);
    if (c.has("zero_stages")) t.zero_stages = counts(c, "zero_stages", 0, 3);
    if (c.has("recompute")) {
        for (const auto& r : names(c, "recompute", true)) {
            if (r != "none" && r != "selective" && r != "full")
                c.fail("recompute", fmt::format("unknown value \"{}\"; valid: none, selective, full", r));
            if (r == "selective" && !rt.training.selective_recompute)
                c.fail("recompute", fmt::format("selective: {} checkpoints whole layers; valid: none, full (selective: a runtime with "
                                                "training.selective_recompute, e.g. megatron-train)",
                                                rt.name));
            t.recompute.push_back(r);
        }
    }
    if (c.has("micro_batch_sizes")) t.micro_batch_sizes = counts(c, "micro_batch_sizes", 1, 4096);
    if (c.has("tp")) t.tp = counts(c, "tp", 1, 72);
    if (c.has("pp")) t.pp = counts(c, "pp", 1, 1024);
    if (c.has("max_days")) {
        t.max_days = c.required_rate("max_days");
        if (!t.train_tokens) c.fail("max_days", "a deadline for the token budget; add workload.train_tokens");
    }
    s.training = t;
    read_ranking(s, map, true);
    if (s.objective == Objective::LowestCost && !t.train_tokens)
        map.fail("objective", "lowest_cost prices the token budget; add workload.train_tokens");
}

}  // namespace

const char* to_string(Objective o) {
    switch (o) {
        case Objective::FewestGpus:
            return "fewest_gpus";
        case Objective::LowestCost:
            return "lowest_cost";
        case Objective::HighestThroughput:
            return "highest_throughput";
    }
    return "?";
}

ScenarioSpec load_scenario_yaml(const std::string& text, const std::string& file) {
    YAML::Node root = parse_yaml(text, file);
    YamlMap map(root, file, "");
    map.finish({"name", "description", "model", "runtime", "runtime_settings", "workload", "constraints", "objective", "prices", "gates"});
    ScenarioSpec s;
    s.file = file;
    s.name = map.required_string("name");
    s.description = map.optional_string("description").value_or("");
    s.model = map.required_string("model");
    check_profile(map, "model", s.model, resolve_model);
    YamlMap w = map.required_map("workload");
    const std::string mode = w.optional_string("mode").value_or("inference");
    if (mode != "inference" && mode != "training") w.fail("mode", fmt::format("unknown value \"{}\"; valid: inference, training", mode));
    s.runtime = map.optional_string("runtime").value_or(mode == "training" ? "hf-train" : "hf-sdpa");
    check_profile(map, "runtime", s.runtime, resolve_runtime);
    if (mode == "training") {
        read_training(s, map, w);
        return s;
    }

    if (auto rs = map.optional_map("runtime_settings")) {
        rs->finish({"gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "block_size", "max_model_len",
                    "kv_cache_memory_bytes", "enforce_eager", "attention_backend"});
        if (rs->has("gpu_memory_utilization")) {
            const std::string util = rs->required_string("gpu_memory_utilization");
            s.engine.gpu_memory_utilization_ppm = utilization_ppm(util);
            if (!s.engine.gpu_memory_utilization_ppm)
                rs->fail("gpu_memory_utilization", fmt::format("\"{}\" must be a decimal in (0, 1]", util));
        }
        s.engine.max_num_seqs = rs->optional_u64("max_num_seqs");
        if (rs->has("max_num_batched_tokens"))
            s.engine.max_num_batched_tokens = tokens_at(*rs, "max_num_batched_tokens", rs->node("max_num_batched_tokens"));
        s.engine.block_size = rs->optional_u64("block_size");
        if (rs->has("max_model_len")) s.engine.max_model_len = tokens_at(*rs, "max_model_len", rs->node("max_model_len"));
        s.engine.kv_cache_memory_bytes = rs->optional_u64("kv_cache_memory_bytes");
        if (s.engine.kv_cache_memory_bytes == u64{0}) rs->fail("kv_cache_memory_bytes", "must be positive");
        if (rs->has("enforce_eager")) s.engine.enforce_eager = rs->optional_bool("enforce_eager");
        if (rs->has("attention_backend")) s.engine.attention_backend = rs->required_string("attention_backend");
        if (s.engine.max_num_seqs == u64{0}) rs->fail("max_num_seqs", "must be positive");
        if (s.engine.block_size == u64{0}) rs->fail("block_size", "must be positive");
    }

    for (const char* k : {"sequence_length", "global_batch", "train_tokens", "optimizer", "precision"})
        if (w.has(k)) w.fail(k, "a training setting; add mode: training, or leave it out of an inference scenario");
    w.finish({"mode", "prompt_tokens", "output_tokens", "concurrency", "request_rate_per_s", "arrivals", "context"});
    s.prompt = token_count(w, "prompt_tokens");
    s.output = token_count(w, "output_tokens");
    if (w.has("concurrency") == w.has("request_rate_per_s"))
        w.fail("concurrency", "give exactly one of concurrency (sequences at once) and request_rate_per_s");
    if (w.has("concurrency")) {
        s.concurrency = w.required_u64("concurrency");
        if (s.concurrency == 0 || s.concurrency > 1'000'000) w.fail("concurrency", fmt::format("{}; valid: 1 to 1000000", s.concurrency));
    } else {
        s.request_rate_per_s = w.required_rate("request_rate_per_s");
        if (*s.request_rate_per_s > 1e6)
            w.fail("request_rate_per_s", fmt::format("{} requests/s is implausible; valid: up to 1e6", *s.request_rate_per_s));
    }
    if (w.has("arrivals")) {
        s.burst = w.required_choice("arrivals", {"steady", "burst"}) == "burst";
        if (s.burst && s.request_rate_per_s)
            w.fail("arrivals", "a burst is of `concurrency` requests at once; a request rate is a steady stream");
    }
    s.context = w.has("context") ? tokens_at(w, "context", w.node("context")) : checked_add(s.prompt.max, s.output.max, "context");
    if (s.context == 0) w.fail("context", "must be positive");

    YamlMap c = map.required_map("constraints");
    for (const char* k : {"zero_stages", "recompute", "micro_batch_sizes", "tp", "pp", "max_days"})
        if (c.has(k)) c.fail(k, "a training constraint; this scenario's workload is inference (mode: training searches it)");
    c.finish({"gpus", "clusters", "max_gpus", "gpus_per_node", "tp_across_nodes", "memory_headroom_percent", "ttft_s", "tpot_s",
              "ttft_statistic", "kv_dtypes", "weight_dtypes", "attention"});
    s.gpus = names(c, "gpus", false);
    s.clusters = names(c, "clusters", false);
    if (s.gpus.empty() && s.clusters.empty()) c.fail("gpus", "required: a non-empty list (or clusters)");
    read_fleet(s, c, 4096);
    s.tp_across_nodes = c.optional_bool("tp_across_nodes").value_or(false);
    if (c.has("ttft_s")) s.ttft_s = seconds(c, "ttft_s");
    if (c.has("tpot_s")) s.tpot_s = seconds(c, "tpot_s");
    if (c.has("ttft_statistic")) {
        const std::string st = c.required_choice("ttft_statistic", {"mean", "p50", "p90", "p99"});
        s.ttft_percentile = st == "mean" ? 0u : static_cast<unsigned>(std::stoul(st.substr(1)));
    }
    for (const auto& g : s.gpus) check_profile(c, "gpus", g, resolve_gpu);
    for (const auto& k : s.clusters) check_profile(c, "clusters", k, resolve_cluster);
    if (c.has("kv_dtypes")) s.kv_dtypes = dtypes(c, "kv_dtypes");
    if (c.has("weight_dtypes")) s.weight_dtypes = dtypes(c, "weight_dtypes");
    s.attention = names(c, "attention", false);
    for (const auto& a : s.attention)
        if (a != "eager" && a != "fused") c.fail("attention", fmt::format("unknown value \"{}\"; valid: eager, fused", a));

    read_ranking(s, map, false);
    return s;
}

ScenarioSpec load_scenario_file(const std::string& path) { return load_scenario_yaml(read_input_file(path), path); }

}  // namespace memtax
