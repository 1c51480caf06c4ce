#include "report/train_report.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/format.hpp"
#include "report/document.hpp"

namespace memtax {

namespace {

using ojson = nlohmann::ordered_json;

std::string gib(u64 b) { return fmt::format("{:.2f}", static_cast<double>(b) / static_cast<double>(1ull << 30)); }

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
        "ZeRO-{} · {} ({})",
        m.name, e.gpu.name, e.workload.batch, group_digits(e.workload.context), e.spec.micro_batches, e.deployment.tp, e.deployment.pp,
        e.dp, e.workload.runtime.name, to_string(e.spec.recompute), e.spec.zero, to_string(e.spec.optimizer), to_string(e.spec.precision));
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
    return d;
}

}  // namespace

std::string train_report(const TrainEstimate& e, const ToolInfo& tool, const std::string& format) {
    if (format == "json") {
        const ModelSpec& m = *e.model_spec;
        ojson inputs = {{"model", m.name},
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
                        {"tp", e.deployment.tp},
                        {"pp", e.deployment.pp},
                        {"dp", e.dp}};
        ojson per_gpu = {{"stage", e.stage},
                         {"stage_layers", e.stage_layers},
                         {"parameters", e.parameters_per_gpu},
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
    if (format == "csv") return document_csv(d);
    return document_text(d);
}

}  // namespace memtax
