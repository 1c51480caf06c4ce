// libFuzzer harness: the scenario reader, and the planner on whatever loads (bounded so one
// input stays fast: at most 8 GPUs and two GPU kinds).
#include <string>

#include "fuzz_common.hpp"
#include "planner/planner.hpp"
#include "report/plan_report.hpp"
#include "report/printer.hpp"

using namespace memtax;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    fuzz::expect_clean([&] {
        ScenarioSpec s = load_scenario_yaml(text, "fuzz.yaml");
        if (s.max_gpus > 8 || s.gpus.size() > 2 || s.kv_dtypes.size() > 2 || s.weight_dtypes.size() > 2) return;
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
