#include "spec/json_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <vector>

namespace memtax {
namespace {

using json = nlohmann::json;

// An input iterator that publishes how far the parser has read (the SAX events fire right
// after a key or scalar has been read, so that position gives its line).
struct CountingIter {
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = const char&;
    const char* p;
    const char** cursor;
    reference operator*() const { return *p; }
    CountingIter& operator++() {
        ++p;
        *cursor = p;
        return *this;
    }
    CountingIter operator++(int) {
        CountingIter t = *this;
        ++*this;
        return t;
    }
    bool operator==(const CountingIter& o) const { return p == o.p; }
    bool operator!=(const CountingIter& o) const { return p != o.p; }
};

struct LineSax : nlohmann::json_sax<json> {
    struct Frame {
        bool array = false;
        long index = -1;
        std::string key;
    };
    const char* begin = nullptr;
    const char* const* cursor = nullptr;
    const char* counted_to = nullptr;  // lines are counted incrementally
    int line = 1;
    std::vector<Frame> frames;
    std::map<std::string, int> lines;

    int current_line() {
        const char* p = *cursor;
        if (!counted_to) counted_to = begin;
        if (p > counted_to) {
            line += static_cast<int>(std::count(counted_to, p, '\n'));
            counted_to = p;
        }
        return line;
    }
    std::string path() const {
        std::string s;
        for (const auto& f : frames) {
            if (f.array) {
                s += '[';
                s += std::to_string(f.index);
                s += ']';
            } else {
                if (!s.empty()) s += '.';
                s += f.key;
            }
        }
        return s;
    }
    void value() {
        if (!frames.empty() && frames.back().array) {
            ++frames.back().index;
            lines.emplace(path(), current_line());
        }
    }
    bool key(string_t& k) override {
        frames.back().key = k;
        lines[path()] = current_line();
        return true;
    }
    bool start_object(std::size_t) override {
        value();
        frames.push_back({false, -1, {}});
        return true;
    }
    bool end_object() override {
        frames.pop_back();
        return true;
    }
    bool start_array(std::size_t) override {
        value();
        frames.push_back({true, -1, {}});
        return true;
    }
    bool end_array() override {
        frames.pop_back();
        return true;
    }
    bool null() override {
        value();
        return true;
    }
    bool boolean(bool) override {
        value();
        return true;
    }
    bool number_integer(number_integer_t) override {
        value();
        return true;
    }
    bool number_unsigned(number_unsigned_t) override {
        value();
        return true;
    }
    bool number_float(number_float_t, const string_t&) override {
        value();
        return true;
    }
    bool string(string_t&) override {
        value();
        return true;
    }
    bool binary(binary_t&) override {
        value();
        return true;
    }
    // Where the parser gave up (a number out of range comes here with its position).
    std::string error_path, error_token;
    int error_line = 0;
    bool parse_error(std::size_t, const std::string& token, const nlohmann::detail::exception&) override {
        error_path = path();
        error_line = current_line();
        error_token = token;
        return false;
    }
};

// Re-reads text for the lines of its values (and where a parse stopped).
LineSax sax_pass(const std::string& text) {
    const char* cursor = text.data();
    LineSax sax;
    sax.begin = text.data();
    sax.cursor = &cursor;
    CountingIter first{text.data(), &cursor}, last{text.data() + text.size(), &cursor};
    json::sax_parse(first, last, &sax);
    sax.cursor = nullptr;  // pointed at this frame's cursor
    return sax;
}

}  // namespace

SourcePos JsonDoc::pos(const std::string& path) const {
    std::string p = path;
    while (!p.empty()) {
        if (auto it = lines.find(p); it != lines.end()) return SourcePos{file, it->second, 0};
        // Drop the last component: "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a".
        auto cut = p.find_last_of(".[");
        p = cut == std::string::npos ? std::string() : p.substr(0, cut);
    }
    return SourcePos{file, 1, 0};
}

std::string json_repr(const nlohmann::json& v) { return v.is_string() ? fmt::format("\"{}\"", v.get<std::string>()) : v.dump(); }

JsonDoc parse_json(const std::string& text, const std::string& file) {
    JsonDoc doc;
    doc.file = file;
    try {
        doc.root = json::parse(text);
    } catch (const json::parse_error& e) {
        size_t at = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
        int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
        std::string what = e.what();
        auto colon = what.find("syntax error");
        throw InputError(SourcePos{file, line, 0}, "(syntax)", colon == std::string::npos ? what : what.substr(colon));
    } catch (const json::exception& e) {
        // e.g. out_of_range: a number too large for a double (1e400). The SAX pass stops at the
        // same place and knows the field it was reading.
        const LineSax sax = sax_pass(text);
        if (!sax.error_path.empty())
            throw InputError(SourcePos{file, sax.error_line, 0}, sax.error_path,
                             fmt::format("the number {} is out of range (a finite number below 1.8e308)", sax.error_token));
        std::string what = e.what();
        auto bracket = what.find("] ");
        throw InputError(SourcePos{file, 0, 0}, "(syntax)", bracket == std::string::npos ? what : what.substr(bracket + 2));
    }
    // The SAX pass re-reads text that json::parse already accepted; it only collects lines.
    doc.lines = sax_pass(text).lines;
    return doc;
}

}  // namespace memtax
