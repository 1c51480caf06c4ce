#pragma once
// The manifest of recorded device runs (tests/data/measured/runs.yaml): for each measurement
// file, the lease it was recorded in (one boot of one machine) and whether it is in or out of
// sample for what it checks. `memtax accuracy` reads it to count evidence honestly: a repeat on
// the fit's lease is in sample, another lease or shapes nothing was fitted on are out of sample.
#include <string>
#include <vector>

namespace memtax {

struct RecordedRun {
    std::string file;   // resolved: relative to the manifest's folder
    std::string lease;  // a name for the lease, e.g. "h100 2026-12-07 #1"
    bool in_sample = true;
    std::string why;  // what it was fitted or developed on, or why it is out of sample
    int line = 0;
};

// Throws InputError (file:line, field) for a malformed manifest.
std::vector<RecordedRun> load_recorded_runs(const std::string& path);

}  // namespace memtax
