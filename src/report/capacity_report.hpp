#pragma once
// A scenario's capacity report in every form people and pipelines read: a self-contained HTML
// page (inline SVG charts, no network), Markdown for a code-hosting site (tables and Mermaid
// charts), JSON and CSV with every number, and JUnit XML of the scenario's gates. The same
// inputs give the same bytes: no dates, no git revision, locale-free numbers.
#include <string>

#include "planner/capacity.hpp"

namespace memtax {

struct CapacityFiles {
    std::string html, markdown, json, csv, junit;
};

// `version`: the tool version written into the files (not the git revision, so a committed
// report stays current across commits that do not change its numbers).
CapacityFiles render_capacity_report(const CapacityReport& r, const std::string& version);

// The index of several reports (Markdown and HTML), linking each scenario's files.
std::string capacity_index_markdown(const std::vector<CapacityReport>& reports);
std::string capacity_index_html(const std::vector<CapacityReport>& reports);

}  // namespace memtax
