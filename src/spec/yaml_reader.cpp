#include "spec/yaml_reader.hpp"
#include "core/number.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace memtax {
namespace {

std::string describe(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Null:
            return "null";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a mapping";
        case YAML::NodeType::Scalar:
            return n.Tag() == "!" ? fmt::format("\"{}\"", n.Scalar()) : n.Scalar();
        default:
            return "nothing";
    }
}

}  // namespace

YamlMap::YamlMap(const YAML::Node& node, std::string file, std::string path) : node_(node), file_(std::move(file)), path_(std::move(path)) {
    if (!node_.IsMap())
        throw InputError(pos_of(node_), path_.empty() ? "(document)" : path_,
                         fmt::format("expected a mapping of keys to values, got {}", describe(node_)));
    // yaml-cpp keeps both entries of a repeated key and reads the first; the second would be
    // silently ignored, so it is refused where it is written.
    std::vector<std::pair<std::string, int>> seen;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
        const std::string key = it->first.IsScalar() ? it->first.Scalar() : std::string();
        const SourcePos at = pos_of(it->first);
        for (const auto& [k, line] : seen)
            if (k == key) throw InputError(at, field(key), fmt::format("duplicate key (first given at line {})", line));
        seen.emplace_back(key, at.line);
    }
}

SourcePos YamlMap::pos_of(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    if (m.is_null()) return SourcePos{file_, 0, 0};
    return SourcePos{file_, m.line + 1, m.column + 1};
}

SourcePos YamlMap::pos(const std::string& key) const {
    for (auto it = node_.begin(); it != node_.end(); ++it)
        if (it->first.Scalar() == key) return pos_of(it->first);
    return pos_of(node_);
}

void YamlMap::fail(const std::string& key, const std::string& message) const { throw InputError(pos(key), field(key), message); }

bool YamlMap::has(const std::string& key) const {
    YAML::Node n = node_[key];
    return n.IsDefined() && !n.IsNull();
}

std::vector<std::string> YamlMap::keys() const {
    std::vector<std::string> out;
    for (auto it = node_.begin(); it != node_.end(); ++it) out.push_back(it->first.Scalar());
    return out;
}

YAML::Node YamlMap::get(const std::string& key, bool required) {
    used_.insert(key);
    YAML::Node n = node_[key];
    if (!n.IsDefined() || n.IsNull()) {
        if (required) fail(key, "required field is missing");
        return YAML::Node();
    }
    return n;
}

YAML::Node YamlMap::node(const std::string& key) { return get(key, false); }

std::optional<u64> YamlMap::optional_u64(const std::string& key) {
    YAML::Node n = get(key, false);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
    u64 v = 0;
    // Exponent notation is accepted exactly when the value is an integer (memory_bytes: 186e9).
    const NumberParse p = n.IsScalar() && n.Tag() != "!" ? parse_exact_integer(s, v) : NumberParse::Invalid;
    if (p == NumberParse::Overflow) throw InputError(pos_of(n), field(key), fmt::format("{} does not fit in 64 bits", s));
    if (p != NumberParse::Ok) throw InputError(pos_of(n), field(key), fmt::format("expected a non-negative integer, got {}", describe(n)));
    return v;
}

u64 YamlMap::required_u64(const std::string& key) {
    get(key, true);
    return *optional_u64(key);
}

double YamlMap::required_rate(const std::string& key) {
    YAML::Node n = get(key, true);
    const std::string s = n.IsScalar() ? n.Scalar() : std::string();
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!n.IsScalar() || n.Tag() == "!" || s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v) || v <= 0)
        throw InputError(pos_of(n), field(key), fmt::format("expected a positive number, got {}", describe(n)));
    return v;
}

std::vector<std::string> YamlMap::optional_strings(const std::string& key) {
    YAML::Node n = get(key, false);
    std::vector<std::string> out;
    if (!n.IsDefined() || n.IsNull()) return out;
    if (!n.IsSequence()) throw InputError(pos_of(n), field(key), fmt::format("expected a list of text, got {}", describe(n)));
    for (size_t i = 0; i < n.size(); ++i) {
        if (!n[i].IsScalar())
            throw InputError(pos_of(n[i]), fmt::format("{}[{}]", field(key), i), fmt::format("expected text, got {}", describe(n[i])));
        out.push_back(n[i].Scalar());
    }
    return out;
}

std::optional<std::string> YamlMap::optional_string(const std::string& key) {
    YAML::Node n = get(key, false);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    if (!n.IsScalar()) throw InputError(pos_of(n), field(key), fmt::format("expected text, got {}", describe(n)));
    return n.Scalar();
}

