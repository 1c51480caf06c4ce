#include "spec/measurements.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "spec/json_reader.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

using json = nlohmann::json;

// Rejects keys outside `known` at `path`, naming the closest known key.
void only_keys(const JsonDoc& doc, const json& obj, const std::string& path, const std::vector<std::string>& known) {
    for (const auto& [k, v] : obj.items()) {
        if (std::find(known.begin(), known.end(), k) == known.end())
            doc.fail(path.empty() ? k : path + "." + k,
                     fmt::format("unknown key{}; valid: {}", did_you_mean(k, known), fmt::join(known, ", ")));
    }
}

const json& member(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key) {
    if (!obj.contains(key)) doc.fail(path.empty() ? key : path, fmt::format("required field \"{}\" is missing", key));
    return obj.at(key);
}

std::string str(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key) {
    const json& v = member(doc, obj, path, key);
    if (!v.is_string()) doc.fail(path + "." + key, fmt::format("expected a string, got {}", json_repr(v)));
    return v.get<std::string>();
}

u64 unsigned_value(const JsonDoc& doc, const json& v, const std::string& field) {
    if (!v.is_number_unsigned()) {
        if (v.is_number_integer()) doc.fail(field, fmt::format("must not be negative, got {}", v.dump()));
        doc.fail(field, fmt::format("expected a non-negative integer, got {}", json_repr(v)));
    }
    return v.get<u64>();
}

u64 uint(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key) {
    return unsigned_value(doc, member(doc, obj, path, key), path + "." + key);
}

double number(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key) {
    const json& v = member(doc, obj, path, key);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
        doc.fail(path + "." + key, fmt::format("expected a finite number >= 0, got {}", json_repr(v)));
    return v.get<double>();
}

std::string choice(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key,
                   const std::vector<std::string>& valid) {
    std::string v = str(doc, obj, path, key);
    if (std::find(valid.begin(), valid.end(), v) == valid.end())
        doc.fail(path + "." + key, fmt::format("\"{}\"{}; valid: {}", v, did_you_mean(v, valid), fmt::join(valid, ", ")));
    return v;
}

u64 positive(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key) {
    u64 v = uint(doc, obj, path, key);
    if (v == 0) doc.fail(path + "." + key, "must be at least 1");
    return v;
}

bool boolean(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key) {
    const json& v = member(doc, obj, path, key);
    if (!v.is_boolean()) doc.fail(path + "." + key, fmt::format("expected true or false, got {}", json_repr(v)));
    return v.get<bool>();
}

// A head count that must be a whole number of KV heads (grouped-query attention).
u64 heads_per_kv(const JsonDoc& doc, const json& obj, const std::string& path, const std::string& key, u64 kv_heads) {
    const u64 v = positive(doc, obj, path, key);
    if (v % kv_heads) doc.fail(path + "." + key, fmt::format("{} is not a multiple of kv_heads = {}", v, kv_heads));
    return v;
}

