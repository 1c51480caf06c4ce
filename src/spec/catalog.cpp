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

}  // namespace

std::vector<ModelSpec> catalog_models() {
    std::vector<ModelSpec> out;
    for (const auto& f : embedded_models()) out.push_back(load_model_yaml(f.text, f.path));
    return out;
}

std::vector<GpuSpec> catalog_gpus() {
    std::vector<GpuSpec> out;
    for (const auto& f : embedded_gpus()) out.push_back(load_gpu_yaml(f.text, f.path));
    return out;
}

ModelSpec resolve_model(const std::string& arg) {
    static const std::vector<ModelSpec> catalog = catalog_models();
    return resolve<ModelSpec>("model", arg, catalog, [](const std::string& path) {
        std::string text = read_input_file(path);
        return path.ends_with(".json") ? load_hf_config(text, path) : load_model_yaml(text, path);
    });
}

std::vector<RuntimeSpec> catalog_runtimes() {
    std::vector<RuntimeSpec> out;
    for (const auto& f : embedded_runtimes()) out.push_back(load_runtime_yaml(f.text, f.path));
    return out;
}

RuntimeSpec resolve_runtime(const std::string& arg) {
    static const std::vector<RuntimeSpec> catalog = catalog_runtimes();
    return resolve<RuntimeSpec>("runtime", arg, catalog,
                                [](const std::string& path) { return load_runtime_yaml(read_input_file(path), path); });
}

std::vector<ClusterSpec> catalog_clusters() {
    std::vector<ClusterSpec> out;
    for (const auto& f : embedded_clusters()) out.push_back(load_cluster_yaml(f.text, f.path));
    return out;
}

ClusterSpec resolve_cluster(const std::string& arg) {
    static const std::vector<ClusterSpec> catalog = catalog_clusters();
    return resolve<ClusterSpec>("cluster", arg, catalog,
                                [](const std::string& path) { return load_cluster_yaml(read_input_file(path), path); });
}

GpuSpec resolve_gpu(const std::string& arg) {
    static const std::vector<GpuSpec> catalog = catalog_gpus();
    return resolve<GpuSpec>("gpu", arg, catalog,
                            [](const std::string& path) { return load_gpu_yaml(read_input_file(path), path); });
}

}  // namespace memtax
