// What users type: model and GPU names as Hugging Face and vendors write them, suggestions that
// respect sizes, vLLM's own flags and values, checkpoint quantisation formats. Expected values are
// derived by hand in the comments.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_run.hpp"
#include "core/dtype.hpp"
#include "core/number.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

using namespace memtax;
using nlohmann::json;

namespace {

json estimate(std::vector<std::string> args) {
    args.insert(args.begin(), "estimate");
    args.push_back("--format");
    args.push_back("json");
    Result r = run_command(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? json::parse(r.out) : json();
}

std::string error_of(std::vector<std::string> args) {
    Result r = run_command(args);
    EXPECT_EQ(r.code, 2) << r.out;
    return r.err;
}

std::string write_config(const std::string& name, const std::string& quantization) {
    const std::string path = (std::filesystem::temp_directory_path() / name).string();
    std::ofstream f(path);
    f << R"({"model_type": "qwen2", "hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 4096,
    "torch_dtype": "float16",
    "quantization_config": )"
      << quantization << "}\n";
    return path;
}

}  // namespace

TEST(Names, HuggingFaceIdsResolveWithOrWithoutOrganisationAndReleaseSuffix) {
    const std::pair<const char*, const char*> cases[] = {
        {"Llama-3.1-8B-Instruct", "llama-3.1-8b"},
        {"meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"},
        {"Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"},
        {"Qwen2.5-32B", "qwen2.5-32b"},
        {"Qwen/Qwen2.5-32B-Instruct", "qwen2.5-32b"},
        {"Qwen/Qwen3-8B", "qwen3-8b"},
        {"meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"},
        {"Llama-3.2-1B-Instruct", "llama-3.2-1b"},
        {"mistralai/Mixtral-8x22B-Instruct-v0.1", "mixtral-8x22b"},
        {"deepseek-ai/DeepSeek-R1", "deepseek-v3"},  // R1 is V3's shapes
        {"google/gemma-3-27b-it", "gemma-3-27b"},
    };
    for (const auto& [name, profile] : cases) {
        const json j = estimate({"--model", name});
        ASSERT_FALSE(j.is_null()) << name;
        EXPECT_EQ(j["inputs"]["model"]["name"], profile) << name;
    }
}

TEST(Names, AGpuFamilyWordPicksTheCanonicalProfileNeverACalibratedCopy) {
    EXPECT_EQ(estimate({"--gpu", "h100"})["inputs"]["gpu"]["name"], "h100-sxm");
    EXPECT_EQ(estimate({"--gpu", "H100-SXM-80GB"})["inputs"]["gpu"]["name"], "h100-sxm");
    EXPECT_EQ(estimate({"--gpu", "a100"})["inputs"]["gpu"]["name"], "a100-80gb");
    // The calibrated copy only by its own name.
    EXPECT_EQ(estimate({"--gpu", "h100-sxm-calibrated"})["inputs"]["gpu"]["name"], "h100-sxm-calibrated");
    // A family word without a canonical profile lists its members.
    const std::string err = error_of({"estimate", "--model", "qwen2.5"});
    EXPECT_NE(err.find("\"qwen2.5\" names 4 built-in models"), std::string::npos) << err;
    for (const char* m : {"qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b"}) EXPECT_NE(err.find(m), std::string::npos) << err;
    EXPECT_EQ(err.find("qwen3"), std::string::npos) << err;
}

TEST(Names, SuggestionsNeverOfferAnotherSize) {
    // Qwen2.5-3B is not built in: qwen2.5-7b is one edit away but a different size, so nothing
    // is suggested (the old edit-distance rule offered it, as it offered 72B for 32B).
    std::string err = error_of({"estimate", "--model", "Qwen/Qwen2.5-3B"});
    EXPECT_NE(err.find("unknown model \"Qwen/Qwen2.5-3B\";"), std::string::npos) << err;
    EXPECT_EQ(err.find("did you mean"), std::string::npos) << err;
    // A size left off: the profile whose numbers agree (72), not the nearer spelling (7b).
    err = error_of({"estimate", "--model", "qwen2.5-72"});
    EXPECT_NE(err.find("did you mean \"qwen2.5-72b\""), std::string::npos) << err;
    // A GPU spelt with its memory: the H100 SXM, not the A100 80GB that shares "80GB".
    err = error_of({"estimate", "--gpu", "h100-sxm5-80gb-hbm3"});
    EXPECT_NE(err.find("did you mean \"h100-sxm\""), std::string::npos) << err;
}