// The params of a probe case, strictly per kind (kernels/probe/ writes them).
ProbeShape probe_shape(const JsonDoc& doc, const json& p, const std::string& at, const std::string& kind) {
    ProbeShape s;
    if (!p.is_object()) doc.fail(at, "expected an object of the case's shape");
    const std::vector<std::string> half = {"bf16", "fp16"};
    if (kind == "stream") {
        s.op = choice(doc, p, at, "op", {"copy", "read", "write", "memcpy", "launch"});
        if (s.op == "launch") {
            only_keys(doc, p, at, {"op", "kernels"});
            s.kernels = positive(doc, p, at, "kernels");
            return s;
        }
        only_keys(doc, p, at, {"op", "bytes", "partials"});
        s.bytes = positive(doc, p, at, "bytes");
        if (s.bytes % 16) doc.fail(at + ".bytes", fmt::format("{} is not a multiple of 16 (the kernels move 16-byte vectors)", s.bytes));
        if (s.op == "read")
            s.partials = positive(doc, p, at, "partials");
        else if (p.contains("partials"))
            doc.fail(at + ".partials", "only a read has per-block partial sums");
    } else if (kind == "gemm") {
        only_keys(doc, p, at, {"dtype", "m", "n", "k", "out_dtype", "workspace_bytes"});
        s.dtype = choice(doc, p, at, "dtype", {"bf16", "fp16", "fp8_e4m3"});
        s.m = positive(doc, p, at, "m");
        s.n = positive(doc, p, at, "n");
        s.k = positive(doc, p, at, "k");
        s.out_dtype = choice(doc, p, at, "out_dtype", half);
        s.workspace_bytes = uint(doc, p, at, "workspace_bytes");
    } else if (kind == "attention-sdpa") {
        only_keys(doc, p, at, {"batch", "heads", "kv_heads", "context", "q_len", "head_dim", "causal", "dtype"});
        s.batch = positive(doc, p, at, "batch");
        s.kv_heads = positive(doc, p, at, "kv_heads");
        s.heads = heads_per_kv(doc, p, at, "heads", s.kv_heads);
        s.context = positive(doc, p, at, "context");
        s.q_len = positive(doc, p, at, "q_len");
        s.head_dim = positive(doc, p, at, "head_dim");
        s.causal = boolean(doc, p, at, "causal");
        if (s.causal && s.q_len != s.context) doc.fail(at + ".q_len", "a causal case attends a prompt to itself: q_len = context");
        s.dtype = choice(doc, p, at, "dtype", {"bf16", "fp16"});
    } else if (kind == "allreduce") {
        only_keys(doc, p, at, {"gpus", "bytes", "dtype"});
        s.gpus = uint(doc, p, at, "gpus");
        s.bytes = uint(doc, p, at, "bytes");
        s.dtype = choice(doc, p, at, "dtype", {"bf16"});
    } else if (kind == "mlp") {
        only_keys(doc, p, at, {"tokens", "hidden", "intermediate", "dtype", "workspace_bytes"});
        s.tokens = positive(doc, p, at, "tokens");
        s.hidden = positive(doc, p, at, "hidden");
        s.intermediate = positive(doc, p, at, "intermediate");
        s.dtype = choice(doc, p, at, "dtype", {"bf16"});
        s.workspace_bytes = uint(doc, p, at, "workspace_bytes");
    } else if (kind == "attention-eager" || kind == "attention-flash") {
        const bool eager = kind == "attention-eager";
        std::vector<std::string> keys = {"batch", "heads", "context", "head_dim", "causal", "dtype"};
        for (const char* k :
             eager ? std::vector<const char*>{"scores_dtype", "workspace_bytes"} : std::vector<const char*>{"block_m", "block_n"})
            keys.push_back(k);
        only_keys(doc, p, at, keys);
        s.batch = positive(doc, p, at, "batch");
        s.heads = positive(doc, p, at, "heads");
        s.context = positive(doc, p, at, "context");
        s.head_dim = positive(doc, p, at, "head_dim");
        s.causal = boolean(doc, p, at, "causal");
        if (eager && !s.causal) doc.fail(at + ".causal", "the eager kernel is causal only");
        s.dtype = choice(doc, p, at, "dtype", {"bf16"});
        if (eager) {
            s.scores_dtype = choice(doc, p, at, "scores_dtype", {"fp32"});
            s.workspace_bytes = uint(doc, p, at, "workspace_bytes");
        } else {
            s.block_m = positive(doc, p, at, "block_m");
            s.block_n = positive(doc, p, at, "block_n");
            if (s.block_m != s.block_n) doc.fail(at + ".block_n", "the flash kernel's tiles are square (block_m = block_n)");
        }
    } else if (kind == "decode-paged") {
        only_keys(doc, p, at, {"batch", "context", "kv_heads", "q_heads", "head_dim", "block_size", "tokens_per_split", "dtype"});
        s.batch = positive(doc, p, at, "batch");
        s.context = positive(doc, p, at, "context");
        s.kv_heads = positive(doc, p, at, "kv_heads");
        s.q_heads = heads_per_kv(doc, p, at, "q_heads", s.kv_heads);
        s.head_dim = positive(doc, p, at, "head_dim");
        s.block_size = positive(doc, p, at, "block_size");
        s.tokens_per_split = positive(doc, p, at, "tokens_per_split");
        s.dtype = choice(doc, p, at, "dtype", {"bf16"});
    }
    return s;
}

