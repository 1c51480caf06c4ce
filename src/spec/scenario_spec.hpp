#pragma once
// A capacity question as data (scenarios/*.yaml): the model, the workload, the runtime and its
// settings, what may be bought and how it may be laid out, the service-level objectives, the
// objective to rank by, and the gates a CI pipeline checks.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "spec/runtime_spec.hpp"

namespace memtax {

// Tokens of a request: a fixed count, or a distribution summarised by its mean and maximum.
// Memory is sized for the maximum; time and throughput use the mean.
struct TokenCount {
    u64 mean = 0, max = 0;
};

enum class Objective { FewestGpus, LowestCost, HighestThroughput };

// A training question (`workload.mode: training`): the model trained on sequences of
// `sequence_length` tokens, `global_batch` sequences an optimizer step, over an optional token
// budget. The planner (planner/train_plan.hpp) searches each GPU kind's TP × PP × DP layouts,
// ZeRO stages, recomputation and micro-batch sizes; accumulation makes up the global batch.
struct TrainingScenario {
    u64 sequence_length = 0;
    u64 global_batch = 0;  // sequences per optimizer step, over every data-parallel replica
    u64 train_tokens = 0;  // the budget; 0: none (step time and tokens/s only)
    std::string optimizer = "adamw";
    std::string precision = "mixed";     // mixed (fp32 master weights and states) | bf16
    std::vector<u64> zero_stages;        // empty: 0-3, those the runtime allows
    std::vector<std::string> recompute;  // empty: none, full, and selective where the runtime has it
    std::vector<u64> micro_batch_sizes;  // sequences per micro-batch; empty: 1, 2, 4
    std::vector<u64> tp, pp;             // empty tp: 1, 2, 4 … gpus_per_node; empty pp: 1
    std::optional<double> max_days;      // the budget must be trained within this (needs train_tokens)
};
const char* to_string(Objective o);  // "fewest_gpus" | "lowest_cost" | "highest_throughput"

struct ScenarioSpec {
    std::string name, description, file;
    std::string model;    // a profile name, a YAML path, or a Hugging Face config.json
    std::string runtime;  // a runtime name or path (default hf-sdpa; training: hf-train)
    EngineArgs engine;    // runtime_settings: vLLM's engine arguments (unset: the runtime profile's)

    TokenCount prompt, output;
    std::optional<TrainingScenario> training;  // set: a training scenario (the inference workload fields are unused)

    u64 concurrency = 1;  // users, each with one request in flight (or a burst of this many: `burst`)
    // Or Poisson arrivals per second over the deployment: each replica an open loop, served by its
    // runtime's scheduler in steady state (planner/load.hpp); one that cannot keep up is unstable.
    std::optional<double> request_rate_per_s;
    u64 context = 0;  // the context to promise (max_model_len): default prompt.max + output.max
    // How the `concurrency` users arrive: steady (default; each answered request replaced at once
    // by the same user's next, so requests meet a running batch) or a burst (all at once, TTFT
    // the mean over the burst's first tokens). A request rate is always a steady Poisson stream.
    bool burst = false;

    // Constraints: the search space and what a candidate must meet.
    std::vector<std::string> gpus;      // GPU kinds allowed (names or paths), in nodes of gpus_per_node
    std::vector<std::string> clusters;  // clusters allowed (names or paths): their GPU, nodes and fabric
    u64 max_gpus = 8;
    u64 gpus_per_node = 8;  // a node's NVLink domain
    bool tp_across_nodes = false;
    u64 memory_headroom_ppm = 0;           // of usable capacity kept free, parts per million
    std::optional<double> ttft_s, tpot_s;  // SLOs
    // The TTFT statistic the SLO holds to: 0 = the mean, else a percentile of requests (50, 90, 99).
    // TPOT holds to the mean of requests' time per output token.
    unsigned ttft_percentile = 90;
    std::vector<std::string> kv_dtypes = {"bf16"};
    std::vector<std::string> weight_dtypes;  // empty: the model's
    std::vector<std::string> attention;      // transformers runtimes: eager | fused; empty: the runtime's

    Objective objective = Objective::FewestGpus;
    std::map<std::string, double> price_per_gpu_hour;  // GPU name -> $ per GPU-hour
    std::string price_source;

    // CI gates on the chosen plan.
    bool gate_must_fit = false;
    std::optional<u64> gate_max_bytes_per_gpu;
    std::optional<u64> gate_min_headroom_ppm;
    std::optional<double> gate_max_tpot_s, gate_max_ttft_s;
};

// Strict: unknown keys, bad values and missing fields are InputErrors with file:line: field.
ScenarioSpec load_scenario_yaml(const std::string& text, const std::string& file);
ScenarioSpec load_scenario_file(const std::string& path);

}  // namespace memtax