TEST(Names, AddedModelsCarryTheirConfigsShapes) {
    // Qwen3-8B (config.json): 36 layers, 8 KV heads of 128 -> 2 · 8 · 128 · 2 B · 36 = 147,456 B a token.
    const json j = estimate({"--model", "qwen3-8b", "--context", "1k", "--mode", "decode"});
    const ModelSpec q = resolve_model("qwen3-8b");
    EXPECT_TRUE(q.attn.qk_norm);
    EXPECT_EQ(q.num_layers, 36u);
    EXPECT_EQ(j["per_gpu"]["kv_cache_bytes"].get<u64>(), 147456u * 1024u);
    // Mixtral-8x22B: 56 layers × 8 experts of 3 · 6144 · 16384 = 2,415,919,104 expert weights a layer.
    const ModelSpec mx = resolve_model("mixtral-8x22b");
    EXPECT_EQ(mx.moe.num_experts, 8u);
    EXPECT_EQ(mx.moe.intermediate_size, 16384u);
    EXPECT_EQ(mx.num_layers, 56u);
}

TEST(Names, VllmDtypeNamesAndActivationDtypes) {
    DType d;
    ASSERT_TRUE(parse_dtype("fp8", d));
    EXPECT_EQ(d.name, "fp8_e4m3");
    // --dtype is the activations' dtype too: int4 is refused on --dtype itself, naming the fix.
    const std::string err = error_of({"estimate", "--dtype", "int4"});
    EXPECT_EQ(err.rfind("memtax: error: --dtype: ", 0), 0u) << err;
    EXPECT_NE(err.find("--weight-dtype int4"), std::string::npos) << err;
}

TEST(Names, ZeroPointsAreCountedPerGroup) {
    DType d;
    ASSERT_TRUE(parse_dtype("int4-g128-zp", d));
    // 4096 × 4096 weights: 8,388,608 B of nibbles + 131,072 groups × (2 B scale + 4-bit zero)
    // = 8,388,608 + 262,144 + 65,536 = 8,716,288 B.
    EXPECT_EQ(d.bytes(4096u * 4096u, "w"), 8716288u);
    ASSERT_TRUE(parse_dtype("int8-g64-zp", d));
    // 1000 values: 1000 B + 16 groups × (2 + 1) = 1048 B.
    EXPECT_EQ(d.bytes(1000, "w"), 1048u);
    EXPECT_FALSE(parse_dtype("int4-zp", d));
}

TEST(Names, ByteSizesAsVllmTakesThem) {
    u64 v = 0;
    EXPECT_EQ(parse_byte_size("20G", v), NumberParse::Ok);
    EXPECT_EQ(v, 21474836480u);
    EXPECT_EQ(parse_byte_size("20GiB", v), NumberParse::Ok);
    EXPECT_EQ(v, 21474836480u);
    EXPECT_EQ(parse_byte_size("20g", v), NumberParse::Ok);
    EXPECT_EQ(v, 20000000000u);
    EXPECT_EQ(parse_byte_size("1.5G", v), NumberParse::Ok);
    EXPECT_EQ(v, 1610612736u);
    EXPECT_EQ(parse_byte_size("4096", v), NumberParse::Ok);
    EXPECT_EQ(v, 4096u);
    EXPECT_EQ(parse_byte_size("lots", v), NumberParse::Invalid);
}

