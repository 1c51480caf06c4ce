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

Document document(const TrainEstimate& e) {
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
    return d;
}

// The same header and row shape as `estimate --format csv` (section,name,value,unit,note), so
// one reader takes both.
std::string train_csv(const TrainEstimate& e) {
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
    return table_csv(t);
}

}  // namespace

std::string train_report(const TrainEstimate& e, const ToolInfo& tool, const std::string& format) {
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
        return j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
    }
    const Document d = document(e);
    if (format == "markdown") return document_markdown(d);
    if (format == "csv") return train_csv(e);
    return document_text(d);
}

}  // namespace memtax
