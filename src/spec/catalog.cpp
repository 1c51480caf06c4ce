// The built-in catalog and name-or-path resolution.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <string_view>

#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

// A file argument: it exists, names a profile extension, or starts like a path. (A slash alone
// is not enough: Hugging Face ids such as meta-llama/Llama-3.1-8B are catalog aliases.)
bool looks_like_path(const std::string& s) {
    return s.ends_with(".yaml") || s.ends_with(".yml") || s.ends_with(".json") || s.starts_with("/") || s.starts_with("./") ||
           s.starts_with("../");
}

// The value of a profile's top-level `key:` line, read without parsing the document: a CLI
// call parses only the profiles it uses. (Every catalog profile states its name and aliases on
// one line each; the full parse of the one picked checks them.)
std::string top_level_value(const char* text, std::string_view key) {
    std::string_view t(text);
    for (size_t at = 0; at < t.size();) {
        size_t end = t.find('\n', at);
        if (end == std::string_view::npos) end = t.size();
        std::string_view line = t.substr(at, end - at);
        if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
            line.remove_prefix(key.size() + 1);
            auto strip = [](char c) { return c == ' ' || c == '"' || c == '\'' || c == '\r'; };
            while (!line.empty() && strip(line.front())) line.remove_prefix(1);
            while (!line.empty() && strip(line.back())) line.remove_suffix(1);
            return std::string(line);
        }
        at = end + 1;
    }
    return {};
}

// `aliases: [a, b]` as a list.
std::vector<std::string> declared_aliases(const char* text) {
    std::string v = top_level_value(text, "aliases");
    std::vector<std::string> out;
    if (v.size() < 2 || v.front() != '[' || v.back() != ']') return out;
    v = v.substr(1, v.size() - 2);
    size_t at = 0;
    while (at <= v.size()) {
        size_t comma = v.find(',', at);
        if (comma == std::string::npos) comma = v.size();
        std::string a = v.substr(at, comma - at);
        while (!a.empty() && (a.front() == ' ' || a.front() == '"')) a.erase(a.begin());
        while (!a.empty() && (a.back() == ' ' || a.back() == '"')) a.pop_back();
        if (!a.empty()) out.push_back(a);
        at = comma + 1;
    }
    return out;
}