MeasuredProbe probe_measured(const JsonDoc& doc, const json& ms, const std::string& mp) {
    MeasuredProbe r;
    if (!ms.is_object()) doc.fail(mp, "expected an object of measured values");
    only_keys(doc, ms, mp,
              {"allocated_bytes", "driver_bytes", "device_used_bytes", "device_reserved_bytes", "buffers", "time_s", "time_p10_s",
               "time_p90_s", "runs", "unwritten_outputs", "kernels"});
    r.allocated_bytes = uint(doc, ms, mp, "allocated_bytes");
    if (ms.contains("driver_bytes")) r.driver_bytes = uint(doc, ms, mp, "driver_bytes");
    r.has_driver_bytes = ms.contains("driver_bytes");
    if (ms.contains("device_used_bytes")) r.device_used_bytes = uint(doc, ms, mp, "device_used_bytes");
    if (ms.contains("device_reserved_bytes")) r.device_reserved_bytes = uint(doc, ms, mp, "device_reserved_bytes");
    const json& bufs = member(doc, ms, mp, "buffers");
    if (!bufs.is_object()) doc.fail(mp + ".buffers", "expected an object of buffer name -> bytes");
    for (const auto& [k, v] : bufs.items()) r.buffers.emplace_back(k, unsigned_value(doc, v, mp + ".buffers." + k));
    r.time_s = number(doc, ms, mp, "time_s");
    if (r.time_s <= 0) doc.fail(mp + ".time_s", "must be positive");
    r.time_p10_s = ms.contains("time_p10_s") ? number(doc, ms, mp, "time_p10_s") : r.time_s;
    r.time_p90_s = ms.contains("time_p90_s") ? number(doc, ms, mp, "time_p90_s") : r.time_s;
    r.runs = positive(doc, ms, mp, "runs");
    r.unwritten_outputs = ms.contains("unwritten_outputs") ? uint(doc, ms, mp, "unwritten_outputs") : 0;
    if (ms.contains("kernels")) {
        const json& ks = ms["kernels"];
        if (!ks.is_array()) doc.fail(mp + ".kernels", "expected a list of {name, time_s, runs}");
        for (size_t i = 0; i < ks.size(); ++i) {
            const std::string kp = fmt::format("{}.kernels[{}]", mp, i);
            only_keys(doc, ks[i], kp, {"name", "time_s", "runs"});
            r.kernels.emplace_back(str(doc, ks[i], kp, "name"), number(doc, ks[i], kp, "time_s"));
        }
    }
    return r;
}

// A forward's measured bytes (a case's, or one rank's of a sharded run; only a case records the
// storages behind its cache's tensors).
MeasuredForward forward_measured(const JsonDoc& doc, const json& ms, const std::string& mp, bool with_storage) {
    if (!ms.is_object()) doc.fail(mp, "expected an object of measured values");
    if (with_storage)
        only_keys(doc, ms, mp, {"forward_peak_bytes", "kv_cache_bytes", "kv_cache_storage_bytes", "logits_bytes", "after_step_bytes"});
    else
        only_keys(doc, ms, mp, {"forward_peak_bytes", "kv_cache_bytes", "logits_bytes", "after_step_bytes"});
    MeasuredForward f;
    if (ms.contains("forward_peak_bytes")) f.forward_peak_bytes = uint(doc, ms, mp, "forward_peak_bytes");
    if (ms.contains("kv_cache_bytes")) f.kv_cache_bytes = uint(doc, ms, mp, "kv_cache_bytes");
    if (ms.contains("logits_bytes")) f.logits_bytes = uint(doc, ms, mp, "logits_bytes");
    if (ms.contains("kv_cache_storage_bytes")) f.kv_cache_storage_bytes = uint(doc, ms, mp, "kv_cache_storage_bytes");
    if (ms.contains("after_step_bytes")) {
        const json& v = ms["after_step_bytes"];
        if (!v.is_number_integer()) doc.fail(mp + ".after_step_bytes", fmt::format("expected an integer, got {}", json_repr(v)));
        f.after_step_bytes = v.get<std::int64_t>();
    }
    if (!f.forward_peak_bytes) doc.fail(mp, "required field \"forward_peak_bytes\" is missing");
    return f;
}

}  // namespace

