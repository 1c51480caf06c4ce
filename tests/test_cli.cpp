// The command line end to end (in process): exit codes, pinned error text, output formats.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "cli_run.hpp"
#include "core/bytes.hpp"
#include "spec/loaders.hpp"

using namespace memtax;

namespace {

std::string bad(const std::string& f) { return std::string(MEMTAX_TEST_DATA) + "/bad/" + f; }

}  // namespace

TEST(Cli, AcceptanceJsonReportsExactKvBytes) {
    Result r =
        run_command({"estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--batch", "1", "--context", "8192", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["schema"], "memtax.estimate/1");
    EXPECT_EQ(j["per_gpu"]["kv_cache_bytes"], 1073741824u);
    for (const char* key : {"weights_bytes", "kv_cache_bytes", "attention_matrix_bytes", "activation_peak_bytes", "logits_bytes",
                            "runtime_overhead_bytes", "total_bytes", "forward_peak_bytes"})
        EXPECT_TRUE(j["per_gpu"].contains(key)) << key;
    EXPECT_EQ(j["inputs"]["workload"]["context"], 8192);
    EXPECT_TRUE(j["tool"].contains("version"));
    EXPECT_TRUE(j["tool"].contains("git_sha"));
}

TEST(Cli, ExplainTermsCarryTheSameBytes) {
    auto j = nlohmann::json::parse(run_command({"estimate", "--attention", "eager", "--format", "json", "--explain"}).out);
    std::map<std::string, u64> terms;
    for (const auto& t : j["explain"]) terms[t["name"]] = t["bytes"];
    for (const char* key :
         {"kv_cache", "attention_matrix", "activation_peak", "logits", "runtime_overhead", "total", "forward_peak", "weights"})
        EXPECT_EQ(terms.at(key), j["per_gpu"][std::string(key) + "_bytes"].get<u64>()) << key;
}

TEST(Cli, SameInputSameBytes) {
    auto a = run_command({"estimate", "--format", "json", "--explain"});
    auto b = run_command({"estimate", "--format", "json", "--explain"});
    EXPECT_EQ(a.out, b.out);
}

TEST(Cli, TableCsvAndExplain) {
    Result t = run_command({"estimate", "--model", "llama-3.1-8b", "--context", "4096", "--attention", "eager", "--explain"});
    ASSERT_EQ(t.code, 0) << t.err;
    EXPECT_NE(t.out.find("1 GiB = 2^30 bytes"), std::string::npos);
    EXPECT_NE(t.out.find("How each number is computed"), std::string::npos);
    EXPECT_NE(t.out.find("kv_cache"), std::string::npos);
    Result c = run_command({"estimate", "--format", "csv"});
    ASSERT_EQ(c.code, 0);
    EXPECT_EQ(c.out.rfind("section,name,value,unit,note\n", 0), 0u);
    EXPECT_NE(c.out.find("per_gpu,kv_cache,1073741824,B,"), std::string::npos);
}

TEST(Cli, ListsAndWhatif) {
    Result m = run_command({"models"});
    EXPECT_EQ(m.code, 0);
    EXPECT_NE(m.out.find("8,030,261,248"), std::string::npos);
    Result g = run_command({"gpus"});
    EXPECT_NE(g.out.find("h100-sxm"), std::string::npos);
    auto mj = nlohmann::json::parse(run_command({"models", "--format", "json"}).out);
    EXPECT_EQ(mj["schema"], "memtax.models/1");
    EXPECT_GE(mj["models"].size(), 7u);
    auto gj = nlohmann::json::parse(run_command({"gpus", "--format", "json"}).out);
    EXPECT_EQ(gj["gpus"].size(), 17u);  // 15 datasheet profiles + hardware/calibrated/h100-sxm.yaml and h200.yaml
    for (const auto& g : gj["gpus"]) EXPECT_TRUE(g["sources"].contains("memory_bytes")) << g["name"];
    Result w = run_command({"whatif"});
    ASSERT_EQ(w.code, 0) << w.err;
    // 2 setups x 2 modes x 2 KV dtypes x 3 contexts x 2 batches.
    EXPECT_EQ(std::count(w.out.begin(), w.out.end(), '\n'), 3 + 48);
    Result wj = run_command({"whatif", "--setup", "llama-3.1-8b@1xh100-sxm", "--contexts", "1024,2048", "--batches", "1", "--kv-dtypes",
                             "bf16", "--modes", "decode", "--format", "json"});
    ASSERT_EQ(wj.code, 0) << wj.err;
    EXPECT_EQ(nlohmann::json::parse(wj.out)["rows"].size(), 2u);
}

TEST(Cli, RequireFitGate) {
    EXPECT_EQ(run_command({"estimate", "--model", "llama-3.1-70b", "--require-fit"}).code, 1);
    EXPECT_EQ(run_command({"estimate", "--model", "llama-3.1-8b", "--require-fit"}).code, 0);
}

TEST(Cli, OutputIsWrittenAtomically) {
    auto dir = std::filesystem::temp_directory_path() / "memtax_cli_test";
    std::filesystem::create_directories(dir);
    auto path = (dir / "report.json").string();
    Result r = run_command({"estimate", "--format", "json", "--output", path});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(r.out.empty());
    std::ifstream in(path);
    EXPECT_EQ(nlohmann::json::parse(in)["per_gpu"]["kv_cache_bytes"], 1073741824u);
    for (const auto& e : std::filesystem::directory_iterator(dir))
        EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
    std::filesystem::remove_all(dir);
    Result no_dir = run_command({"estimate", "--output", "/nonexistent-dir/x.json"});
    EXPECT_EQ(no_dir.code, 2);
}

TEST(Cli, BadCommandLinesExitTwo) {
    struct Case {
        std::vector<std::string> args;
        std::string expected;  // pinned error text (a prefix of the message)
    };
    const std::vector<Case> cases = {
        {{"estimate", "--model", "llama-3.1-8"}, "memtax: error: --model: unknown model \"llama-3.1-8\" (did you mean \"llama-3.1-8b\"?)"},
        {{"estimate", "--gpu", "h100-smx"}, "memtax: error: --gpu: unknown gpu \"h100-smx\" (did you mean \"h100-sxm\"?)"},
        {{"estimate", "--tp", "3"}, "memtax: error: --tp: 3 does not divide num_attention_heads = 32"},
        {{"estimate", "--gpus", "6", "--tp", "4"}, "memtax: error: --gpus: 6 GPUs cannot hold whole replicas of TP 4"},
        {{"estimate", "--context", "200000"}, "memtax: error: --context: 200000 exceeds llama-3.1-8b's max_context 131072"},
        {{"estimate", "--batch", "0"}, "memtax: error: --batch: expected a positive integer, got \"0\""},
        {{"estimate", "--kv-dtype", "fp7"}, "memtax: error: --kv-dtype: unknown dtype \"fp7\""},
        {{"estimate", "--logits-kept", "some"}, "memtax: error: --logits-kept: expected a positive number of positions or \"all\""},
        {{"estimate", "--softmax-dtype", "int4"}, "memtax: error: --softmax-dtype: int4-g128 cannot hold activations"},
        {{"estimate", "--mode", "serve"}, "memtax: error: --mode"},
        {{"whatif", "--modes", "train"}, "memtax: error: --mode"},
        {{"estimate", "--batch", "-1"}, "memtax: error: --batch: expected a positive integer, got \"-1\""},
        {{"estimate", "--context", "0"}, "memtax: error: --context: expected a positive number of tokens, got \"0\""},
        {{"estimate", "--frobnicate"}, "memtax: error: estimate: unknown flag --frobnicate (see memtax estimate --help)"},
        {{"whatif", "--setup", "llama-3.1-8b"}, "memtax: error: --setup: \"llama-3.1-8b\": no MODEL@; expected MODEL@NxGPU"},
        {{}, "memtax: error: A subcommand is required"},
        {{"estimate", "--runtime", "hf-sdp"}, "memtax: error: --runtime: unknown runtime \"hf-sdp\" (did you mean \"hf-sdpa\"?)"},
        {{"estimate", "--pp", "0"}, "memtax: error: --pp: expected a positive integer, got \"0\""},
        {{"estimate", "--pp", "33"}, "memtax: error: --pp: 33 stages leave the last of llama-3.1-8b's 32 layers empty"},
        {{"estimate", "--time", "--cluster", "hgx-h10"}, "memtax: error: --cluster: unknown cluster \"hgx-h10\" (did you mean"},
        {{"validate"}, "memtax: error: --measurements is required"},
    };
    for (const auto& c : cases) {
        Result r = run_command(c.args);
        EXPECT_EQ(r.code, 2) << c.expected;
        EXPECT_EQ(r.err.rfind(c.expected, 0), 0u) << "got: " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
        EXPECT_TRUE(r.out.empty());
    }
}

// Malformed profiles and configs, each rejected through the CLI with file:line: field and exit 2.
TEST(Cli, MalformedInputFilesExitTwoNamingTheField) {
    struct Case {
        std::string file;
        int line;  // 0: the message carries no line (the file as a whole is wrong)
        std::string field;
    };
    const std::vector<Case> cases = {
        {"model_unknown_key.yaml", 5, "hiden_size: unknown key (did you mean \"hidden_size\"?)"},
        {"model_missing_field.yaml", 1, "vocab_size: required field is missing"},
        {"model_negative.yaml", 4, "num_layers: expected a non-negative integer, got -4"},
        {"model_string_for_int.yaml", 5, "hidden_size: expected a non-negative integer, got \"256\""},
        {"model_kv_not_dividing.yaml", 7, "num_key_value_heads: 3 does not divide num_attention_heads = 4"},
        {"model_kv_exceeds_heads.yaml", 7, "num_key_value_heads: 8 exceeds num_attention_heads = 4"},
        {"model_heads_not_dividing_hidden.yaml", 6, "num_attention_heads: 4 does not divide hidden_size = 250"},
        {"model_zero_layers.yaml", 4, "num_layers: must be a positive integer, got 0"},
        {"model_too_many_layers.yaml", 4, "num_layers: 100000000000 layers is beyond the supported 1000000"},
        {"model_bad_dtype.yaml", 14, "dtype: unknown dtype \"bf61\" (did you mean \"bf16\"?)"},
        {"model_bad_family.yaml", 2,
         "family: unknown value \"gpt5\"; valid: llama, mistral, qwen2, qwen3, qwen3_moe, mixtral, deepseek_v2"},
        {"model_syntax.yaml", 10, "(syntax): "},
        {"model_layer_types_mismatch.yaml", 15, "layer_types: lists 1 layers but num_layers = 2"},
        {"model_float_int.yaml", 8, "intermediate_size: expected a non-negative integer, got 512.5"},
        {"model_too_big.yaml", 9, "vocab_size: 99999999999999999999999 does not fit in 64 bits"},
        {"model_bad_bool.yaml", 15, "tie_word_embeddings: expected true or false, got yes"},
        {"model_duplicate_key.yaml", 15, "num_layers: duplicate key (first given at line 4)"},
        {"model_not_mapping.yaml", 1, "(document): expected a mapping of keys to values, got a list"},
        {"model_empty.yaml", 0, "file is empty"},
        {"gpu_missing_source.yaml", 6, "memory_bytes: has no citation"},
        {"gpu_usable_gt_total.yaml", 7, "usable_memory_bytes: 95017493504 must be positive and at most memory_bytes"},
        {"gpu_negative_bandwidth.yaml", 8, "hbm_bandwidth_bytes_per_s: expected a positive number, got -3.35e12"},
        {"gpu_unknown_flops_dtype.yaml", 10, "peak_flops_per_s.bfloat16: unknown key"},
        {"hf_missing_layers.json", 1, "num_hidden_layers: required field is missing"},
        {"hf_bad_type.json", 4, "hidden_size: expected a non-negative integer, got \"big\""},
        {"hf_unsupported_type.json", 3, "model_type: unsupported model_type \"lama\" (did you mean \"llama\"?)"},
        {"hf_syntax.json", 9, "(syntax): syntax error"},
        {"hf_moe.json", 11, "num_local_experts: model_type \"llama\" has no num_local_experts: this config is not a llama model"},
        {"hf_negative.json", 6, "num_attention_heads: must be positive, got -4"},
        {"hf_kv_not_dividing.json", 8, "num_key_value_heads: 3 does not divide num_attention_heads = 4"},
        {"hf_bad_dtype.json", 12, "torch_dtype: unsupported dtype \"float8\"; valid: bfloat16, float16, float32"},
        {"hf_not_object.json", 1, "(document): expected a JSON object"},
        {"hf_number_overflow.json", 9, "vocab_size: the number 1e400 is out of range (a finite number below 1.8e308)"},
        {"runtime_unknown_key.yaml", 11, "gqa_mode: unknown key"},
        {"runtime_bad_mask.yaml", 9, "mask: unknown value \"boolean\"; valid: none, additive, bool-when-needed"},
        {"runtime_no_default_overhead.yaml", 16, "context_overhead: needs a \"default\" entry"},
        {"runtime_eager_native_gqa.yaml", 10, "gqa: eager attention multiplies per query head: use repeat"},
        {"runtime_missing_source.yaml", 15, "allocator_round_bytes: has no citation"},
        {"runtime_vllm_bad_util.yaml", 18, "vllm.gpu_memory_utilization: \"1.5\" must be a decimal in (0, 1]"},
        {"cluster_bad_fabric.yaml", 8, "intra_node.fabric: unknown value \"nvlinc\" (did you mean \"nvlink\"?)"},
        {"cluster_missing_source.yaml", 7, "intra_node: has no citation"},
        {"meas_bad_mode.json", 15, "cases[0].mode: \"train\"; valid: prefill, decode"},
        {"meas_misspelt.json", 23, "cases[0].measured.forward_peek_bytes: unknown key (did you mean \"forward_peak_bytes\"?)"},
        {"meas_negative_batch.json", 16, "cases[0].batch: must not be negative, got -1"},
        {"meas_no_gpu.json", 4, "provenance: required field \"gpu\" is missing"},
        {"meas_old_schema.json", 2, "schema: \"memtax.measurements/0\" is not supported; valid: memtax.measurements/1"},
        {"meas_truncated.json", 17, "(syntax): syntax error"},
        {"meas_unknown_kind.json", 12,
         "cases[0].kind: \"gemv\" (did you mean \"gemm\"?); valid: forward, step_time, train, stream, gemm, attention-eager, "
         "attention-flash, decode-paged, mlp, allreduce, attention-sdpa"},
        {"meas_unknown_runtime.json", 10, "cases[0].runtime: unknown runtime \"hf-sdap\" (did you mean \"hf-sdpa\"?)"},
    };
    ASSERT_GE(cases.size(), 15u);
    for (const auto& c : cases) {
        std::string path = bad(c.file);
        bool gpu = c.file.rfind("gpu_", 0) == 0;
        bool runtime = c.file.rfind("runtime_", 0) == 0;
        Result r = c.file.rfind("meas_", 0) == 0      ? run_command({"validate", "--measurements", path})
                   : c.file.rfind("cluster_", 0) == 0 ? run_command({"estimate", "--time", "--cluster", path})
                                                      : run_command({"estimate",
                                                                     gpu       ? "--gpu"
                                                                     : runtime ? "--runtime"
                                                                               : "--model",
                                                                     path});
        EXPECT_EQ(r.code, 2) << c.file;
        std::string where = c.line ? path + ":" + std::to_string(c.line) + ": " : path + ": ";
        EXPECT_EQ(r.err.rfind("memtax: error: " + where + c.field, 0), 0u) << "got: " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_TRUE(r.out.empty()) << c.file;
    }
}

TEST(Cli, HelpAndVersionExitZero) {
    Result h = run_command({"--help"});
    EXPECT_EQ(h.code, 0);
    EXPECT_NE(h.out.find("estimate"), std::string::npos);
    Result e = run_command({"estimate", "--help"});
    EXPECT_EQ(e.code, 0);
    EXPECT_NE(e.out.find("--kv-dtype"), std::string::npos);
    EXPECT_EQ(run_command({"--version"}).code, 0);
}

TEST(Cli, ValidateRuntimesAndVllm) {
    const std::string file = std::string(MEMTAX_TEST_DATA) + "/measured/h100_hf_memory_mistral_7b.json";
    Result ok = run_command({"validate", "--measurements", file});
    EXPECT_EQ(ok.code, 0) << ok.err;
    EXPECT_NE(ok.out.find("result: every check passed"), std::string::npos);
    EXPECT_NE(ok.out.find("NVIDIA H100 80GB HBM3"), std::string::npos);
    // A tolerance no model meets: some case fails, exit 1 (a CI gate), report still printed.
    Result strict = run_command({"validate", "--measurements", file, "--tolerance", "0.0001", "--slack-mib", "0"});
    EXPECT_EQ(strict.code, 1);
    EXPECT_NE(strict.out.find("FAIL"), std::string::npos);
    Result j = run_command({"validate", "--measurements", file, "--format", "json"});
    auto doc = nlohmann::json::parse(j.out);
    EXPECT_EQ(doc["schema"], "memtax.validation/1");
    EXPECT_EQ(doc["all_ok"], true);
    EXPECT_EQ(doc["cases"].size(), 17u);

    Result list = run_command({"runtimes", "--format", "json"});
    EXPECT_EQ(nlohmann::json::parse(list.out)["runtimes"].size(), 6u);  // + hf-train, hf-train-eager, megatron-train
    // --attention is shorthand for the transformers runtimes; contradicting --runtime is an error.
    EXPECT_EQ(run_command({"estimate", "--runtime", "hf-sdpa", "--attention", "eager"}).code, 2);
    Result v = run_command({"estimate", "--runtime", "vllm", "--context", "131072", "--format", "json"});
    auto e = nlohmann::json::parse(v.out);
    EXPECT_EQ(e["inputs"]["runtime"]["name"], "vllm");
    EXPECT_EQ(e["vllm"]["num_blocks"], 28019);
    EXPECT_EQ(e["vllm"]["blocks_per_request"], 8192);
    // 16 sequences of 128k do not fit in 3.42 sequences' worth of blocks, yet memory is left:
    // the headroom stays a true (positive) number and the grid says what the pool holds.
    Result v16 = run_command({"estimate", "--runtime", "vllm", "--context", "131072", "--batch", "16", "--format", "json"});
    auto e16 = nlohmann::json::parse(v16.out);
    EXPECT_EQ(e16["per_gpu"]["fits"], false);
    EXPECT_EQ(e16["per_gpu"]["headroom_bytes"], 85017493504 - e16["per_gpu"]["total_bytes"].get<std::int64_t>());
    Result grid = run_command({"whatif", "--runtime", "vllm", "--setup", "llama-3.1-8b@1xh100-sxm", "--contexts", "131072", "--batches",
                               "16", "--kv-dtypes", "bf16", "--modes", "decode"});
    EXPECT_NE(grid.out.find("no (3.42 sequences)"), std::string::npos) << grid.out;
}

TEST(Cli, TimeJsonHasStableKeys) {
    Result r = run_command(
        {"estimate", "--model", "llama-3.1-8b", "--tp", "2", "--time", "--cluster", "hgx-h100-8", "--format", "json", "--explain"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out)["time"];
    for (const char* k :
         {"ttft_s", "tpot_s", "tokens_per_s", "ridge_flops_per_byte", "crossover_tokens", "achievable", "prefill", "decode", "explain"})
        EXPECT_TRUE(j.contains(k)) << k;
    bool all_reduce = false;
    for (const auto& k : j["decode"]["kinds"]) {
        for (const char* f : {"kind", "kernels", "flops", "bytes", "seconds", "bound"}) EXPECT_TRUE(k.contains(f)) << f;
        all_reduce |= k["kind"] == "tp all-reduce" && k["bound"] == "communication";
    }
    EXPECT_TRUE(all_reduce);
    EXPECT_GT(j["ttft_s"].get<double>(), j["tpot_s"].get<double>());
    // --cluster without --time is a mistake worth saying.
    EXPECT_EQ(run_command({"estimate", "--cluster", "hgx-h100-8"}).code, 2);
    // A replica larger than the cluster is refused.
    EXPECT_EQ(run_command({"estimate", "--model", "llama-3.1-70b", "--tp", "8", "--pp", "2", "--time", "--cluster", "hgx-h100-8"}).code, 2);
}

// calibrate writes the profile atomically where told and reports the fit; probe needs its binary.
TEST(Cli, CalibrateAndProbe) {
    const std::string probe_file = std::string(MEMTAX_TEST_DATA) + "/measured/probe_h100.json";
    const std::string out = testing::TempDir() + "memtax-calibrated-h100.yaml";
    std::remove(out.c_str());
    Result r = run_command({"calibrate", "--measurements", probe_file, "--output", out});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("gemm_bf16"), std::string::npos);
    EXPECT_NE(r.out.find("wrote " + out), std::string::npos);
    EXPECT_EQ(resolve_gpu(out).name, "h100-sxm-calibrated");
    // Validating the probe file against the written profile runs every case (exit 1: the known
    // mid-size decode misses beyond 10%).
    r = run_command({"validate", "--measurements", probe_file, "--gpu", out});
    EXPECT_EQ(r.code, 1);
    // A run before per-case memory pools: the sizes the probe asked for are its bookkeeping, and
    // the table says so instead of calling them measured.
    EXPECT_NE(r.out.find("148 probe cases: no device count of the bytes"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sizes asked equal the kernel model's in 148"), std::string::npos) << r.out;
    // Refuses to overwrite its input.
    r = run_command({"calibrate", "--measurements", probe_file, "--output", probe_file});
    EXPECT_EQ(r.code, 2);
    r = run_command({"probe", "--probe", "/nonexistent/memtax-probe"});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err.rfind("memtax: error: --probe: /nonexistent/memtax-probe not found", 0), 0u) << r.err;
    r = run_command({"calibrate", "--measurements", std::string(MEMTAX_TEST_DATA) + "/measured/h100_hf_memory.json"});
    EXPECT_EQ(r.code, 2);  // no stream cases to fit
    // `probe` end to end with a stand-in for memtax-probe that writes the recorded H100 run:
    // probe, calibrate, validate in one step (exit 1: the recorded decode misses).
    const std::string fake = testing::TempDir() + "memtax-fake-probe.sh";
    {
        std::ofstream f(fake);
        f << "#!/bin/sh\n# memtax-probe --output FILE ...\ncp '" << probe_file << "' \"$2\"\n";
    }
    std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
    const std::string meas = testing::TempDir() + "memtax-probe-out.json", cal = testing::TempDir() + "memtax-probe-cal.yaml";
    r = run_command({"probe", "--probe", fake, "--measurements", meas, "--calibrated", cal});
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.out.find("wrote " + cal), std::string::npos);
    EXPECT_NE(r.out.find("148 probe cases: no device count of the bytes"), std::string::npos);
    EXPECT_EQ(resolve_gpu(cal).kernel_rates.count("gemm_fp8_e4m3"), 1u);
}

// Input strings are checked where they are read: a profile with bytes that are not UTF-8, a
// number too large for its field, a probe on a host without a GPU: each a one-line input error,
// exit 2, never the internal-error exit 3.
TEST(Cli, BadStringsNumbersAndNoGpuAreInputErrors) {
    const std::string dir = testing::TempDir();
    const std::string yaml = dir + "memtax-latin1.yaml";
    {
        std::ifstream in(std::string(MEMTAX_TEST_DATA) + "/good_model.yaml");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        text.replace(text.find("name: bad"), 9, "name: caf\xe9");  // Latin-1 é
        std::ofstream(yaml) << text;
    }
    Result r = run_command({"estimate", "--model", yaml, "--format", "json"});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "memtax: error: " + yaml + ":1: (encoding): byte 0xE9 is not valid UTF-8; profiles are UTF-8 text\n");
    EXPECT_TRUE(r.out.empty());
    const std::string cfg = dir + "memtax-huge.config.json";
    {
        std::ifstream in(std::string(MEMTAX_TEST_DATA) + "/measured/gqa-2l.config.json");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto at = text.find("\"vocab_size\": ");
        ASSERT_NE(at, std::string::npos);
        const auto end = text.find_first_of(",\n}", at + 14);
        text.replace(at, end - at, "\"vocab_size\": 1e400");
        std::ofstream(cfg) << text;
    }
    r = run_command({"estimate", "--model", cfg});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find(": vocab_size: the number 1e400 is out of range"), std::string::npos) << r.err;
    // A stand-in for memtax-probe on a host without a GPU (its exit 4).
    const std::string fake = dir + "memtax-nogpu-probe.sh";
    std::ofstream(fake) << "#!/bin/sh\necho 'memtax-probe: no usable CUDA device (none found)' >&2\nexit 4\n";
    std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
    r = run_command({"probe", "--probe", fake, "--measurements", dir + "memtax-nogpu.json"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("memtax: error: --probe: this host has no usable CUDA GPU"), std::string::npos) << r.err;
}

// Every command renders through the printer registry: each format works for each of them.
TEST(Cli, EveryCommandHasEveryFormat) {
    const std::string meas = std::string(MEMTAX_TEST_DATA) + "/measured/h100_hf_memory_mistral_7b.json";
    for (const std::string format : {"table", "json", "csv"}) {
        SCOPED_TRACE(format);
        for (std::vector<std::string> args : std::vector<std::vector<std::string>>{{"estimate"},
                                                                                   {"whatif", "--contexts", "1024", "--batches", "1"},
                                                                                   {"models"},
                                                                                   {"gpus"},
                                                                                   {"runtimes"},
                                                                                   {"validate", "--measurements", meas}}) {
            args.push_back("--format");
            args.push_back(format);
            const Result r = run_command(args);
            EXPECT_LE(r.code, 1) << args[0] << ": " << r.err;
            EXPECT_FALSE(r.out.empty()) << args[0];
            if (format == "json") EXPECT_TRUE(nlohmann::json::accept(r.out)) << args[0];
            if (format == "csv") EXPECT_NE(r.out.find(','), std::string::npos) << args[0];
        }
    }
    const Result bad = run_command({"estimate", "--format", "xml"});
    EXPECT_EQ(bad.code, 2);
}
