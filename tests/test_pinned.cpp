// Regression pins: the predictions recorded before the engine was rebuilt on blocks and compiled
// plans (tests/data/pinned/README.md) must come out the same, byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "report/report.hpp"

using namespace memtax;
using json = nlohmann::json;

namespace {

json load(const std::string& name) {
    std::ifstream in(std::string(MEMTAX_TEST_DATA) + "/pinned/" + name);
    return json::parse(in);
}

// Integers and strings exactly; doubles to the last few bits (sums of the same terms).
void expect_same(const json& pinned, const json& now, const std::string& path) {
    if (pinned.is_object()) {
        ASSERT_TRUE(now.is_object()) << path;
        for (auto it = pinned.begin(); it != pinned.end(); ++it) {
            ASSERT_TRUE(now.contains(it.key())) << path << "." << it.key();
            expect_same(it.value(), now[it.key()], path + "." + it.key());
        }
    } else if (pinned.is_array()) {
        ASSERT_EQ(pinned.size(), now.size()) << path;
        for (size_t i = 0; i < pinned.size(); ++i) expect_same(pinned[i], now[i], path + "[" + std::to_string(i) + "]");
    } else if (pinned.is_number_float() || now.is_number_float()) {
        const double a = pinned.get<double>(), b = now.get<double>();
        EXPECT_LE(std::fabs(a - b), 1e-12 * std::max(std::fabs(a), std::fabs(b))) << path << ": " << a << " vs " << b;
    } else {
        EXPECT_EQ(pinned, now) << path;
    }
}

}  // namespace

// Every committed measurement file: every per-case prediction (probe kernels and forward
// steps), the verdicts and the summaries, as `memtax validate --format json` prints them.
TEST(Pinned, EveryMeasurementFilePredictsAsBefore) {
    const json pins = load("validate.json");
    ASSERT_GE(pins.size(), 6u);  // the H100 probe entries went with the 2026-12-07 refit (pinned/README.md)
    for (auto it = pins.begin(); it != pins.end(); ++it) {
        SCOPED_TRACE(it.key());
        const std::string file = std::string(MEMTAX_TEST_DATA) + "/measured/" + it.key();
        json now = json::parse(render_validation_json(validate_measurements(file, "", 0.05, 4ull << 20), ToolInfo{"x", "y"}));
        now.erase("tool");
        json pinned = it.value();
        // The file's path as given (relative when pinned) is an input, not a prediction.
        now.erase("measurements");
        pinned.erase("measurements");
        // Whole-step time validation came later: new keys, empty for these files.
        for (const char* k : {"step_cases", "step_median_error", "step_worst_error", "train_cases"})
            if (!pinned.contains(k)) now.erase(k);
        // The device's own count of a probe case's bytes came later: new keys, null for these files.
        if (now.contains("probe_cases") && pinned.contains("probe_cases"))
            for (auto& c : now["probe_cases"])
                for (const char* k : {"device_used_bytes", "device_reserved_bytes", "device_exact"}) {
                    EXPECT_TRUE(c.at(k).is_null()) << k;
                    c.erase(k);
                }
        // Byte for byte: the same JSON (reported per top-level key, so a failure is readable).
        for (auto k = pinned.begin(); k != pinned.end(); ++k) EXPECT_TRUE(now.contains(k.key()) && now[k.key()] == k.value()) << k.key();
        EXPECT_EQ(now.size(), pinned.size());
    }
}

