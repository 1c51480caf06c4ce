#include "model/train_time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

#include "model/time_internal.hpp"

namespace memtax {
namespace {

// The host and the GPU as two clocks within one phase (the phases are separated by a
// synchronisation: the loop reads its loss): the host queues kernel after kernel, the GPU starts
// each once it is queued and the one before has finished.
struct Clocks {
    double host = 0, gpu = 0, busy = 0;
    u64 kernels = 0;
    void run(double gpu_s, double host_s) {
        host += host_s;
        gpu = std::max(gpu, host) + gpu_s;
        busy += gpu_s;
        ++kernels;
    }
    double end() const { return std::max(gpu, host); }
};

// One backward kernel: its class and traffic.
struct Kernel {
    KernelClass cls = KernelClass::Stream;
    LaunchClass launch = LaunchClass::Vectorized;  // Stream kernels: the eager class it runs as
    u64 flops = 0, bytes = 0, elements = 0;
};

double seconds_of(const Estimate& e, const Rates& r, const Kernel& k, bool masked) {
    if (k.cls == KernelClass::Stream) return launch_seconds(r, LaunchTraffic{k.launch, k.elements, k.bytes});
    ClassRates cr = class_rates(e.gpu(), k.cls, r.act_name);
    if (k.cls == KernelClass::AttentionPrefill && masked && r.has_eager) cr.flops *= r.eager.masked_attention;
    return kernel_time(cr, k.cls, k.flops, k.bytes).seconds;
}

// What autograd runs for one op (train_time.hpp's table).
// `frozen`: the op's weights need no gradient (LoRA's base); `accumulate`: the weight's gradient
// exists and the new one is added in place.
void backward_kernels(const OpTraffic& t, bool frozen, bool accumulate, std::vector<Kernel>& out) {
    const OpInfo& op = *t.op;
    if (op.group == OpGroup::KvCache || op.group == OpGroup::Sampler || op.group == OpGroup::Embedding) return;
    if (op.kind == OpKind::Matmul && t.flops > 0) {
        const bool weighted = !op.weights.empty();
        out.push_back({KernelClass::Gemm, LaunchClass::Vectorized, t.flops, t.out_bytes + t.weight_bytes + t.in_bytes, 0});
        if (!weighted) {
            out.push_back({KernelClass::Gemm, LaunchClass::Vectorized, t.flops, t.out_bytes + t.in_bytes + t.in_bytes, 0});
        } else if (!frozen) {
            out.push_back({KernelClass::Gemm, LaunchClass::Vectorized, t.flops, t.out_bytes + t.in_bytes + t.weight_bytes, 0});
            if (accumulate) out.push_back({KernelClass::Stream, LaunchClass::Vectorized, 0, 3 * t.weight_bytes, 3 * t.weight_bytes});
        }
        return;
    }
    if (op.kind == OpKind::Attention && t.flops > 0) {
        // The flash backward's preprocessing (rowsum of dO ∘ O), then the kernel: 5 products for 2.
        out.push_back({KernelClass::Stream, LaunchClass::Vectorized, 0, 2 * t.out_bytes, 2 * t.out_bytes});
        out.push_back({KernelClass::AttentionPrefill, LaunchClass::Vectorized, t.flops / 2 * 5, 2 * (t.in_bytes + t.out_bytes), 0});
        return;
    }
    if (t.in_bytes + t.out_bytes == 0 && t.n_launches == 0) return;  // a view: nothing runs
    // Each input's gradient is a fresh contiguous tensor: the backward's kernels are vectorized
    // (a softmax's and a reduction's keep their class). An op that keeps two or more operands
    // (a product) forms two gradients per kernel of its forward; any other one (a scale, a cast,
    // a residual's fork, a mask added) one.
    const int kept = std::popcount(static_cast<unsigned>(op.saves_inputs)) + (op.saves_output ? 1 : 0) + (op.saved.empty() ? 0 : 1);
    const int per = kept >= 2 ? 2 : 1;
    auto backward_class = [](LaunchClass c) { return c == LaunchClass::Softmax || c == LaunchClass::Reduce ? c : LaunchClass::Vectorized; };
    if (t.n_launches > 0) {
        for (u64 i = 0; i < t.n_launches; ++i)
            for (int k = 0; k < per; ++k)
                out.push_back({KernelClass::Stream, backward_class(t.launches[i].cls), 0, t.launches[i].bytes, t.launches[i].elements});
        return;
    }
    const u64 b = t.in_bytes + t.out_bytes;
    const LaunchClass c = op.kind == OpKind::Softmax ? LaunchClass::Softmax : LaunchClass::Vectorized;
    for (int k = 0; k < per; ++k) out.push_back({KernelClass::Stream, c, 0, b, b});
}

// LoRA on one linear op (peft's Linear.forward): x cast to the adapters' fp32, lora_A, lora_B,
// the scaling, the sum with the base output (promoted to fp32) and the cast back: six kernels,
// memory-bound (rank ≪ width). Its backward mirrors them: each kernel's gradient moves what the
// kernel moved, and lora_A and lora_B form two gradients each (input and weight).
void adapter_kernels(u64 tokens, u64 in, u64 out, u64 rank, u64 act_bytes, std::vector<Kernel>& fwd, std::vector<Kernel>& bwd) {
    const u64 x = checked_mul(tokens, in, "adapter"), y = checked_mul(tokens, out, "adapter"), z = checked_mul(tokens, rank, "adapter");
    const u64 a = in * rank * 4, b = out * rank * 4;
    const std::array<u64, 6> f = {x * (act_bytes + 4), x * 4 + z * 4 + a,  z * 4 + y * 4 + b, y * 8,
                                  y * (act_bytes + 8), y * (4 + act_bytes)};
    for (u64 v : f) fwd.push_back({KernelClass::Stream, LaunchClass::Vectorized, 0, v, v});
    for (size_t i : {0, 1, 1, 2, 2, 3, 4, 5}) bwd.push_back({KernelClass::Stream, LaunchClass::Vectorized, 0, f[i], f[i]});
}

void add_kind(std::vector<KindTime>& rows, const std::string& name, double s, u64 flops, u64 bytes, u64 kernels) {
    KindTime& row = kind_row(rows, name);
    row.seconds += s;
    row.flops = checked_add(row.flops, flops, "flops");
    row.bytes = checked_add(row.bytes, bytes, "bytes");
    row.ops += kernels;
}

// torch.optim's multi-tensor apply: a launch covers at most 320 blocks of 65,536 elements, and
// at most 110, 64, 48, 36 or 30 tensors for 1 to 5 tensor lists (ATen MultiTensorApply.cuh).
u64 multi_tensor_launches(u64 elements, u64 tensors, u64 lists) {
    static constexpr std::array<u64, 5> max_tensors = {110, 64, 48, 36, 30};
    const u64 chunks = ceil_div(elements, 65536) + tensors;  // each tensor's last chunk is partial
    return std::max({u64{1}, ceil_div(chunks, 320), ceil_div(tensors, max_tensors[std::min<u64>(lists, 5) - 1])});
}

}  // namespace

TrainTime estimate_train_time(const TrainEstimate& te, const Topology& topo, u64 budget_tokens, double price_per_gpu_hour) {
    const ModelSpec& m = *te.model_spec;
    const TrainSpec& spec = te.spec;
    if (spec.offload != Offload::None)
        throw InputError(SourcePos{}, "train.offload",
                         "the step time of an optimizer in host memory is not modelled (its CPU Adam and PCIe transfers); valid with "
                         "time: none");
    Workload w = te.workload;
    w.mode = Mode::Prefill;
    w.logits_kept = 0;
    const Plan plan = Plan::compile(m, te.gpu, te.deployment, w);
    const u64 dp = plan.replicas(), B = te.workload.batch, S = te.workload.context, M = spec.micro_batches;
    const u64 tp = te.deployment.tp, pp = te.deployment.pp;
    const Estimate e = plan.estimate(Point{Mode::Prefill, checked_mul(B, dp, "batch"), S}, Detail::Steps);
    const Rates base = rates_for(e);
    if (base.bw <= 0 || base.act_rate <= 0)
        throw InputError(SourcePos{te.gpu.file, 0, 0}, "hbm_bandwidth_bytes_per_s",
                         "needs a bandwidth and a matrix rate for the time model");
    const auto& th = e.workload.runtime.train_host;
    const double h_fwd = th ? th->forward_per_op_s : 0, h_bwd = th ? th->backward_per_op_s : 0;

    TrainTime out;
    out.rate_dtype = base.act_name;
    out.calibrated = te.gpu.calibrated;
    out.micro_batches = M;
    out.gpus = checked_product({dp, tp, pp}, "GPUs");

    // LoRA: which ops carry adapters, and the adapters' parameters and tensors.
    const bool lora = spec.lora.has_value();
    Adapters adapters;
    if (lora) {
        adapters.rank = spec.lora->rank;
        adapters.targets = spec.lora->targets;
    }
    const u64 T = checked_mul(B, S, "tokens");
    const u64 act_bytes = std::max<u64>(m.dtype.bits / 8, 1);

    // Forward: the step graphs as inference prices them (their GPU time, kinds and
    // communication), the host paying its cost per kernel launched.
    Rates rf = base;
    rf.host_op = h_fwd;
    rf.host_step = th ? th->forward_per_step_s : 0;
    rf.host_per_launch = true;
    std::vector<std::vector<double>> op_seconds;  // per step graph, per op: one run's GPU seconds
    const StepTime f = step_time(e, topo, rf, &op_seconds);
    Clocks cf;
    cf.host = f.host_s;
    cf.gpu = f.seconds - f.communication_s;
    cf.busy = f.gpu_s;
    cf.kernels = f.host_ops;
    std::vector<std::vector<OpTraffic>> traffic;  // per step graph, read by the backward walks
    for (const GraphUse& gu : e.step_graphs) traffic.push_back(gu.graph->traffic(gu.bindings));
    out.kinds = f.kinds;
    u64 fwd_flops = f.flops, fwd_bytes = f.bytes;
    // The adapters' own kernels, forward and backward, for one run of each graph.
    std::vector<std::vector<Kernel>> adapter_fwd(e.step_graphs.size()), adapter_bwd(e.step_graphs.size());
    u64 adapter_tensors = 0;
    if (lora)
        for (size_t gi = 0; gi < e.step_graphs.size(); ++gi) {
            const GraphUse& gu = e.step_graphs[gi];
            for (const OpInfo& op : gu.graph->ops()) {
                if (!adapters.adapts(op.name) || op.weights.empty() || !op.weights.front().in) continue;
                const WeightTensor& wt = op.weights.front();
                adapter_kernels(T, wt.in, wt.elements / wt.in, adapters.rank, act_bytes, adapter_fwd[gi], adapter_bwd[gi]);
                adapter_tensors += 2 * gu.count;
            }
        }
    for (size_t gi = 0; gi < e.step_graphs.size(); ++gi)
        for (u64 i = 0; i < e.step_graphs[gi].count; ++i)
            for (const Kernel& k : adapter_fwd[gi]) {
                const double s = seconds_of(e, base, k, false);
                cf.run(s, h_fwd);
                add_kind(out.kinds, "lora adapters", s, 0, k.bytes, 1);
                fwd_bytes = checked_add(fwd_bytes, k.bytes, "bytes");
            }
    // The loss (ForCausalLMLoss): logits.float(), log_softmax, nll_loss.
    const u64 V = e.shard.vocab;
    const u64 TV = checked_mul(T, V, "logits");
    const u64 lb = std::max<u64>(e.workload.logits_dtype->bits / 8, 1);
    double loss_s = 0;
    {
        const std::array<Kernel, 3> loss = {Kernel{KernelClass::Stream, LaunchClass::Vectorized, 0, checked_mul(TV, lb + 4, "loss"), TV},
                                            Kernel{KernelClass::Stream, LaunchClass::Softmax, 0, checked_mul(TV, 8, "loss"), TV},
                                            Kernel{KernelClass::Stream, LaunchClass::Vectorized, 0, checked_mul(T, 12, "loss"), T}};
        for (const Kernel& k : loss) {
            const double s = seconds_of(e, base, k, false);
            cf.run(s, h_fwd);
            loss_s += s;
            add_kind(out.kinds, "loss", s, 0, k.bytes, 1);
            fwd_bytes = checked_add(fwd_bytes, k.bytes, "bytes");
        }
    }
    out.forward.gpu_s = cf.busy;
    out.forward.host_s = th ? cf.host : 0;
    out.forward.seconds = cf.end() + f.communication_s;
    out.forward.flops = fwd_flops;
    out.forward.bytes = fwd_bytes;
    out.forward.kernels = cf.kernels;
    double tp_backward_s = 0;
    for (const auto& k : f.kinds)
        if (k.kind == "tp all-reduce" || k.kind == "pp transfer") tp_backward_s += k.seconds;

    // Backward: the loss, the graphs in reverse (the head first), the embedding.
    const bool full = spec.recompute == Recompute::Full;
    const bool frozen = lora;
    const bool emb_trains = !frozen;
    auto backward = [&](bool accumulate, TrainPhaseTime& ph, double& recompute_s, double& accumulate_s, std::vector<KindTime>* kinds) {
        Clocks c;
        u64 flops = 0, bytes = 0;
        auto run = [&](const Kernel& k, const std::string& group, double host) {
            const double s = seconds_of(e, base, k, false);
            c.run(s, host);
            flops = checked_add(flops, k.flops, "flops");
            bytes = checked_add(bytes, k.bytes, "bytes");
            if (kinds) add_kind(*kinds, group, s, k.flops, k.bytes, 1);
            return s;
        };
        // nll_loss's gradient (fp32 zeros, then one scatter), log_softmax's backward, the cast back.
        for (const Kernel& k : {Kernel{KernelClass::Stream, LaunchClass::Vectorized, 0, checked_mul(TV, 4, "loss"), TV},
                                Kernel{KernelClass::Stream, LaunchClass::Vectorized, 0, checked_mul(T, 12, "loss"), T},
                                Kernel{KernelClass::Stream, LaunchClass::Softmax, 0, checked_mul(TV, 12, "loss"), TV},
                                Kernel{KernelClass::Stream, LaunchClass::Vectorized, 0, checked_mul(TV, 4 + lb, "loss"), TV}}) {
            const double s = run(k, "loss", h_bwd);
            if (kinds) loss_s += s;
        }
        std::vector<Kernel> ks;
        for (size_t gi = e.step_graphs.size(); gi-- > 0;) {
            const GraphUse& gu = e.step_graphs[gi];
            const std::vector<OpTraffic>& ops = traffic[gi];
            const bool masked = gu.bindings[Sym::MaskConv] == 1;
            for (u64 i = 0; i < gu.count; ++i) {
                if (full && gu.is_layer)
                    for (size_t k = 0; k < ops.size(); ++k) {
                        const OpTraffic& t = ops[k];
                        const double s = op_seconds[gi][k];
                        c.run(s, static_cast<double>(std::max<u64>(1, t.n_launches)) * h_fwd);
                        recompute_s += s;
                        flops = checked_add(flops, t.flops, "flops");
                        if (kinds) add_kind(*kinds, "recompute", s, t.flops, t.bytes, 1);
                    }
                if (full && gu.is_layer)
                    for (const Kernel& k : adapter_fwd[gi]) recompute_s += run(k, "recompute", h_fwd);
                for (const Kernel& k : adapter_bwd[gi]) run(k, "lora adapters", h_bwd);
                for (auto ot = ops.rbegin(); ot != ops.rend(); ++ot) {
                    ks.clear();
                    const bool op_frozen = frozen || ot->op->weights.empty();
                    backward_kernels(*ot, frozen, accumulate && !op_frozen, ks);
                    for (const Kernel& k : ks) {
                        const double s = seconds_of(e, base, k, masked);
                        c.run(s, h_bwd);
                        flops = checked_add(flops, k.flops, "flops");
                        bytes = checked_add(bytes, k.bytes, "bytes");
                        if (kinds) add_kind(*kinds, to_string(ot->op->group), s, k.flops, k.bytes, 1);
                        if (accumulate && k.cls == KernelClass::Stream && ot->op->kind == OpKind::Matmul) accumulate_s += s;
                    }
                }
            }
        }
        if (emb_trains) {
            // embedding_dense_backward: a zero [vocab, hidden] gradient, the rows accumulated;
            // a tied one is added out of place to the head's.
            const u64 emb = checked_product({V, m.hidden_size, act_bytes}, "embedding");
            const u64 rows = checked_product({T, m.hidden_size, act_bytes, 2}, "embedding");
            run({KernelClass::Stream, LaunchClass::Vectorized, 0, emb, emb}, "embedding", h_bwd);
            run({KernelClass::Stream, LaunchClass::Vectorized, 0, rows, rows}, "embedding", h_bwd);
            if (m.tie_word_embeddings || accumulate) {
                const double s = run({KernelClass::Stream, LaunchClass::Vectorized, 0, 3 * emb, 3 * emb}, "embedding", h_bwd);
                if (accumulate) accumulate_s += s;
            }
        }
        ph.gpu_s = c.busy;
        ph.host_s = th ? c.host : 0;
        ph.seconds = c.end() + tp_backward_s;
        ph.flops = flops;
        ph.bytes = bytes;
        ph.kernels = c.kernels;
    };
    // The first micro-batch forms the gradients (unless they stay allocated); later ones add.
    double recompute_s = 0, accumulate_s = 0;
    backward(!spec.set_to_none, out.backward, recompute_s, accumulate_s, &out.kinds);
    out.recompute_s = recompute_s;
    out.accumulate_s = accumulate_s;
    TrainPhaseTime later = out.backward;
    if (M > 1 && spec.set_to_none) {
        double r2 = 0, a2 = 0;
        backward(true, later, r2, a2, nullptr);
    }
    out.loss_s = loss_s;

    // The optimizer step over this GPU's trainable parameters (its ZeRO shard).
    const bool mixed = spec.precision == Precision::Mixed;
    const u64 shard = spec.zero >= 1 ? dp : 1;
    const u64 stepped = ceil_div(te.trainable_parameters, shard);
    const u64 state = mixed || lora ? 4 : act_bytes;
    u64 tensors = 0;
    if (lora) {
        tensors = adapter_tensors;
    } else if (spec.zero >= 1) {
        tensors = 1;  // DeepSpeed's flat partition
    } else {
        for (const GraphUse& gu : e.step_graphs)
            for (const OpInfo& op : gu.graph->ops())
                for (const WeightTensor& wt : op.weights)
                    if (!wt.shared) tensors += gu.count;
        tensors += 1;  // the embedding
    }
    // Each pass: the tensor lists it reads or writes (element accesses in the states' dtype).
    struct Pass {
        u64 lists, accesses;
    };
    std::vector<Pass> passes;
    const bool fused = e.workload.runtime.training.fused_optimizer;
    switch (spec.optimizer) {
        case Optimizer::AdamW:
        case Optimizer::Adam:
            if (fused) {
                passes = {{4, 7}};
            } else {
                // _multi_tensor_adam: (AdamW) params *= 1 − lr·wd; exp_avg.lerp_(grad); exp_avg_sq *= β2;
                // exp_avg_sq.addcmul_(grad, grad); denom = sqrt(exp_avg_sq); denom /= bc2; denom += eps;
                // params.addcdiv_(exp_avg, denom).
                if (spec.optimizer == Optimizer::AdamW) passes.push_back({1, 2});
                passes.insert(passes.end(), {{2, 3}, {1, 2}, {3, 4}, {2, 2}, {1, 2}, {1, 2}, {3, 4}});
            }
            break;
        case Optimizer::Sgd:
            passes = {{2, 3}};
            break;
        case Optimizer::SgdMomentum:
            passes = {{1, 2}, {2, 3}, {2, 3}};
            break;
    }
    // Mixed precision: the gradients cast up to fp32, the updated master weights cast down.
    std::vector<u64> pass_bytes;
    for (const Pass& p : passes) pass_bytes.push_back(checked_product({p.accesses, stepped, state}, "optimizer"));
    if (mixed && !lora) {
        passes.push_back({2, 0});
        pass_bytes.push_back(checked_mul(stepped, 4 + act_bytes, "optimizer"));
        passes.push_back({2, 0});
        pass_bytes.push_back(checked_mul(stepped, 4 + act_bytes, "optimizer"));
    }
    {
        Clocks c;
        c.host = th ? th->optimizer_per_step_s : 0;
        const double bw = base.bw * base.eager.foreach;
        u64 bytes = 0;
        for (size_t i = 0; i < passes.size(); ++i) {
            const u64 launches = multi_tensor_launches(stepped, tensors, passes[i].lists);
            const double each = static_cast<double>(pass_bytes[i]) / static_cast<double>(launches) / bw;
            for (u64 l = 0; l < launches; ++l) c.run(base.queued + each, th ? th->optimizer_per_launch_s : 0);
            bytes = checked_add(bytes, pass_bytes[i], "optimizer");
        }
        out.optimizer.gpu_s = c.busy;
        out.optimizer.host_s = th ? c.host : 0;
        out.optimizer.seconds = stepped ? c.end() : 0;
        out.optimizer.bytes = bytes;
        out.optimizer.kernels = c.kernels;
        add_kind(out.kinds, "optimizer", c.busy, 0, bytes, c.kernels);
    }

    // Data-parallel collectives (after the backward, not overlapped).
    if (dp > 1) {
        std::vector<u64> ranks;
        for (u64 i = 0; i < dp; ++i) ranks.push_back(i * tp * pp);
        if (ranks.back() >= topo.gpus())
            throw InputError(SourcePos{topo.spec().file, 0, 0}, "deployment.cluster",
                             fmt::format("{} has {} GPUs; {} data-parallel replicas of TP {} × PP {} need {}", topo.spec().name,
                                         topo.gpus(), dp, tp, pp, dp * tp * pp));
        const PathCost ring = topo.ring(ranks);
        const u64 P = lora ? te.trainable_parameters : te.parameters_per_gpu;
        const u64 grad_bytes = checked_mul(P, lora || spec.fp32_grads.value_or(false) ? 4 : act_bytes, "gradients");
        const u64 param_bytes = checked_mul(te.parameters_per_gpu, act_bytes, "parameters");
        double comm = 0;
        if (spec.zero == 0)
            comm = all_reduce_seconds(grad_bytes, dp, ring);
        else if (spec.zero == 1)
            comm = all_gather_seconds(grad_bytes, dp, ring) + all_gather_seconds(param_bytes, dp, ring);
        else if (spec.zero == 2)
            comm = static_cast<double>(M) * all_gather_seconds(grad_bytes, dp, ring) + all_gather_seconds(param_bytes, dp, ring);
        else
            comm = static_cast<double>(M) * (2 * all_gather_seconds(param_bytes, dp, ring) + all_gather_seconds(grad_bytes, dp, ring));
        out.communication_s = comm;
        KindTime& row = communication_row(out.kinds, "dp gradients");
        row.seconds += comm;
        row.ops += 1;
    }
    out.communication_s += static_cast<double>(M) * tp_backward_s;

    // The step: micro-batches of forward and backward (a pipeline: M + PP − 1 slots of one
    // stage's share), then the optimizer and the collectives.
    const double first = out.forward.seconds + out.backward.seconds;
    const double next = out.forward.seconds + later.seconds;
    double passes_s = first + static_cast<double>(M - 1) * next;
    if (pp > 1) passes_s = static_cast<double>(M + pp - 1) * (passes_s / static_cast<double>(M)) / static_cast<double>(pp);
    out.step_s = passes_s + out.optimizer.seconds + (dp > 1 ? out.communication_s - static_cast<double>(M) * tp_backward_s : 0);
    out.tokens_per_step = checked_product({B, S, M, dp}, "tokens per step");
    out.tokens_per_s = out.step_s > 0 ? static_cast<double>(out.tokens_per_step) / out.step_s : 0;
    // The step graphs cover every layer of one TP rank (a pipeline's stages included), so the
    // model's forward is TP of them; each replica runs M micro-batches.
    out.model_flops_per_step =
        3.0 * static_cast<double>(fwd_flops) * static_cast<double>(tp) * static_cast<double>(M) * static_cast<double>(dp);
    const double peak = peak_rate(te.gpu, base.act_name);
    out.mfu = out.step_s > 0 && peak > 0 ? out.model_flops_per_step / (out.step_s * static_cast<double>(out.gpus) * peak) : 0;
    if (budget_tokens) {
        out.budget_tokens = budget_tokens;
        const double seconds = out.tokens_per_s > 0 ? static_cast<double>(budget_tokens) / out.tokens_per_s : 0;
        out.days = seconds / 86400;
        out.gpu_hours = seconds / 3600 * static_cast<double>(out.gpus);
        out.price_per_gpu_hour = price_per_gpu_hour;
        out.dollars = out.gpu_hours * price_per_gpu_hour;
    }
    return out;
}

}  // namespace memtax