MeasurementFile parse_measurements(const std::string& text, const std::string& file) {
    JsonDoc doc = parse_json(text, file);
    const json& root = doc.root;
    if (!root.is_object()) doc.fail("(document)", "expected a JSON object with schema, provenance and cases");
    MeasurementFile m;
    m.file = file;
    only_keys(doc, root, "",
              {"schema", "source", "provenance", "note", "runtime_overhead_bytes", "runtime_overhead_detail", "checks", "cases"});
    m.schema = str(doc, root, "", "schema");
    if (m.schema != kMeasurementSchema)
        doc.fail("schema", fmt::format("\"{}\" is not supported; valid: {} (docs/measurement-schema.md)", m.schema, kMeasurementSchema));
    m.source = str(doc, root, "", "source");
    const json& prov = member(doc, root, "", "provenance");
    if (!prov.is_object()) doc.fail("provenance", "expected an object (gpu, driver, date, command, ...)");
    for (const auto& [k, v] : prov.items()) m.provenance[k] = v.is_string() ? v.get<std::string>() : v.dump();
    for (const char* need : {"gpu", "date", "command"})
        if (!m.provenance.count(need)) doc.fail("provenance", fmt::format("required field \"{}\" is missing", need));
    if (root.contains("runtime_overhead_bytes"))
        m.runtime_overhead_bytes = unsigned_value(doc, root["runtime_overhead_bytes"], "runtime_overhead_bytes");
    if (root.contains("checks")) {
        const json& checks = root["checks"];
        if (!checks.is_array()) doc.fail("checks", "expected a list of correctness checks");
        for (size_t i = 0; i < checks.size(); ++i) {
            const std::string at = fmt::format("checks[{}]", i);
            const json& c = checks[i];
            if (!c.is_object()) doc.fail(at, "expected an object");
            only_keys(doc, c, at, {"suite", "what", "rel_error", "tolerance", "unwritten_outputs", "passed"});
            ProbeCheck pc;
            pc.suite = str(doc, c, at, "suite");
            pc.what = str(doc, c, at, "what");
            const json& re = member(doc, c, at, "rel_error");
            // A non-finite error is written as null by the probe: it failed.
            pc.rel_error = re.is_null() ? INFINITY : number(doc, c, at, "rel_error");
            pc.tolerance = number(doc, c, at, "tolerance");
            pc.unwritten = uint(doc, c, at, "unwritten_outputs");
            pc.passed = boolean(doc, c, at, "passed");
            m.checks.push_back(pc);
        }
    }
    const json& cases = member(doc, root, "", "cases");
    if (!cases.is_array()) doc.fail("cases", "expected a list of cases");
    const std::filesystem::path dir = std::filesystem::path(file).parent_path();
    for (size_t i = 0; i < cases.size(); ++i) {
        const std::string at = fmt::format("cases[{}]", i);
        const json& c = cases[i];
        if (!c.is_object()) doc.fail(at, "expected an object");
        MeasuredCase mc;
        mc.line = doc.pos(at).line;
        mc.kind = str(doc, c, at, "kind");
        const auto& kinds = probe_kinds();
        const bool probe = std::find(kinds.begin(), kinds.end(), mc.kind) != kinds.end();
        if (mc.kind != "forward" && mc.kind != "step_time" && mc.kind != "train" && !probe) {
            std::vector<std::string> valid = {"forward", "step_time", "train"};
            valid.insert(valid.end(), kinds.begin(), kinds.end());
            doc.fail(at + ".kind", fmt::format("\"{}\"{}; valid: {}", mc.kind, did_you_mean(mc.kind, valid), fmt::join(valid, ", ")));
        }
        if (probe) {
            only_keys(doc, c, at, {"id", "kind", "params", "status", "reason", "measured"});
            mc.id = str(doc, c, at, "id");
            mc.shape = probe_shape(doc, member(doc, c, at, "params"), at + ".params", mc.kind);
            mc.status = choice(doc, c, at, "status", {"ok", "skipped", "failed"});
            if (c.contains("reason")) mc.reason = str(doc, c, at, "reason");
            if (mc.status != "skipped")
                mc.probe = probe_measured(doc, member(doc, c, at, "measured"), at + ".measured");
            else if (c.contains("measured"))
                doc.fail(at + ".measured", "a skipped case has no measured values");
            m.cases.push_back(std::move(mc));
            continue;
        }
        mc.id = str(doc, c, at, "id");
        if (c.contains("model_config") == c.contains("model"))
            doc.fail(at, "needs exactly one of model (a built-in name) or model_config (a config.json path relative to this file)");
        if (c.contains("model_config")) {
            std::string rel = str(doc, c, at, "model_config");
            mc.model = (dir / rel).string();
        } else {
            mc.model = str(doc, c, at, "model");
        }
        mc.runtime = str(doc, c, at, "runtime");
        mc.mode = str(doc, c, at, "mode");
        if (mc.kind == "train") {
            if (mc.mode != "train") doc.fail(at + ".mode", fmt::format("\"{}\"; valid for a train case: train", mc.mode));
        } else if (mc.mode != "prefill" && mc.mode != "decode") {
            doc.fail(at + ".mode", fmt::format("\"{}\"; valid: prefill, decode", mc.mode));
        }
        mc.batch = uint(doc, c, at, "batch");
        mc.context = uint(doc, c, at, "context");
        if (mc.batch == 0) doc.fail(at + ".batch", "must be at least 1");
        if (mc.context == 0) doc.fail(at + ".context", "must be at least 1");
        mc.logits_kept = c.contains("logits_kept") ? uint(doc, c, at, "logits_kept") : 1;
        mc.decode_step = c.contains("decode_step") ? uint(doc, c, at, "decode_step") : 1;
        mc.tp = c.contains("tp") ? uint(doc, c, at, "tp") : 1;
        if (mc.tp == 0 || mc.tp > 1024) doc.fail(at + ".tp", fmt::format("{}; valid: 1 to 1024 tensor-parallel ranks", mc.tp));
        if (c.contains("ranks") && mc.kind != "forward") doc.fail(at + ".ranks", "only a forward case lists its ranks");
        if (mc.tp != 1 && mc.kind == "train") doc.fail(at + ".tp", "a training case runs on one GPU here; valid: 1");
        if (mc.decode_step == 0) doc.fail(at + ".decode_step", "must be at least 1 (1: the first decode step after the prefill)");
        if (mc.decode_step != 1 && mc.mode != "decode") doc.fail(at + ".decode_step", "only a decode case has a decode step");
        mc.status = str(doc, c, at, "status");
        if (mc.status != "ok" && mc.status != "oom" && mc.status != "skipped")
            doc.fail(at + ".status", fmt::format("\"{}\"; valid: ok, oom, skipped", mc.status));
        if (c.contains("reason")) mc.reason = str(doc, c, at, "reason");
        if (mc.kind == "train") {
            if (c.contains("recompute")) mc.recompute = str(doc, c, at, "recompute");
            if (mc.recompute != "none" && mc.recompute != "selective" && mc.recompute != "full")
                doc.fail(at + ".recompute", fmt::format("\"{}\"; valid: none, selective, full", mc.recompute));
            if (c.contains("optimizer")) mc.optimizer = str(doc, c, at, "optimizer");
            if (mc.optimizer != "adamw" && mc.optimizer != "adam" && mc.optimizer != "sgd" && mc.optimizer != "sgd-momentum")
                doc.fail(at + ".optimizer", fmt::format("\"{}\"; valid: adamw, adam, sgd, sgd-momentum", mc.optimizer));
            if (c.contains("loop")) mc.loop = choice(doc, c, at, "loop", {"loss", "outputs"});
            if (c.contains("use_cache")) mc.use_cache = choice(doc, c, at, "use_cache", {"default", "on", "off"});
            if (c.contains("zero_grad")) mc.zero_grad = choice(doc, c, at, "zero_grad", {"none", "zeros"});
            if (c.contains("micro_batches")) mc.micro_batches = uint(doc, c, at, "micro_batches");
            if (mc.micro_batches == 0) doc.fail(at + ".micro_batches", "must be at least 1");
            if (c.contains("lora")) {
                const json& l = c["lora"];
                const std::string lp = at + ".lora";
                if (!l.is_object()) doc.fail(lp, "expected an object (rank, alpha, targets)");
                only_keys(doc, l, lp, {"rank", "alpha", "targets"});
                MeasuredLora ml;
                ml.rank = uint(doc, l, lp, "rank");
                ml.alpha = uint(doc, l, lp, "alpha");
                if (ml.rank == 0) doc.fail(lp + ".rank", "must be at least 1");
                const json& t = member(doc, l, lp, "targets");
                if (!t.is_array() || t.empty()) doc.fail(lp + ".targets", "expected a list of module names");
                for (size_t k = 0; k < t.size(); ++k) {
                    if (!t[k].is_string()) doc.fail(fmt::format("{}.targets[{}]", lp, k), "expected a module name");
                    ml.targets.push_back(t[k].get<std::string>());
                }
                mc.lora = ml;
            }
        }
        if (mc.status == "ok" && mc.kind == "train") {
            const json& ms = member(doc, c, at, "measured");
            const std::string mp = at + ".measured";
            if (!ms.is_object()) doc.fail(mp, "expected an object of measured values");
            only_keys(doc, ms, mp,
                      {"saved_activation_bytes", "backward_peak_bytes", "gradient_bytes", "train_peak_bytes", "optimizer_state_bytes",
                       "resident_before_bytes", "weight_bytes", "trainable_parameters", "parameters", "step_time_ms", "step_times_ms"});
            MeasuredTrain t;
            t.saved_activation_bytes = uint(doc, ms, mp, "saved_activation_bytes");
            t.backward_peak_bytes = uint(doc, ms, mp, "backward_peak_bytes");
            if (ms.contains("gradient_bytes")) t.gradient_bytes = uint(doc, ms, mp, "gradient_bytes");
            if (ms.contains("train_peak_bytes")) t.train_peak_bytes = uint(doc, ms, mp, "train_peak_bytes");
            if (ms.contains("optimizer_state_bytes")) t.optimizer_state_bytes = uint(doc, ms, mp, "optimizer_state_bytes");
            if (ms.contains("resident_before_bytes")) t.resident_before_bytes = uint(doc, ms, mp, "resident_before_bytes");
            if (ms.contains("weight_bytes")) t.weight_bytes = uint(doc, ms, mp, "weight_bytes");
            if (ms.contains("trainable_parameters")) t.trainable_parameters = uint(doc, ms, mp, "trainable_parameters");
            if (ms.contains("parameters")) t.parameters = uint(doc, ms, mp, "parameters");
            if (ms.contains("step_time_ms")) t.step_time_ms = number(doc, ms, mp, "step_time_ms");
            mc.train = t;
        } else if (mc.status == "ok" && mc.kind == "step_time") {
            const json& ms = member(doc, c, at, "measured");
            const std::string mp = at + ".measured";
            if (!ms.is_object()) doc.fail(mp, "expected an object of measured values");
            only_keys(doc, ms, mp, {"seconds", "p10_seconds", "p90_seconds", "runs", "host_reference_seconds"});
            MeasuredStep st;
            st.seconds = number(doc, ms, mp, "seconds");
            if (!(st.seconds > 0) || st.seconds > 3600)
                doc.fail(mp + ".seconds", fmt::format("{}; valid: a positive time up to 3600 s", st.seconds));
            if (ms.contains("p10_seconds")) st.p10_seconds = number(doc, ms, mp, "p10_seconds");
            if (ms.contains("p90_seconds")) st.p90_seconds = number(doc, ms, mp, "p90_seconds");
            if (ms.contains("runs")) st.runs = uint(doc, ms, mp, "runs");
            if (ms.contains("host_reference_seconds")) {
                st.host_reference_seconds = number(doc, ms, mp, "host_reference_seconds");
                if (!(st.host_reference_seconds > 0) || st.host_reference_seconds > 1)
                    doc.fail(mp + ".host_reference_seconds",
                             fmt::format("{}; valid: a positive time up to 1 s", st.host_reference_seconds));
            }
            mc.step = st;
        } else if (mc.status == "ok") {
            mc.measured = forward_measured(doc, member(doc, c, at, "measured"), at + ".measured", true);
            if (c.contains("ranks")) {
                const json& rs = c["ranks"];
                if (!rs.is_array() || rs.size() != mc.tp)
                    doc.fail(at + ".ranks",
                             fmt::format("expected a list of {} ranks (one per tensor-parallel rank, tp = {})", mc.tp, mc.tp));
                for (size_t k = 0; k < rs.size(); ++k) {
                    const std::string rp = fmt::format("{}.ranks[{}]", at, k);
                    if (!rs[k].is_object()) doc.fail(rp, "expected an object {rank, measured}");
                    only_keys(doc, rs[k], rp, {"rank", "measured"});
                    const u64 rank = uint(doc, rs[k], rp, "rank");
                    if (rank != k) doc.fail(rp + ".rank", fmt::format("{}; valid: {} (ranks in order)", rank, k));
                    mc.ranks.emplace_back(rank, forward_measured(doc, member(doc, rs[k], rp, "measured"), rp + ".measured", false));
                }
            }
        } else if (c.contains("measured")) {
            doc.fail(at + ".measured", fmt::format("a case with status {} has no measured values", mc.status));
        }
        m.cases.push_back(std::move(mc));
    }
    return m;
}

MeasurementFile load_measurements(const std::string& path) { return parse_measurements(read_input_file(path), path); }

}  // namespace memtax
