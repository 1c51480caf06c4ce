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
// Qwen2 modules execute): a tensor is freed when its last reader finishes.
const OpGraph& decoder_layer_graph(AttentionKernel kernel, Mode mode);
// Final norm and LM head over the kept positions. Its input "forward_state" is the bytes the
// model keeps for the whole forward (masks, rotary tables), freed once the final norm is done.
const OpGraph& head_graph(Mode mode);

}  // namespace memtax
