// libFuzzer harness: the scenario reader, and the planner on whatever loads (bounded so one
// input stays fast: at most 8 GPUs and two GPU kinds).
#include <string>

#include "fuzz_common.hpp"
#include "planner/planner.hpp"
#include "planner/train_plan.hpp"
#include "report/plan_report.hpp"
#include "report/printer.hpp"
#include "report/train_plan_report.hpp"

using namespace memtax;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    fuzz::expect_clean([&] {
        ScenarioSpec s = load_scenario_yaml(text, "fuzz.yaml");
        if (s.max_gpus > 8 || s.gpus.size() > 2 || s.kv_dtypes.size() > 2 || s.weight_dtypes.size() > 2) return;
        if (s.training) {
            if (s.training->global_batch > 64 || s.training->sequence_length > 65536) return;
            const TrainPlanReport r = plan_training(s);
            // Every plan makes up the global batch exactly, within the GPUs and memory allowed.
            for (const auto& c : r.ranked)
                if (!c.feasible || c.gpus > s.max_gpus || c.gpus != c.tp * c.pp * c.dp || c.bytes_per_gpu > c.budget_bytes ||
                    c.micro_batch * c.accumulation * c.dp != s.training->global_batch ||
                    (s.training->max_days && c.days > *s.training->max_days))
                    std::abort();
            for (const char* f : {"table", "json", "csv", "markdown"})
                (void)printer(f).document(train_plan_document(r, 5), ToolInfo{"fuzz", "fuzz"});
            return;
        }
        const PlanReport r = plan_scenario(s);
        // Feasible plans meet every constraint they were checked against.
        for (const auto& c : r.ranked) {
            if (!c.feasible || c.gpus > s.max_gpus || c.memory.total > c.budget_bytes) std::abort();
            if (s.tpot_s && c.tpot_s > *s.tpot_s) std::abort();
        }
        for (const char* f : {"table", "json", "csv", "markdown"}) (void)printer(f).document(plan_document(r, 5), ToolInfo{"fuzz", "fuzz"});
    });
    return 0;
}
