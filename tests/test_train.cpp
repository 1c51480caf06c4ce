// Training memory: Korthikanti et al. 2022's activation table, the bytes per parameter of
// mixed-precision Adam under each ZeRO stage, a layer's saved tensors derived by hand from what
// autograd keeps for each op, pipeline micro-batches in flight, and the H200 measurements of
// transformers 5.17 training steps (tests/data/measured/h200_hf_train*.json).
#include <gtest/gtest.h>

#include "cli_run.hpp"
#include "model/training.hpp"
#include "spec/loaders.hpp"
#include "validate/validate.hpp"

using namespace memtax;

namespace {

Workload train_workload(const char* runtime, u64 batch, u64 context) {
    Workload w;
    w.runtime = resolve_runtime(runtime);
    w.batch = batch;
    w.context = context;
    w.allow_long_context = true;
    return w;
}

}  // namespace

// Korthikanti et al. 2022 (arXiv 2205.05198), §4 and Table 2, GPT-3 175B: s = 2048, b = 1,
// h = 12288, a = 96, t = 8. Per layer: tensor parallel sbh(10 + 24/t + 5as/(ht)) = 23·sbh;
// + sequence parallel sbh(34/t + 5as/(ht)) = 14.25·sbh; selective (TP) 13·sbh; SP + selective
// 4.25·sbh; sbh = 25,165,824.
TEST(Train, KorthikantiActivationTableForGpt3) {
    EXPECT_EQ(korthikanti_layer_bytes(2048, 1, 12288, 96, 8, false, false), 578813952u);
    EXPECT_EQ(korthikanti_layer_bytes(2048, 1, 12288, 96, 8, true, false), 358612992u);
    EXPECT_EQ(korthikanti_layer_bytes(2048, 1, 12288, 96, 8, false, true), 327155712u);
    EXPECT_EQ(korthikanti_layer_bytes(2048, 1, 12288, 96, 8, true, true), 106954752u);
    // t = 1: sbh(34 + 5as/h).
    EXPECT_EQ(korthikanti_layer_bytes(2048, 1, 12288, 96, 1, false, false), 25165824ull * (34 + 5 * 96 * 2048 / 12288));
}

// The same four figures from the op graphs, configured like Megatron (runtimes/megatron-train:
// fused LayerNorm, 16-bit softmax, dropout masks, selective recomputation, sequence
// parallelism) on GPT-3 175B's shape (tests/data/gpt3-175b.yaml): within 2%. The graphs also
// keep what the paper leaves out, each LayerNorm's fp32 mean and rstd: 2 norms · 2 · 4 B · 2048
// tokens = 32,768 B more per layer.
TEST(Train, MegatronConfiguredGraphsReproduceKorthikanti) {
    const ModelSpec m = resolve_model(std::string(MEMTAX_TEST_DATA) + "/gpt3-175b.yaml");
    for (const bool sp : {false, true})
        for (const bool selective : {false, true}) {
            TrainSpec spec;
            spec.sequence_parallel = sp;
            spec.recompute = selective ? Recompute::Selective : Recompute::None;
            const TrainEstimate e =
                estimate_train(m, resolve_gpu("h200"), Deployment{8, 8, 1, 1}, train_workload("megatron-train", 1, 2048), spec);
            const u64 paper = korthikanti_layer_bytes(2048, 1, 12288, 96, 8, sp, selective);
            EXPECT_LE(std::abs(static_cast<double>(e.layer_saved_bytes) / static_cast<double>(paper) - 1), 0.02) << sp << selective;
            EXPECT_EQ(e.layer_saved_bytes, paper + 32768) << sp << selective;
        }
}

