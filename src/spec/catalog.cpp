// The built-in catalog and name-or-path resolution.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string_view>

#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

bool looks_like_path(const std::string& s) {
    return s.find('/') != std::string::npos || s.ends_with(".yaml") || s.ends_with(".yml") || s.ends_with(".json");
}

// The value of a profile's top-level `name:` line, read without parsing the document: a CLI
// call parses only the profiles it uses. (Every catalog profile states its name on one line;
// the full parse of the one picked checks it.)
std::string declared_name(const char* text) {
    std::string_view t(text);
    for (size_t at = 0; at < t.size();) {
        size_t end = t.find('\n', at);
        if (end == std::string_view::npos) end = t.size();
        std::string_view line = t.substr(at, end - at);
        if (line.substr(0, 5) == "name:") {
            line.remove_prefix(5);
            while (!line.empty() && (line.front() == ' ' || line.front() == '"' || line.front() == '\'')) line.remove_prefix(1);
            while (!line.empty() && (line.back() == ' ' || line.back() == '"' || line.back() == '\'' || line.back() == '\r')) line.remove_suffix(1);
            return std::string(line);
        }
        at = end + 1;
    }
    return {};
}

template <typename Spec>
Spec resolve(const std::string& what, const std::string& arg, const std::vector<EmbeddedFile>& files,
             Spec (*load_text)(const std::string&, const std::string&), const std::function<Spec(const std::string&)>& load_path) {
    // A file path overrides the catalog.
    if (std::filesystem::exists(arg) || looks_like_path(arg)) return load_path(arg);
    std::vector<std::string> names;
    for (const auto& f : files) {
        names.push_back(declared_name(f.text));
        if (names.back() == arg) {
            Spec s = load_text(f.text, f.path);
            if (s.name != arg) throw InternalError(fmt::format("catalog profile {} declares name {}", f.path, s.name));
            return s;
        }
    }
    throw InputError(SourcePos{}, "--" + what,
                     fmt::format("unknown {} \"{}\"{}; built-in: {} (or give a file path)", what, arg,
                                 did_you_mean(arg, names), fmt::join(names, ", ")));
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
