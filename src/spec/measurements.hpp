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
#include "spec/probe_shape.hpp"

namespace memtax {

struct MeasuredForward {
    std::optional<u64> forward_peak_bytes;         // max_memory_allocated() - allocated before the step
    std::optional<u64> kv_cache_bytes;             // sizes of the cache's K/V tensors after the step
    std::optional<u64> logits_bytes;               // size of the logits the step returned
    std::optional<u64> kv_cache_storage_bytes;     // storages behind the cache's tensors (a view may keep more)
    std::optional<std::int64_t> after_step_bytes;  // allocated after - before (can be negative)
};

// What memtax-probe measured for one of its cases (docs/measurement-schema.md).
struct MeasuredProbe {
    u64 allocated_bytes = 0;        // Σ of the sizes the probe asked for: its bookkeeping, not a measurement
    u64 driver_bytes = 0;           // cudaMemGetInfo free before − after the allocations (device)
    bool has_driver_bytes = false;  // the PyTorch harnesses do not record it
    // The case's own memory pool as the driver counts it (probe runs from 2026-12-07 on): the
    // high-water mark of bytes in use by its allocations, and of what the pool reserved.
    std::optional<u64> device_used_bytes, device_reserved_bytes;
    std::vector<std::pair<std::string, u64>> buffers;
    double time_s = 0, time_p10_s = 0, time_p90_s = 0;  // median and spread of the runs
    u64 runs = 0, unwritten_outputs = 0;
    std::vector<std::pair<std::string, double>> kernels;  // each kernel timed alone (median), multi-kernel cases
};

// A correctness check of the probe at a small size against a float64 reference.
struct ProbeCheck {
    std::string suite, what;
    double rel_error = 0, tolerance = 0;
    u64 unwritten = 0;
    bool passed = false;
};

// A whole step's time as a caller waits for it (kind "step_time"): host wall clock with the
// device synchronised before and after, the median of `runs` after warm-up.
struct MeasuredStep {
    double seconds = 0, p10_seconds = 0, p90_seconds = 0;
    u64 runs = 0;
    // Recorded for diagnosis, not used by the prediction: the median step of the harness's tiny
    // reference model (all host dispatch) just before the case; 0 when not recorded.
    double host_reference_seconds = 0;
};

// One training step (kind "train", kernels/torch/measure_hf_train.py): bytes relative to what was
// allocated before the step's forward, the optimizer's states already created.
struct MeasuredTrain {
    u64 saved_activation_bytes = 0;  // allocated after the forward
    u64 backward_peak_bytes = 0;     // highest through forward + backward
    u64 gradient_bytes = 0;          // allocated after the backward (loss released)
    u64 train_peak_bytes = 0;        // highest with the optimizer step
    u64 optimizer_state_bytes = 0;   // the states, measured after the first step
    u64 resident_before_bytes = 0, weight_bytes = 0;
    u64 trainable_parameters = 0, parameters = 0;  // as the harness counted them (peft's count under LoRA)
    double step_time_ms = 0;                       // CUDA events around the whole step, median (0: not timed)
};
// LoRA adapters of a training case (peft's LoraConfig).
struct MeasuredLora {
    u64 rank = 0, alpha = 0;
    std::vector<std::string> targets;
};

struct MeasuredCase {
    std::string id;
    std::string kind;                             // "forward", "step_time", "train" or a probe kind (probe_kinds())
    std::string model;                            // resolved: a path (model_config, relative to the file) or a catalog name
    std::string runtime;                          // a runtime profile name, e.g. "hf-sdpa"
    std::string mode;                             // prefill | decode
    u64 batch = 0, context = 0, logits_kept = 1;  // logits_kept 0 = all positions
    u64 decode_step = 1;                          // decode: 1 = the first step after the prefill, 2 = the second
    u64 tp = 1;                                   // tensor-parallel ranks the step ran on (kernels/torch/measure_hf_tp.py)
    // Forward cases of a sharded run: each rank's own measured values (`measured` is the fullest).
    std::vector<std::pair<u64, MeasuredForward>> ranks;
    std::string status;  // ok | oom | skipped | failed (probe: outputs left unwritten)
    std::string reason;
    MeasuredForward measured;
    ProbeShape shape;                                     // probe kinds: the case's params
    std::optional<MeasuredProbe> probe;                   // probe kinds with status ok or failed
    std::optional<MeasuredStep> step;                     // kind step_time with status ok
    std::optional<MeasuredTrain> train;                   // kind train with status ok
    std::string recompute = "none", optimizer = "adamw";  // kind train
    std::string loop = "loss", use_cache = "off", zero_grad = "none";
    u64 micro_batches = 1;
    std::optional<MeasuredLora> lora;
    int line = 0;
};

struct MeasurementFile {
    std::string file;
    std::string schema;                             // "memtax.measurements/1"
    std::string source;                             // who wrote it, e.g. "torch-hf"
    std::map<std::string, std::string> provenance;  // gpu, driver, date, command, ...
    std::optional<u64> runtime_overhead_bytes;
    std::vector<MeasuredCase> cases;
    std::vector<ProbeCheck> checks;  // the probe's correctness checks
};

inline constexpr const char* kMeasurementSchema = "memtax.measurements/1";

MeasurementFile load_measurements(const std::string& path);
// The same from text (`file` for messages and for resolving relative model_config paths).
MeasurementFile parse_measurements(const std::string& text, const std::string& file);

}  // namespace memtax
