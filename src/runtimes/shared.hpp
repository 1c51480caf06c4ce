#pragma once
// Helpers the runtime families share for describing a point (not part of the interface).
#include <string>
#include <vector>

#include "runtimes/runtime.hpp"

namespace memtax {

// One distinct layer of a stage (its blocks), the graph the family built for it, and how often it
// occurs in the stage and in the whole model.
struct LayerType {
    LayerSpec spec;
    CacheSpec cache;
    OpGraph graph;
    u64 count = 0, model_count = 0;
};

// A family's decoder-layer skeleton around a token mixer and a channel mixer.
using LayerBuilder = OpGraph (*)(const BlockEnv& env, const LayerSpec& layer, const LayerBlocks& blocks, u64 round_to);

// The stage's layer types in order of first appearance, each layer's blocks checked against the
// registry and built once; `type_of` (optional) gets each layer's type index.
std::vector<LayerType> build_layer_types(const CompileInput& in, const BlockEnv& env, LayerBuilder build,
                                         std::vector<std::uint32_t>* type_of = nullptr);

// What a stage holds: weight bytes and parameters read off its graphs (the embedding on the first
// stage, the head on the last; a tied head counts where it is stored), and the weight components
// with the tensors behind them (described once, at compile time).
struct StageWeights {
    u64 bytes = 0, parameters = 0, active_parameters = 0;
    std::vector<Component> components;
};
// `tp`: the GPUs a stage's layers are split over (a vision encoder's share).
StageWeights stage_weights(const ModelSpec& m, const std::vector<LayerType>& types, const OpGraph* embedding, const OpGraph* head,
                           u64 tp = 1);
// "fits: weights 16.1 GiB + KV 4.0 GiB + ... = 21.0 GiB of 79.2 GiB usable, 58.2 GiB free": the
// verdict with the numbers that decided it.
std::string sum_verdict(const PointResult& r);

}  // namespace memtax
