#include "model/training.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

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

// floor(params · bytes / n), as the peers' Python takes int() of it; n ≥ 1, overflow-checked.
u64 floor_share(u64 params, u64 bytes, u64 n, const char* term) {
    if (n == 0) throw InputError(SourcePos{}, "deployment.gpus", "must be at least 1");
    const u128 r = static_cast<u128>(params) * bytes / n;
    if (r >> 64) throw OverflowError(term);
    return static_cast<u64>(r);
}

// The states an optimizer keeps per parameter: Adam/AdamW two moments, SGD with momentum one.
u64 states_of(Optimizer o) { return o == Optimizer::AdamW || o == Optimizer::Adam ? 2 : o == Optimizer::SgdMomentum ? 1 : 0; }

// DeepSpeed's reduction buckets: ZeRO-3 allocates one; ZeRO-2 one, two with overlap_comm.
u64 reduce_buckets(const TrainSpec& spec) { return spec.zero == 2 && spec.overlap_comm.value_or(false) ? 2 : 1; }

}  // namespace

u64 deepspeed_zero2_gpu_bytes(u64 params, u64 gpus) {
    return checked_add(checked_mul(2, params, "deepspeed estimator"), floor_share(params, 18, gpus, "deepspeed estimator"),
                       "deepspeed estimator");
}

u64 deepspeed_zero3_gpu_bytes(u64 params, u64 largest_layer_params, u64 gpus) {
    return checked_add(checked_mul(4, largest_layer_params, "deepspeed estimator"), floor_share(params, 18, gpus, "deepspeed estimator"),
                       "deepspeed estimator");
}

u64 megatron_weight_and_optimizer_bytes(u64 params, u64 dp, bool distributed_optimizer) {
    if (dp == 0) throw InputError(SourcePos{}, "deployment.gpus", "must be at least 1");
    if (!distributed_optimizer) return checked_mul(18, params, "megatron estimator");
    return checked_add(checked_mul(6, params, "megatron estimator"), floor_share(params, 12, dp, "megatron estimator"),
                       "megatron estimator");
}

const char* to_string(Loop l) { return l == Loop::Outputs ? "outputs" : "loss"; }

Loop loop_from(const std::string& s, const std::string& field) {
    if (s == "loss") return Loop::Loss;
    if (s == "outputs") return Loop::Outputs;
    throw InputError(SourcePos{}, field, fmt::format("\"{}\"; valid: loss, outputs", s));
}

