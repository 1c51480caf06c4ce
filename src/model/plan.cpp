#include "model/plan.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace memtax {

struct Plan::Impl {
    std::shared_ptr<const ModelSpec> model_spec;  // the whole model
    std::shared_ptr<const GpuSpec> gpu_spec;
    const ModelSpec& model;
    const GpuSpec& gpu;
    Impl(const ModelSpec& m, const GpuSpec& g)
        : model_spec(std::make_shared<const ModelSpec>(m)),
          gpu_spec(std::make_shared<const GpuSpec>(g)),
          model(*model_spec),
          gpu(*gpu_spec) {}
    Deployment dep;
    Workload wl;  // resolved choices
    ShardSizes shard;
    u64 replicas = 1;
    // One stage, or the first and the last of a pipeline (a middle stage has as many layers as
    // the first and neither embedding nor head, so these two bound every other).
    struct Stage {
        ModelSpec model;
        u64 index = 0, first_layer = 0;
        std::unique_ptr<RuntimePlan> runtime;
        u64 parameters = 0;
    };
    std::vector<Stage> stages;
    u64 parameters = 0;
};

namespace {

// The deployment's split; each variant of the model checks that it can take it (its TP rule).
ShardSizes shard(const BlockRegistry& blocks, const ModelSpec& m, u64 tp, u64 ep) {
    if (tp == 0) throw InputError(SourcePos{}, "deployment.tp", "must be at least 1");
    check_variants(blocks, m, tp, ep);
    ShardSizes s;
    s.tp = tp;
    s.ep = ep;
    s.vocab = ceil_div(m.vocab_size, tp);  // vocab-parallel embedding and LM head
    return s;
}

ModelSpec stage_model(const ModelSpec& m, u64 first, u64 count) {
    ModelSpec s = m;
    s.num_layers = count;
    s.layers.assign(m.layers.begin() + static_cast<std::ptrdiff_t>(first), m.layers.begin() + static_cast<std::ptrdiff_t>(first + count));
    return s;
}

DtypePolicy policy(const Workload& wl) {
    DtypePolicy p;
    p.weight = *wl.weight_dtype;
    p.kv = *wl.kv_dtype;
    p.softmax = *wl.softmax_dtype;
    p.logits = *wl.logits_dtype;
    p.logits_kept = *wl.logits_kept;
    return p;
}

}  // namespace