TEST(Names, CheckpointQuantisationMapsToTheDtypeItStores) {
    const std::string awq = write_config("memtax-awq.config.json", R"({"quant_method": "awq", "bits": 4, "group_size": 128,
        "zero_point": true, "version": "gemm"})");
    EXPECT_EQ(load_hf_config(read_input_file(awq), awq).shipped_linear_dtype, "int4-g128-zp");
    const std::string gptq = write_config("memtax-gptq.config.json", R"({"quant_method": "gptq", "bits": 8, "group_size": 32,
        "sym": true, "desc_act": false})");
    EXPECT_EQ(load_hf_config(read_input_file(gptq), gptq).shipped_linear_dtype, "int8-g32-zp");
    const std::string fp8 = write_config("memtax-fp8.config.json", R"({"quant_method": "fp8", "activation_scheme": "dynamic"})");
    EXPECT_EQ(load_hf_config(read_input_file(fp8), fp8).shipped_linear_dtype, "fp8_e4m3");
    // Per-channel GPTQ and bitsandbytes are refused by the key, at its line.
    const std::string channel = write_config("memtax-gptq-channel.config.json", R"({"quant_method": "gptq", "bits": 4,
        "group_size": -1})");
    try {
        load_hf_config(read_input_file(channel), channel);
        ADD_FAILURE() << "group_size -1 accepted";
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "quantization_config.group_size");
        EXPECT_EQ(e.pos().line, 5);  // the file: three lines of shapes, then the quantization_config over two
    }
    const std::string bnb = write_config("memtax-bnb.config.json", R"({"quant_method": "bitsandbytes", "load_in_4bit": true})");
    try {
        load_hf_config(read_input_file(bnb), bnb);
        ADD_FAILURE() << "bitsandbytes accepted";
    } catch (const InputError& e) {
        EXPECT_EQ(e.field(), "quantization_config.quant_method");
        EXPECT_NE(std::string(e.what()).find("\"bitsandbytes\" is not read"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("awq (bits 4), gptq (bits 4 or 8), fp8"), std::string::npos) << e.what();
    }
    // The estimate uses the shipped weights: 2 layers of 4-bit linears with their groups.
    // Per layer: q 256·256, k and v 256·128 each, o 256·256, MLP 3 · 256 · 512 -> 589,824
    // weights = 4,608 groups: 294,912 + 9,216 + 2,304 = 306,432 B; the fp16 rest (q/k/v biases
    // 256 + 128 + 128, two norms of 256, a final norm 256, embeddings and head 2 · 1000 · 256) is
    // 2 · (2 · (512 + 512) + 256 + 512,000) = 1,028,608 B; total 2 · 306,432 + 1,028,608 = 1,641,472 B.
    const json j = estimate({"--model", awq, "--context", "64"});
    EXPECT_EQ(j["inputs"]["workload"]["weight_dtype"], "int4-g128-zp");
    EXPECT_EQ(j["per_gpu"]["weights_bytes"].get<u64>(), 1641472u);
    for (const auto& p : {awq, gptq, fp8, channel, bnb}) std::remove(p.c_str());
}

TEST(Names, VllmFlagNamesAreAccepted) {
    const json a = estimate({"--runtime", "vllm", "--tensor-parallel-size", "2", "--pipeline-parallel-size", "1", "--gpus", "2", "--model",
                             "llama-3.1-70b", "--kv-cache-dtype", "fp8"});
    EXPECT_EQ(a["inputs"]["deployment"]["tp"], 2);
    EXPECT_EQ(a["inputs"]["workload"]["kv_dtype"], "fp8_e4m3");
    const json auto_kv = estimate({"--runtime", "vllm", "--kv-cache-dtype", "auto"});
    EXPECT_EQ(auto_kv["inputs"]["workload"]["kv_dtype"], "bf16");
    std::string err = error_of({"estimate", "--runtime", "vllm", "--kv-cache-dtype", "int4"});
    EXPECT_NE(err.find("--kv-cache-dtype: \"int4\" is not a vLLM KV cache dtype; valid: auto, fp8"), std::string::npos) << err;
    err = error_of({"estimate", "--runtime", "vllm", "--kv-cache-dtype", "fp8_e5m2", "--kv-dtype", "bf16"});
    EXPECT_NE(err.find("contradicts --kv-dtype"), std::string::npos) << err;
    err = error_of({"estimate", "--runtime", "vllm", "--block-size", "17"});
    EXPECT_NE(err.find("--block-size: 17 tokens is not a vLLM block size"), std::string::npos) << err;
    err = error_of({"estimate", "--max-model-len", "32k"});
    EXPECT_NE(err.find("is a vLLM engine argument"), std::string::npos) << err;
}

namespace {
json vllm_section(const json& j) { return j["vllm"]; }
}  // namespace

