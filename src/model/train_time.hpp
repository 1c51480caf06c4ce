#pragma once
// How long a training step takes, and what a token budget costs. The step is priced from the
// same op graphs as its memory (Plan::estimate's step graphs at the micro-batch, every position's
// logits): each op's kernels at the GPU's calibrated rates, as the inference time model prices
// them, and the backward pass derived from each op by what autograd runs for it:
//   a linear layer      two GEMMs of the forward's FLOPs: the input's gradient (dY·W) and the
//                       weight's (Xᵀ·dY; none when the weight is frozen)
//   an activation GEMM  (eager Q·Kᵀ, P·V) two GEMMs, one per operand
//   fused attention     the flash backward: 2.5× the forward's FLOPs (five matrix products against
//                       two: S and P recomputed, dV, dP, dQ, dK) at the fused kernel's rate, and
//                       its preprocessing pass over the output
//   any other op        one gradient kernel per kernel of its forward (two when the op keeps two
//                       or more operands: a product), each moving what that forward kernel moved,
//                       vectorized (a softmax's and a reduction's keep their class)
//   the loss            fp32 zeros for nll_loss's gradient, log_softmax's backward (read two, write
//                       one [tokens, vocab] fp32 tensors, at the softmax class) and the cast back
//   the embedding       a zero [vocab, hidden] gradient and the rows' accumulation
// Full recomputation runs each layer's forward again before its backward. Gradients that exist
// before an op forms its own (later micro-batches, zero_grad(set_to_none=False)) are added in
// place: one read-read-write pass per weight. The optimizer step is its multi-tensor kernels'
// bytes (torch.optim's foreach AdamW: 21 element accesses per parameter; a fused Adam 7) at the
// runtime's foreach rate, in launches of at most 320 × 65,536 elements. The host is a second
// clock in each phase (the runtime's train_host costs); the phases are sequential, as in a loop
// that reads its loss. Data-parallel gradient reduction and ZeRO's gathers are added after the
// backward (no overlap: an upper bound), TP all-reduces twice per layer in each direction, and a
// pipeline runs (micro-batches + stages − 1) slots of one stage's forward and backward.
#include <string>
#include <vector>

#include "model/time_model.hpp"
#include "model/training.hpp"

namespace memtax {

struct TrainPhaseTime {
    double seconds = 0;  // the phase: the later of the GPU's and the host's clocks
    double gpu_s = 0;    // the GPU's busy time
    double host_s = 0;   // the host's dispatch (0: the runtime models none)
    u64 flops = 0, bytes = 0, kernels = 0;
};

struct TrainTime {
    std::string rate_dtype;
    bool calibrated = false;  // the GPU profile's kernel rates are measured
    // One micro-batch on this GPU (its pipeline stage).
    TrainPhaseTime forward, backward, optimizer;
    double recompute_s = 0;       // of backward: the layers' forward run again
    double accumulate_s = 0;      // of backward: in-place gradient additions (when gradients exist)
    double loss_s = 0;            // of forward + backward: the cross-entropy over [tokens, vocab]
    double communication_s = 0;   // per optimizer step: DP/ZeRO collectives, TP all-reduces of the backward
    std::vector<KindTime> kinds;  // forward and backward together, per op group (GPU time)
    u64 micro_batches = 1;
    double step_s = 0;  // one optimizer step
    u64 tokens_per_step = 0;
    double tokens_per_s = 0;          // the whole deployment
    double model_flops_per_step = 0;  // 3 × the model's forward FLOPs (every TP rank's, no recomputation), whole deployment
    double mfu = 0;                   // model FLOPs ÷ (step × GPUs × peak matrix rate)
    u64 gpus = 1;
    // A token budget: how long, and at a price per GPU-hour, how much.
    u64 budget_tokens = 0;
    double days = 0, gpu_hours = 0, dollars = 0, price_per_gpu_hour = 0;
};

// `te`: an estimate_train result; `budget_tokens` 0: no budget; `price_per_gpu_hour` 0: no price.
TrainTime estimate_train_time(const TrainEstimate& te, const Topology& topology, u64 budget_tokens = 0, double price_per_gpu_hour = 0);

}  // namespace memtax
