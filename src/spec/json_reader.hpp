#pragma once
// JSON documents with source lines. nlohmann-json keeps no positions, so a SAX pass records
// the line of every value by its path ("rope_scaling.factor", "cases[3].batch"): error
// messages can then name file:line like the YAML readers do.
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "core/error.hpp"

namespace memtax {

struct JsonDoc {
    nlohmann::json root;
    std::string file;
    std::map<std::string, int> lines;  // value path -> 1-based line

    // The line of `path`, else of the closest enclosing value that has one, else 1.
    SourcePos pos(const std::string& path) const;
    [[noreturn]] void fail(const std::string& path, const std::string& message) const { throw InputError(pos(path), path, message); }
};

// Parses text; syntax errors (and numbers out of range) become InputError with file:line.
JsonDoc parse_json(const std::string& text, const std::string& file);

// "\"text\"" for strings, the JSON text otherwise: for messages.
std::string json_repr(const nlohmann::json& v);

}  // namespace memtax
