#pragma once
// One result table, three renderings: aligned text for a terminal, a Markdown table, and CSV.
// A listing, a what-if grid or a validation builds one Table and every printer shows the same
// rows, so no format can drop a column another shows.
#include <string>
#include <string_view>
#include <vector>

namespace memtax {

struct Table {
    struct Column {
        std::string key;     // CSV header: snake_case, stable
        std::string title;   // text and Markdown header
        bool right = false;  // numbers align right
    };
    std::vector<Column> columns;
    // Per row and column: the text shown (grouped digits, GiB with 2 decimals) and the exact value
    // CSV carries (plain integers, full-precision numbers). An empty raw cell takes the text.
    std::vector<std::vector<std::string>> text, raw;

    void add_column(std::string key, std::string title, bool right = false) {
        columns.push_back({std::move(key), std::move(title), right});
    }
    // Starts a row; cell() fills it left to right.
    void row() {
        text.emplace_back();
        raw.emplace_back();
    }
    void cell(std::string shown, std::string exact = {}) {
        text.back().push_back(std::move(shown));
        raw.back().push_back(std::move(exact));
    }
};

std::string table_text(const Table& t);  // columns padded to their widest cell (UTF-8 aware), two spaces apart
// header = false renders the rows only (a streamed grid writes its header once).
std::string table_markdown(const Table& t, bool header = true);  // GitHub-flavoured: | a | b |, numbers right-aligned, '|' escaped
std::string table_csv(const Table& t, bool header = true);       // RFC 4180: header of keys, quoted where a field needs it
std::string csv_field(const std::string& s);                     // one field, quoted when it holds , " or a line break
std::string markdown_cell(const std::string& s);                 // '|' escaped, line breaks as spaces
size_t display_width(std::string_view s);                        // UTF-8 continuation bytes take no column ("µs", "×")

}  // namespace memtax
