#pragma once
// A result that is notes and tables (a plan, a sweep, a comparison): one Document, rendered by
// every printer — aligned text, Markdown, CSV (each table in turn, its rows led by the table's
// key) and JSON (each table's rows as objects, numbers as numbers).
#include <string>
#include <vector>

#include "report/table.hpp"

namespace memtax {

struct Document {
    std::string schema;  // JSON "schema", e.g. "memtax.plan/1"
    std::string title;
    std::vector<std::string> notes;
    struct Section {
        std::string key, title;
        Table table;
        std::vector<std::string> notes;
    };
    std::vector<Section> sections;
};

std::string document_text(const Document& d);
std::string document_markdown(const Document& d);
std::string document_csv(const Document& d);
// `tool_json`: the tool object, already serialised.
std::string document_json(const Document& d, const std::string& tool_json);

}  // namespace memtax
