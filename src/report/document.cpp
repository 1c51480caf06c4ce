#include "report/document.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <iterator>

#include "core/error.hpp"

namespace memtax {

const Document::Section* find_section(const Document& d, const std::string& key) {
    for (const auto& s : d.sections)
        if (s.key == key) return &s;
    return nullptr;
}
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

namespace {

using Buffer = fmt::memory_buffer;

void append(Buffer& b, std::string_view s) { b.append(s.data(), s.data() + s.size()); }

// Digits of v, grouped by thousands when `grouped` (hand-written: a million rows of them must not
// allocate a string each, as group_digits does).
void number(Buffer& b, std::uint64_t v, bool grouped) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = n - 1; i >= 0; --i) {
        b.push_back(digits[i]);
        if (grouped && i > 0 && i % 3 == 0) b.push_back(',');
    }
}

// Bytes as GiB with two decimals, exactly as fmt's "{:.2f}" of v / 2^30 writes it (the exact
// quotient rounded half to even), in integers: a million-point sweep shows eight million of these,
// and fmt's floating-point path was most of its time. Past 2^53 bytes the double itself rounds,
// so fmt writes those (below it, v · 100 < 2^60 fits 64 bits).
void gib(Buffer& b, std::uint64_t v) {
    if (v >= (std::uint64_t{1} << 53)) {
        fmt::format_to(std::back_inserter(b), "{:.2f}", static_cast<double>(v) / 1073741824.0);
        return;
    }
    const std::uint64_t x = v * 100, r = x & ((std::uint64_t{1} << 30) - 1), half = std::uint64_t{1} << 29;
    std::uint64_t q = x >> 30;
    if (r > half || (r == half && (q & 1))) ++q;
    number(b, q / 100, false);
    b.push_back('.');
    b.push_back(static_cast<char>('0' + q % 100 / 10));
    b.push_back(static_cast<char>('0' + q % 10));
}

// A value as text and Markdown show it.
void shown(Buffer& b, std::uint64_t v, Hint h) {
    switch (h) {
        case Hint::Count:
            number(b, v, true);
            break;
        case Hint::Bytes:
            gib(b, v);
            break;
        case Hint::Flag:
            append(b, v ? "yes" : "no");
            break;
    }
}

// A value as CSV and JSON carry it.
void exact(Buffer& b, std::uint64_t v, Hint h) {
    if (h == Hint::Flag)
        append(b, v ? "true" : "false");
    else
        number(b, v, false);
}

// Every format writes into one buffer, handed to the sink in chunks of about 1 MiB.
class BufferedStream : public DocumentStream {
public:
    explicit BufferedStream(Sink sink) : sink_(std::move(sink)) {}
    void end() override {
        finish();
        if (out_.size()) sink_(std::string_view(out_.data(), out_.size()));
        out_.clear();
    }

protected:
    virtual void finish() {}
    void put(std::string_view s) { append(out_, s); }
    void put(char c) { out_.push_back(c); }
    // Called after each row and section.
    void spill() {
        if (out_.size() < (1u << 20)) return;
        sink_(std::string_view(out_.data(), out_.size()));
        out_.clear();
    }
    Buffer out_;
    std::vector<StreamColumn> columns_;

private:
    Sink sink_;
};