Plan Plan::compile(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl_in, const BlockRegistry& blocks,
                   const RuntimeRegistry& runtimes) {
    auto impl = std::make_shared<Impl>(model, gpu);
    Impl& p = *impl;
    p.dep = dep;
    p.wl = wl_in;
    Workload& wl = p.wl;
    const RuntimeSpec& rt = wl.runtime;
    if (rt.context_overhead.find("default") == rt.context_overhead.end())
        throw InputError(SourcePos{rt.file, 0, 0}, "runtime", "runtime profile has no context_overhead.default entry");
    // Weights as the checkpoint ships them unless the workload says otherwise; an explicit
    // weight dtype applies to the experts too.
    DType expert;
    if (!wl.weight_dtype) {
        DType d = model.dtype;
        if (!model.shipped_linear_dtype.empty()) parse_dtype(model.shipped_linear_dtype, d);
        wl.weight_dtype = d;
        if (!model.shipped_expert_dtype.empty()) parse_dtype(model.shipped_expert_dtype, expert);
    }
    if (!wl.kv_dtype) wl.kv_dtype = model.dtype;
    if (!wl.softmax_dtype) wl.softmax_dtype = rt.softmax_dtype;
    if (!wl.logits_dtype) {
        DType fp32;
        parse_dtype("fp32", fp32);
        wl.logits_dtype = model.fp32_logits ? fp32 : rt.logits_dtype.value_or(model.dtype);
    }
    if (!wl.logits_kept) wl.logits_kept = 1;
    if (dep.pp == 0) throw InputError(SourcePos{}, "deployment.pp", "must be at least 1");
    const u64 per_replica = checked_mul(dep.tp, dep.pp, "deployment.tp · deployment.pp");
    if (dep.gpus == 0 || dep.tp == 0 || dep.gpus % per_replica != 0)
        throw InputError(SourcePos{}, "deployment.gpus",
                         fmt::format("{} GPUs cannot hold whole replicas of TP {} × PP {}; use a multiple of {}", dep.gpus, dep.tp, dep.pp,
                                     per_replica));
    for (const DType* d : {&*wl.softmax_dtype, &*wl.logits_dtype})
        if (!d->whole_bytes())
            throw InputError(SourcePos{}, d == &*wl.softmax_dtype ? "workload.softmax_dtype" : "workload.logits_dtype",
                             fmt::format("{} cannot hold activations; use fp32, bf16 or fp16", d->name));
    // Experts spread over GPUs of the TP group (ep divides tp), or over whole TP groups of several
    // data-parallel replicas (wide EP: ep a multiple of tp, at most the replicas' GPUs of a stage).
    if (dep.ep == 0 || (dep.ep <= dep.tp ? dep.tp % dep.ep != 0 : dep.ep % dep.tp != 0 || (dep.gpus / dep.pp) % dep.ep != 0))
        throw InputError(SourcePos{}, "deployment.ep",
                         fmt::format("{} must divide the tensor-parallel degree {}, or be a multiple of it that divides the {} GPUs of "
                                     "a pipeline stage over the replicas (wide EP)",
                                     dep.ep, dep.tp, dep.gpus / std::max<u64>(dep.pp, 1)));
    p.shard = shard(blocks, model, dep.tp, dep.ep);
    p.replicas = dep.gpus / per_replica;
    DtypePolicy dt = policy(wl);
    dt.expert_weight = expert;

    const u64 L = model.num_layers;
    const u64 per = ceil_div(L, dep.pp);
    if (dep.pp > 1 && per * (dep.pp - 1) >= L)
        throw InputError(
            SourcePos{}, "deployment.pp",
            fmt::format("{} stages leave the last of {}'s {} layers empty; use at most {}", dep.pp, model.name, L, ceil_div(L, per)));
    auto add_stage = [&](u64 index, u64 first, u64 count, bool embed, bool head) {
        Impl::Stage s;
        s.model = dep.pp > 1 ? stage_model(model, first, count) : model;
        s.index = index;
        s.first_layer = first;
        const CompileInput in{s.model, gpu, rt, dep, dt, p.shard, blocks, embed, head, model, &runtimes};
        s.runtime = compile_runtime(in);
        s.parameters = s.runtime->parameters();
        p.stages.push_back(std::move(s));
    };
    if (dep.pp <= 1) {
        add_stage(0, 0, L, true, true);
    } else {
        add_stage(0, 0, per, true, false);
        add_stage(dep.pp - 1, per * (dep.pp - 1), L - per * (dep.pp - 1), false, true);
    }
    // The whole model's parameters: the single stage's own, else the model compiled whole.
    p.parameters = dep.pp <= 1 && dep.tp == 1 ? p.stages.front().parameters : parameter_count(model, blocks);
    Plan plan;
    plan.impl_ = std::move(impl);
    return plan;
}

const Workload& Plan::workload() const { return impl_->wl; }

PointResult Plan::evaluate(const Point& pt) const noexcept {
    PointResult r;
    if (pt.batch == 0) {
        r.status = PointStatus::BadBatch;
        return r;
    }
    if (pt.context == 0) {
        r.status = PointStatus::BadContext;
        return r;
    }
    if (pt.context > impl_->model.max_context && !impl_->wl.allow_long_context) {
        r.status = PointStatus::BeyondMaxContext;
        return r;
    }
    Point local = pt;
    local.batch = ceil_div(pt.batch, impl_->replicas);
    for (std::uint32_t i = 0; i < impl_->stages.size(); ++i) {
        PointResult s;
        s.batch_per_replica = local.batch;
        impl_->stages[i].runtime->evaluate(local, s);
        s.batch_per_replica = local.batch;
        s.stage = i;
        if (s.status != PointStatus::Ok) return s;
        // The stage needing the most memory is reported (the first on a tie).
        if (i == 0 || s.total > r.total) r = s;
    }
    return r;
}

