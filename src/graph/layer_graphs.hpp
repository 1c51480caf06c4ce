#pragma once
// The op graphs of a dense decoder, built from a runtime's declarative description: one
// decoder layer per (runtime behaviour, layer kind), the head (final norm + LM head), and for
// vLLM its fused layer and the sampler of its start-up profile run. Built once per distinct
// configuration and cached; only sizes change per workload.
#include <string>

#include "graph/op_graph.hpp"
#include "spec/runtime_spec.hpp"
#include "spec/model_spec.hpp"

namespace memtax {

enum class Mode { Prefill, Decode };
const char* to_string(Mode m);

// What changes the shape of a layer graph (everything else is bindings).
struct GraphConfig {
    RuntimeFamily family = RuntimeFamily::Transformers;
    AttentionKernel kernel = AttentionKernel::Fused;
    KeepsAlive keeps;
    // A sliding layer's DynamicSlidingWindowLayer.update concatenates K and V before either
    // old tensor is released; a full layer's DynamicLayer.update rebinds K before V's cat.
    bool joint_kv_update = false;
    std::string key() const;
};

// The decoder layer as PyTorch eager executes transformers' Llama/Mistral/Qwen2 modules, or
// vLLM's fused layer (merged QKV and gate/up projections, in-place norms and rotary, KV written
// into the preallocated pool). A tensor is freed when its last reader finishes or when the
// Python variable holding it is rebound (the `keeps` of the runtime).
const OpGraph& decoder_layer_graph(const GraphConfig& cfg);
// Final norm and LM head over the kept positions. Its preexisting inputs are what the base
// model keeps for the whole forward (masks, rotary tables, positions, inputs_embeds), freed
// once the final norm is done when the runtime keeps them (`model_locals`).
const OpGraph& head_graph(bool model_locals);
// vLLM's sampler on its start-up dummy run: logits for Kept requests upcast to fp32, top-k/
// top-p by sorting (fp32 values + int64 indices), softmax, the exponential race of random
// sampling (vllm/v1/sample/ops/topk_topp_sampler.py).
const OpGraph& vllm_sampler_graph();

}  // namespace memtax