class TextStream final : public BufferedStream {
public:
    using BufferedStream::BufferedStream;
    void begin(const Document& d) override {
        put(d.title);
        put('\n');
        for (const auto& n : d.notes) put(n + "\n");
    }
    void section(const Document::Section& s) override {
        put("\n" + s.title + "\n");
        if (!s.table.text.empty()) put(table_text(s.table));
        for (const auto& n : s.notes) put(n + "\n");
        spill();
    }
    void rows_begin(const std::string&, const std::string& title, const std::vector<StreamColumn>& columns) override {
        columns_ = columns;
        width_.clear();
        put("\n" + title + "\n");
        for (const auto& c : columns) {
            // Unless the column says: 131,072; 9999.99 (GiB); "yes".
            const size_t usual = c.width ? c.width : c.hint == Hint::Flag ? 3 : 7;
            width_.push_back(std::max(usual, display_width(c.title)));
        }
        for (size_t c = 0; c < columns.size(); ++c) {
            cell_.clear();
            append(cell_, columns[c].title);
            emit_cell(c);
        }
        put('\n');
    }
    void row(const std::uint64_t* v) override {
        for (size_t c = 0; c < columns_.size(); ++c) {
            cell_.clear();
            shown(cell_, v[c], columns_[c].hint);
            emit_cell(c);
        }
        put('\n');
        spill();
    }
    void rows_end() override {}

private:
    // The cell in cell_, padded to its column (numbers to the right; the last text column not at all).
    void emit_cell(size_t c) {
        const bool last = c + 1 == columns_.size(), right = columns_[c].hint != Hint::Flag;
        const size_t w = display_width(std::string_view(cell_.data(), cell_.size()));
        const size_t pad = w < width_[c] && !(last && !right) ? width_[c] - w : 0;
        if (right)
            for (size_t i = 0; i < pad; ++i) put(' ');
        put(std::string_view(cell_.data(), cell_.size()));
        if (!right)
            for (size_t i = 0; i < pad; ++i) put(' ');
        if (!last) put("  ");
    }
    std::vector<size_t> width_;
    Buffer cell_;
};

class MarkdownStream final : public BufferedStream {
public:
    using BufferedStream::BufferedStream;
    void begin(const Document& d) override {
        put("## " + markdown_cell(d.title) + "\n\n");
        for (const auto& n : d.notes) put("- " + markdown_cell(n) + "\n");
    }
    void section(const Document::Section& s) override {
        put("\n### " + markdown_cell(s.title) + "\n\n");
        if (!s.table.text.empty()) put(table_markdown(s.table) + "\n");
        for (const auto& n : s.notes) put("- " + markdown_cell(n) + "\n");
        spill();
    }
    void rows_begin(const std::string&, const std::string& title, const std::vector<StreamColumn>& columns) override {
        columns_ = columns;
        Table head;
        for (const auto& c : columns) head.add_column(c.key, c.title, c.hint != Hint::Flag);
        put("\n### " + markdown_cell(title) + "\n\n");
        put(table_markdown(head));
    }
    void row(const std::uint64_t* v) override {
        put('|');
        for (size_t c = 0; c < columns_.size(); ++c) {
            put(' ');
            shown(out_, v[c], columns_[c].hint);
            put(" |");
        }
        put('\n');
        spill();
    }
    void rows_end() override { put('\n'); }
};

// Each section in turn, its rows led by the section's key; a blank line between sections.
class CsvStream final : public BufferedStream {
public:
    using BufferedStream::BufferedStream;
    void begin(const Document&) override {}
    void section(const Document::Section& s) override {
        if (s.table.columns.empty()) return;
        separate();
        Table t;
        t.add_column("section", "section");
        for (const auto& c : s.table.columns) t.columns.push_back(c);
        for (size_t r = 0; r < s.table.text.size(); ++r) {
            t.row();
            t.cell(s.key);
            for (size_t c = 0; c < s.table.text[r].size(); ++c) t.cell(s.table.text[r][c], s.table.raw[r][c]);
        }
        put(table_csv(t));
        spill();
    }
    void rows_begin(const std::string& key, const std::string&, const std::vector<StreamColumn>& columns) override {
        separate();
        columns_ = columns;
        key_ = csv_field(key);
        put("section");
        for (const auto& c : columns) put("," + csv_field(c.key));
        put('\n');
    }
    void row(const std::uint64_t* v) override {
        put(key_);
        for (size_t c = 0; c < columns_.size(); ++c) {
            put(',');
            exact(out_, v[c], columns_[c].hint);
        }
        put('\n');
        spill();
    }
    void rows_end() override {}

private:
    void separate() {
        if (any_) put('\n');
        any_ = true;
    }
    bool any_ = false;
    std::string key_;
};

// The same object document_json writes (schema, tool, title, notes, sections by key), indented
// the same way, except that a streamed section's rows are one object per line.
ojson section_json(const Document::Section& s) {
    ojson rows = ojson::array();
    for (size_t r = 0; r < s.table.text.size(); ++r) {
        ojson row = ojson::object();
        for (size_t c = 0; c < s.table.columns.size() && c < s.table.text[r].size(); ++c)
            row[s.table.columns[c].key] = typed(s.table.raw[r][c].empty() ? s.table.text[r][c] : s.table.raw[r][c]);
        rows.push_back(row);
    }
    return ojson{{"title", s.title}, {"notes", s.notes}, {"rows", rows}};
}

