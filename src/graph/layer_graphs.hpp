#pragma once
// The op graphs of a dense decoder: one decoder layer per attention kernel, and the head
// (final norm + LM head). Built once and cached; only sizes change per workload.
#include "graph/op_graph.hpp"

namespace memtax {

enum class AttentionKernel { Eager, Fused };
enum class Mode { Prefill, Decode };
const char* to_string(AttentionKernel k);
const char* to_string(Mode m);

// The decoder layer, following PyTorch eager op semantics (what transformers' Llama/Mistral/
// Qwen2 modules execute): a tensor is freed when its last reader finishes or when the Python
// variable holding it is rebound. Prefill and decode, full and sliding layers run the same ops;
// they differ only in the bindings (query length, keys attended), so one graph per kernel serves.
const OpGraph& decoder_layer_graph(AttentionKernel kernel);
// Final norm and LM head over the kept positions. Its preexisting inputs are what the base
// model keeps for the whole forward (masks, rotary tables, positions, inputs_embeds), freed
// once the final norm is done.
const OpGraph& head_graph();

}  // namespace memtax
