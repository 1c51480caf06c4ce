#pragma once
// A scenario's capacity report in every form people and pipelines read: a self-contained HTML
// page (inline SVG charts, no network), Markdown for a code-hosting site (tables and Mermaid
// charts), JSON and CSV with every number, and JUnit XML of the scenario's gates. The same
// inputs give the same bytes: no dates, no git revision, locale-free numbers.
#include <string>

#include "planner/capacity.hpp"
#include "report/table.hpp"

namespace memtax {

struct CapacityFiles {
    std::string html, markdown, json, csv, junit;
};

// `version`: the tool version written into the files (not the git revision, so a committed
// report stays current across commits that do not change its numbers).
CapacityFiles render_capacity_report(const CapacityReport& r, const std::string& version);

// The pieces every scenario's page shares (training plans' pages too): the page's head up to its
// notes list, a Table as HTML, the gates as JUnit XML (a "feasible" case, then one per gate), and
// the sentence that says writing a report fails no gate.
std::string report_html_head(const std::string& name, const std::string& description);
std::string html_table(const Table& t);
std::string gates_junit(const std::string& scenario, bool feasible, const std::vector<GateResult>& gates);
extern const char* const kGateNote;

// One scenario's line in the index of reports: its best plan (or "none"), GiB per GPU and tokens/s
// ("-" without a plan), whether its gates pass.
struct IndexEntry {
    std::string name, best, gib_per_gpu, tokens_per_s;
    bool feasible = false, gates_passed = true;
};
IndexEntry capacity_index_entry(const CapacityReport& r);

// The index of several reports (Markdown and HTML), linking each scenario's files.
std::string capacity_index_markdown(const std::vector<IndexEntry>& reports);
std::string capacity_index_html(const std::vector<IndexEntry>& reports);

}  // namespace memtax