std::string dump(const ojson& j, size_t indent) {
    std::string text = j.dump(2, ' ', false, ojson::error_handler_t::replace), out;
    for (char c : text) {
        out += c;
        if (c == '\n') out.append(indent, ' ');
    }
    return out;
}

class JsonStream final : public BufferedStream {
public:
    JsonStream(Sink sink, std::string tool) : BufferedStream(std::move(sink)), tool_(std::move(tool)) {}
    void begin(const Document& d) override {
        ojson head = {{"schema", d.schema}, {"tool", ojson::parse(tool_)}, {"title", d.title}, {"notes", d.notes}};
        std::string text = dump(head, 0);
        text.resize(text.size() - 2);  // the closing "\n}"
        put(text + ",\n  \"sections\": {");
    }
    void section(const Document::Section& s) override {
        key(s.key);
        put(dump(section_json(s), 4));
        spill();
    }
    void rows_begin(const std::string& k, const std::string& title, const std::vector<StreamColumn>& columns) override {
        key(k);
        columns_ = columns;
        names_.clear();
        for (const auto& c : columns) names_.push_back(ojson(c.key).dump() + ": ");
        put("{\n      \"title\": " + ojson(title).dump() + ",\n      \"notes\": [],\n      \"rows\": [");
        rows_ = 0;
    }
    void row(const std::uint64_t* v) override {
        put(rows_++ ? ",\n        {" : "\n        {");
        for (size_t c = 0; c < columns_.size(); ++c) {
            if (c) put(", ");
            put(names_[c]);
            exact(out_, v[c], columns_[c].hint);
        }
        put('}');
        spill();
    }
    void rows_end() override { put(rows_ ? "\n      ]\n    }" : "]\n    }"); }

private:
    void finish() override { put(sections_ ? "\n  }\n}\n" : "}\n}\n"); }
    void key(const std::string& k) { put((sections_++ ? ",\n    " : "\n    ") + ojson(k).dump() + ": "); }
    std::string tool_;
    std::vector<std::string> names_;
    size_t sections_ = 0, rows_ = 0;
};

std::string render_through(const std::string& format, const Document& d) {
    std::string out;
    auto stream = document_stream(
        format, [&](std::string_view s) { out.append(s); }, "{}");
    stream->begin(d);
    for (const auto& s : d.sections) stream->section(s);
    stream->end();
    return out;
}

}  // namespace

std::string document_text(const Document& d) { return render_through("table", d); }
std::string document_markdown(const Document& d) { return render_through("markdown", d); }
std::string document_csv(const Document& d) { return render_through("csv", d); }

std::string document_json(const Document& d, const std::string& tool_json) {
    ojson j = {{"schema", d.schema}, {"tool", ojson::parse(tool_json)}, {"title", d.title}, {"notes", d.notes}};
    ojson sections = ojson::object();
    for (const auto& s : d.sections) sections[s.key] = section_json(s);
    j["sections"] = sections;
    return j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
}

Table stream_table(const std::vector<StreamColumn>& columns) {
    Table t;
    for (const auto& c : columns) t.add_column(c.key, c.title, c.hint != Hint::Flag);
    return t;
}

void stream_row(Table& t, const std::vector<StreamColumn>& columns, const std::uint64_t* values) {
    t.row();
    for (size_t c = 0; c < columns.size(); ++c) {
        Buffer a, b;
        shown(a, values[c], columns[c].hint);
        exact(b, values[c], columns[c].hint);
        t.cell(fmt::to_string(a), fmt::to_string(b));
    }
}

std::unique_ptr<DocumentStream> document_stream(const std::string& format, DocumentStream::Sink sink, const std::string& tool_json) {
    if (format == "table") return std::make_unique<TextStream>(std::move(sink));
    if (format == "markdown") return std::make_unique<MarkdownStream>(std::move(sink));
    if (format == "csv") return std::make_unique<CsvStream>(std::move(sink));
    if (format == "json") return std::make_unique<JsonStream>(std::move(sink), tool_json);
    throw InternalError("document_stream: unknown format " + format);
}

}  // namespace memtax
