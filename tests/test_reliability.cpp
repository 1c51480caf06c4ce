// Reliability: extreme but valid inputs never wrap, random valid models keep the properties,
// reports survive a killed run, inputs are never overwritten, bad files get clear errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "cli/commands.hpp"
#include "model/plan.hpp"
#include "model/time_model.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

#include <fmt/format.h>

using namespace memtax;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

fs::path scratch(const std::string& name) {
    fs::path d = fs::temp_directory_path() / ("memtax-test-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d / name;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Arithmetic safety

namespace {

// A 1-trillion-parameter dense decoder: 128 layers, hidden 32,768, 256 heads of 128 (16 KV
// heads), intermediate 2.5 · hidden... per layer 4·h² (q, o) + 2·h·(16·128) (k, v) + 3·h·I.
std::string trillion_yaml() {
    return "name: dense-1t\nfamily: llama\nsource: synthetic\nnum_layers: 128\nhidden_size: 32768\n"
           "num_attention_heads: 256\nnum_key_value_heads: 16\nhead_dim: 128\nintermediate_size: 81920\n"
           "vocab_size: 256000\nmax_context: 10000000\nnorm: rmsnorm\nactivation: silu\nmlp: gated\ndtype: bf16\n";
}

void expect_sane(const Estimate& e) {
    EXPECT_GE(e.total, e.weights + e.runtime_overhead);
    if (e.sections.empty()) EXPECT_GE(e.kv_cache, e.kv_cache_visible);  // a pool (vLLM): whatever the batch needs
}

}  // namespace

TEST(ArithmeticSafety, ExtremeInputsAreExactOrNameTheOverflowingTerm) {
    const ModelSpec big = load_model_yaml(trillion_yaml(), "dense-1t.yaml");
    // 128 · (2·32,768² + 2·32,768·2,048 + 3·32,768·81,920 + 2·32,768) + 2·256,000·32,768 + 32,768
    const u64 params =
        128ull * (2ull * 32768 * 32768 + 2ull * 32768 * 2048 + 3ull * 32768 * 81920 + 2ull * 32768) + 2ull * 256000 * 32768 + 32768;
    EXPECT_EQ(parameter_count(big), params);
    EXPECT_GT(params, 1'000'000'000'000ull);
    const GpuSpec gpu = resolve_gpu("b200");
    int exact = 0, overflow = 0;
    for (const char* runtime : {"hf-sdpa", "hf-eager", "vllm"})
        for (u64 context : {1ull, 131072ull, 10'000'000ull})
            for (u64 batch : {1ull, 4096ull})
                for (const char* wd : {"bf16", "int4"})
                    for (const char* kd : {"bf16", "int4", "fp8_e4m3"})
                        for (Mode mode : {Mode::Prefill, Mode::Decode}) {
                            Workload w;
                            w.allow_long_context = true;  // properties hold past max_context too
                            w.runtime = resolve_runtime(runtime);
                            w.context = context;
                            w.batch = batch;
                            w.mode = mode;
                            parse_dtype(wd, w.weight_dtype.emplace());
                            parse_dtype(kd, w.kv_dtype.emplace());
                            SCOPED_TRACE(fmt::format("{} ctx {} batch {} w {} kv {}", runtime, context, batch, wd, kd));
                            try {
                                Estimate e = estimate(big, gpu, Deployment{64, 8, 8}, w);
                                expect_sane(e);
                                ++exact;
                            } catch (const OverflowError& err) {
                                // The message names the term: "<term> overflows 64 bits".
                                EXPECT_NE(std::string(err.what()).find("overflow"), std::string::npos) << err.what();
                                EXPECT_GT(std::string(err.what()).size(), 20u) << err.what();
                                ++overflow;
                            } catch (const InputError& err) {
                                // vLLM has no int4 KV cache: a clear refusal, not a number.
                                EXPECT_EQ(std::string(runtime), "vllm") << err.what();
                                EXPECT_EQ(std::string(kd), "int4") << err.what();
                            }
                        }
    EXPECT_GT(exact, 100);
    // 10M tokens × batch 4096 of eager S×S scores cannot be counted in 64 bits.
    EXPECT_GT(overflow, 0);
}

TEST(ArithmeticSafety, TimesAreFiniteAndNonNegative) {
    const ModelSpec big = load_model_yaml(trillion_yaml(), "dense-1t.yaml");
    const GpuSpec gpu = resolve_gpu("h200");
    Workload p;
    p.allow_long_context = true;  // properties hold past max_context too
    p.runtime = resolve_runtime("hf-sdpa");
    p.context = 1'000'000;
    p.batch = 1;
    Workload d = p;
    d.mode = Mode::Decode;
    Estimate pe = estimate(big, gpu, Deployment{64, 8, 8}, p), de = estimate(big, gpu, Deployment{64, 8, 8}, d);
    TimeEstimate t = estimate_time(pe, de, Topology(single_node_cluster(gpu, 64)));
    // At 10M tokens the causal attention alone passes 2^64 FLOPs (4 · 32 heads · 10^7 queries ·
    // 5·10^6 keys · 128 on each GPU): an error naming the op, not a wrapped count.
    p.context = d.context = 10'000'000;
    pe = estimate(big, gpu, Deployment{64, 8, 8}, p);
    de = estimate(big, gpu, Deployment{64, 8, 8}, d);
    try {
        estimate_time(pe, de, Topology(single_node_cluster(gpu, 64)));
        FAIL() << "expected an overflow";
    } catch (const OverflowError& err) {
        EXPECT_NE(std::string(err.what()).find("fused_attention"), std::string::npos) << err.what();
    }
    for (double v : {t.ttft_s, t.tpot_s, t.tokens_per_s, t.prefill.compute_utilisation, t.decode.compute_utilisation}) {
        EXPECT_TRUE(std::isfinite(v));
        EXPECT_GE(v, 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Properties over random valid models (not only the shipped ones)

TEST(Properties, RandomValidModels) {
    std::mt19937_64 rng(6);  // fixed seed: the same models every run
    const GpuSpec gpu = resolve_gpu("h200");
    const RuntimeSpec eager = resolve_runtime("hf-eager"), sdpa = resolve_runtime("hf-sdpa");
    int checked = 0;
    for (int i = 0; i < 60; ++i) {
        const u64 kv_heads = 1ull << (rng() % 4);      // 1..8
        const u64 heads = kv_heads * (1 + rng() % 8);  // a multiple
        const u64 head_dim = 32ull << (rng() % 3);     // 32..128
        const u64 layers = 1 + rng() % 48;
        const bool sliding = rng() % 3 == 0;
        std::string yaml = fmt::format(
            "name: random-{}\nfamily: llama\nsource: random\nnum_layers: {}\nhidden_size: {}\nnum_attention_heads: {}\n"
            "num_key_value_heads: {}\nhead_dim: {}\nintermediate_size: {}\nvocab_size: {}\nmax_context: 1000000\n"
            "norm: rmsnorm\nactivation: silu\nmlp: gated\ndtype: bf16\ntie_word_embeddings: {}\n{}",
            i, layers, heads * head_dim, heads, kv_heads, head_dim, 64 * (1 + rng() % 200), 1000 + rng() % 150000,
            rng() % 2 ? "true" : "false", sliding ? fmt::format("sliding_window: {}\n", 256 + rng() % 4096) : "");
        const ModelSpec m = load_model_yaml(yaml, "random.yaml");
        const u64 ctx = 64 + rng() % 8192, batch = 1 + rng() % 6;
        for (const RuntimeSpec* rt : {&eager, &sdpa})
            for (Mode mode : {Mode::Prefill, Mode::Decode}) {
                auto at = [&](u64 b, u64 c, u64 tp) {
                    Workload w;
                    w.allow_long_context = true;  // properties hold past max_context too
                    w.runtime = *rt;
                    w.mode = mode;
                    w.batch = b;
                    w.context = c;
                    return estimate(m, gpu, Deployment{tp, tp}, w);
                };
                SCOPED_TRACE(yaml + fmt::format("ctx {} batch {} {} {}", ctx, batch, rt->name, to_string(mode)));
                const Estimate base = at(batch, ctx, 1), longer = at(batch, 2 * ctx, 1), wider = at(batch + 1, ctx, 1);
                expect_sane(base);
                EXPECT_LE(base.total, longer.total);
                EXPECT_LE(base.total, wider.total);
                if (!sliding) {
                    EXPECT_EQ(longer.kv_cache, 2 * base.kv_cache);  // linear in context
                    if (mode == Mode::Prefill) EXPECT_LE(base.forward_peak, longer.forward_peak);
                }
                EXPECT_EQ(wider.kv_cache * batch, base.kv_cache * (batch + 1));  // linear in batch
                if (rt == &eager && mode == Mode::Prefill) {
                    // ×4 per doubling up to the allocator's 512-B rounding of each S×S tensor.
                    EXPECT_NEAR(static_cast<double>(longer.layers[0].attention_matrix_bytes),
                                4.0 * static_cast<double>(base.layers[0].attention_matrix_bytes), 5.0 * 4 * 512);
                }
                for (u64 tp : {2ull, 4ull}) {
                    if (heads % tp || m.intermediate_size % tp || (kv_heads % tp && tp % kv_heads)) continue;
                    const Estimate sharded = at(batch, ctx, tp);
                    EXPECT_LE(sharded.weights, base.weights);
                    EXPECT_LE(sharded.kv_cache, base.kv_cache);
                    EXPECT_LE(sharded.total, base.total);
                }
                ++checked;
            }
    }
    EXPECT_EQ(checked, 60 * 4);
}

// ---------------------------------------------------------------------------------------------
// Files

namespace {

struct CliRun {
    int code = 0;
    std::string out, err;
};

CliRun cli(std::vector<std::string> args) {
    std::ostringstream out, err;
    CliRun r;
    r.code = run_cli(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

// A what-if grid big enough that writing it takes a while (thousands of rows).
std::vector<std::string> big_whatif(const std::string& output) {
    std::string contexts;
    for (int i = 1; i <= 60; ++i) contexts += (i > 1 ? "," : "") + std::to_string(512 * i);
    return {MEMTAX_BINARY, "whatif", "--contexts", contexts, "--batches", "1,2,4,8", "--format", "json", "--output", output};
}

}  // namespace

TEST(Files, AKilledRunLeavesTheOldReportIntact) {
    const fs::path report = scratch("report.json");
    const std::string old_text = "{\"the previous report\": true}\n";
    // The complete new report, from an uninterrupted run.
    {
        std::vector<std::string> args = big_whatif(report.string());
        args.erase(args.begin());
        ASSERT_EQ(cli(args).code, 0);
    }
    const std::string full = slurp(report);
    ASSERT_GT(full.size(), 1000000u);
    const auto started = std::chrono::steady_clock::now();
    {
        std::vector<std::string> args = big_whatif(report.string());
        args.erase(args.begin());
        cli(args);
    }
    const auto run_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    int old_seen = 0, new_seen = 0;
    for (int i = 0; i < 24; ++i) {
        std::ofstream(report, std::ios::binary | std::ios::trunc) << old_text;
        std::vector<std::string> args = big_whatif(report.string());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        // Kill at points spread over (and a little past) a whole run, including mid-write.
        std::this_thread::sleep_for(std::chrono::microseconds(run_us * i / 20));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        const std::string now = slurp(report);
        EXPECT_TRUE(now == old_text || now == full) << "kill " << i << ": a report of " << now.size() << " bytes";
        old_seen += now == old_text;
        new_seen += now == full;
    }
    EXPECT_GT(old_seen, 0);  // some kills landed before the rename
    for (const auto& entry : fs::directory_iterator(report.parent_path())) fs::remove(entry.path());
}

TEST(Files, RefusesToOverwriteAnInput) {
    const fs::path model = scratch("model.yaml");
    fs::copy_file(std::string(MEMTAX_SOURCE_DIR) + "/models/llama-3.1-8b.yaml", model, fs::copy_options::overwrite_existing);
    const std::string before = slurp(model);
    CliRun r = cli({"estimate", "--model", model.string(), "--output", model.string()});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("is an input of this run"), std::string::npos) << r.err;
    EXPECT_EQ(slurp(model), before);
    // The same file through another path.
    r = cli({"estimate", "--model", model.string(), "--output", (model.parent_path() / "." / "model.yaml").string()});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(slurp(model), before);
    const fs::path meas = scratch("m.json");
    fs::copy_file(std::string(MEMTAX_TEST_DATA) + "/measured/h100_hf_memory_mistral_7b.json", meas, fs::copy_options::overwrite_existing);
    fs::copy_file(std::string(MEMTAX_TEST_DATA) + "/measured/mistral-7b-v0.1.config.json", scratch("mistral-7b-v0.1.config.json"),
                  fs::copy_options::overwrite_existing);
    EXPECT_EQ(cli({"validate", "--measurements", meas.string(), "--output", meas.string()}).code, 2);
    // A directory is not a report path.
    EXPECT_EQ(cli({"estimate", "--output", model.parent_path().string()}).code, 2);
    fs::remove_all(model.parent_path());
}

TEST(Files, UnreadableMissingEmptyBinaryAndEnormousInputs) {
    const fs::path dir = scratch("x").parent_path();
    struct Case {
        std::string name, message;
    };
    std::ofstream(dir / "empty.yaml") << "  \n\t\n";
    {
        std::ofstream bin(dir / "binary.yaml", std::ios::binary);
        bin << "name: x" << '\0' << "\x01\x02";
    }
    // 64 MiB + 1 byte, sparse: over the input limit without writing it out.
    { std::ofstream(dir / "huge.yaml") << "name: x\n"; }
    fs::resize_file(dir / "huge.yaml", (64ull << 20) + 1);
    ::mkfifo((dir / "fifo.yaml").c_str(), 0600);
    const std::vector<Case> cases = {
        {"missing.yaml", "no such file"},       {"empty.yaml", "file is empty"},
        {"binary.yaml", "file is binary"},      {"huge.yaml", "inputs are limited to 64 MiB"},
        {"fifo.yaml", "is not a regular file"}, {"", "is a directory"},
    };
    for (const auto& c : cases) {
        const std::string path = c.name.empty() ? dir.string() : (dir / c.name).string();
        CliRun r = cli({"estimate", "--model", path + (c.name.empty() ? "" : "")});
        if (c.name.empty()) r = cli({"validate", "--measurements", path});
        EXPECT_EQ(r.code, 2) << c.name;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << c.name << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_TRUE(r.out.empty());
    }
    // Unreadable: permission bits only bind a non-root user (CI may run as root).
    if (::geteuid() != 0) {
        std::ofstream(dir / "locked.yaml") << "name: x\n";
        fs::permissions(dir / "locked.yaml", fs::perms::none);
        CliRun r = cli({"estimate", "--model", (dir / "locked.yaml").string()});
        EXPECT_EQ(r.code, 2);
        EXPECT_NE(r.err.find("cannot read file"), std::string::npos) << r.err;
    }
    fs::remove_all(dir);
}
