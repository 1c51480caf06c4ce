#pragma once
// The planner's results as Documents (report/document.hpp), for every printer.
#include <optional>
#include <vector>

#include "planner/planner.hpp"
#include "planner/sweep.hpp"
#include "report/document.hpp"

namespace memtax {

// `pareto`: with the front of tokens/s per user against per GPU (PlanReport::pareto).
// How plan tables show a figure: GiB with two decimals, seconds (milliseconds under one), and the
// exact value a CSV or JSON cell carries (9 significant digits).
std::string gib_cell(u64 bytes);
std::string seconds_cell(double s);
std::string exact_cell(double v);

Document plan_document(const PlanReport& r, size_t top, bool pareto = false);
// The gates on a best plan as a section ("gates": gate, result, detail), for any plan's document.
Document::Section gates_section(const std::vector<GateResult>& gates, bool passed);
// A sweep: its points (every point of r.points) and its growth fits.
Document sweep_document(const SweepReport& r);
// The same in parts, for a sweep streamed point by point: the head, the points' columns and one
// point's values (in that order), and the growth section (none when too few contexts were fitted).
Document sweep_head(const SweepReport& r);
constexpr size_t kSweepColumns = 11;
const std::vector<StreamColumn>& sweep_columns();  // kSweepColumns of them
void sweep_values(const SweepPoint& p, u64* values);
std::optional<Document::Section> sweep_growth(const SweepReport& r);

}  // namespace memtax
