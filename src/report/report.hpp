#pragma once
// Printers for an Estimate: terminal table, JSON (schema memtax.estimate/1) and CSV.
// The engine returns data; these only render it.
#include <string>
#include <vector>

#include "model/time_model.hpp"
#include "report/document.hpp"
#include "report/table.hpp"
#include "spec/cluster_spec.hpp"
#include "validate/accuracy.hpp"
#include "validate/calibrate.hpp"
#include "validate/validate.hpp"

namespace memtax {

// "20×Mamba + 4×GQA; MoE 16/32 layers, 16 experts top-2": the layer mix of a model.
std::string architecture_summary(const ModelSpec& m);

struct ToolInfo {
    std::string version;
    std::string git_sha;
};

// `time`: the roofline of the workload's prefill and decode steps (estimate --time), or null.
std::string render_table(const Estimate& e, bool explain, const TimeEstimate* time = nullptr);
std::string render_json(const Estimate& e, const ToolInfo& tool, bool explain, const TimeEstimate* time = nullptr);
std::string render_csv(const Estimate& e, bool explain, const TimeEstimate* time);
std::string render_markdown(const Estimate& e, bool explain, const TimeEstimate* time);

// The what-if grid, rendered a row at a time (the rows stream to the output).
std::string whatif_table_header();
std::string whatif_table_row(const Estimate& e);
std::string whatif_json_header(const ToolInfo& tool);
std::string whatif_json_row(const Estimate& e, bool first);
std::string whatif_json_footer();
std::string whatif_csv_header();
std::string whatif_csv_row(const Estimate& e);
std::string whatif_markdown_header();
std::string whatif_markdown_row(const Estimate& e);

// The listings as tables (every printer but JSON renders these).
Table models_table(const std::vector<ModelSpec>& models);
Table gpus_table(const std::vector<GpuSpec>& gpus);
Table runtimes_table(const std::vector<RuntimeSpec>& runtimes);
Table clusters_table(const std::vector<ClusterSpec>& clusters);
std::string render_clusters_json(const std::vector<ClusterSpec>& clusters, const ToolInfo& tool);
std::string render_models_json(const std::vector<ModelSpec>& models, const ToolInfo& tool);
std::string render_gpus_json(const std::vector<GpuSpec>& gpus, const ToolInfo& tool);
std::string render_runtimes_json(const std::vector<RuntimeSpec>& runtimes, const ToolInfo& tool);

std::string render_validation_table(const Validation& v);
std::string render_validation_json(const Validation& v, const ToolInfo& tool);
std::string render_validation_markdown(const Validation& v);
// `memtax accuracy`: the evidence per GPU, kind and sample, and (with_runs) the runs it counts.
Document accuracy_document(const AccuracySummary& s, bool with_runs);
// The same evidence in brief, for a front page: one row per kind, a column per GPU and sample
// (median / worst error, or cases passed for the exact kinds), groups below their bar marked.
Document accuracy_summary_document(const AccuracySummary& s);
std::string render_calibration_markdown(const CalibrationResult& c, const std::string& written_to);
std::string render_calibration_table(const CalibrationResult& c, const std::string& written_to);
std::string render_calibration_json(const CalibrationResult& c, const std::string& written_to);

}  // namespace memtax
