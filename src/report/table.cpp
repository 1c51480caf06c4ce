// CSV and Markdown are written by hand: RFC 4180 quoting and a pipe table are a few lines, and
// no Debian-packaged C++ library among our dependencies writes either.
#include "report/table.hpp"

#include <algorithm>

namespace memtax {

size_t display_width(std::string_view s) {
    size_t w = 0;
    for (unsigned char c : s) w += (c & 0xC0) != 0x80;
    return w;
}

namespace {

size_t width(const std::string& s) { return display_width(s); }

std::string pad(const std::string& s, size_t w, bool right) {
    const size_t n = width(s);
    if (n >= w) return s;
    return right ? std::string(w - n, ' ') + s : s + std::string(w - n, ' ');
}

}  // namespace

std::string table_text(const Table& t) {
    std::vector<size_t> w(t.columns.size(), 0);
    for (size_t c = 0; c < t.columns.size(); ++c) w[c] = width(t.columns[c].title);
    for (const auto& r : t.text)
        for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], width(r[c]));
    auto line = [&](auto cell_of) {
        std::string out;
        for (size_t c = 0; c < t.columns.size(); ++c) {
            const bool last = c + 1 == t.columns.size();
            const std::string cell = cell_of(c);
            out += last && !t.columns[c].right ? cell : pad(cell, w[c], t.columns[c].right);
            if (!last) out += "  ";
        }
        return out + "\n";
    };
    std::string out = line([&](size_t c) { return t.columns[c].title; });
    for (const auto& r : t.text) out += line([&](size_t c) { return c < r.size() ? r[c] : std::string(); });
    return out;
}

std::string markdown_cell(const std::string& s) {
    std::string out;
    for (char ch : s) {
        if (ch == '|')
            out += "\\|";
        else if (ch == '\n' || ch == '\r')
            out += ' ';
        else
            out += ch;
    }
    return out;
}

std::string table_markdown(const Table& t, bool header) {
    std::string out;
    if (header) {
        out = "|";
        for (const auto& c : t.columns) out += " " + markdown_cell(c.title) + " |";
        out += "\n|";
        for (const auto& c : t.columns) out += c.right ? " ---: |" : " --- |";
        out += "\n";
    }
    for (const auto& r : t.text) {
        out += "|";
        for (size_t c = 0; c < t.columns.size(); ++c) out += " " + markdown_cell(c < r.size() ? r[c] : "") + " |";
        out += "\n";
    }
    return out;
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string table_csv(const Table& t, bool header) {
    std::string out;
    if (header) {
        for (size_t c = 0; c < t.columns.size(); ++c) out += (c ? "," : "") + csv_field(t.columns[c].key);
        out += "\n";
    }
    for (size_t r = 0; r < t.text.size(); ++r) {
        for (size_t c = 0; c < t.columns.size(); ++c) {
            const std::string& raw = c < t.raw[r].size() ? t.raw[r][c] : std::string();
            const std::string& text = c < t.text[r].size() ? t.text[r][c] : std::string();
            out += (c ? "," : "") + csv_field(raw.empty() ? text : raw);
        }
        out += "\n";
    }
    return out;
}

}  // namespace memtax