TrainEstimate estimate_train(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl, const TrainSpec& spec) {
    if (spec.zero > 3) throw InputError(SourcePos{}, "train.zero", fmt::format("{}; valid: 0, 1, 2, 3", spec.zero));
    if (spec.micro_batches == 0) throw InputError(SourcePos{}, "train.micro_batches", "must be at least 1");
    const bool fsdp = spec.sharder == Sharder::Fsdp;
    if (fsdp && spec.zero != 3)
        throw InputError(SourcePos{}, "train.zero",
                         fmt::format("{} with FSDP; FSDP2 shards parameters, gradients and states: valid: 3", spec.zero));
    Workload w = wl;
    w.mode = Mode::Prefill;
    w.logits_kept = 0;
    const Plan plan = Plan::compile(model, gpu, dep, w);
    const bool fp32_grads = spec.fp32_grads.value_or(plan.workload().runtime.training.fp32_main_grads);
    if (fp32_grads && (spec.zero >= 2 || fsdp))
        throw InputError(
            SourcePos{}, "train.zero",
            fmt::format("{} with fp32 main gradients; Megatron's distributed optimizer shards the optimizer states (ZeRO-1) and "
                        "keeps the gradient buffer whole: valid: 0, 1 (or train.grad_dtype params)",
                        spec.zero));
    TrainEstimate e;
    e.model_spec = std::make_shared<const ModelSpec>(model);
    e.gpu = gpu;
    e.deployment = dep;
    e.workload = plan.workload();
    e.workload.batch = wl.batch;
    e.workload.context = wl.context;
    e.spec = spec;
    e.spec.fp32_grads = fp32_grads;
    e.dp = plan.replicas();
    const PointResult base = plan.evaluate(Point{Mode::Prefill, 1, 1});
    e.runtime_overhead = base.runtime_overhead;
    e.capacity = base.capacity;
    e.parameters = parameter_count(model);
    const u64 pp = dep.pp, M = spec.micro_batches, dp = e.dp;
    const DType& md = model.dtype;
    const u64 md_bytes = std::max<u64>(md.bits / 8, 1);
    const bool mixed = spec.precision == Precision::Mixed;
    // How the weight gradients live through the backward (runtimes/runtime.hpp: GradHolding).
    // Autograd keeps each .grad; from a second micro-batch on (or with set_to_none=False) they
    // exist already and each new one is added in place. DeepSpeed's ZeRO-2/3 copy each into a
    // reduction bucket as it is formed; FSDP2 reduce-scatters a layer's when its backward ends;
    // Megatron's wgrad GEMM adds into the fp32 main_grad buffer.
    const bool in_place_after_first = spec.zero < 2 && !fp32_grads && M > 1 && spec.set_to_none;
    GradHolding holding = GradHolding::Accumulate;
    if (fp32_grads)
        holding = GradHolding::Fused;
    else if (fsdp)
        holding = GradHolding::PerLayer;
    else if (spec.zero >= 2)
        holding = GradHolding::Bucketed;
    else if (!spec.set_to_none)
        holding = GradHolding::InPlace;
    const bool lora = spec.lora.has_value();
    if (spec.offload != Offload::None) {
        if (spec.zero == 0 || fsdp || fp32_grads || lora)
            throw InputError(
                SourcePos{}, "train.offload",
                "DeepSpeed's ZeRO-Offload: needs train.zero 1, 2 or 3 (DeepSpeed, not FSDP), gradients in the parameters' dtype, "
                "no LoRA");
        if (spec.offload == Offload::All && spec.zero != 3)
            throw InputError(SourcePos{}, "train.offload", "all (the parameters too) is ZeRO-3's offload_param: needs train.zero 3");
    }
    Adapters adapters;
    if (lora) {
        if (spec.zero != 0 || fsdp || fp32_grads)
            throw InputError(SourcePos{}, "train.lora",
                             "LoRA is modelled under plain data parallelism (ZeRO-0, no FSDP, gradients in the adapters' dtype)");
        if (spec.lora->rank == 0) throw InputError(SourcePos{}, "train.lora.rank", "must be at least 1");
        if (spec.lora->targets.empty()) throw InputError(SourcePos{}, "train.lora.targets", "names no module");
        adapters.rank = spec.lora->rank;
        adapters.targets = spec.lora->targets;
        adapters.dtype = DtypeRole::Fp32;
    }
    TrainPoint tp{wl.batch, wl.context, spec.recompute, spec.sequence_parallel};
    tp.keep_outputs = spec.loop == Loop::Outputs;
    tp.keep_cache = spec.loop == Loop::Outputs && spec.use_cache;
    tp.grads = holding;
    if (lora) tp.adapters = &adapters;
    // The first pass gives each stage's parameters (the buffers below are sized from them).
    std::vector<Plan::StageTrain> stages = plan.train(tp);
    std::vector<Plan::StageTrain> later;  // micro-batches after the first, gradients there already
    if (in_place_after_first) {
        TrainPoint ip = tp;
        ip.grads = GradHolding::InPlace;
        later = plan.train(ip);
    }
    if (lora) {
        u64 adapted = 0;
        for (const auto& st : stages) adapted += st.act.adapter_parameters;
        if (adapted == 0)
            throw InputError(
                SourcePos{}, "train.lora.targets",
                fmt::format("{} adapts no linear module of {}; valid: its modules' names, e.g. q_proj, k_proj, v_proj, o_proj, "
                            "gate_proj, up_proj, down_proj",
                            fmt::join(spec.lora->targets, ","), model.name));
    }
    bool first = true;
    for (size_t si = 0; si < stages.size(); ++si) {
        const auto& st = stages[si];
        TrainEstimate s = e;
        const u64 P = st.parameters;
        s.stage = st.stage;
        s.stage_layers = st.layers;
        s.parameters_per_gpu = P;
        // Gradients in their dtype: the parameters' (what the backward leaves; a tied embedding
        // once), or Megatron's fp32 main grads.
        const u64 grads_full = fp32_grads ? checked_mul(P, 4, "fp32 main gradients") : st.act.weight_grads;
        const u64 grad_elem = fp32_grads ? 4 : md_bytes;
        const u64 partition = checked_mul(ceil_div_u(P, dp), grad_elem, "gradient partition");
        // Optimizer states: Adam keeps two moments, SGD with momentum one buffer, in the
        // parameters' dtype (PyTorch's default for a bf16 model) or fp32 (mixed precision).
        const u64 moments = states_of(spec.optimizer);
        // LoRA trains its adapters only, stored and updated in fp32 (peft's autocast_adapter_dtype).
        const u64 trained = lora ? st.act.adapter_parameters : P;
        s.trainable_parameters = trained;
        const u64 state_elem = mixed || lora ? 4 : md_bytes;
        const u64 shard = spec.zero >= 1 ? dp : 1;  // what this GPU's optimizer updates: P / shard
        s.optimizer_bytes = ceil_div_u(checked_product({moments, trained, state_elem}, "optimizer states"), shard);
        // Mixed precision keeps fp32 master weights; FSDP2's sharded parameters are fp32 and
        // are the master copy (its all-gather casts them to the compute dtype).
        s.master_weight_bytes = mixed && !fsdp && !lora ? ceil_div_u(checked_mul(P, 4, "master weights"), shard) : 0;
        s.weight_bytes = lora ? checked_add(st.weights, checked_mul(trained, 4, "adapters"), "weights") : st.weights;
        if (spec.zero >= 3)
            s.weight_bytes = fsdp && mixed ? checked_mul(ceil_div_u(P, dp), 4, "sharded parameters") : ceil_div_u(st.weights, dp);
        // Where the gradients are.
        u64 grads_at_step = grads_full;  // held when the optimizer step starts
        switch (holding) {
            case GradHolding::Accumulate:
            case GradHolding::InPlace:
                s.gradient_bytes = grads_full;
                if (holding == GradHolding::InPlace) s.gradients_resident = grads_full;
                break;
            case GradHolding::Fused:
                // One buffer, allocated with the model.
                s.gradient_bytes = s.gradients_resident = grads_full;
                grads_at_step = 0;
                break;
            case GradHolding::Bucketed:
                s.gradient_bytes = partition;
                if (spec.zero == 3) {
                    // ZeRO-3 allocates its gradient partition and one reduction bucket at start-up.
                    s.gradients_resident =
                        checked_add(partition, checked_mul(spec.reduce_bucket, grad_elem, "reduce bucket"), "ZeRO-3 buffers");
                    grads_at_step = 0;
                } else {
                    // ZeRO-2: the bucket(s) at the first gradient, the partition at the first
                    // bucket's reduction; after the backward the partition is flattened. Both are
                    // counted through the whole backward (from its start: an upper bound where
                    // the peak comes before the first weight gradient, at the loss's backward).
                    s.gradient_buffers = checked_add(
                        checked_mul(checked_mul(spec.reduce_bucket, reduce_buckets(spec), "reduce buckets"), grad_elem, "reduce buckets"),
                        partition, "ZeRO-2 buffers");
                    grads_at_step = partition;
                }
                break;
            case GradHolding::PerLayer:
                // The sharded gradients (in the sharded parameters' dtype) fill as layers finish.
                s.gradient_bytes = s.gradient_buffers = checked_mul(ceil_div_u(P, dp), fsdp && mixed ? 4 : md_bytes, "sharded gradients");
                grads_at_step = s.gradient_buffers;
                break;
        }
        // ZeRO-Offload: the fp32 master, the optimizer states and the fp32 gradient partition
        // live in host memory and the CPU's Adam updates them; the gradients stream there as
        // their buckets reduce (ZeRO-3's partition buffer is pinned host memory). `all` (ZeRO-3)
        // keeps the 16-bit parameter shards there too.
        const bool offload = spec.offload != Offload::None;
        if (offload) {
            s.host_bytes = checked_sum(
                {s.master_weight_bytes, s.optimizer_bytes, checked_mul(ceil_div_u(trained, dp), 4, "fp32 gradients")}, "host memory");
            s.master_weight_bytes = s.optimizer_bytes = 0;
            if (spec.zero == 2) {
                s.gradient_buffers = checked_sub(s.gradient_buffers, partition, "gradient buffers");
                s.gradient_bytes = grads_at_step = 0;
            } else if (spec.zero == 3) {
                s.gradients_resident = checked_sub(s.gradients_resident, partition, "gradient buffers");
                s.gradient_bytes = 0;
            }
            if (spec.offload == Offload::All) {
                s.host_bytes = checked_add(s.host_bytes, s.weight_bytes, "host memory");
                s.weight_bytes = 0;
            }
        }
        // Parameters gathered while they run: DeepSpeed a module at a time (its largest, as its
        // estimator counts) plus the prefetch bucket; FSDP2 the root module (embedding, head)
        // through forward and backward and two decoder layers (the one running, the next
        // prefetched).
        if (spec.zero == 3 && !fsdp) {
            s.prefetch_bytes = std::min(checked_mul(spec.prefetch_bucket, md_bytes, "prefetch bucket"), st.weights);
            s.gathered_bytes = std::min(checked_add(st.act.largest_module, s.prefetch_bytes, "gathered"), st.weights);
        } else if (fsdp) {
            s.gathered_bytes =
                std::min(checked_add(st.act.root_weights, checked_mul(2, st.act.largest_layer, "gathered"), "gathered"), st.weights);
        }
        // Saved activations: 1F1B keeps min(pp − stage, M) micro-batches in flight on stage i.
        s.in_flight = pp > 1 ? std::min(pp - st.stage, M) : 1;
        const u64 others = checked_mul(st.act.saved, s.in_flight - 1, "in-flight activations");
        s.saved_activation_bytes = checked_add(others, st.act.saved, "saved activations");
        s.outputs_kept = st.act.outputs_kept;
        s.layer_saved_bytes = st.act.layer_saved;
        s.forward_peak_bytes = checked_add(checked_add(others, st.act.forward_peak, "forward peak"), s.gathered_bytes, "forward peak");
        u64 bwd = checked_add(others, st.act.backward_peak, "backward peak");
        s.peak_at = s.backward_peak_at = st.act.peak_at;
        // The micro-batches after the first find the gradients there and add into them.
        if (!later.empty()) {
            const u64 again = checked_add(checked_add(others, later[si].act.backward_peak, "backward peak"), grads_full, "backward peak");
            if (again > bwd) {
                bwd = again;
                s.backward_peak_at = s.peak_at = later[si].act.peak_at + " (a later micro-batch)";
            }
        }
        s.backward_peak_bytes = checked_add(checked_add(bwd, s.gathered_bytes, "backward peak"), s.gradient_buffers, "backward peak");
        // The optimizer step: mixed precision first makes an fp32 copy of the gradients it
        // updates the master weights from (DeepSpeed: the flat partition .to(fp32)); Megatron's
        // are fp32 already. PyTorch's foreach Adam/AdamW then makes one state's worth of
        // temporaries (the second moments' sqrt); Megatron's fused Adam none; SGD updates in place.
        // DeepSpeed's ZeRO-3 steps one sub-group (sub_group_size elements) at a time, flattening
        // its gradients (a copy) before the fp32 conversion.
        const u64 stepped = spec.zero == 3 && !fsdp ? std::min(ceil_div_u(trained, dp), spec.sub_group) : ceil_div_u(trained, shard);
        s.fp32_gradient_bytes = mixed && !fp32_grads && !fsdp && !lora && !offload ? checked_mul(stepped, 4, "fp32 gradients") : 0;
        if (s.fp32_gradient_bytes && spec.zero == 3)
            s.fp32_gradient_bytes =
                checked_add(s.fp32_gradient_bytes, checked_mul(stepped, grad_elem, "flattened gradients"), "fp32 gradients");
        s.optimizer_step_bytes = moments == 2 && !fp32_grads && !offload ? checked_mul(stepped, state_elem, "optimizer step") : 0;
        const u64 step = checked_sum({grads_at_step, s.fp32_gradient_bytes, s.optimizer_step_bytes, s.outputs_kept}, "optimizer step");
        s.train_peak_bytes = std::max(s.backward_peak_bytes, step);
        if (step > s.backward_peak_bytes) s.peak_at = "optimizer step";
        s.resident_before = checked_sum({s.weight_bytes, s.optimizer_bytes, s.master_weight_bytes, s.gradients_resident}, "resident");
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
    const bool fp32g = *e.spec.fp32_grads;
    const char* who = spec.sharder == Sharder::Fsdp ? "FSDP2" : "DeepSpeed ZeRO-3";
    add("weights", "weights", e.weight_bytes,
        fmt::format("this GPU's {} parameters (stage {}, TP {}){}", group_digits(e.parameters_per_gpu), e.stage, dep.tp,
                    spec.zero >= 3
                        ? fmt::format(", sharded over {} replicas ({}{})", e.dp, who,
                                      spec.sharder == Sharder::Fsdp && spec.precision == Precision::Mixed ? ": fp32, the master copy" : "")
                    : spec.lora ? fmt::format(", frozen, linear layers in {}; + the fp32 adapters ({} parameters)",
                                              e.workload.weight_dtype->name, group_digits(e.trainable_parameters))
                                : ""));
    std::string grads_how;
    if (fp32g)
        grads_how = "fp32 main gradients, one buffer allocated with the model (Megatron)";
    else if (spec.sharder == Sharder::Fsdp)
        grads_how = fmt::format(
            "sharded over {} replicas, reduce-scattered as each layer's backward ends (FSDP2; held from the first "
            "layer's on, in the backward peak)",
            e.dp);
    else if (spec.zero >= 2)
        grads_how = fmt::format(
            "this GPU's partition (1/{}), reduced through {} bucket(s) of {} elements as they are formed (DeepSpeed "
            "ZeRO-{})",
            e.dp, reduce_buckets(spec), group_digits(spec.reduce_bucket), spec.zero);
    else
        grads_how = fmt::format("one per parameter in the parameters' dtype{}",
                                spec.set_to_none
                                    ? (spec.micro_batches > 1 ? "; from the second micro-batch on they are there before the backward" : "")
                                    : "; kept between steps (zero_grad(set_to_none=False))");
    if (spec.lora)
        grads_how = fmt::format("the adapters' only, fp32 (LoRA r{} on {}: {} trainable parameters; the base is frozen)", spec.lora->rank,
                                fmt::join(spec.lora->targets, ","), group_digits(e.trainable_parameters));
    add("gradients", "gradients", e.gradient_bytes, grads_how);
    add("optimizer_states", "optimizer", e.optimizer_bytes,
        fmt::format("{}: {} state(s) per parameter in {}{}", to_string(spec.optimizer), states_of(spec.optimizer),
                    spec.precision == Precision::Mixed || spec.lora ? "fp32" : md.name,
                    spec.zero >= 1 ? fmt::format(", ZeRO-{} over {} replicas", spec.zero, e.dp) : ""));
    if (e.master_weight_bytes) add("master_weights", "optimizer", e.master_weight_bytes, "fp32 copy of every parameter (mixed precision)");
    if (e.gradients_resident && e.gradients_resident != e.gradient_bytes)
        add("gradients_resident", "gradients", e.gradients_resident,
            spec.zero == 3 && spec.sharder == Sharder::DeepSpeed && !fp32g
                ? "allocated at start-up: the gradient partition and one reduction bucket (DeepSpeed ZeRO-3)"
                : "gradients allocated before the forward");
    if (e.gradient_buffers && spec.sharder == Sharder::DeepSpeed)
        add("gradient_buffers", "gradients", e.gradient_buffers,
            "reduction bucket(s) and the gradient partition (DeepSpeed ZeRO-2), counted through the whole backward (DeepSpeed "
            "allocates them at the first weight gradient)");
    if (e.host_bytes)
        add("host_memory", "host", e.host_bytes,
            fmt::format(
                "in host memory, not on the GPU (ZeRO-Offload): fp32 master, optimizer states and fp32 gradients of this GPU's 1/{}{}",
                e.dp, spec.offload == Offload::All ? ", and its 16-bit parameter shard" : ""));
    if (e.gathered_bytes)
        add("gathered_parameters", "weights", e.gathered_bytes,
            spec.sharder == Sharder::Fsdp
                ? "unsharded while they run: the root module (embedding, final norm, LM head) and two decoder layers (one running, the "
                  "next prefetched)"
                : fmt::format("unsharded while it runs: the largest module ({}) and the prefetch bucket ({} elements)",
                              group_digits(e.gathered_bytes - e.prefetch_bytes), group_digits(spec.prefetch_bucket)));
    add("saved_activations", "activations", e.saved_activation_bytes,
        fmt::format("what autograd keeps after the forward, read off every op of the layer graphs ({} tokens = {} × {}; recompute {}) "
                    "+ the loss's fp32 log-softmax of {} × {} vocab{}; × {} micro-batch(es) in flight",
                    group_digits(T), wl.batch, wl.context, to_string(spec.recompute), group_digits(T), group_digits(m.vocab_size),
                    e.outputs_kept ? fmt::format(" + the output the loop holds ({}: logits{})", group_digits(e.outputs_kept),
                                                 spec.use_cache && spec.recompute != Recompute::Full ? ", cache" : "")
                                   : "",
                    e.in_flight));
    add("backward_peak", "activations", e.backward_peak_bytes,
        fmt::format("the highest allocation through forward and backward above what was allocated before it, gradients included (at {})",
                    e.backward_peak_at));
    if (e.fp32_gradient_bytes)
        add("fp32_gradients", "optimizer", e.fp32_gradient_bytes,
            spec.zero == 3 ? fmt::format("the optimizer step's fp32 copy of one sub-group's gradients ({} elements at most) and their "
                                         "flattened copy (DeepSpeed ZeRO-3)",
                                         group_digits(spec.sub_group))
                           : "the optimizer step's fp32 copy of the gradients it updates (mixed precision)");
    add("optimizer_step", "optimizer", e.optimizer_step_bytes,
        fp32g ? "none: a fused Adam updates in place" : "the step's temporaries beside the gradients (foreach Adam: one state's worth)");
    add("train_peak", "activations", e.train_peak_bytes, "max(backward peak, gradients + fp32 gradients + optimizer step + outputs held)");
    add("runtime_overhead", "overhead", e.runtime_overhead, "CUDA context and library workspaces of the runtime");
    add("total", "total", e.total,
        "runtime overhead + weights + optimizer states (+ master weights, + gradients allocated before the forward) + train peak");
    // The peers' own estimators, where they describe this configuration.
    const bool adam = spec.optimizer == Optimizer::AdamW || spec.optimizer == Optimizer::Adam;
    const bool whole = dep.tp == 1 && dep.pp == 1;
    if (adam && spec.precision == Precision::Mixed && whole && spec.sharder == Sharder::DeepSpeed && !fp32g && spec.zero >= 2 &&
        spec.offload == Offload::None) {
        const u64 P = e.parameters_per_gpu;
        const u64 L = e.gathered_bytes > e.prefetch_bytes ? (e.gathered_bytes - e.prefetch_bytes) / md.bits * 8 : 0;
        const u64 ds = spec.zero == 2 ? deepspeed_zero2_gpu_bytes(P, e.dp) : deepspeed_zero3_gpu_bytes(P, L, e.dp);
        add("deepspeed_estimator", "cross-check", ds,
            spec.zero == 2
                ? fmt::format("DeepSpeed's estimate_zero2_model_states_mem_needs (no offload): 2P + 18P/N, P = {}, N = {}; memtax's "
                              "terms: weights 2P, gradient partition 2P/N, fp32 gradients 4P/N, master 4P/N, states 8P/N "
                              "(DeepSpeed's estimator leaves out the reduction buckets)",
                              group_digits(P), e.dp)
                : fmt::format("DeepSpeed's estimate_zero3_model_states_mem_needs (no offload): 4L + 18P/N, P = {}, L = {} (the "
                              "largest module), N = {}; memtax's terms: 2P/N each for weights and the gradient partition, "
                              "fp32 gradients 4P/N, master 4P/N, states 8P/N; the gathered module and its gradient 2L each",
                              group_digits(P), group_digits(L), e.dp));
    }
    if (adam && spec.precision == Precision::Mixed && fp32g)
        add("megatron_estimator", "cross-check", megatron_weight_and_optimizer_bytes(e.parameters_per_gpu, e.dp, spec.zero >= 1),
            fmt::format("Megatron-LM's theoretical_memory_usage.py: {} bytes per parameter of this GPU's shard ({}); memtax's terms: "
                        "weights 2, fp32 main gradients 4, master 4 and states 8{}",
                        spec.zero >= 1 ? fmt::format("6 + 12/DP (distributed optimizer, DP {})", e.dp) : std::string("18"),
                        group_digits(e.parameters_per_gpu), spec.zero >= 1 ? " (the last two over DP)" : ""));
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
