#include "report/printer.hpp"
#include "report/table.hpp"

#include <fmt/format.h>

namespace memtax {
namespace {

std::string opt(const std::optional<u64>& v) { return v ? std::to_string(*v) : ""; }

// CSV of validation and calibration (the listings, estimate and grid render their Tables).
std::string validation_csv(const Validation& v) {
    std::string out = "id,kind,status,ok,predicted_bytes,measured_bytes,predicted_s,measured_s\n";
    for (const auto& r : v.cases)
        out += fmt::format("{},forward,{},{},{},{},,\n", r.c.id, r.c.status, r.ok ? "true" : "false", r.predicted_peak,
                           opt(r.c.measured.forward_peak_bytes));
    for (const auto& r : v.probe)
        out +=
            fmt::format("{},{},{},{},{},{},{:.6g},{:.6g}\n", r.c.id, r.c.kind, r.c.status, r.ok ? "true" : "false", r.predicted_allocated,
                        r.c.probe ? std::to_string(r.c.probe->allocated_bytes) : "", r.predicted_s, r.c.probe ? r.c.probe->time_s : 0.0);
    for (const auto& r : v.steps)
        out += fmt::format("{},step_time,{},{},,,{:.6g},{:.6g}\n", r.c.id, r.c.status, r.ok ? "true" : "false", r.predicted_s,
                           r.c.step->seconds);
    // Training steps: the backward peak (saved activations in the JSON and table outputs).
    for (const auto& r : v.train)
        out += fmt::format("{},train,{},{},{},{},,\n", r.c.id, r.c.status, r.ok ? "true" : "false", r.backward_peak,
                           r.c.train->backward_peak_bytes);
    return out;
}

std::string calibration_csv(const CalibrationResult& c) {
    std::string out = "class,overhead_s,bandwidth_bytes_per_s,flops_per_s,cases,rms_error\n";
    for (const auto& f : c.fits)
        out += fmt::format("{},{:.6g},{:.6g},{:.6g},{},{:.6g}\n", f.key, f.rates.overhead_s, f.rates.bandwidth, f.rates.flops,
                           f.rates.cases, f.rates.rms_error);
    return out;
}

class TablePrinter final : public Printer {
public:
    const char* format() const override { return "table"; }
    std::string estimate(const Estimate& e, const ToolInfo&, bool explain, const TimeEstimate* time) const override {
        return render_table(e, explain, time);
    }
    std::string grid_header(const ToolInfo&) const override { return whatif_table_header(); }
    std::string grid_row(const Estimate& e, bool) const override { return whatif_table_row(e); }
    std::string grid_footer() const override { return ""; }
    std::string models(const std::vector<ModelSpec>& m, const ToolInfo&) const override { return table_text(models_table(m)); }
    std::string gpus(const std::vector<GpuSpec>& g, const ToolInfo&) const override { return table_text(gpus_table(g)); }
    std::string runtimes(const std::vector<RuntimeSpec>& r, const ToolInfo&) const override { return table_text(runtimes_table(r)); }
    std::string clusters(const std::vector<ClusterSpec>& c, const ToolInfo&) const override { return table_text(clusters_table(c)); }
    std::string document(const Document& d, const ToolInfo&) const override { return document_text(d); }
    std::string validation(const Validation& v, const ToolInfo&) const override { return render_validation_table(v); }
    std::string calibration(const CalibrationResult& c, const std::string& to) const override { return render_calibration_table(c, to); }
};

class JsonPrinter final : public Printer {
public:
    const char* format() const override { return "json"; }
    std::string estimate(const Estimate& e, const ToolInfo& tool, bool explain, const TimeEstimate* time) const override {
        return render_json(e, tool, explain, time);
    }
    std::string grid_header(const ToolInfo& tool) const override { return whatif_json_header(tool); }
    std::string grid_row(const Estimate& e, bool first) const override { return whatif_json_row(e, first); }
    std::string grid_footer() const override { return whatif_json_footer(); }
    std::string models(const std::vector<ModelSpec>& m, const ToolInfo& tool) const override { return render_models_json(m, tool); }
    std::string gpus(const std::vector<GpuSpec>& g, const ToolInfo& tool) const override { return render_gpus_json(g, tool); }
    std::string runtimes(const std::vector<RuntimeSpec>& r, const ToolInfo& tool) const override { return render_runtimes_json(r, tool); }
    std::string clusters(const std::vector<ClusterSpec>& c, const ToolInfo& tool) const override { return render_clusters_json(c, tool); }
    std::string document(const Document& d, const ToolInfo& tool) const override {
        return document_json(d,
                             fmt::format("{{\"name\": \"memtax\", \"version\": \"{}\", \"git_sha\": \"{}\"}}", tool.version, tool.git_sha));
    }
    std::string validation(const Validation& v, const ToolInfo& tool) const override { return render_validation_json(v, tool); }
    std::string calibration(const CalibrationResult& c, const std::string& to) const override { return render_calibration_json(c, to); }
};

class CsvPrinter final : public Printer {
public:
    const char* format() const override { return "csv"; }
    std::string estimate(const Estimate& e, const ToolInfo&, bool explain, const TimeEstimate* time) const override {
        return render_csv(e, explain, time);
    }
    std::string grid_header(const ToolInfo&) const override { return whatif_csv_header(); }
    std::string grid_row(const Estimate& e, bool) const override { return whatif_csv_row(e); }
    std::string grid_footer() const override { return ""; }
    std::string models(const std::vector<ModelSpec>& m, const ToolInfo&) const override { return table_csv(models_table(m)); }
    std::string gpus(const std::vector<GpuSpec>& g, const ToolInfo&) const override { return table_csv(gpus_table(g)); }
    std::string runtimes(const std::vector<RuntimeSpec>& r, const ToolInfo&) const override { return table_csv(runtimes_table(r)); }
    std::string clusters(const std::vector<ClusterSpec>& c, const ToolInfo&) const override { return table_csv(clusters_table(c)); }
    std::string document(const Document& d, const ToolInfo&) const override { return document_csv(d); }
    std::string validation(const Validation& v, const ToolInfo&) const override { return validation_csv(v); }
    std::string calibration(const CalibrationResult& c, const std::string&) const override { return calibration_csv(c); }
};

class MarkdownPrinter final : public Printer {
public:
    const char* format() const override { return "markdown"; }
    std::string estimate(const Estimate& e, const ToolInfo&, bool explain, const TimeEstimate* time) const override {
        return render_markdown(e, explain, time);
    }
    std::string grid_header(const ToolInfo&) const override { return whatif_markdown_header(); }
    std::string grid_row(const Estimate& e, bool) const override { return whatif_markdown_row(e); }
    std::string grid_footer() const override { return ""; }
    std::string models(const std::vector<ModelSpec>& m, const ToolInfo&) const override {
        return "## Models\n\n" + table_markdown(models_table(m));
    }
    std::string gpus(const std::vector<GpuSpec>& g, const ToolInfo&) const override {
        return "## GPUs\n\n" + table_markdown(gpus_table(g));
    }
    std::string runtimes(const std::vector<RuntimeSpec>& r, const ToolInfo&) const override {
        return "## Runtimes\n\n" + table_markdown(runtimes_table(r));
    }
    std::string clusters(const std::vector<ClusterSpec>& c, const ToolInfo&) const override {
        return "## Clusters\n\n" + table_markdown(clusters_table(c));
    }
    std::string document(const Document& d, const ToolInfo&) const override { return document_markdown(d); }
    std::string validation(const Validation& v, const ToolInfo&) const override { return render_validation_markdown(v); }
    std::string calibration(const CalibrationResult& c, const std::string& to) const override { return render_calibration_markdown(c, to); }
};

}  // namespace

std::unique_ptr<DocumentStream> Printer::stream(DocumentStream::Sink sink, const ToolInfo& tool) const {
    return document_stream(format(), std::move(sink),
                           fmt::format("{{\"name\": \"memtax\", \"version\": \"{}\", \"git_sha\": \"{}\"}}", tool.version, tool.git_sha));
}

const Printer& printer(const std::string& format) {
    static const TablePrinter table;
    static const JsonPrinter json;
    static const CsvPrinter csv;
    static const MarkdownPrinter markdown;
    for (const Printer* p : {static_cast<const Printer*>(&table), static_cast<const Printer*>(&json), static_cast<const Printer*>(&csv),
                             static_cast<const Printer*>(&markdown)})
        if (format == p->format()) return *p;
    throw InputError(SourcePos{}, "format",
                     fmt::format("unknown format \"{}\"{}; valid: {}", format, did_you_mean(format, printer_formats()),
                                 fmt::join(printer_formats(), ", ")));
}

std::vector<std::string> printer_formats() { return {"table", "json", "csv", "markdown"}; }

}  // namespace memtax
