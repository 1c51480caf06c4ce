#include "model/training.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.hpp"
#include "core/format.hpp"

namespace memtax {

__extension__ typedef unsigned __int128 u128;

const char* to_string(Optimizer o) {
    switch (o) {
        case Optimizer::AdamW:
            return "adamw";
        case Optimizer::Adam:
            return "adam";
        case Optimizer::Sgd:
            return "sgd";
        case Optimizer::SgdMomentum:
            return "sgd-momentum";
    }
    return "?";
}

Recompute recompute_from(const std::string& s, const std::string& field) {
    for (Recompute r : {Recompute::None, Recompute::Selective, Recompute::Full})
        if (s == to_string(r)) return r;
    throw InputError(SourcePos{}, field, fmt::format("\"{}\"; valid: none, selective, full", s));
}

Optimizer optimizer_from(const std::string& s, const std::string& field) {
    for (Optimizer o : {Optimizer::AdamW, Optimizer::Adam, Optimizer::Sgd, Optimizer::SgdMomentum})
        if (s == to_string(o)) return o;
    throw InputError(SourcePos{}, field, fmt::format("\"{}\"; valid: adamw, adam, sgd, sgd-momentum", s));
}

const char* to_string(Precision p) { return p == Precision::Mixed ? "mixed" : "bf16"; }

u64 korthikanti_layer_bytes(u64 s, u64 b, u64 h, u64 a, u64 t, bool sequence_parallel, bool selective) {
    if (t == 0) throw InputError(SourcePos{}, "deployment.tp", "must be at least 1");
    const u128 sbh = static_cast<u128>(s) * b * h;
    // 34·sbh: 10 parts stay whole under TP (layer norms, dropout masks, the two inputs of the
    // blocks) and 24 are split, unless sequence parallelism splits all 34.
    u128 total = sequence_parallel ? sbh * 34 / t : sbh * 10 + sbh * 24 / t;
    // 5as²b/t: the attention core (Q·Kᵀ scores' softmax, its dropout mask, its output).
    if (!selective) total += static_cast<u128>(5) * a * s * s * b / t;
    if (total >> 64) throw OverflowError("korthikanti activations");
    return static_cast<u64>(total);
}

namespace {

u64 ceil_div_u(u64 a, u64 b) { return b ? a / b + (a % b != 0) : a; }

}  // namespace

TrainEstimate estimate_train(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl, const TrainSpec& spec) {
    if (spec.zero > 3) throw InputError(SourcePos{}, "train.zero", fmt::format("{}; valid: 0, 1, 2, 3", spec.zero));
    if (spec.micro_batches == 0) throw InputError(SourcePos{}, "train.micro_batches", "must be at least 1");
    Workload w = wl;
    w.mode = Mode::Prefill;
    w.logits_kept = 0;
    const Plan plan = Plan::compile(model, gpu, dep, w);
    TrainEstimate e;
    e.model_spec = std::make_shared<const ModelSpec>(model);
    e.gpu = gpu;
    e.deployment = dep;
    e.workload = plan.workload();
    e.workload.batch = wl.batch;
    e.workload.context = wl.context;
    e.spec = spec;
    e.dp = plan.replicas();
    const PointResult base = plan.evaluate(Point{Mode::Prefill, 1, 1});
    e.runtime_overhead = base.runtime_overhead;
    e.capacity = base.capacity;
    e.parameters = parameter_count(model);
    const u64 pp = dep.pp, M = spec.micro_batches;
    // Gradient accumulation without a pipeline: from the second micro-batch on the gradients
    // exist before the backward (the first micro-batch's peak is the lower one).
    TrainPoint tp{wl.batch, wl.context, spec.recompute, spec.sequence_parallel};
    const std::vector<Plan::StageTrain> stages = plan.train(tp);
    const DType& md = model.dtype;
    bool first = true;
    for (const auto& st : stages) {
        TrainEstimate s = e;
        const u64 P = st.parameters;
        s.stage = st.stage;
        s.stage_layers = st.layers;
        s.parameters_per_gpu = P;
        s.weight_bytes = st.weights;
        // Gradients in the parameters' dtype: what the backward leaves (a tied embedding once).
        s.gradient_bytes = st.act.weight_grads;
        // Optimizer states: Adam keeps two moments, SGD with momentum one buffer, in the
        // parameters' dtype (PyTorch's default for a bf16 model) or fp32 (mixed precision, with
        // an fp32 master copy of the weights).
        const u64 moments = spec.optimizer == Optimizer::AdamW || spec.optimizer == Optimizer::Adam ? 2
                            : spec.optimizer == Optimizer::SgdMomentum                              ? 1
                                                                                                    : 0;
        const bool mixed = spec.precision == Precision::Mixed;
        const u64 state_elem = mixed ? 4 : md.bits / 8;
        s.optimizer_bytes = checked_product({moments, P, state_elem}, "optimizer states");
        s.master_weight_bytes = mixed ? checked_mul(P, 4, "master weights") : 0;
        // ZeRO over the data-parallel replicas: 1 partitions the optimizer states (and master
        // weights), 2 the gradients too, 3 the parameters too.
        const u64 dp = s.dp;
        if (spec.zero >= 1) {
            s.optimizer_bytes = ceil_div_u(s.optimizer_bytes, dp);
            s.master_weight_bytes = ceil_div_u(s.master_weight_bytes, dp);
        }
        const u64 grads_full = s.gradient_bytes;
        if (spec.zero >= 2) s.gradient_bytes = ceil_div_u(s.gradient_bytes, dp);
        if (spec.zero >= 3) s.weight_bytes = ceil_div_u(s.weight_bytes, dp);
        // 1F1B: stage i holds the saved activations of min(pp − i, M) micro-batches.
        s.in_flight = pp > 1 ? std::min(pp - st.stage, M) : 1;
        const u64 others = checked_mul(st.act.saved, s.in_flight - 1, "in-flight activations");
        s.saved_activation_bytes = checked_add(others, st.act.saved, "saved activations");
        s.layer_saved_bytes = st.act.layer_saved;
        s.forward_peak_bytes = checked_add(others, st.act.forward_peak, "forward peak");
        s.backward_peak_bytes = checked_add(others, st.act.backward_peak, "backward peak");
        // Accumulating over micro-batches: the gradients of the earlier ones are there already.
        if (M > 1) s.backward_peak_bytes = checked_add(s.backward_peak_bytes, grads_full, "backward peak");
        s.peak_at = s.backward_peak_at = st.act.peak_at;
        // The optimizer step (PyTorch's foreach Adam/AdamW: sqrt of the second moments is a new
        // tensor list, one state's worth, before the in-place updates); SGD updates in place.
        s.optimizer_step_bytes = moments == 2 ? ceil_div_u(checked_mul(P, state_elem, "optimizer step"), spec.zero >= 1 ? dp : 1) : 0;
        const u64 step = checked_add(s.gradient_bytes, s.optimizer_step_bytes, "optimizer step");
        s.train_peak_bytes = std::max(s.backward_peak_bytes, step);
        if (step > s.backward_peak_bytes) s.peak_at = "optimizer step";
        s.resident_before = checked_add(checked_add(s.weight_bytes, s.optimizer_bytes, "resident"), s.master_weight_bytes, "resident");
        s.total = checked_add(checked_add(s.runtime_overhead, s.resident_before, "total"), s.train_peak_bytes, "total");
        s.fits = s.total <= s.capacity;
        if (first || s.total > e.total) e = s;
        first = false;
    }
    // The terms, with their formulas.
    const ModelSpec& m = model;
    const u64 T = checked_mul(wl.batch, wl.context, "tokens");
    auto add = [&](const char* name, const char* cat, u64 bytes, std::string formula) {
        e.components.push_back({name, cat, bytes, std::move(formula)});
    };
    add("weights", "weights", e.weight_bytes,
        fmt::format("this GPU's {} parameters (stage {}, TP {}){}", group_digits(e.parameters_per_gpu), e.stage, dep.tp,
                    spec.zero >= 3 ? fmt::format(", ZeRO-3 over {} replicas", e.dp) : ""));
    add("gradients", "gradients", e.gradient_bytes,
        fmt::format("one per parameter in the parameters' dtype{}",
                    spec.zero >= 2 ? fmt::format(", ZeRO-{} over {} replicas", spec.zero, e.dp) : ""));
    add("optimizer_states", "optimizer", e.optimizer_bytes,
        fmt::format("{}: {} state(s) per parameter in {}{}", to_string(spec.optimizer),
                    spec.optimizer == Optimizer::Sgd           ? 0
                    : spec.optimizer == Optimizer::SgdMomentum ? 1
                                                               : 2,
                    spec.precision == Precision::Mixed ? "fp32" : md.name,
                    spec.zero >= 1 ? fmt::format(", ZeRO-{} over {} replicas", spec.zero, e.dp) : ""));
    if (e.master_weight_bytes) add("master_weights", "optimizer", e.master_weight_bytes, "fp32 copy of every parameter (mixed precision)");
    add("saved_activations", "activations", e.saved_activation_bytes,
        fmt::format("what autograd keeps after the forward, read off every op of the layer graphs ({} tokens = {} × {}; recompute {}) "
                    "+ the loss's fp32 log-softmax of {} × {} vocab; × {} micro-batch(es) in flight",
                    group_digits(T), wl.batch, wl.context, to_string(spec.recompute), group_digits(T), group_digits(m.vocab_size),
                    e.in_flight));
    add("backward_peak", "activations", e.backward_peak_bytes,
        fmt::format("the highest allocation through forward and backward above what was allocated before it, gradients included (at {})",
                    e.backward_peak_at));
    add("optimizer_step", "optimizer", e.optimizer_step_bytes,
        "the step's temporaries beside the gradients (foreach Adam: one state's worth)");
    add("train_peak", "activations", e.train_peak_bytes, "max(backward peak, gradients + optimizer step)");
    add("runtime_overhead", "overhead", e.runtime_overhead, "CUDA context and library workspaces of the runtime");
    add("total", "total", e.total, "runtime overhead + weights + optimizer states (+ master weights) + train peak");
    if (m.num_attention_heads != 0) {
        const bool sel = spec.recompute == Recompute::Selective;
        const u64 korth =
            korthikanti_layer_bytes(wl.context, wl.batch, m.hidden_size, m.num_attention_heads, dep.tp, spec.sequence_parallel, sel);
        add("korthikanti_layer", "cross-check", korth,
            fmt::format(
                "Korthikanti et al. 2022 per layer, sbh({}{}) with s={} b={} h={} a={} t={} (a GPT layer with dropout; this model's graph "
                "keeps {} per layer)",
                spec.sequence_parallel ? "34/t" : "10 + 24/t", sel ? "" : " + 5as/(ht)", wl.context, wl.batch, m.hidden_size,
                m.num_attention_heads, dep.tp, group_digits(e.layer_saved_bytes)));
    }
    return e;
}

}  // namespace memtax
