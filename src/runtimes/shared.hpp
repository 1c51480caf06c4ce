#pragma once
// Helpers the runtime families share for describing a point (not part of the interface).
#include <string>
#include <vector>

#include "runtimes/runtime.hpp"

namespace memtax {

struct LayerGraphRef {
    const LayerSpec* spec;
    const OpGraph* graph;
    u64 count;
};

// weights.embedding, weights.lm_head, weights.final_norm, weights.layer[...] per layer type, and
// weights: each with the weight tensors behind it, read off the graphs.
void add_weight_components(Breakdown& out, const ModelSpec& m, const OpGraph* embedding, const OpGraph* head,
                           const std::vector<LayerGraphRef>& layers, u64 weights);
// "fits: weights 16.1 GiB + KV 4.0 GiB + ... = 21.0 GiB of 79.2 GiB usable, 58.2 GiB free": the
// verdict with the numbers that decided it.
std::string sum_verdict(const PointResult& r);

}  // namespace memtax