Estimate Plan::estimate(const Point& pt, Detail detail) const {
    const Impl& p = *impl_;
    const PointResult r = evaluate(pt);
    switch (r.status) {
        case PointStatus::Ok:
            break;
        case PointStatus::BadBatch:
            throw InputError(SourcePos{}, "workload.batch", "must be at least 1");
        case PointStatus::BadContext:
            throw InputError(SourcePos{}, "workload.context", "must be at least 1 token");
        case PointStatus::BeyondMaxContext:
            throw InputError(SourcePos{}, "workload.context",
                             fmt::format("{} exceeds {}'s max_context {} ({}); set workload.allow_long_context to size it anyway",
                                         pt.context, p.model.name, p.model.max_context, p.model.file));
        case PointStatus::Overflow:
            throw OverflowError(p.stages.at(r.stage).runtime->overflow_term(r));
    }
    const Impl::Stage& stage = p.stages[r.stage];
    Estimate e;
    static_cast<PointResult&>(e) = r;
    e.model_spec = p.model_spec;
    e.gpu_spec = p.gpu_spec;
    e.deployment = p.dep;
    e.workload = p.wl;
    e.workload.mode = pt.mode;
    e.workload.batch = pt.batch;
    e.workload.context = pt.context;
    e.replicas = p.replicas;
    e.parameters = p.parameters;
    e.parameters_per_gpu = stage.parameters;
    e.pp_stage = stage.index;
    e.stage_first_layer = stage.first_layer;
    e.stage_layers = stage.model.num_layers;
    e.shard = p.shard;
    Point local = pt;
    local.batch = r.batch_per_replica;
    e.detail = detail;
    stage.runtime->describe(local, r, e);
    e.plan = impl_;
    return e;
}

std::vector<Plan::StageTrain> Plan::train(const TrainPoint& mb) const {
    const Impl& p = *impl_;
    if (mb.batch == 0) throw InputError(SourcePos{}, "train.micro_batch", "must be at least 1");
    if (mb.context == 0) throw InputError(SourcePos{}, "workload.context", "must be at least 1 token");
    if (mb.context > p.model.max_context && !p.wl.allow_long_context)
        throw InputError(SourcePos{}, "workload.context",
                         fmt::format("{} exceeds {}'s max_context {} ({}); set workload.allow_long_context to size it anyway", mb.context,
                                     p.model.name, p.model.max_context, p.model.file));
    std::vector<StageTrain> out;
    for (const auto& s : p.stages) {
        StageTrain t;
        t.stage = s.index;
        t.first_layer = s.first_layer;
        t.layers = s.model.num_layers;
        t.parameters = s.parameters;
        t.weights = s.runtime->weights();
        t.has_embedding = s.index == 0;
        t.has_head = s.index + 1 == p.dep.pp;
        t.act = s.runtime->train(mb);
        out.push_back(std::move(t));
    }
    return out;
}

u64 Plan::replicas() const { return impl_->replicas; }
const GpuSpec& Plan::gpu() const { return impl_->gpu; }
const Deployment& Plan::deployment() const { return impl_->dep; }
const RuntimePlan& Plan::runtime() const { return *impl_->stages.front().runtime; }

Estimate estimate(const ModelSpec& model, const GpuSpec& gpu, const Deployment& dep, const Workload& wl) {
    return Plan::compile(model, gpu, dep, wl).estimate(Point{wl.mode, wl.batch, wl.context, wl.decode_step});
}

namespace {
std::unique_ptr<RuntimePlan> whole_model(const ModelSpec& model, const BlockRegistry& blocks) {
    // The whole model on one GPU under transformers: the blocks' weight tensors, unsharded.
    static const RuntimeSpec rt = [] {
        RuntimeSpec r;
        r.context_overhead["default"] = ContextOverhead{0, "none"};
        return r;
    }();
    DtypePolicy dt{model.dtype, model.dtype, model.dtype, model.dtype, 1, DType{}};
    const ShardSizes s = shard(blocks, model, 1, 1);
    static const GpuSpec gpu{};
    static const Deployment dep{};
    const CompileInput in{model, gpu, rt, dep, dt, s, blocks, true, true, model};
    return compile_runtime(in);
}
}  // namespace

u64 parameter_count(const ModelSpec& model, const BlockRegistry& blocks) { return whole_model(model, blocks)->parameters(); }

u64 active_parameter_count(const ModelSpec& model, const BlockRegistry& blocks) { return whole_model(model, blocks)->active_parameters(); }

}  // namespace memtax
