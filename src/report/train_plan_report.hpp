#pragma once
// A training plan (planner/train_plan.hpp) as a Document — every printer's format — and as the
// capacity report's files (HTML with its chart of days and dollars against GPUs, Markdown, JSON,
// CSV, JUnit XML of the gates), the same inputs giving the same bytes.
#include <string>

#include "planner/train_plan.hpp"
#include "report/capacity_report.hpp"
#include "report/document.hpp"

namespace memtax {

// Sections: "plans" (the top `top`), "by_gpus" (the best at each GPU count per kind), "closest"
// (when nothing is feasible), "gates".
Document train_plan_document(const TrainPlanReport& r, u64 top);

CapacityFiles render_training_report(const TrainPlanReport& r, const std::string& version);

// The index's line for a training scenario: its best plan, or "none".
IndexEntry training_index_entry(const TrainPlanReport& r);

}  // namespace memtax