TEST(Names, VllmKvCacheMemoryEnforceEagerAndTheStartUpLog) {
    // --kv-cache-memory 20G: Llama-3.1-8B pages are 16 tokens · 2 · 8 · 128 · 2 B = 65,536 B, 32
    // layers a block id: 20 GiB / 2 MiB = 10,240 blocks; 163,840 tokens; an 8k request takes 512
    // blocks: 20.00x.
    const json j = estimate({"--runtime", "vllm", "--context", "8k", "--kv-cache-memory", "20G", "--enforce-eager"});
    const json v = vllm_section(j);
    EXPECT_EQ(v["num_blocks"], 10240);
    EXPECT_EQ(v["log_kv_cache_tokens"], 163840);
    EXPECT_DOUBLE_EQ(v["log_max_concurrency"].get<double>(), 20.0);
    EXPECT_EQ(v["cudagraph_pool_bytes"], 0);
    EXPECT_EQ(j["per_gpu"]["kv_cache_bytes"].get<u64>(), u64{20} << 30);
    // --max-model-len apart from --context: the log's concurrency is per 128k request (8,192
    // blocks each: 1.25x), the workload's 8k requests still fit 20 at once.
    const json m = estimate({"--runtime", "vllm", "--context", "8k", "--kv-cache-memory", "20G", "--max-model-len", "128k"});
    EXPECT_DOUBLE_EQ(vllm_section(m)["log_max_concurrency"].get<double>(), 1.25);
    EXPECT_EQ(vllm_section(m)["max_model_len"], 131072);
    EXPECT_TRUE(m["per_gpu"]["fits"].get<bool>());
    // A pool that cannot hold one max_model_len request: vLLM does not start. 1 GiB is 512
    // blocks = 8,192 tokens; a 16k max_model_len needs 1,024.
    const json small = estimate({"--runtime", "vllm", "--context", "4k", "--kv-cache-memory", "1G", "--max-model-len", "16k"});
    EXPECT_FALSE(small["per_gpu"]["fits"].get<bool>());
    EXPECT_NE(small["verdict"].get<std::string>().find("one request of max_model_len 16,384 tokens needs 1,024 KV blocks"),
              std::string::npos)
        << small["verdict"];
    // A request longer than max_model_len is refused.
    const json longer = estimate({"--runtime", "vllm", "--context", "32k", "--max-model-len", "16k"});
    EXPECT_FALSE(longer["per_gpu"]["fits"].get<bool>());
}

TEST(Names, MlaBlockSizeFollowsVllmsBackendForTheGpu) {
    // DeepSeek-V3 (MLA): FlashMLA on Hopper forces 64-token blocks; a page is 64 · 576 · 2 B =
    // 73,728 B. On an A100 (Triton MLA) the asked 16 stays: 18,432 B. CUTLASS-MLA forces 128.
    const std::vector<std::string> base = {"--model", "deepseek-v3", "--runtime", "vllm", "--gpus", "8", "--tp", "8", "--context", "4k"};
    auto with = [&](std::vector<std::string> more) {
        std::vector<std::string> args = base;
        args.insert(args.end(), more.begin(), more.end());
        return vllm_section(estimate(args));
    };
    EXPECT_EQ(with({"--gpu", "h200"})["block_size"], 64);
    EXPECT_EQ(with({"--gpu", "h200"})["page_bytes"], 73728);
    EXPECT_EQ(with({"--gpu", "b200"})["block_size"], 64);
    EXPECT_EQ(with({"--gpu", "a100-80gb", "--weight-dtype", "fp8_e4m3"})["page_bytes"], 18432);
    EXPECT_EQ(with({"--gpu", "b200", "--attention-backend", "CUTLASS_MLA"})["block_size"], 128);
    // A dense model keeps the asked size.
    EXPECT_EQ(vllm_section(estimate({"--runtime", "vllm", "--gpu", "h200"}))["block_size"], 16);
}

TEST(WhatUsersSee, SmallThingsACarefulUserTripsOn) {
    // One program name on every usage line.
    Result help = run_command({"estimate", "--help"});
    EXPECT_NE(help.out.find("Usage: memtax estimate [OPTIONS]"), std::string::npos) << help.out;
    // The train CSV has the estimate CSV's header.
    Result train = run_command({"estimate", "--mode", "train", "--format", "csv"});
    Result infer = run_command({"estimate", "--format", "csv"});
    EXPECT_EQ(train.out.substr(0, train.out.find('\n')), infer.out.substr(0, infer.out.find('\n')));
    EXPECT_EQ(train.out.rfind("section,name,value,unit,note\n", 0), 0u) << train.out;
    // Training says which precision it assumed, and why.
    Result table = run_command({"estimate", "--mode", "train"});
    EXPECT_NE(table.out.find("precision bf16 (the default)"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("precision mixed keeps fp32 master weights"), std::string::npos) << table.out;
    // A cluster of other GPUs is refused, naming both.
    const std::string err = error_of({"estimate", "--time", "--cluster", "dgx-h100-2x8-ib", "--gpu", "h200"});
    EXPECT_NE(err.find("--cluster: dgx-h100-2x8-ib is a cluster of h100-sxm, not of h200"), std::string::npos) << err;
    EXPECT_EQ(run_command({"estimate", "--time", "--cluster", "dgx-h100-2x8-ib", "--gpu", "h100-sxm-calibrated"}).code, 0);
    // The same rule for a training step's time and for serving under load.
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"estimate", "--mode", "train", "--time", "--cluster", "dgx-h100-2x8-ib", "--gpu", "h200"},
          std::vector<std::string>{"serve", "--prompt-tokens", "1k", "--output-tokens", "128", "--users", "4", "--cluster",
                                   "dgx-h100-2x8-ib", "--gpu", "h200"}}) {
        const std::string e = error_of(args);
        EXPECT_NE(e.find("--cluster: dgx-h100-2x8-ib is a cluster of h100-sxm, not of h200"), std::string::npos) << args[0] << ": " << e;
    }
}