std::string YamlMap::required_string(const std::string& key) {
    get(key, true);
    auto s = optional_string(key);
    if (s->empty()) fail(key, "must not be empty");
    return *s;
}

std::optional<bool> YamlMap::optional_bool(const std::string& key) {
    YAML::Node n = get(key, false);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    if (n.IsScalar() && n.Tag() != "!") {
        if (n.Scalar() == "true") return true;
        if (n.Scalar() == "false") return false;
    }
    throw InputError(pos_of(n), field(key), fmt::format("expected true or false, got {}", describe(n)));
}

std::string YamlMap::required_choice(const std::string& key, const std::vector<std::string>& valid) {
    std::string s = required_string(key);
    for (const auto& v : valid)
        if (s == v) return s;
    fail(key, fmt::format("unknown value \"{}\"{}; valid: {}", s, did_you_mean(s, valid), fmt::join(valid, ", ")));
}

YamlMap YamlMap::required_map(const std::string& key) { return YamlMap(get(key, true), file_, field(key)); }

std::optional<YamlMap> YamlMap::optional_map(const std::string& key) {
    YAML::Node n = get(key, false);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    return YamlMap(n, file_, field(key));
}

void YamlMap::finish(const std::vector<std::string>& known) const {
    for (auto it = node_.begin(); it != node_.end(); ++it) {
        const std::string key = it->first.Scalar();
        bool ok = false;
        for (const auto& k : known) ok |= (k == key);
        if (ok) continue;
        std::string hint = closest_match(key, known);
        throw InputError(pos_of(it->first), field(key),
                         hint.empty() ? fmt::format("unknown key; valid keys: {}", fmt::join(known, ", "))
                                      : fmt::format("unknown key (did you mean \"{}\"?)", hint));
    }
}

namespace {
// The offset of the first byte that does not belong to a well-formed UTF-8 sequence (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or npos. Hand-written: yaml-cpp
// passes bytes through unchecked and none of the project's libraries validates UTF-8 on its own.
size_t invalid_utf8(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    for (size_t i = 0; i < n;) {
        const unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + len > n) return i;
        unsigned cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        static constexpr unsigned kMin[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return std::string::npos;
}
}  // namespace

YAML::Node parse_yaml(const std::string& text, const std::string& file) {
    // Every string read from a profile ends up in reports (JSON must be UTF-8): refuse bad bytes
    // here, where the file is read, with the line they are on.
    if (const size_t at = invalid_utf8(text); at != std::string::npos) {
        const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
        throw InputError(SourcePos{file, line, 0}, "(encoding)",
                         fmt::format("byte 0x{:02X} is not valid UTF-8; profiles are UTF-8 text", static_cast<unsigned char>(text[at])));
    }
    try {
        YAML::Node root = YAML::Load(text);
        if (!root.IsDefined() || root.IsNull()) throw InputError(SourcePos{file, 1, 1}, "(document)", "the file holds no YAML mapping");
        return root;
    } catch (const YAML::Exception& e) {
        throw InputError(SourcePos{file, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.column + 1}, "(syntax)", e.msg);
    }
}

std::string read_input_file(const std::string& path) {
    namespace fs = std::filesystem;
    constexpr std::uintmax_t kMaxInput = 64ull << 20;  // 64 MiB: no profile is near this
    std::error_code ec;
    auto status = fs::status(path, ec);
    if (ec || !fs::exists(status)) throw InputError(SourcePos{path}, "", "no such file");
    if (fs::is_directory(status)) throw InputError(SourcePos{path}, "", "is a directory, expected a file");
    // Devices and pipes (/dev/zero, a FIFO) could be read forever: only regular files.
    if (!fs::is_regular_file(status)) throw InputError(SourcePos{path}, "", "is not a regular file");
    auto size = fs::file_size(path, ec);
    if (!ec && size > kMaxInput) throw InputError(SourcePos{path}, "", fmt::format("file is {} bytes; inputs are limited to 64 MiB", size));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(SourcePos{path}, "", fmt::format("cannot read file: {}", std::strerror(errno)));
    // Read in chunks and stop past the limit, in case the file grew since it was measured.
    std::string text;
    char chunk[1 << 16];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
        text.append(chunk, static_cast<size_t>(in.gcount()));
        if (text.size() > kMaxInput) break;
    }
    if (text.size() > kMaxInput) throw InputError(SourcePos{path}, "", "file is larger than 64 MiB, the input limit");
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw InputError(SourcePos{path}, "", "file is empty");
    if (text.find('\0') != std::string::npos)
        throw InputError(SourcePos{path}, "", "file is binary (holds NUL bytes), expected YAML or JSON text");
    return text;
}

}  // namespace memtax
