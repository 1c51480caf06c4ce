#pragma once
// The planner's results as Documents (report/document.hpp), for every printer.
#include "planner/planner.hpp"
#include "planner/sweep.hpp"
#include "report/document.hpp"

namespace memtax {

Document plan_document(const PlanReport& r, size_t top);
Document sweep_document(const SweepReport& r);

}  // namespace memtax