// 528 estimates over 8 models, 3 runtimes, both modes, 3 points and 4 deployments: every per-GPU
// byte, the vLLM start-up numbers and the step times.
TEST(Pinned, EstimateGridPredictsAsBefore) {
    const json pins = load("estimates.json");
    ASSERT_EQ(pins.size(), 528u);
    for (const auto& pin : pins) {
        std::vector<std::string> args = {"estimate"};
        std::string line;
        for (const auto& a : pin["args"]) {
            args.push_back(a.get<std::string>());
            line += " " + args.back();
        }
        SCOPED_TRACE(line);
        // Relative model paths are written from the repository root.
        for (auto& a : args)
            if (a.rfind("tests/", 0) == 0) a = std::string(MEMTAX_SOURCE_DIR) + "/" + a;
        std::ostringstream out, err;
        const int code = run_cli(args, out, err);
        ASSERT_LE(code, 1) << err.str();
        const json now = json::parse(out.str());
        json per_gpu = pin["per_gpu"];
        // Pipeline stages now count the parameters their GPU holds (its layers, the embedding on
        // the first stage, the head on the last); the pins counted the embedding and head on
        // every stage. Checked by hand in Pipeline.ParametersAreTheStagesOwn.
        if (line.find("--pp 2") != std::string::npos) per_gpu.erase("parameters");
        expect_same(per_gpu, now["per_gpu"], "per_gpu");
        if (!pin["vllm"].is_null()) expect_same(pin["vllm"], now["vllm"], "vllm");
        // Since the pins, a vLLM windowed layer's step reads only the keys its queries attend
        // (Mistral's 4,096-token window): past the window its attention FLOPs and KV reads are
        // smaller than pinned, its memory the same (held above). Vllm.WindowedLayersReadOnlyTheirWindow
        // checks those steps by hand.
        const size_t ctx = line.find("--context ");
        if (line.find("--runtime vllm") != std::string::npos && line.find("mistral") != std::string::npos && ctx != std::string::npos &&
            std::stoull(line.substr(ctx + 10)) > 4096)
            continue;
        const json& model = now["inputs"]["model"];
        const bool biased = model["name"].get<std::string>().find("qwen") != std::string::npos;
        // The transformers runtimes' steps are timed differently since the pins: the host's
        // dispatch (their profiles' `host` cost: a step takes the later of the host's and the
        // GPU's clocks) and the kernels eager PyTorch really launches (docs/time-model.md, checked
        // against the device in Time.*). What a step computes and reads — its FLOPs, weight and
        // KV bytes — is as pinned (Qwen2: plus its q/k/v biases, read with the projections).
        if (now["time"]["prefill"]["host_seconds"].get<double>() > 0) {
            const u64 tp = now["inputs"]["deployment"]["tp"];
            const u64 heads = model["num_attention_heads"], kv = model["num_key_value_heads"], d = model["head_dim"];
            const u64 bias = biased ? model["num_layers"].get<u64>() * (heads / tp + 2 * std::max<u64>(kv / tp, 1)) * d * 2 : 0;
            for (const char* step : {"prefill", "decode"}) {
                const json& n = now["time"][step];
                EXPECT_EQ(n["flops"], pin["time"][step]["flops"]) << step;
                EXPECT_EQ(n["weight_bytes"].get<u64>(), pin["time"][step]["weight_bytes"].get<u64>() + bias) << step;
                EXPECT_EQ(n["kv_bytes"], pin["time"][step]["kv_bytes"]) << step;
                EXPECT_GE(n["seconds"].get<double>(), n["host_seconds"].get<double>()) << step;
            }
            continue;
        }
        if (!biased) {
            expect_same(pin["time"], now["time"], "time");
            continue;
        }
        // Qwen2's q/k/v biases are weight tensors of the projections now, read with them: each
        // step moves exactly the bias bytes more, layers · (heads + 2 · kv_heads)/TP · head_dim · 2 B.
        const u64 tp = now["inputs"]["deployment"]["tp"];
        const u64 heads = model["num_attention_heads"], kv = model["num_key_value_heads"], d = model["head_dim"];
        const u64 bias = model["num_layers"].get<u64>() * (heads / tp + 2 * std::max<u64>(kv / tp, 1)) * d * 2;
        for (const char* step : {"prefill", "decode"}) {
            EXPECT_EQ(now["time"][step]["weight_bytes"].get<u64>(), pin["time"][step]["weight_bytes"].get<u64>() + bias) << step;
            EXPECT_EQ(now["time"][step]["bytes"].get<u64>(), pin["time"][step]["bytes"].get<u64>() + bias) << step;
            EXPECT_EQ(now["time"][step]["flops"], pin["time"][step]["flops"]) << step;
        }
    }
}
