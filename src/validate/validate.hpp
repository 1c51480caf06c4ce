#pragma once
// Predicted vs measured: every case of a measurement file predicted by the engine, with the
// error per case, the worst case, and the growth of the forward peak per doubling of context
// read off the measured numbers.
#include <optional>
#include <string>
#include <vector>

#include "spec/gpu_spec.hpp"
#include "spec/measurements.hpp"

namespace memtax {

struct CaseResult {
    MeasuredCase c;
    bool predicted_fits = true;
    u64 predicted_peak = 0;
    double peak_error = 0;  // (predicted - measured) / measured
    bool peak_ok = true;
    bool peak_by_slack_only = false;  // passed only by the absolute slack
    bool oom_borderline = false;      // OOM measured, predicted to fit within the tolerance of capacity
    // From PyTorch's out-of-memory message, when the file records it: the allocation that
    // failed, what was allocated then, and what the caching allocator held unallocated.
    bool oom_explained = false;                                   // predicted to fit, but the failure is fragmentation
    double oom_request = 0, oom_allocated = 0, oom_stranded = 0;  // bytes
    u64 predicted_allocation = 0;                                 // resident before the step + forward peak
    std::optional<u64> predicted_kv, predicted_logits;
    bool kv_exact = true, logits_exact = true;
    std::optional<std::int64_t> predicted_after;
    double after_error = 0;
    bool after_ok = true;
    bool ok = true;  // every check of the case passed
    std::string peak_at;
    // A sharded run's ranks (tp > 1 with `ranks`): each rank's peak against the per-GPU
    // prediction, its KV and logits exactly; the rank furthest off.
    size_t ranks_checked = 0;
    bool ranks_ok = true;
    u64 worst_rank = 0;
    double worst_rank_error = 0;
};

// One memtax-probe case predicted: the buffers the kernel model lists against the tracking
// allocator's count, the driver's view within its 2 MiB granularity, and the time.
struct ProbeKernelResult {
    std::string name;
    double predicted_s = 0;
    std::optional<double> measured_s;  // multi-kernel cases time each kernel alone
    std::string bound;                 // compute | memory | overhead
};
struct ProbeResult {
    MeasuredCase c;
    u64 predicted_allocated = 0;
    // The probe's bookkeeping (the sizes it asked for) against the kernel model: two formulas
    // agreeing, not a measurement.
    bool allocated_exact = true;  // every buffer exact (attention-sdpa: the output exact + ≤ 1 MiB workspace)
    // The device's own count (runs with a per-case memory pool): bytes in use at the case's high
    // point against the predicted buffers, exactly; reserved − used is the pool's rounding.
    bool device_measured = false, device_exact = true;
    u64 device_used = 0, device_reserved = 0;
    bool allocated_within_workspace = false;  // attention-sdpa: checked against the output + workspace
    u64 workspace_bytes = 0;
    std::string buffer_diff;  // the first buffer that differs, if any
    u64 driver_low = 0, driver_high = 0;
    bool driver_ok = true;
    double predicted_s = 0, time_error = 0, time_tolerance = 0;
    std::string bound;
    bool time_ok = true;
    bool time_by_slack_only = false;  // passed by the 1 us absolute floor only
    std::vector<ProbeKernelResult> kernels;
    bool ok = true;
};

// A whole step timed as a caller waits for it (kind step_time), predicted by the time model:
// the host's dispatch and the GPU's kernels as the runtime profile and GPU profile give them.
struct StepResult {
    MeasuredCase c;
    double predicted_s = 0, host_s = 0, gpu_s = 0;
    double error = 0;  // (predicted - measured) / measured
    bool ok = true;    // within step_worst_tolerance
};

// A training step (kind "train"): saved activations and the backward peak are checked within the
// tolerance (or the absolute slack); gradients, optimizer states and the step's peak reported.
struct TrainResult {
    MeasuredCase c;
    u64 saved = 0, backward_peak = 0, gradients = 0, optimizer = 0, train_peak = 0;
    double saved_error = 0, backward_error = 0, gradient_error = 0, optimizer_error = 0, train_peak_error = 0;
    // The step's time (cases that timed it, on a GPU profile with a bandwidth and a matrix rate):
    // estimate_train_time's step against the harness's median.
    bool timed = false;
    double step_s = 0, step_error = 0;
    std::string peak_at;
    bool ok = true;
};

struct DoublingClaim {
    std::string runtime;
    int pairs = 0;
    double measured_ratio = 0;  // geometric mean of peak(2S) / peak(S)
    double predicted_ratio = 0;
};

struct Validation {
    std::string file, schema, source;
    std::map<std::string, std::string> provenance;
    std::string gpu;  // the profile the predictions used
    double tolerance = 0.05;
    u64 slack_bytes = 0;  // absolute floor of the allowed forward-peak difference
    std::vector<CaseResult> cases;
    // Runtime overhead recorded in the file vs each runtime profile's figure for this GPU.
    std::optional<u64> measured_overhead;
    std::vector<std::pair<std::string, u64>> predicted_overhead;
    bool overhead_exact = true;
    std::vector<DoublingClaim> claims;
    size_t worst = 0;  // index of the worst forward-peak error (ok cases)
    // Probe cases (kernels/probe/) and the probe's correctness checks.
    std::vector<ProbeResult> probe;
    std::vector<ProbeCheck> checks;
    double bandwidth_tolerance = 0.10, compute_tolerance = 0.15;
    bool gpu_calibrated = false;
    // The probe's own performance read off its measurements (the card's ceilings measured in
    // the same run): name, value, and a sentence.
    struct Claim {
        std::string name;
        double value = 0;
        std::string text;
    };
    std::vector<Claim> probe_claims;
    // Step times: each case within step_worst_tolerance and the median within step_tolerance.
    std::vector<StepResult> steps;
    std::vector<TrainResult> train;
    double step_tolerance = 0.10, step_worst_tolerance = 0.20;
    double step_median_error = 0, step_worst_error = 0;
    bool all_ok = true;
};

// `gpu`: a GPU profile name or path; empty = the profile whose device_names has the file's
// provenance.gpu.
// A forward peak passes when |predicted - measured| <= max(tolerance · measured, slack_bytes);
// so do a prefill's after-step bytes (the cache and the logits).
// An out-of-memory case passes when the engine predicts that the step does not fit. When it
// predicts a fit, the case passes only if PyTorch's message shows the failure was the caching
// allocator's fragmentation — the allocated bytes plus the failed request stay within what the
// engine predicts the step allocates (within the tolerance), while memory sat reserved but
// unallocated — or, without a message, if the predicted total is within the tolerance of the
// usable memory.
// Probe cases: allocated bytes must equal the kernel model's buffers exactly; the time must be
// within `bandwidth_tolerance` of the prediction for memory- and overhead-bound cases and
// `compute_tolerance` for compute-bound ones (the bound is the prediction's dominant term).
Validation validate_measurements(const std::string& path, const std::string& gpu, double tolerance, u64 slack_bytes,
                                 double bandwidth_tolerance = 0.10, double compute_tolerance = 0.15);
// The same on a file already read, with a GPU profile already resolved.
Validation validate_file(const MeasurementFile& f, const GpuSpec& gpu, double tolerance, u64 slack_bytes, double bandwidth_tolerance = 0.10,
                         double compute_tolerance = 0.15);
// (predicted - measured) / measured; 0 when both are 0, 1 when only the measurement is.
double relative_error(double predicted, double measured);

}  // namespace memtax
