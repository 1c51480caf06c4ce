#pragma once
// Printers behind one interface, discovered by format name: every command renders through
// `printer(format)`, so a new format is one class here and every command gets it. Results are
// data (engine structs); a printer only renders them. Grids stream: a row is rendered and
// written as soon as it is estimated, so a sweep's memory does not grow with its length.
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "report/document.hpp"
#include "report/report.hpp"

namespace memtax {

class Printer {
public:
    virtual ~Printer() = default;
    virtual const char* format() const = 0;
    virtual std::string estimate(const Estimate& e, const ToolInfo& tool, bool explain, const TimeEstimate* time) const = 0;
    virtual std::string grid_header(const ToolInfo& tool) const = 0;
    virtual std::string grid_row(const Estimate& e, bool first) const = 0;
    virtual std::string grid_footer() const = 0;
    virtual std::string models(const std::vector<ModelSpec>& m, const ToolInfo& tool) const = 0;
    virtual std::string gpus(const std::vector<GpuSpec>& g, const ToolInfo& tool) const = 0;
    virtual std::string runtimes(const std::vector<RuntimeSpec>& r, const ToolInfo& tool) const = 0;
    virtual std::string clusters(const std::vector<ClusterSpec>& c, const ToolInfo& tool) const = 0;
    // Notes and tables: plans, sweeps, comparisons.
    virtual std::string document(const Document& d, const ToolInfo& tool) const = 0;
    virtual std::string validation(const Validation& v, const ToolInfo& tool) const = 0;
    virtual std::string calibration(const CalibrationResult& c, const std::string& written_to) const = 0;
    // A document written while it is produced, in this printer's format (report/document.hpp).
    std::unique_ptr<DocumentStream> stream(DocumentStream::Sink sink, const ToolInfo& tool) const;
};

// "table", "json", "csv", "markdown". InputError (field `--format`) naming the valid ones otherwise.
const Printer& printer(const std::string& format);
std::vector<std::string> printer_formats();

}  // namespace memtax
