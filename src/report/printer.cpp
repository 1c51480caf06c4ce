#include "report/printer.hpp"

#include <fmt/format.h>

namespace memtax {
namespace {

std::string opt(const std::optional<u64>& v) { return v ? std::to_string(*v) : ""; }

// CSV of the listings, validation and calibration (the estimate and grid CSVs are in report.cpp).
std::string models_csv(const std::vector<ModelSpec>& models) {
    std::string out = "name,family,layers,hidden_size,num_attention_heads,num_key_value_heads,head_dim,intermediate_size,vocab_size,"
                      "max_context,sliding_window,dtype,parameters,stated_parameter_count\n";
    for (const auto& m : models)
        out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", m.name, m.family, m.num_layers, m.hidden_size,
                           m.num_attention_heads, m.num_key_value_heads, m.head_dim, m.intermediate_size, m.vocab_size, m.max_context,
                           m.sliding_window, m.dtype.name, parameter_count(m), m.stated_parameter_count);
    return out;
}

std::string gpus_csv(const std::vector<GpuSpec>& gpus) {
    std::string out = "name,vendor,memory_bytes,usable_memory_bytes,hbm_bandwidth_bytes_per_s,bf16_flops_per_s,sm_count,interconnect,calibrated\n";
    for (const auto& g : gpus) {
        const auto it = g.peak_flops.count("bf16") ? g.peak_flops.find("bf16") : g.peak_flops.find("fp16");
        out += fmt::format("{},{},{},{},{:.6g},{:.6g},{},{},{}\n", g.name, g.vendor, g.memory_bytes, g.usable_memory_bytes,
                           g.hbm_bandwidth.value, it == g.peak_flops.end() ? 0.0 : it->second.value, g.sm_count, g.interconnect,
                           g.calibrated ? "true" : "false");
    }
    return out;
}

std::string runtimes_csv(const std::vector<RuntimeSpec>& runtimes) {
    std::string out = "name,family,attention,mask,gqa,kv_layout,allocator_round_bytes\n";
    for (const auto& r : runtimes)
        out += fmt::format("{},{},{},{},{},{},{}\n", r.name, to_string(r.family), to_string(r.attention),
                           to_string(r.mask), to_string(r.gqa), to_string(r.kv_layout), r.allocator_round_bytes);
    return out;
}

std::string validation_csv(const Validation& v) {
    std::string out = "id,kind,status,ok,predicted_bytes,measured_bytes,predicted_s,measured_s\n";
    for (const auto& r : v.cases)
        out += fmt::format("{},forward,{},{},{},{},,\n", r.c.id, r.c.status, r.ok ? "true" : "false", r.predicted_peak,
                           opt(r.c.measured.forward_peak_bytes));
    for (const auto& r : v.probe)
        out += fmt::format("{},{},{},{},{},{},{:.6g},{:.6g}\n", r.c.id, r.c.kind, r.c.status, r.ok ? "true" : "false", r.predicted_allocated,
                           r.c.probe ? std::to_string(r.c.probe->allocated_bytes) : "", r.predicted_s, r.c.probe ? r.c.probe->time_s : 0.0);
    return out;
}

std::string calibration_csv(const CalibrationResult& c) {
    std::string out = "class,overhead_s,bandwidth_bytes_per_s,flops_per_s,cases,rms_error\n";
    for (const auto& f : c.fits)
        out += fmt::format("{},{:.6g},{:.6g},{:.6g},{},{:.6g}\n", f.key, f.rates.overhead_s, f.rates.bandwidth, f.rates.flops, f.rates.cases,
                           f.rates.rms_error);
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
    std::string models(const std::vector<ModelSpec>& m, const ToolInfo&) const override { return render_models_table(m); }
    std::string gpus(const std::vector<GpuSpec>& g, const ToolInfo&) const override { return render_gpus_table(g); }
    std::string runtimes(const std::vector<RuntimeSpec>& r, const ToolInfo&) const override { return render_runtimes_table(r); }
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
    std::string validation(const Validation& v, const ToolInfo& tool) const override { return render_validation_json(v, tool); }
    std::string calibration(const CalibrationResult& c, const std::string& to) const override { return render_calibration_json(c, to); }
};

class CsvPrinter final : public Printer {
public:
    const char* format() const override { return "csv"; }
    std::string estimate(const Estimate& e, const ToolInfo&, bool, const TimeEstimate*) const override { return render_csv(e); }
    std::string grid_header(const ToolInfo&) const override { return whatif_csv_header(); }
    std::string grid_row(const Estimate& e, bool) const override { return whatif_csv_row(e); }
    std::string grid_footer() const override { return ""; }
    std::string models(const std::vector<ModelSpec>& m, const ToolInfo&) const override { return models_csv(m); }
    std::string gpus(const std::vector<GpuSpec>& g, const ToolInfo&) const override { return gpus_csv(g); }
    std::string runtimes(const std::vector<RuntimeSpec>& r, const ToolInfo&) const override { return runtimes_csv(r); }
    std::string validation(const Validation& v, const ToolInfo&) const override { return validation_csv(v); }
    std::string calibration(const CalibrationResult& c, const std::string&) const override { return calibration_csv(c); }
};

}  // namespace

const Printer& printer(const std::string& format) {
    static const TablePrinter table;
    static const JsonPrinter json;
    static const CsvPrinter csv;
    for (const Printer* p : {static_cast<const Printer*>(&table), static_cast<const Printer*>(&json), static_cast<const Printer*>(&csv)})
        if (format == p->format()) return *p;
    throw InputError(SourcePos{}, "--format",
                     fmt::format("unknown format \"{}\"{}; valid: {}", format, did_you_mean(format, printer_formats()), fmt::join(printer_formats(), ", ")));
}

std::vector<std::string> printer_formats() { return {"table", "json", "csv"}; }

}  // namespace memtax
