#include "validate/measurements.hpp"

#include <fmt/format.h>

#include <algorithm>
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

}  // namespace

MeasurementFile parse_measurements(const std::string& text, const std::string& file) {
    JsonDoc doc = parse_json(text, file);
    const json& root = doc.root;
    if (!root.is_object()) doc.fail("(document)", "expected a JSON object with schema, provenance and cases");
    MeasurementFile m;
    m.file = file;
    only_keys(doc, root, "", {"schema", "source", "provenance", "note", "runtime_overhead_bytes", "runtime_overhead_detail", "cases"});
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
        if (mc.kind != "forward")
            doc.fail(at + ".kind", fmt::format("\"{}\" is not a case kind this version validates; valid: forward", mc.kind));
        only_keys(doc, c, at, {"id", "kind", "model", "model_config", "runtime", "mode", "batch", "context", "logits_kept", "status",
                               "reason", "measured"});
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
        if (mc.mode != "prefill" && mc.mode != "decode") doc.fail(at + ".mode", fmt::format("\"{}\"; valid: prefill, decode", mc.mode));
        mc.batch = uint(doc, c, at, "batch");
        mc.context = uint(doc, c, at, "context");
        if (mc.batch == 0) doc.fail(at + ".batch", "must be at least 1");
        if (mc.context == 0) doc.fail(at + ".context", "must be at least 1");
        mc.logits_kept = c.contains("logits_kept") ? uint(doc, c, at, "logits_kept") : 1;
        mc.status = str(doc, c, at, "status");
        if (mc.status != "ok" && mc.status != "oom" && mc.status != "skipped")
            doc.fail(at + ".status", fmt::format("\"{}\"; valid: ok, oom, skipped", mc.status));
        if (c.contains("reason")) mc.reason = str(doc, c, at, "reason");
        if (mc.status == "ok") {
            const json& ms = member(doc, c, at, "measured");
            const std::string mp = at + ".measured";
            if (!ms.is_object()) doc.fail(mp, "expected an object of measured values");
            only_keys(doc, ms, mp, {"forward_peak_bytes", "kv_cache_bytes", "logits_bytes", "after_step_bytes"});
            if (ms.contains("forward_peak_bytes")) mc.measured.forward_peak_bytes = uint(doc, ms, mp, "forward_peak_bytes");
            if (ms.contains("kv_cache_bytes")) mc.measured.kv_cache_bytes = uint(doc, ms, mp, "kv_cache_bytes");
            if (ms.contains("logits_bytes")) mc.measured.logits_bytes = uint(doc, ms, mp, "logits_bytes");
            if (ms.contains("after_step_bytes")) {
                const json& v = ms["after_step_bytes"];
                if (!v.is_number_integer()) doc.fail(mp + ".after_step_bytes", fmt::format("expected an integer, got {}", json_repr(v)));
                mc.measured.after_step_bytes = v.get<std::int64_t>();
            }
            if (!mc.measured.forward_peak_bytes) doc.fail(mp, "required field \"forward_peak_bytes\" is missing");
        } else if (c.contains("measured")) {
            doc.fail(at + ".measured", fmt::format("a case with status {} has no measured values", mc.status));
        }
        m.cases.push_back(std::move(mc));
    }
    return m;
}

MeasurementFile load_measurements(const std::string& path) { return parse_measurements(read_input_file(path), path); }

}  // namespace memtax