TEST(WhatUsersSee, APlanWithoutADescriptionHasAPlainTitle) {
    const std::string path = (std::filesystem::temp_directory_path() / "memtax-nodesc.yaml").string();
    std::string y = read_input_file(std::string(MEMTAX_TEST_DATA) + "/scenarios/tiny-8b.yaml");
    const size_t d = y.find("description:");
    if (d != std::string::npos) y.erase(d, y.find('\n', d) - d + 1);
    std::ofstream(path) << y;
    Result r = run_command({"plan", path});
    EXPECT_EQ(r.out.find("memtax plan tiny-8b:"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.rfind("memtax plan tiny-8b\n", 0), 0u) << r.out;
    std::remove(path.c_str());
}

// Every flag any command's --help lists is in docs/cli.md: a new flag without its reference fails.
TEST(WhatUsersSee, EveryFlagInHelpIsInTheCliReference) {
    const std::string doc = read_input_file(std::string(MEMTAX_SOURCE_DIR) + "/docs/cli.md");
    for (const char* cmd : {"estimate", "whatif", "validate", "calibrate", "probe", "plan", "sweep", "max-batch", "max-context", "vs",
                            "compare", "report", "check", "models", "gpus", "runtimes", "clusters"}) {
        Result r = run_command({cmd, "--help"});
        ASSERT_EQ(r.code, 0) << cmd << ": " << r.err;
        size_t found = 0;
        for (size_t at = r.out.find("--"); at != std::string::npos; at = r.out.find("--", at + 2)) {
            size_t end = at + 2;
            while (end < r.out.size() && (std::isalnum(static_cast<unsigned char>(r.out[end])) || r.out[end] == '-')) ++end;
            const std::string flag = r.out.substr(at, end - at);
            if (flag.size() < 4 || !std::isalpha(static_cast<unsigned char>(flag[2]))) continue;
            ++found;
            // The flag as a word: followed by something that is not part of a longer flag.
            bool documented = false;
            for (size_t d = doc.find(flag); d != std::string::npos && !documented; d = doc.find(flag, d + 1)) {
                const size_t after = d + flag.size();
                documented = after >= doc.size() || !(std::isalnum(static_cast<unsigned char>(doc[after])) || doc[after] == '-');
            }
            EXPECT_TRUE(documented) << cmd << " " << flag << " is not in docs/cli.md";
        }
        EXPECT_GT(found, 0u) << cmd;
    }
}

// compare past half the model's maximum context: twice the context is beyond the limit, but the
// cache's terms are still read. Llama-3.1-8B's full attention keeps 2 · 32 layers · 8 KV heads ·
// 128 · 2 B = 131,072 B a token and no constant state (it read 0 B/token and a 12 GiB "state").
// Mixtral-8x7B at 32k (its maximum; twice it is past it): the same 131,072 B (32 layers, 8 × 128).
TEST(WhatUsersSee, CompareReadsTheCacheTermsPastHalfTheMaximumContext) {
    for (const auto& [model, context] : {std::pair<const char*, const char*>{"llama-3.1-8b", "96k"}, {"mixtral-8x7b", "32k"}}) {
        Result r = run_command({"compare", "--model", model, "--technique", "gqa", "--context", context, "--format", "json"});
        ASSERT_EQ(r.code, 0) << r.err;
        const json row = json::parse(r.out)["sections"]["rows"]["rows"][0];
        EXPECT_EQ(row["kv_bytes_per_token"], 131072) << model;
        EXPECT_EQ(row["state_bytes_per_sequence"], 0) << model;
    }
}
