// What a user meets at the command line: names, suggestions, number notation, defaults that
// follow the model, vLLM's engine arguments, every printer of every result, and output that
// does not depend on the locale. Expected values are derived by hand in the comments.
#include <gtest/gtest.h>

#include <clocale>
#include <filesystem>
#include <fstream>
#include <locale>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "cli_run.hpp"
#include "core/number.hpp"
#include "report/table.hpp"

using namespace memtax;

namespace {

std::string ux(const std::string& f) { return std::string(MEMTAX_TEST_DATA) + "/ux/" + f; }

// The value of one CSV row "section,name,value,..." of an estimate.
std::string csv_value(const std::string& csv, const std::string& section, const std::string& name) {
    const std::string key = "\n" + section + "," + name + ",";
    const size_t at = csv.find(key);
    if (at == std::string::npos) return "<missing>";
    const size_t start = at + key.size();
    if (csv[start] == '"') return csv.substr(start + 1, csv.find('"', start + 1) - start - 1);
    return csv.substr(start, csv.find_first_of(",\n", start) - start);
}

}  // namespace

// --- names -----------------------------------------------------------------------------------

TEST(CliUx, AGpuFamilyWordIsItsCanonicalProfile) {
    // "h100" is declared by h100-sxm (the SXM part is what "H100" means in a cluster); the PCIe
    // card and the calibrated copy need their own names.
    Result r = run_command({"estimate", "--gpu", "h100", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["inputs"]["gpu"]["name"], "h100-sxm");
    EXPECT_EQ(run_command({"estimate", "--gpu", "h100-sxm5", "--format", "json"}).code, 0);
}

TEST(CliUx, ModelAliasesResolve) {
    for (const char* name : {"llama3-8b", "llama-3-8b", "meta-llama/Llama-3.1-8B", "Llama-3.1-8B", "llama3.1-8b"}) {
        Result r = run_command({"estimate", "--model", name, "--format", "json"});
        ASSERT_EQ(r.code, 0) << name << ": " << r.err;
        EXPECT_EQ(nlohmann::json::parse(r.out)["inputs"]["model"]["name"], "llama-3.1-8b") << name;
    }
    // A typo is not a family: "llama-3.1-8" is one letter short of llama-3.1-8b.
    Result typo = run_command({"estimate", "--model", "llama-3.1-8"});
    EXPECT_EQ(typo.code, 2);
    EXPECT_NE(typo.err.find("did you mean \"llama-3.1-8b\""), std::string::npos) << typo.err;
}

TEST(CliUx, MisspeltCommandsAndFlagsGetSuggestions) {
    Result cmd = run_command({"estmate"});
    EXPECT_EQ(cmd.code, 2);
    EXPECT_EQ(cmd.err.rfind("memtax: error: unknown command \"estmate\" (did you mean \"estimate\"?)", 0), 0u) << cmd.err;
    Result flag = run_command({"estimate", "--contxt", "32k"});
    EXPECT_EQ(flag.code, 2);
    EXPECT_EQ(flag.err.rfind("memtax: error: estimate: unknown flag --contxt (did you mean \"--context\"?)", 0), 0u) << flag.err;
    Result eq = run_command({"whatif", "--batchs=1"});
    EXPECT_NE(eq.err.find("did you mean \"--batches\"?"), std::string::npos) << eq.err;
    EXPECT_TRUE(flag.out.empty());
}

// --- numbers ---------------------------------------------------------------------------------

TEST(CliUx, TokenCountsTakeBinarySuffixes) {
    u64 v = 0;
    // k = 1,024 and M = 1,048,576: a "128k context" is 131,072 tokens.
    EXPECT_EQ(parse_token_count("32k", v), NumberParse::Ok);
    EXPECT_EQ(v, 32768u);
    EXPECT_EQ(parse_token_count("1M", v), NumberParse::Ok);
    EXPECT_EQ(v, 1048576u);
    EXPECT_EQ(parse_token_count("1.5k", v), NumberParse::Ok);
    EXPECT_EQ(v, 1536u);
    EXPECT_EQ(parse_token_count("0.1k", v), NumberParse::NotInteger);  // 102.4 tokens
    EXPECT_EQ(parse_token_count("32kk", v), NumberParse::Invalid);
    Result r = run_command({"estimate", "--context", "32k", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    // KV of Llama-3.1-8B: 2 · 32 layers · 8 heads · 128 · 2 B = 131,072 B per token; × 32,768.
    EXPECT_EQ(nlohmann::json::parse(r.out)["per_gpu"]["kv_cache_bytes"], 131072ull * 32768);
    Result w = run_command({"whatif", "--contexts", "8k,1e4", "--batches", "1", "--modes", "prefill", "--kv-dtypes", "bf16", "--setup",
                            "llama-3.1-8b@1xh100-sxm", "--format", "csv"});
    ASSERT_EQ(w.code, 0) << w.err;
    EXPECT_NE(w.out.find(",8192,bf16,"), std::string::npos) << w.out;
    EXPECT_NE(w.out.find(",10000,bf16,"), std::string::npos) << w.out;
}

TEST(CliUx, ExponentNotationExactlyWhenInteger) {
    u64 v = 0;
    EXPECT_EQ(parse_exact_integer("186e9", v), NumberParse::Ok);
    EXPECT_EQ(v, 186000000000u);
    EXPECT_EQ(parse_exact_integer("1.86e11", v), NumberParse::Ok);
    EXPECT_EQ(v, 186000000000u);
    EXPECT_EQ(parse_exact_integer("18446744073709551615", v), NumberParse::Ok);
    EXPECT_EQ(v, ~u64{0});
    EXPECT_EQ(parse_exact_integer("18446744073709551616", v), NumberParse::Overflow);
    EXPECT_EQ(parse_exact_integer("1e20", v), NumberParse::Overflow);
    EXPECT_EQ(parse_exact_integer("1.5e0", v), NumberParse::NotInteger);
    EXPECT_EQ(parse_exact_integer("1000e-3", v), NumberParse::Ok);
    EXPECT_EQ(v, 1u);
    EXPECT_EQ(parse_exact_integer("1500e-3", v), NumberParse::NotInteger);  // 1.5
    EXPECT_EQ(parse_exact_integer("-4", v), NumberParse::Invalid);
    EXPECT_EQ(parse_exact_integer("e9", v), NumberParse::Invalid);
    EXPECT_EQ(parse_exact_integer("1e", v), NumberParse::Invalid);
    // The CLI takes the same notation: --batch 1e1 is 10 sequences.
    Result r = run_command({"estimate", "--batch", "1e1", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["inputs"]["workload"]["batch"], 10);
    EXPECT_EQ(run_command({"estimate", "--batch", "1.5e0"}).code, 2);
}

// --- defaults that follow the model ------------------------------------------------------------

TEST(CliUx, DefaultContextNeverExceedsTheModel) {
    // Llama-2-7B's max_position_embeddings is 4,096 < 8,192.
    Result r = run_command({"estimate", "--model", "llama-2-7b", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["inputs"]["workload"]["context"], 4096);
    Result l = run_command({"estimate", "--model", "llama-3.1-8b", "--format", "json"});
    EXPECT_EQ(nlohmann::json::parse(l.out)["inputs"]["workload"]["context"], 8192);
    // The what-if grid's default contexts stop at each model's maximum too.
    Result w = run_command(
        {"whatif", "--setup", "llama-2-7b@1xh100-sxm", "--batches", "1", "--kv-dtypes", "bf16", "--modes", "prefill", "--format", "csv"});
    ASSERT_EQ(w.code, 0) << w.err;
    EXPECT_NE(w.out.find(",4096,bf16,"), std::string::npos) << w.out;
    EXPECT_EQ(w.out.find(",8192,"), std::string::npos) << w.out;
}

TEST(CliUx, DtypeAndWeightDtypeCastTheWholeModel) {
    // tiny-fp32 by hand: per layer q 256·256 + k 256·128 + v 256·128 + o 256·256 + 3 · 256·512 + 2 norms · 256
    // = 65,536 + 32,768 + 32,768 + 65,536 + 393,216 + 512 = 590,336; two layers 1,180,672; embedding and
    // untied head 2 · 1,000 · 256 = 512,000; final norm 256: 1,692,928 parameters.
    for (const std::vector<std::string> flag :
         {std::vector<std::string>{"--weight-dtype", "bf16"}, std::vector<std::string>{"--dtype", "bf16"}}) {
        std::vector<std::string> args = {"estimate", "--model", ux("fp32_model.yaml"), "--format", "json", "--context", "128"};
        args.insert(args.end(), flag.begin(), flag.end());
        Result r = run_command(args);
        ASSERT_EQ(r.code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["per_gpu"]["parameters"], 1692928);
        EXPECT_EQ(j["per_gpu"]["weights_bytes"], 2 * 1692928) << flag[0];  // embeddings and norms in bf16 too
    }
    // Without a cast the fp32 config stays fp32.
    Result f = run_command({"estimate", "--model", ux("fp32_model.yaml"), "--format", "json", "--context", "128"});
    EXPECT_EQ(nlohmann::json::parse(f.out)["per_gpu"]["weights_bytes"], 4 * 1692928);
}

// --- vLLM's engine arguments --------------------------------------------------------------------

TEST(CliUx, VllmEngineArgumentsAndMaxNumSeqs) {
    Result over = run_command({"estimate", "--runtime", "vllm", "--batch", "300", "--format", "json"});
    ASSERT_EQ(over.code, 0) << over.err;
    auto j = nlohmann::json::parse(over.out);
    EXPECT_FALSE(j["per_gpu"]["fits"]);  // vLLM's default max_num_seqs is 256
    EXPECT_NE(j["verdict"].get<std::string>().find("max_num_seqs is 256"), std::string::npos) << j["verdict"];
    Result args = run_command({"estimate", "--runtime", "vllm", "--batch", "2", "--gpu-memory-utilization", "0.5", "--max-num-seqs", "300",
                               "--max-num-batched-tokens", "4k", "--block-size", "32", "--format", "json"});
    ASSERT_EQ(args.code, 0) << args.err;
    j = nlohmann::json::parse(args.out);
    EXPECT_EQ(j["vllm"]["block_size"], 32);
    EXPECT_EQ(j["vllm"]["profile_tokens"], 4096);
    EXPECT_EQ(j["vllm"]["max_num_seqs"], 300);
    // requested = 0.5 × the H100's usable 85,017,493,504 B.
    EXPECT_EQ(j["vllm"]["requested_bytes"], 42508746752u);
    // One page = 32 tokens · 2 · 8 heads · 128 · 2 B = 131,072 B per layer.
    EXPECT_EQ(j["vllm"]["page_bytes"], 32u * 2 * 8 * 128 * 2);
    Result wrong = run_command({"estimate", "--max-num-seqs", "8"});
    EXPECT_EQ(wrong.code, 2);
    EXPECT_NE(wrong.err.find("--max-num-seqs: is a vLLM engine argument"), std::string::npos) << wrong.err;
    EXPECT_EQ(run_command({"estimate", "--runtime", "vllm", "--gpu-memory-utilization", "1.2"}).code, 2);
    // vLLM's block sizes are 1, 8, 16, 32, 64, 128, 256 (BlockSize in vllm/config/cache.py).
    Result block = run_command({"estimate", "--runtime", "vllm", "--block-size", "17"});
    EXPECT_EQ(block.code, 2);
    EXPECT_NE(block.err.find("--block-size: 17 tokens is not a vLLM block size"), std::string::npos) << block.err;
    EXPECT_EQ(run_command({"estimate", "--runtime", "vllm", "--block-size", "256"}).code, 0);
    // A scenario gives the same arguments as runtime_settings, applied by the same rule.
    const std::string path = (std::filesystem::temp_directory_path() / "memtax-engine-args.yaml").string();
    {
        std::ofstream f(path);
        f << "name: s\nmodel: llama-3.1-8b\nruntime: hf-sdpa\nruntime_settings: {max_num_seqs: 8}\n"
             "workload: {prompt_tokens: 1k, output_tokens: 128, concurrency: 4}\nconstraints: {gpus: [h100-sxm]}\n";
    }
    Result scen = run_command({"plan", path});
    EXPECT_EQ(scen.code, 2);
    EXPECT_NE(scen.err.find(path + ": runtime_settings.max_num_seqs: is a vLLM engine argument; runtime hf-sdpa is not vLLM"),
              std::string::npos)
        << scen.err;
    std::filesystem::remove(path);
}

// --- GPU profiles ---------------------------------------------------------------------------------

TEST(CliUx, GpuFileWithoutEfficienciesWarnsAndStatesTheDefault) {
    Result r = run_command({"estimate", "--gpu", ux("gpu_no_efficiency.yaml"), "--time", "--format", "json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("memtax: warning:"), std::string::npos);
    EXPECT_NE(r.err.find("no efficiency: block"), std::string::npos) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    // memory_bytes: 186e9 is read exactly; bandwidth 8e12 × the stated default 0.90.
    EXPECT_EQ(j["inputs"]["gpu"]["memory_bytes"], 186000000000u);
    EXPECT_DOUBLE_EQ(j["time"]["achievable"]["bandwidth_bytes_per_s"].get<double>(), 8e12 * 0.90);
}

TEST(CliUx, CapacityIsWhatTheCardReports) {
    Result r = run_command({"gpus", "--format", "json"});
    ASSERT_EQ(r.code, 0);
    std::map<std::string, nlohmann::json> g;
    const auto all = nlohmann::json::parse(r.out);
    for (const auto& x : all["gpus"]) g[x["name"].get<std::string>()] = x;
    // A100 80GB: totalGlobalMem 81,049 MiB (not the datasheet's decimal 80 GB = 74.5 GiB).
    EXPECT_EQ(g.at("a100-80gb")["usable_memory_bytes"], 81049ull << 20);
    EXPECT_EQ(g.at("h100-sxm")["usable_memory_bytes"], 85017493504u);  // measured, cudaMemGetInfo
    for (const char* name : {"gb200", "b300", "h20", "l4", "a10g", "mi325x"}) EXPECT_TRUE(g.count(name)) << name;
}

// --- output ----------------------------------------------------------------------------------------

TEST(CliUx, CsvCarriesVerdictTimeAndVllm) {
    Result r = run_command({"estimate", "--runtime", "vllm", "--batch", "4", "--time", "--format", "csv"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("section,name,value,unit,note\n", 0), 0u);
    EXPECT_EQ(csv_value(r.out, "result", "fits"), "true");
    EXPECT_EQ(csv_value(r.out, "result", "verdict").rfind("fits: ", 0), 0u) << csv_value(r.out, "result", "verdict");
    EXPECT_NE(csv_value(r.out, "vllm", "num_blocks"), "<missing>");
    EXPECT_NE(csv_value(r.out, "time", "ttft_s"), "<missing>");
    EXPECT_NE(csv_value(r.out, "time", "tpot_s"), "<missing>");
    // KV pool: num_blocks · page, the page 16 · 2 · 8 · 128 · 2 B = 65,536 B, per layer of 32.
    const u64 blocks = std::stoull(csv_value(r.out, "vllm", "num_blocks"));
    EXPECT_EQ(std::stoull(csv_value(r.out, "per_gpu", "kv_cache")), blocks * 65536 * 32);
}

TEST(CliUx, EveryCommandHasEveryFormat) {
    const std::vector<std::vector<std::string>> commands = {
        {"estimate", "--time"},
        {"whatif", "--contexts", "1k", "--batches", "1"},
        {"models"},
        {"gpus"},
        {"runtimes"},
        {"clusters"},
        {"validate", "--measurements", std::string(MEMTAX_TEST_DATA) + "/measured/h100_hf_memory.json"}};
    for (const std::string format : {"table", "json", "csv", "markdown"})
        for (auto args : commands) {
            args.push_back("--format");
            args.push_back(format);
            Result r = run_command(args);
            ASSERT_EQ(r.code, 0) << args[0] << " " << format << ": " << r.err;
            ASSERT_FALSE(r.out.empty()) << args[0] << " " << format;
            if (format == "json") EXPECT_TRUE(nlohmann::json::accept(r.out)) << args[0];
            if (format == "markdown") EXPECT_NE(r.out.find("| --- |"), std::string::npos) << args[0];
            if (format == "csv") {
                // Every line has the header's number of fields (none of the fields here holds a quoted comma
                // except the verdict and notes, which are quoted).
                EXPECT_EQ(r.out.find("\n\n"), std::string::npos) << args[0];
            }
            if ((args[0] == "estimate" || args[0] == "whatif") && format != "json")
                EXPECT_NE(r.out.find("fits"), std::string::npos) << args[0];
        }
    // calibrate writes a profile; its report comes in every format too.
    const auto dir = std::filesystem::temp_directory_path() / "memtax_ux_calibrate";
    std::filesystem::create_directories(dir);
    for (const std::string format : {"table", "json", "csv", "markdown"}) {
        Result r = run_command({"calibrate", "--measurements", std::string(MEMTAX_TEST_DATA) + "/measured/probe_h100.json", "--gpu",
                                "h100-sxm", "-o", (dir / "cal.yaml").string(), "--format", format});
        ASSERT_EQ(r.code, 0) << format << ": " << r.err;
        EXPECT_NE(r.out.find("gemm_bf16"), std::string::npos) << format;
    }
    std::filesystem::remove_all(dir);
}

// The JSON printer's golden: the hgx-h100-8 cluster as its profile states it, written out by hand.
TEST(CliUx, ClustersJsonGolden) {
    Result c = run_command({"clusters", "--format", "json"});
    ASSERT_EQ(c.code, 0);
    const auto all = nlohmann::json::parse(c.out);
    EXPECT_EQ(all["schema"], "memtax.clusters/1");
    nlohmann::json hgx;
    for (const auto& x : all["clusters"])
        if (x["name"] == "hgx-h100-8") hgx = x;
    ASSERT_FALSE(hgx.is_null());
    EXPECT_EQ(hgx["gpu"], "h100-sxm");
    EXPECT_EQ(hgx["nodes"], 1);
    EXPECT_EQ(hgx["gpus_per_node"], 8);
    EXPECT_EQ(hgx["intra_node"]["fabric"], "nvswitch");
    EXPECT_DOUBLE_EQ(hgx["intra_node"]["bandwidth_bytes_per_s"].get<double>(), 450e9);  // 900 GB/s both ways, each way
    EXPECT_FALSE(hgx.contains("inter_node"));                                           // one node: no inter-node fabric
    EXPECT_TRUE(hgx["sources"].contains("intra_node"));
}

// The printers' goldens: one hand-written table, its three renderings written out by hand.
TEST(CliUx, PrinterGoldens) {
    Table t;
    t.add_column("name", "name");
    t.add_column("bytes", "bytes", true);
    t.add_column("note", "note");
    t.row();
    t.cell("kv", "1024");
    t.cell("1,024", "1024");
    t.cell("a, \"quoted\" | note");
    t.row();
    t.cell("µs");
    t.cell("5");
    t.cell("");
    EXPECT_EQ(table_text(t),
              "name  bytes  note\n"
              "kv    1,024  a, \"quoted\" | note\n"
              "µs        5  \n");
    EXPECT_EQ(table_markdown(t),
              "| name | bytes | note |\n"
              "| --- | ---: | --- |\n"
              "| kv | 1,024 | a, \"quoted\" \\| note |\n"
              "| µs | 5 |  |\n");
    EXPECT_EQ(table_csv(t),
              "name,bytes,note\n"
              "1024,1024,\"a, \"\"quoted\"\" | note\"\n"
              "µs,5,\n");
    EXPECT_EQ(table_csv(t, false), "1024,1024,\"a, \"\"quoted\"\" | note\"\nµs,5,\n");
}

TEST(CliUx, EstimateMarkdownAndCsvAgreeWithTheHandCount) {
    // Llama-3.1-8B, bf16, 8,192 tokens: KV = 2 · 32 · 8 · 128 · 2 B · 8,192 = 1,073,741,824 B; weights =
    // 2 B × 8,030,261,248 parameters = 16,060,522,496 B.
    Result md = run_command({"estimate", "--format", "markdown"});
    ASSERT_EQ(md.code, 0);
    EXPECT_NE(md.out.find("| kv_cache | 1,073,741,824 | B |"), std::string::npos) << md.out;
    EXPECT_NE(md.out.find("| weights | 16,060,522,496 | B |"), std::string::npos);
    EXPECT_NE(md.out.find("**Verdict:** fits"), std::string::npos);
    Result csv = run_command({"estimate", "--format", "csv"});
    EXPECT_EQ(csv_value(csv.out, "per_gpu", "kv_cache"), "1073741824");
    EXPECT_EQ(csv_value(csv.out, "per_gpu", "weights"), "16060522496");
}

// --- words ---------------------------------------------------------------------------------------

TEST(CliUx, TtftSaysWhatItMeasuresPerRuntime) {
    Result hf = run_command({"estimate", "--batch", "4", "--time"});
    ASSERT_EQ(hf.code, 0) << hf.err;
    EXPECT_NE(hf.out.find("static batch: every request waits for the prefill of 4 prompts"), std::string::npos) << hf.out;
    Result v = run_command({"estimate", "--runtime", "vllm", "--batch", "4", "--context", "4k", "--time", "--format", "json"});
    ASSERT_EQ(v.code, 0) << v.err;
    const auto f = nlohmann::json::parse(v.out)["time"]["first_token"];
    EXPECT_EQ(f["schedule"], "continuous batching, chunked prefill");
    // 4 prompts of 4,096 tokens in steps of at most 8,192 tokens: step 1 finishes prompts 1 and 2; step 2
    // carries their 2 decode tokens, prompt 3 and 4,094 tokens of prompt 4; step 3 its last 2 tokens.
    EXPECT_EQ(f["steps"], 3);
    EXPECT_EQ(f["requests"], 4);
    EXPECT_LT(f["first_s"].get<double>(), f["mean_s"].get<double>());
    EXPECT_LT(f["mean_s"].get<double>(), f["last_s"].get<double>());
}

TEST(CliUx, ExplainListsLiveTensorsAndNoWindowForAFullAttentionModel) {
    Result r = run_command({"estimate", "--explain"});
    ASSERT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("Tensors live at the forward peak"), std::string::npos);
    EXPECT_EQ(r.out.find("window"), std::string::npos) << "Llama-3.1-8B has no sliding window";
    Result j = run_command({"estimate", "--explain", "--format", "json"});
    const auto live = nlohmann::json::parse(j.out)["live_at_peak"];
    ASSERT_FALSE(live.empty());
    // The tensors live at the peak add up to at most the forward peak (the rest is the resident cache).
    u64 sum = 0;
    for (const auto& l : live) sum += l["bytes"].get<u64>();
    EXPECT_LE(sum, nlohmann::json::parse(j.out)["per_gpu"]["forward_peak_bytes"].get<u64>());
}

// --- locale ----------------------------------------------------------------------------------------

namespace {
struct CommaDecimal : std::numpunct<char> {
    char do_decimal_point() const override { return ','; }
    char do_thousands_sep() const override { return '.'; }
    std::string do_grouping() const override { return "\3"; }
};
}  // namespace

TEST(CliUx, ADecimalCommaLocaleGivesTheSameBytes) {
    const std::vector<std::vector<std::string>> runs = {{"estimate", "--time", "--explain", "--format", "json"},
                                                        {"estimate", "--time", "--format", "csv"},
                                                        {"estimate", "--runtime", "vllm", "--time", "--format", "markdown"},
                                                        {"gpus", "--format", "csv"},
                                                        {"whatif", "--format", "csv"},
                                                        {"estimate", "--gpu", ux("gpu_no_efficiency.yaml"), "--time"}};
    std::vector<std::string> before;
    for (const auto& a : runs) before.push_back(run_command(a).out);
    const std::locale old = std::locale::global(std::locale(std::locale::classic(), new CommaDecimal));
    // The C library's numeric locale too, where the machine has a decimal-comma locale installed.
    const std::string c_old = std::setlocale(LC_NUMERIC, nullptr);
    const bool c_comma = std::setlocale(LC_NUMERIC, "de_DE.UTF-8") != nullptr;
    std::vector<std::string> after;
    for (const auto& a : runs) after.push_back(run_command(a).out);
    std::setlocale(LC_NUMERIC, c_old.c_str());
    std::locale::global(old);
    for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(before[i], after[i]) << runs[i][0] << " " << runs[i].back();
    if (!c_comma) GTEST_LOG_(INFO) << "de_DE.UTF-8 not installed: the C library's locale part was not exercised";
}

// Found by the scenario fuzzer: a name longer than a path may be is an unknown name (exit 2), not
// a filesystem error out of the catalog (exit 3).
TEST(CliUx, AnOverlongNameIsAnUnknownName) {
    Result r = run_command({"estimate", "--gpu", "h" + std::string(300, 'x') + "200-sxm"});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("unknown gpu"), std::string::npos) << r.err;
}