// Lower case, letters and digits only: "Llama-3.1-8B" and "llama3.1_8b" are one key.
std::string fold(std::string_view s) {
    std::string out;
    for (char c : s)
        if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

struct Entry {
    std::string name, display;
    std::vector<std::string> aliases;
    const EmbeddedFile* file;
};

template <typename Spec>
Spec resolve(const std::string& what, const std::string& arg, const std::vector<EmbeddedFile>& files,
             Spec (*load_text)(const std::string&, const std::string&), const std::function<Spec(const std::string&)>& load_path) {
    // A file path overrides the catalog.
    // The error_code form: a name too long for a path (or unreadable) is a catalog name, not a crash.
    std::error_code ec;
    if (std::filesystem::exists(arg, ec) || looks_like_path(arg)) return load_path(arg);
    std::vector<Entry> entries;
    for (const auto& f : files)
        entries.push_back({top_level_value(f.text, "name"), top_level_value(f.text, "display_name"), declared_aliases(f.text), &f});
    auto load = [&](const Entry& e) {
        Spec s = load_text(e.file->text, e.file->path);
        if (s.name != e.name) throw InternalError(fmt::format("catalog profile {} declares name {}", e.file->path, s.name));
        return s;
    };
    // 1. The exact name; 2. a declared alias (HF repository ids, older spellings); 3. the same
    // letters and digits ("llama3.1-8b"); 4. a family prefix that picks one profile ("mi300").
    for (const auto& e : entries)
        if (e.name == arg) return load(e);
    const std::string key = fold(arg);
    for (const auto& e : entries)
        for (const auto& a : e.aliases)
            if (a == arg || fold(a) == key) return load(e);
    for (const auto& e : entries)
        if (fold(e.name) == key) return load(e);
    // A family prefix ends where a word of the name ends: "h100" names h100-sxm and h100-pcie,
    // but "llama-3.1-8" is a typo of llama-3.1-8b, not its family.
    auto family_of = [&](const std::string& name) {
        for (size_t cut = 1; cut <= name.size(); ++cut)
            if ((cut == name.size() || !std::isalnum(static_cast<unsigned char>(name[cut]))) && fold(name.substr(0, cut)) == key)
                return true;
        return false;
    };
    std::vector<const Entry*> family;
    if (!key.empty())
        for (const auto& e : entries) {
            bool hit = family_of(e.name);
            for (const auto& a : e.aliases) hit = hit || family_of(a);
            if (hit) family.push_back(&e);
        }
    if (family.size() == 1) return load(*family.front());
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.name);
    if (family.size() > 1) {
        std::vector<std::string> options;
        for (const Entry* e : family)
            options.push_back(e->display.empty() || e->display == e->name ? e->name : fmt::format("{} ({})", e->name, e->display));
        throw InputError(SourcePos{}, what,
                         fmt::format("\"{}\" names {} built-in {}s; pick one: {}", arg, family.size(), what, fmt::join(options, ", ")));
    }
    // The closest name or alias, suggested by its profile's name.
    std::vector<std::string> spellings;
    std::vector<const Entry*> owner;
    for (const auto& e : entries) {
        spellings.push_back(fold(e.name));
        owner.push_back(&e);
        for (const auto& a : e.aliases) {
            spellings.push_back(fold(a));
            owner.push_back(&e);
        }
    }
    std::string hint;
    const std::string close = closest_match(key, spellings);
    for (size_t i = 0; i < spellings.size(); ++i)
        if (!close.empty() && spellings[i] == close) {
            hint = fmt::format(" (did you mean \"{}\"?)", owner[i]->name);
            break;
        }
    throw InputError(SourcePos{}, what,
                     fmt::format("unknown {} \"{}\"{}; built-in: {} (or give a file path)", what, arg, hint, fmt::join(names, ", ")));
}

// Every embedded profile of one kind, loaded with its loader.
template <typename Spec>
std::vector<Spec> load_all(const std::vector<EmbeddedFile>& files, Spec (*load)(const std::string&, const std::string&)) {
    std::vector<Spec> out;
    for (const auto& f : files) out.push_back(load(f.text, f.path));
    return out;
}

// A YAML profile from a path.
template <typename Spec>
auto from_file(Spec (*load)(const std::string&, const std::string&)) {
    return [load](const std::string& path) { return load(read_input_file(path), path); };
}

}  // namespace

std::vector<ModelSpec> catalog_models() { return load_all(embedded_models(), &load_model_yaml); }
std::vector<GpuSpec> catalog_gpus() { return load_all(embedded_gpus(), &load_gpu_yaml); }
std::vector<RuntimeSpec> catalog_runtimes() { return load_all(embedded_runtimes(), &load_runtime_yaml); }
std::vector<ClusterSpec> catalog_clusters() { return load_all(embedded_clusters(), &load_cluster_yaml); }

ModelSpec resolve_model(const std::string& arg) {
    return resolve<ModelSpec>("model", arg, embedded_models(), &load_model_yaml, [](const std::string& path) {
        std::string text = read_input_file(path);
        return path.ends_with(".json") ? load_hf_config(text, path) : load_model_yaml(text, path);
    });
}

RuntimeSpec resolve_runtime(const std::string& arg) {
    return resolve<RuntimeSpec>("runtime", arg, embedded_runtimes(), &load_runtime_yaml, from_file(&load_runtime_yaml));
}

ClusterSpec resolve_cluster(const std::string& arg) {
    return resolve<ClusterSpec>("cluster", arg, embedded_clusters(), &load_cluster_yaml, from_file(&load_cluster_yaml));
}

GpuSpec resolve_gpu(const std::string& arg) {
    return resolve<GpuSpec>("gpu", arg, embedded_gpus(), &load_gpu_yaml, from_file(&load_gpu_yaml));
}

}  // namespace memtax
