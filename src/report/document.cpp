#include "report/document.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

namespace memtax {
namespace {

using ojson = nlohmann::ordered_json;

// A CSV value as JSON: an integer or a number where it is one exactly as written, else text.
ojson typed(const std::string& s) {
    if (s.empty() || s == "-") return nullptr;  // "-": no value (a plan without a price, an untimed candidate)
    if (s == "true" || s == "false") return s == "true";
    unsigned long long u = 0;
    if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), u); ec == std::errc() && p == s.data() + s.size()) return u;
    long long i = 0;
    if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i); ec == std::errc() && p == s.data() + s.size()) return i;
    double d = 0;
    if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d); ec == std::errc() && p == s.data() + s.size()) return d;
    return s;
}

}  // namespace

std::string document_text(const Document& d) {
    std::string out = d.title + "\n";
    for (const auto& n : d.notes) out += n + "\n";
    for (const auto& s : d.sections) {
        out += "\n" + s.title + "\n";
        if (!s.table.text.empty()) out += table_text(s.table);
        for (const auto& n : s.notes) out += n + "\n";
    }
    return out;
}

std::string document_markdown(const Document& d) {
    std::string out = "## " + markdown_cell(d.title) + "\n\n";
    for (const auto& n : d.notes) out += "- " + markdown_cell(n) + "\n";
    for (const auto& s : d.sections) {
        out += "\n### " + markdown_cell(s.title) + "\n\n";
        if (!s.table.text.empty()) out += table_markdown(s.table) + "\n";
        for (const auto& n : s.notes) out += "- " + markdown_cell(n) + "\n";
    }
    return out;
}

std::string document_csv(const Document& d) {
    std::string out;
    for (const auto& s : d.sections) {
        if (s.table.columns.empty()) continue;
        if (!out.empty()) out += "\n";
        Table t;
        t.add_column("section", "section");
        for (const auto& c : s.table.columns) t.columns.push_back(c);
        for (size_t r = 0; r < s.table.text.size(); ++r) {
            t.row();
            t.cell(s.key);
            for (size_t c = 0; c < s.table.text[r].size(); ++c) t.cell(s.table.text[r][c], s.table.raw[r][c]);
        }
        out += table_csv(t);
    }
    return out;
}

std::string document_json(const Document& d, const std::string& tool_json) {
    ojson j = {{"schema", d.schema}, {"tool", ojson::parse(tool_json)}, {"title", d.title}, {"notes", d.notes}};
    ojson sections = ojson::object();
    for (const auto& s : d.sections) {
        ojson rows = ojson::array();
        for (size_t r = 0; r < s.table.text.size(); ++r) {
            ojson row = ojson::object();
            for (size_t c = 0; c < s.table.columns.size() && c < s.table.text[r].size(); ++c)
                row[s.table.columns[c].key] = typed(s.table.raw[r][c].empty() ? s.table.text[r][c] : s.table.raw[r][c]);
            rows.push_back(row);
        }
        sections[s.key] = {{"title", s.title}, {"notes", s.notes}, {"rows", rows}};
    }
    j["sections"] = sections;
    return j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
}

}  // namespace memtax
