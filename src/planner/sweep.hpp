#pragma once
// A sweep: every (context, batch, TP) point of one model, GPU and runtime, and for each memory
// component its growth with context fitted by least squares (Eigen) as c2·s² + c1·s + c0 — the
// memory tax as coefficients — with the measured factor per doubling of the context.
#include <functional>
#include <string>
#include <vector>

#include "model/plan.hpp"

namespace memtax {

struct SweepPoint {
    u64 context = 0, batch = 0, tp = 1;
    PointResult r;
};

struct GrowthFit {
    std::string component;          // weights | kv_cache | attention_matrix | activations | logits | total
    double c2 = 0, c1 = 0, c0 = 0;  // bytes = c2·s² + c1·s + c0, s in tokens
    double per_doubling = 0;        // value at the largest context / value at half of it
    double max_relative_residual = 0;
};

struct SweepReport {
    std::string model, gpu, runtime;
    Mode mode = Mode::Prefill;
    std::vector<SweepPoint> points;  // every point, unless they were handed to a callback as they came
    u64 fit_batch = 0, fit_tp = 0;   // the series the fits use: the first batch and TP
    std::vector<GrowthFit> fits;
};

struct SweepSpec {
    ModelSpec model;
    GpuSpec gpu;
    Workload workload;  // runtime and dtypes; mode
    std::vector<u64> contexts, batches, tps;
    u64 pp = 1;  // pipeline stages (the fullest stage is reported)
    // Expert parallelism (MoE): over ep GPUs; beyond TP it spans `replicas` data-parallel replicas
    // (wide EP), which the plan then holds.
    u64 ep = 1, replicas = 1;
};

// Points whose context exceeds the model's maximum (without allow_long_context) or whose TP
// does not divide the model are InputErrors naming the value; every TP's plan and the corner
// points that bound the rest are checked before the first point is evaluated. With `each`,
// every point goes to it as it is evaluated and the report keeps none (the fits keep their own
// series), so memory does not grow with the sweep.
SweepReport run_sweep(const SweepSpec& s, const std::function<void(u64, u64)>& progress = {},
                      const std::function<void(const SweepPoint&)>& each = {});

// "1k..1M" (doubling), or a list "1k,8k,32k": token counts.
std::vector<u64> parse_context_range(const std::string& text);

}  // namespace memtax
