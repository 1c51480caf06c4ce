#pragma once
// Reader of measurement files (schema memtax.measurements/1, docs/measurement-schema.md):
// what a device really allocated, from the PyTorch harness (kernels/torch/) or any other
// source that writes the schema. Strict: unknown keys, wrong types and unknown case kinds are
// input errors naming file:line and the field.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"

namespace memtax {

struct MeasuredForward {
    std::optional<u64> forward_peak_bytes;  // max_memory_allocated() - allocated before the step
    std::optional<u64> kv_cache_bytes;      // sizes of the cache's K/V tensors after the step
    std::optional<u64> logits_bytes;        // size of the logits the step returned
    std::optional<std::int64_t> after_step_bytes;  // allocated after - before (can be negative)
};

struct MeasuredCase {
    std::string id;
    std::string kind;          // "forward"
    std::string model;         // resolved: a path (model_config, relative to the file) or a catalog name
    std::string runtime;       // a runtime profile name, e.g. "hf-sdpa"
    std::string mode;          // prefill | decode
    u64 batch = 0, context = 0, logits_kept = 1;  // logits_kept 0 = all positions
    std::string status;        // ok | oom | skipped
    std::string reason;
    MeasuredForward measured;
    int line = 0;
};

struct MeasurementFile {
    std::string file;
    std::string schema;  // "memtax.measurements/1"
    std::string source;  // who wrote it, e.g. "torch-hf"
    std::map<std::string, std::string> provenance;  // gpu, driver, date, command, ...
    std::optional<u64> runtime_overhead_bytes;
    std::vector<MeasuredCase> cases;
};

inline constexpr const char* kMeasurementSchema = "memtax.measurements/1";

MeasurementFile load_measurements(const std::string& path);
// The same from text (`file` for messages and for resolving relative model_config paths).
MeasurementFile parse_measurements(const std::string& text, const std::string& file);

}  // namespace memtax
