// The built-in catalog and name-or-path resolution.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

bool looks_like_path(const std::string& s) {
    return s.find('/') != std::string::npos || s.ends_with(".yaml") || s.ends_with(".yml") || s.ends_with(".json");
}

template <typename Spec, typename Load>
Spec resolve(const std::string& what, const std::string& arg, const std::vector<Spec>& catalog, Load load) {
    // A file path overrides the catalog.
    if (std::filesystem::exists(arg) || looks_like_path(arg)) return load(arg);
    std::vector<std::string> names;
    for (const auto& s : catalog) {
        if (s.name == arg) return s;
        names.push_back(s.name);
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
    static const std::vector<ModelSpec> catalog = catalog_models();
    return resolve<ModelSpec>("model", arg, catalog, [](const std::string& path) {
        std::string text = read_input_file(path);
        return path.ends_with(".json") ? load_hf_config(text, path) : load_model_yaml(text, path);
    });
}

RuntimeSpec resolve_runtime(const std::string& arg) {
    static const std::vector<RuntimeSpec> catalog = catalog_runtimes();
    return resolve<RuntimeSpec>("runtime", arg, catalog, from_file(&load_runtime_yaml));
}

ClusterSpec resolve_cluster(const std::string& arg) {
    static const std::vector<ClusterSpec> catalog = catalog_clusters();
    return resolve<ClusterSpec>("cluster", arg, catalog, from_file(&load_cluster_yaml));
}

GpuSpec resolve_gpu(const std::string& arg) {
    static const std::vector<GpuSpec> catalog = catalog_gpus();
    return resolve<GpuSpec>("gpu", arg, catalog, from_file(&load_gpu_yaml));
}

}  // namespace memtax
