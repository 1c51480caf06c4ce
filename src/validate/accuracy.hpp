#pragma once
// The evidence in one table: every recorded run of a manifest (spec/recorded_runs.hpp) validated,
// its cases grouped by GPU, kind and sample (in: the fit's or the development's lease; out: another
// lease or new shapes), each distinct configuration counted once per group (at its worse result
// when two runs measured it), and each group held to its bar (docs/accuracy.md, "Bars").
#include <set>
#include <string>
#include <vector>

#include "spec/recorded_runs.hpp"

namespace memtax {

struct AccuracyRow {
    std::string gpu;   // the device as the run's provenance names it
    std::string kind;  // prefill peak, decode peak, out of memory, training, step time, training step time, probe time, SDPA time, probe
                       // memory, runtime overhead
    bool in_sample = true;
    std::set<std::string> leases;
    size_t configurations = 0;     // distinct configurations (case ids) in the group
    size_t pass = 0;               // configurations within their case bar
    size_t by_floor_only = 0;      // of those, passing only by an absolute floor (bytes or 1 µs)
    double median = 0, worst = 0;  // |relative error| over the configurations
    std::string bar;               // the run bar, in words
    bool bar_met = true;
};

struct AccuracySummary {
    std::vector<RecordedRun> runs;
    std::vector<std::string> run_gpus;  // per run, its provenance.gpu
    std::vector<AccuracyRow> rows;      // ordered by GPU, kind, in before out
};

AccuracySummary accuracy_summary(const std::vector<RecordedRun>& runs);

}  // namespace memtax