// Mixed-precision Adam: 2 (bf16 weights) + 2 (bf16 gradients) + 4 (fp32 master) + 4 + 4 (fp32
// moments) = 16 bytes per parameter; ZeRO-1 divides the 12 optimizer bytes by DP, ZeRO-2 the
// gradients too, ZeRO-3 the weights too (Rajbhandari et al. 2020, §5). DP = 4 here.
TEST(Train, MixedPrecisionAdamIsSixteenBytesPerParameterThenShardedByZero) {
    const ModelSpec m = resolve_model("llama-3.1-8b");
    const GpuSpec g = resolve_gpu("h200");
    TrainSpec spec;
    spec.precision = Precision::Mixed;
    const TrainEstimate z0 = estimate_train(m, g, Deployment{4, 1, 1, 1}, train_workload("hf-train", 1, 1024), spec);
    const u64 P = z0.parameters_per_gpu;
    EXPECT_EQ(z0.dp, 4u);
    EXPECT_EQ(z0.weight_bytes + z0.gradient_bytes + z0.optimizer_bytes + z0.master_weight_bytes, 16 * P);
    EXPECT_EQ(z0.optimizer_bytes + z0.master_weight_bytes, 12 * P);
    for (u64 stage = 1; stage <= 3; ++stage) {
        spec.zero = stage;
        const TrainEstimate z = estimate_train(m, g, Deployment{4, 1, 1, 1}, train_workload("hf-train", 1, 1024), spec);
        EXPECT_EQ(z.optimizer_bytes + z.master_weight_bytes, 12 * P / 4) << stage;
        EXPECT_EQ(z.gradient_bytes, stage >= 2 ? 2 * P / 4 : 2 * P) << stage;
        EXPECT_EQ(z.weight_bytes, stage >= 3 ? 2 * P / 4 : 2 * P) << stage;
    }
    // PyTorch's default for a bf16 model: AdamW's two moments in bf16 (4 bytes per parameter).
    const TrainEstimate pure = estimate_train(m, g, Deployment{}, train_workload("hf-train", 1, 1024), TrainSpec{});
    EXPECT_EQ(pure.optimizer_bytes, 4 * pure.parameters_per_gpu);
    EXPECT_EQ(pure.master_weight_bytes, 0u);
}

// gqa-2l (hidden h = 2048, 16 query heads and 4 KV heads of 128, intermediate I = 5632, vocab
// V = 32000), SDPA, one sequence of 1,024 tokens, every tensor a multiple of 512 bytes. Per token
// and layer autograd keeps: each RMSNorm's fp32 copy, normalized values and fp32 rsqrt
// (2 · (4h + 2h + 4)); the normed inputs the projections read (2 · 2h); q, k, v, the kernel's
// output (2·2048 + 2·512 + 2·512 + 2·2048) and its fp32 log-sum-exp (4 · 16); gate, act(gate),
// up and their product (4 · 2I): 88,136 B. Head: final norm (4h + 2h + 4) and its output (2h);
// loss: the fp32 log-softmax (4V) and the int64 labels (8). Forward: cos and sin, 2 · 1024 · 128
// bf16. (2 · 88,136 + 16,388 + 128,008) · 1024 + 524,288 = 328,888,320.
TEST(Train, SavedTensorsOfALlamaLayerAsAutogradKeepsThem) {
    const ModelSpec m = resolve_model(std::string(MEMTAX_TEST_DATA) + "/measured/gqa-2l.config.json");
    const TrainEstimate e = estimate_train(m, resolve_gpu("h200"), Deployment{}, train_workload("hf-train", 1, 1024), TrainSpec{});
    EXPECT_EQ(e.saved_activation_bytes, 328888320u);
    EXPECT_EQ(e.layer_saved_bytes, 88136u * 1024);
    // Full recomputation keeps each layer's input (2h per token) instead.
    TrainSpec full;
    full.recompute = Recompute::Full;
    const TrainEstimate r = estimate_train(m, resolve_gpu("h200"), Deployment{}, train_workload("hf-train", 1, 1024), full);
    EXPECT_EQ(r.saved_activation_bytes, (2 * 4096 + 16388 + 128008) * 1024u + 524288);
    EXPECT_LT(r.backward_peak_bytes, e.backward_peak_bytes);
}

