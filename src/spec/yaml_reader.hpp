#pragma once
// Strict reading of one YAML mapping: every key must be known (else "did you mean"), every
// value must have the right type, and every error names file:line and the field path.
// Only spec/ includes yaml-cpp; the model sees plain structs.
#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"

namespace memtax {

class YamlMap {
public:
    // `path` is the field path of this mapping ("" at the top level).
    YamlMap(const YAML::Node& node, std::string file, std::string path);

    bool has(const std::string& key) const;  // present and not null
    u64 required_u64(const std::string& key);
    std::optional<u64> optional_u64(const std::string& key);
    double required_rate(const std::string& key);  // finite, > 0
    std::string required_string(const std::string& key);
    std::optional<std::string> optional_string(const std::string& key);
    std::optional<bool> optional_bool(const std::string& key);
    std::vector<std::string> optional_strings(const std::string& key);  // a list of text; [] when absent
    std::string required_choice(const std::string& key, const std::vector<std::string>& valid);
    YamlMap required_map(const std::string& key);
    std::optional<YamlMap> optional_map(const std::string& key);
    YAML::Node node(const std::string& key);  // marks the key used
    std::vector<std::string> keys() const;

    SourcePos pos(const std::string& key) const;
    SourcePos pos() const { return pos_of(node_); }
    SourcePos pos_of(const YAML::Node& n) const;
    std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
    [[noreturn]] void fail(const std::string& key, const std::string& message) const;

    // Rejects every key that no getter asked for, naming the closest known key.
    void finish(const std::vector<std::string>& known) const;

private:
    YAML::Node get(const std::string& key, bool required);
    YAML::Node node_;
    std::string file_;
    std::string path_;
    std::set<std::string> used_;
};

// Parses a YAML document from text; syntax errors become InputError with file:line.
YAML::Node parse_yaml(const std::string& text, const std::string& file);

// Reads a whole input file (missing, unreadable, empty, binary and >64 MiB files are errors).
std::string read_input_file(const std::string& path);

}  // namespace memtax
