#pragma once
// Spec loaders: memtax YAML profiles, Hugging Face config.json, and the built-in catalog.
#include <string>
#include <vector>

#include "spec/gpu_spec.hpp"
#include "spec/model_spec.hpp"
#include "spec/runtime_spec.hpp"

namespace memtax {

// `file` is only used in error messages.
ModelSpec load_model_yaml(const std::string& text, const std::string& file);
ModelSpec load_hf_config(const std::string& text, const std::string& file);
GpuSpec load_gpu_yaml(const std::string& text, const std::string& file);
RuntimeSpec load_runtime_yaml(const std::string& text, const std::string& file);

// A model from a path (.yaml/.yml profile or HF config .json) or a catalog name.
ModelSpec resolve_model(const std::string& name_or_path);
GpuSpec resolve_gpu(const std::string& name_or_path);
RuntimeSpec resolve_runtime(const std::string& name_or_path);

// The built-in catalog: profiles under models/ and hardware/, embedded at build time.
struct EmbeddedFile {
    const char* path;  // e.g. "models/llama-3.1-8b.yaml"
    const char* text;
};
const std::vector<EmbeddedFile>& embedded_models();
const std::vector<EmbeddedFile>& embedded_gpus();
const std::vector<EmbeddedFile>& embedded_runtimes();
std::vector<ModelSpec> catalog_models();
std::vector<GpuSpec> catalog_gpus();
std::vector<RuntimeSpec> catalog_runtimes();

}  // namespace memtax