// 1F1B: the first of 2 stages holds min(2, micro-batches) micro-batches' saved activations.
TEST(Train, PipelineFirstStageHoldsItsMicroBatchesInFlight) {
    const ModelSpec m = resolve_model("llama-3.1-8b");
    TrainSpec spec;
    spec.micro_batches = 8;
    const Workload w = train_workload("hf-train", 1, 2048);
    const TrainEstimate many = estimate_train(m, resolve_gpu("h200"), Deployment{2, 1, 2, 1}, w, spec);
    Workload pw = w;
    pw.logits_kept = 0;
    const auto stages = Plan::compile(m, resolve_gpu("h200"), Deployment{2, 1, 2, 1}, pw).train(TrainPoint{1, 2048, Recompute::None});
    ASSERT_EQ(stages.size(), 2u);
    EXPECT_EQ(many.stage, 0u);
    EXPECT_EQ(many.in_flight, 2u);
    EXPECT_EQ(many.saved_activation_bytes, 2 * stages[0].act.saved);
    EXPECT_EQ(stages[0].layers, 16u);
}

// Every recorded training step on the H200 (4 shapes incl. a Mixtral-style MoE, eager and SDPA,
// with and without gradient checkpointing, and out of sample at batch 3 × 3,000 tokens): saved
// activations and the backward peak within 5%.
TEST(Train, MeasuredTrainingStepsWithinFivePercent) {
    size_t n = 0;
    for (const char* f : {"h200_hf_train.json", "h200_hf_train_oos.json"}) {
        const Validation v =
            validate_file(load_measurements(std::string(MEMTAX_TEST_DATA) + "/measured/" + f), resolve_gpu("h200"), 0.05, 0);
        EXPECT_TRUE(v.all_ok) << f;
        for (const auto& r : v.train) {
            EXPECT_LE(std::abs(r.saved_error), 0.05) << r.c.id;
            EXPECT_LE(std::abs(r.backward_error), 0.05) << r.c.id;
            ++n;
        }
    }
    EXPECT_EQ(n, 76u);
}

TEST(Train, CliAnswersAndRefusesWhatItDoesNotModel) {
    Result ok = run_command({"estimate", "--model", "llama-3.1-8b", "--gpu", "h200", "--mode", "train", "--context", "2048", "--recompute",
                             "full", "--format", "json"});
    ASSERT_EQ(ok.code, 0) << ok.err;
    for (const char* key :
         {"\"saved_activation_bytes\"", "\"backward_peak_bytes\"", "\"gradient_bytes\"", "\"optimizer_bytes\"", "\"train_peak_bytes\""})
        EXPECT_NE(ok.out.find(key), std::string::npos) << key;
    Result mla = run_command({"estimate", "--model", "deepseek-v2-lite", "--mode", "train"});
    EXPECT_EQ(mla.code, 2);
    EXPECT_NE(mla.err.find("training memory is modelled for full_attention and sliding_attention layers"), std::string::npos) << mla.err;
    Result stray = run_command({"estimate", "--model", "llama-3.1-8b", "--recompute", "full"});
    EXPECT_EQ(stray.code, 2);
    EXPECT_NE(stray.err.find("--recompute: only with --mode train"), std::string::npos) << stray.err;
    Result sel = run_command({"estimate", "--model", "llama-3.1-8b", "--mode", "train", "--recompute", "selective"});
    EXPECT_EQ(sel.code, 2);
    EXPECT_NE(sel.err.find("hf-train checkpoints whole layers"), std::string::npos) << sel.err;
    Result sp = run_command({"estimate", "--model", "llama-3.1-8b", "--mode", "train", "--tp", "2", "--sequence-parallel"});
    EXPECT_EQ(sp.code, 2);
    Result vllm = run_command({"estimate", "--model", "llama-3.1-8b", "--mode", "train", "--runtime", "vllm"});
    EXPECT_EQ(vllm.code, 2);
}
