#pragma once
// Predicted vs measured: every case of a measurement file predicted by the engine, with the
// error per case, the worst case, and the seed's claim (forward peak per doubling of context)
// read off the measured numbers.
#include <optional>
#include <string>
#include <vector>

#include "report/report.hpp"
#include "validate/measurements.hpp"

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
    bool oom_explained = false;       // predicted to fit, but the failure is fragmentation
    double oom_request = 0, oom_allocated = 0, oom_stranded = 0;  // bytes
    u64 predicted_allocation = 0;     // resident before the step + forward peak
    std::optional<u64> predicted_kv, predicted_logits;
    bool kv_exact = true, logits_exact = true;
    std::optional<std::int64_t> predicted_after;
    double after_error = 0;
    bool after_ok = true;
    bool ok = true;  // every check of the case passed
    std::string peak_at;
};

struct DoublingClaim {
    std::string runtime;
    int pairs = 0;
    double measured_ratio = 0;   // geometric mean of peak(2S) / peak(S)
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
    bool all_ok = true;
};

// `gpu`: a GPU profile name or path; empty = the profile whose device_names has the file's
// provenance.gpu.
// A forward peak passes when |predicted - measured| <= max(tolerance · measured, slack_bytes).
// An out-of-memory case passes when the engine predicts that the step does not fit. When it
// predicts a fit, the case passes only if PyTorch's message shows the failure was the caching
// allocator's fragmentation — the allocated bytes plus the failed request stay within what the
// engine predicts the step allocates (within the tolerance), while memory sat reserved but
// unallocated — or, without a message, if the predicted total is within the tolerance of the
// usable memory.
Validation validate_measurements(const std::string& path, const std::string& gpu, double tolerance, u64 slack_bytes);
std::string render_validation_table(const Validation& v);
std::string render_validation_json(const Validation& v, const ToolInfo& tool);

}  // namespace memtax
