#include "report/train_report.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "core/format.hpp"
#include "report/document.hpp"

namespace memtax {

namespace {

using ojson = nlohmann::ordered_json;

std::string gib(u64 b) { return fmt::format("{:.2f}", static_cast<double>(b) / static_cast<double>(1ull << 30)); }

// Which precision, and why it is the default.
std::string precision_note(Precision p) {
    return p == Precision::ModelDtype
               ? "precision bf16 (the default): parameters, gradients and optimizer states in the model's dtype (AdamW: 2 + 2 + 4 = "
                 "8 B a parameter), what a model loaded in bf16 and trained by a plain PyTorch loop holds; precision mixed keeps fp32 "
                 "master weights and states (16 B a parameter), as Megatron-LM "
                 "and DeepSpeed train"
               : "precision mixed: 16-bit compute with fp32 master weights and optimizer states (AdamW: 2 + 2 + 4 + 8 = 16 B a "
                 "parameter), as Megatron-LM and DeepSpeed train";
}

// "ZeRO-2", "FSDP2 (ZeRO-3)", "ZeRO-3 + offload all", with fp32 main gradients named.
std::string sharding(const TrainEstimate& e) {
    std::string s = e.spec.sharder == Sharder::Fsdp ? "FSDP2 (ZeRO-3)" : fmt::format("ZeRO-{}", e.spec.zero);
    if (e.spec.offload == Offload::Optimizer) s += " + offload optimizer";
    if (e.spec.offload == Offload::All) s += " + offload all";
    if (e.spec.fp32_grads.value_or(false)) s += " · fp32 main gradients";
    return s;
}

std::string verdict(const TrainEstimate& e) {
    return fmt::format("{}: {} GiB of {} GiB usable ({} stage {}, {} micro-batch(es) in flight)", e.fits ? "fits" : "does not fit",
                       gib(e.total), gib(e.capacity), e.deployment.pp > 1 ? "pipeline" : "the", e.stage, e.in_flight);
}

std::string ms(double s) { return fmt::format("{:.2f}", s * 1e3); }

// The step's time, as lines a person reads.
std::vector<std::string> time_notes(const TrainTime& t) {
    std::vector<std::string> n;
    n.push_back(fmt::format(
        "step time {} ms: {} micro-batch(es) of forward {} ms + backward {} ms{}{}, optimizer step {} ms{} · {} tokens a step, {} "
        "tokens/s over {} GPU(s), MFU {:.1f}% ({} rates{})",
        ms(t.step_s), t.micro_batches, ms(t.forward.seconds), ms(t.backward.seconds),
        t.recompute_s > 0 ? fmt::format(" (recomputation {} ms)", ms(t.recompute_s)) : "",
        t.accumulate_s > 0 ? fmt::format(" (gradient accumulation {} ms)", ms(t.accumulate_s)) : "", ms(t.optimizer.seconds),
        t.communication_s > 0 ? fmt::format(", communication {} ms", ms(t.communication_s)) : "", group_digits(t.tokens_per_step),
        group_digits(static_cast<u64>(t.tokens_per_s)), t.gpus, t.mfu * 100, t.rate_dtype,
        t.calibrated ? ", calibrated" : ", datasheet × assumed efficiency"));
    auto host = [](const TrainPhaseTime& p) {
        return p.host_s > p.gpu_s ? fmt::format("host-bound: host {} ms, GPU {} ms", ms(p.host_s), ms(p.gpu_s))
                                  : fmt::format("GPU {} ms, host {} ms", ms(p.gpu_s), ms(p.host_s));
    };
    n.push_back(fmt::format("forward {}; backward {}; optimizer {} ({} kernels)", host(t.forward), host(t.backward), host(t.optimizer),
                            t.optimizer.kernels));
    if (t.budget_tokens)
        n.push_back(fmt::format(
            "a budget of {} tokens: {:.2f} days, {:.0f} GPU-hours{}", group_digits(t.budget_tokens), t.days, t.gpu_hours,
            t.price_per_gpu_hour > 0 ? fmt::format(", ${:.0f} at ${:.2f} per GPU-hour", t.dollars, t.price_per_gpu_hour) : std::string()));
    return n;
}

Document::Section time_section(const TrainTime& t) {
    Document::Section s;
    s.key = "time";
    s.title = "Step time by kind (GPU time, one micro-batch's forward and backward, one optimizer step)";
    s.table.add_column("kind", "kind");
    s.table.add_column("kernels", "kernels", true);
    s.table.add_column("ms", "ms", true);
    s.table.add_column("gflop", "GFLOP", true);
    s.table.add_column("gb", "GB moved", true);
    for (const auto& k : t.kinds) {
        s.table.row();
        s.table.cell(k.kind);
        s.table.cell(std::to_string(k.ops));
        s.table.cell(ms(k.seconds), fmt::format("{:.6f}", k.seconds * 1e3));
        s.table.cell(fmt::format("{:.1f}", static_cast<double>(k.flops) / 1e9));
        s.table.cell(fmt::format("{:.2f}", static_cast<double>(k.bytes) / 1e9));
    }
    return s;
}

Document document(const TrainEstimate& e, const TrainTime* time) {
    Document d;
    d.schema = "memtax.train/1";
    const ModelSpec& m = *e.model_spec;
    d.title = fmt::format(
        "{} training on {} · {} sequence(s) × {} tokens per micro-batch · {} micro-batch(es) · TP {} PP {} DP {} · {} · recompute {} · "
        "{} · {} ({}) · loop {}{}",
        m.name, e.gpu.name, e.workload.batch, group_digits(e.workload.context), e.spec.micro_batches, e.deployment.tp, e.deployment.pp,
        e.dp, e.workload.runtime.name, to_string(e.spec.recompute), sharding(e), to_string(e.spec.optimizer), to_string(e.spec.precision),
        to_string(e.spec.loop),
        e.spec.lora ? fmt::format(" · LoRA r{} on {}", e.spec.lora->rank, fmt::join(e.spec.lora->targets, ",")) : "");
    Document::Section s;
    s.key = "components";
    s.title = "Per GPU";
    s.table.add_column("name", "term");
    s.table.add_column("gib", "GiB", true);
    s.table.add_column("bytes", "bytes", true);
    s.table.add_column("formula", "how");
    for (const auto& c : e.components) {
        s.table.row();
        s.table.cell(c.name);
        s.table.cell(gib(c.bytes), fmt::format("{:.6f}", static_cast<double>(c.bytes) / static_cast<double>(1ull << 30)));
        s.table.cell(group_digits(c.bytes), std::to_string(c.bytes));
        s.table.cell(c.formula);
    }
    d.sections.push_back(std::move(s));
    d.notes.push_back(verdict(e));
    d.notes.push_back(precision_note(e.spec.precision));
    if (time) {
        for (auto& n : time_notes(*time)) d.notes.push_back(std::move(n));
        d.sections.push_back(time_section(*time));
    }
    return d;
}

// The same header and row shape as `estimate --format csv` (section,name,value,unit,note), so
// one reader takes both.
std::string train_csv(const TrainEstimate& e, const TrainTime* time) {
    Table t;
    for (const char* c : {"section", "name", "value", "unit", "note"}) t.add_column(c, c);
    auto add = [&](const std::string& sec, const std::string& name, const std::string& value, const std::string& unit,
                   const std::string& note) {
        t.row();
        t.cell(sec);
        t.cell(name);
        t.cell(value);
        t.cell(unit);
        t.cell(note);
    };
    const ModelSpec& m = *e.model_spec;
    add("inputs", "model", m.name, "", "");
    add("inputs", "gpu", e.gpu.name, "", "");
    add("inputs", "runtime", e.workload.runtime.name, "", "");
    add("inputs", "mode", "train", "", "");
    add("inputs", "batch", std::to_string(e.workload.batch), "sequences", "per micro-batch");
    add("inputs", "context", std::to_string(e.workload.context), "tokens", "");
    add("inputs", "micro_batches", std::to_string(e.spec.micro_batches), "", "");
    add("inputs", "recompute", to_string(e.spec.recompute), "", "");
    add("inputs", "zero", std::to_string(e.spec.zero), "", "");
    add("inputs", "optimizer", to_string(e.spec.optimizer), "", "");
    add("inputs", "precision", to_string(e.spec.precision), "", precision_note(e.spec.precision));
    add("inputs", "loop", to_string(e.spec.loop), "", "");
    add("inputs", "sharding", sharding(e), "", "");
    if (e.spec.lora)
        add("inputs", "lora_rank", std::to_string(e.spec.lora->rank), "", fmt::format("on {}", fmt::join(e.spec.lora->targets, ",")));
    add("per_gpu", "trainable_parameters", std::to_string(e.trainable_parameters), "", "");
    add("inputs", "tp", std::to_string(e.deployment.tp), "", "");
    add("inputs", "pp", std::to_string(e.deployment.pp), "", "");
    add("inputs", "dp", std::to_string(e.dp), "", "");
    for (const auto& c : e.components) add("per_gpu", c.name, std::to_string(c.bytes), "B", c.formula);
    add("per_gpu", "total", std::to_string(e.total), "B", fmt::format("{} GiB", gib(e.total)));
    add("per_gpu", "capacity", std::to_string(e.capacity), "B", fmt::format("{} GiB", gib(e.capacity)));
    add("result", "fits", e.fits ? "true" : "false", "", verdict(e));
    if (time) {
        auto num = [](double v) { return fmt::format("{:.9g}", v); };
        add("time", "step", num(time->step_s), "s", "");
        add("time", "forward", num(time->forward.seconds), "s", "one micro-batch");
        add("time", "backward", num(time->backward.seconds), "s", "one micro-batch");
        add("time", "optimizer", num(time->optimizer.seconds), "s", "");
        add("time", "communication", num(time->communication_s), "s", "");
        add("time", "tokens_per_s", num(time->tokens_per_s), "tokens/s", "the whole deployment");
        add("time", "mfu", num(time->mfu), "", "");
        if (time->budget_tokens) {
            add("time", "budget_days", num(time->days), "days", std::to_string(time->budget_tokens) + " tokens");
            add("time", "budget_gpu_hours", num(time->gpu_hours), "GPU-hours", "");
            if (time->price_per_gpu_hour > 0) add("time", "budget_dollars", num(time->dollars), "$", "");
        }
    }
    return table_csv(t);
}

}  // namespace

std::string train_report(const TrainEstimate& e, const ToolInfo& tool, const std::string& format, const TrainTime* time) {
    if (format == "json") {
        const ModelSpec& m = *e.model_spec;
        ojson inputs = {
            {"model", m.name},
            {"gpu", e.gpu.name},
            {"runtime", e.workload.runtime.name},
            {"mode", "train"},
            {"batch", e.workload.batch},
            {"context", e.workload.context},
            {"micro_batches", e.spec.micro_batches},
            {"recompute", to_string(e.spec.recompute)},
            {"zero", e.spec.zero},
            {"optimizer", to_string(e.spec.optimizer)},
            {"precision", to_string(e.spec.precision)},
            {"loop", to_string(e.spec.loop)},
            {"sharding", sharding(e)},
            {"lora", e.spec.lora ? ojson{{"rank", e.spec.lora->rank}, {"alpha", e.spec.lora->alpha}, {"targets", e.spec.lora->targets}}
                                 : ojson(nullptr)},
            {"tp", e.deployment.tp},
            {"pp", e.deployment.pp},
            {"dp", e.dp}};
        ojson per_gpu = {{"stage", e.stage},
                         {"stage_layers", e.stage_layers},
                         {"parameters", e.parameters_per_gpu},
                         {"trainable_parameters", e.trainable_parameters},
                         {"host_bytes", e.host_bytes},
                         {"weights_bytes", e.weight_bytes},
                         {"gradient_bytes", e.gradient_bytes},
                         {"optimizer_bytes", e.optimizer_bytes},
                         {"master_weight_bytes", e.master_weight_bytes},
                         {"saved_activation_bytes", e.saved_activation_bytes},
                         {"forward_peak_bytes", e.forward_peak_bytes},
                         {"backward_peak_bytes", e.backward_peak_bytes},
                         {"optimizer_step_bytes", e.optimizer_step_bytes},
                         {"train_peak_bytes", e.train_peak_bytes},
                         {"micro_batches_in_flight", e.in_flight},
                         {"runtime_overhead_bytes", e.runtime_overhead},
                         {"total_bytes", e.total},
                         {"capacity_bytes", e.capacity},
                         {"fits", e.fits},
                         {"peak_at", e.peak_at}};
        ojson comps = ojson::array();
        for (const auto& c : e.components)
            comps.push_back({{"name", c.name}, {"category", c.category}, {"bytes", c.bytes}, {"formula", c.formula}});
        ojson j = {{"schema", "memtax.train/1"}, {"tool", {{"name", "memtax"}, {"version", tool.version}, {"git_sha", tool.git_sha}}},
                   {"inputs", inputs},           {"parameters", e.parameters},
                   {"per_gpu", per_gpu},         {"components", comps},
                   {"verdict", verdict(e)}};
        if (time) {
            auto phase = [](const TrainPhaseTime& p) {
                return ojson{{"seconds", p.seconds}, {"gpu_s", p.gpu_s}, {"host_s", p.host_s},
                             {"flops", p.flops},     {"bytes", p.bytes}, {"kernels", p.kernels}};
            };
            ojson kinds = ojson::array();
            for (const auto& k : time->kinds)
                kinds.push_back({{"kind", k.kind}, {"kernels", k.ops}, {"seconds", k.seconds}, {"flops", k.flops}, {"bytes", k.bytes}});
            j["time"] = {{"step_s", time->step_s},
                         {"micro_batches", time->micro_batches},
                         {"forward", phase(time->forward)},
                         {"backward", phase(time->backward)},
                         {"optimizer", phase(time->optimizer)},
                         {"recompute_s", time->recompute_s},
                         {"accumulate_s", time->accumulate_s},
                         {"loss_s", time->loss_s},
                         {"communication_s", time->communication_s},
                         {"tokens_per_step", time->tokens_per_step},
                         {"tokens_per_s", time->tokens_per_s},
                         {"model_flops_per_step", time->model_flops_per_step},
                         {"mfu", time->mfu},
                         {"gpus", time->gpus},
                         {"rate_dtype", time->rate_dtype},
                         {"calibrated", time->calibrated},
                         {"kinds", kinds}};
            if (time->budget_tokens)
                j["time"]["budget"] = {{"tokens", time->budget_tokens},
                                       {"days", time->days},
                                       {"gpu_hours", time->gpu_hours},
                                       {"price_per_gpu_hour", time->price_per_gpu_hour},
                                       {"dollars", time->dollars}};
        }
        return j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
    }
    const Document d = document(e, time);
    if (format == "markdown") return document_markdown(d);
    if (format == "csv") return train_csv(e, time);
    return document_text(d);
}

}  // namespace memtax
