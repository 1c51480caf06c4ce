#pragma once
// Spec loaders: memtax YAML profiles, Hugging Face config.json, and the built-in catalog.
#include <string>
#include <vector>

#include "spec/cluster_spec.hpp"
#include "spec/gpu_spec.hpp"
#include "spec/model_spec.hpp"
#include "spec/runtime_spec.hpp"

namespace memtax {

// `file` is only used in error messages.
ModelSpec load_model_yaml(const std::string& text, const std::string& file);
ModelSpec load_hf_config(const std::string& text, const std::string& file);
GpuSpec load_gpu_yaml(const std::string& text, const std::string& file);
RuntimeSpec load_runtime_yaml(const std::string& text, const std::string& file);
ClusterSpec load_cluster_yaml(const std::string& text, const std::string& file);

// A model from a path (.yaml/.yml profile or HF config .json) or a catalog name.
ModelSpec resolve_model(const std::string& name_or_path);
GpuSpec resolve_gpu(const std::string& name_or_path);
RuntimeSpec resolve_runtime(const std::string& name_or_path);
ClusterSpec resolve_cluster(const std::string& name_or_path);

// The built-in catalog: profiles under models/ and hardware/, embedded at build time.
struct EmbeddedFile {
    const char* path;  // e.g. "models/llama-3.1-8b.yaml"
    const char* text;
};
const std::vector<EmbeddedFile>& embedded_models();
const std::vector<EmbeddedFile>& embedded_gpus();
const std::vector<EmbeddedFile>& embedded_runtimes();
const std::vector<EmbeddedFile>& embedded_clusters();
std::vector<ModelSpec> catalog_models();
std::vector<GpuSpec> catalog_gpus();
std::vector<RuntimeSpec> catalog_runtimes();
std::vector<ClusterSpec> catalog_clusters();

}  // namespace memtax
