#pragma once
// A result that is notes and tables (a plan, a sweep, a comparison): one Document, rendered by
// every printer — aligned text, Markdown, CSV (each table in turn, its rows led by the table's
// key) and JSON (each table's rows as objects, numbers as numbers).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
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

// The section with `key`, or null.
const Document::Section* find_section(const Document& d, const std::string& key);

std::string document_text(const Document& d);
std::string document_markdown(const Document& d);
std::string document_csv(const Document& d);
// `tool_json`: the tool object, already serialised.
std::string document_json(const Document& d, const std::string& tool_json);

// How a streamed value is shown. Every streamed value is an exact integer, written as such in
// CSV and JSON; text and Markdown show it by its hint.
enum class Hint : std::uint8_t {
    Count,  // grouped digits: 131,072
    Bytes,  // GiB with two decimals (1 GiB = 2^30 bytes)
    Flag,   // yes / no (CSV and JSON: true / false)
};
struct StreamColumn {
    std::string key, title;
    Hint hint = Hint::Count;
    size_t width = 0;  // text: the widest value expected, in characters; 0: the hint's usual (7; "yes": 3)
};

// A document written while it is produced: its head (title, notes), whole sections, and sections
// whose rows arrive one at a time (a sweep's million points), in the order they are given. Each
// format renders into a buffer handed to `sink` in chunks, so memory does not grow with the rows.
// Text columns of a streamed section are as wide as their title or their expected width.
class DocumentStream {
public:
    using Sink = std::function<void(std::string_view)>;
    virtual ~DocumentStream() = default;
    virtual void begin(const Document& head) = 0;  // its schema, title and notes (not its sections)
    virtual void section(const Document::Section& s) = 0;
    virtual void rows_begin(const std::string& key, const std::string& title, const std::vector<StreamColumn>& columns) = 0;
    virtual void row(const std::uint64_t* values) = 0;  // one value per column
    virtual void rows_end() = 0;
    virtual void end() = 0;  // writes what is buffered
};
// A Table of streamed columns (text as shown, raw exact), for a document that is not streamed.
Table stream_table(const std::vector<StreamColumn>& columns);
void stream_row(Table& t, const std::vector<StreamColumn>& columns, const std::uint64_t* values);
// "table", "json", "csv" or "markdown" (the printers' formats).
std::unique_ptr<DocumentStream> document_stream(const std::string& format, DocumentStream::Sink sink, const std::string& tool_json);

}  // namespace memtax
