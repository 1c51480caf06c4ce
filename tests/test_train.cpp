// Training memory: Korthikanti et al. 2022's activation table, the bytes per parameter of
// mixed-precision Adam under each ZeRO stage, a layer's saved tensors derived by hand from what
// autograd keeps for each op, pipeline micro-batches in flight, and the H200 measurements of
// transformers 5.17 training steps (tests/data/measured/h200_hf_train*.json).
#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>
#include <optional>

#include "cli_run.hpp"
#include "model/train_time.hpp"
#include "model/training.hpp"
#include "spec/loaders.hpp"
#include "topology/topology.hpp"
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
// activations and the backward peak within 2%.
TEST(Train, MeasuredTrainingStepsWithinTwoPercent) {
    size_t n = 0;
    for (const char* f : {"h200_hf_train.json", "h200_hf_train_oos.json"}) {
        const Validation v =
            validate_file(load_measurements(std::string(MEMTAX_TEST_DATA) + "/measured/" + f), resolve_gpu("h200"), 0.05, 0);
        EXPECT_TRUE(v.all_ok) << f;
        for (const auto& r : v.train) {
            EXPECT_LE(std::abs(r.saved_error), 0.02) << r.c.id;  // docs/training.md: within 2% (the worst is 1.51%)
            EXPECT_LE(std::abs(r.backward_error), 0.02) << r.c.id;
            ++n;
        }
    }
    EXPECT_EQ(n, 76u);
}

// The H100 run of the loops (loss / outputs, cache default or off), accumulation (1-3
// micro-batches, either zero_grad) and peft LoRA (r 16 on q/k/v/o, r 8 on every linear): every
// saved and backward peak within 1% (the bar set for these cases before their out-of-sample
// rerun), and peft's trainable parameter count exact.
// The same harness out of sample on another lease (h100_hf_train_loops_oos.json: Mistral-7B and
// Qwen2.5-3B widths, 3 × 1,000 and 1 × 3,000 tokens, 4 micro-batches, LoRA r 32 on q/v and r 4 on
// every linear), held to the bar committed before it ran: 42 more steps.
TEST(Train, MeasuredLoopsAccumulationAndLoraWithinOnePercent) {
    size_t n = 0, lora = 0;
    for (const char* file : {"h100_hf_train_loops.json", "h100_hf_train_loops_oos.json"}) {
        const MeasurementFile f = load_measurements(std::string(MEMTAX_TEST_DATA) + "/measured/" + file);
        const Validation v = validate_file(f, resolve_gpu("h100-sxm"), 0.01, 0);
        EXPECT_TRUE(v.all_ok) << file;
        for (const auto& r : v.train) {
            EXPECT_LE(std::abs(r.saved_error), 0.01) << r.c.id;
            EXPECT_LE(std::abs(r.backward_error), 0.01) << r.c.id;
            ++n;
            if (!r.c.lora) continue;
            ++lora;
            TrainSpec spec;
            spec.lora = LoraSpec{r.c.lora->rank, r.c.lora->alpha, r.c.lora->targets};
            const TrainEstimate e = estimate_train(resolve_model(r.c.model), resolve_gpu("h100-sxm"), Deployment{},
                                                   train_workload("hf-train", r.c.batch, r.c.context), spec);
            EXPECT_EQ(e.trainable_parameters, r.c.train->trainable_parameters) << r.c.id;
        }
    }
    EXPECT_EQ(n, 104u + 42u);
    EXPECT_EQ(lora, 24u + 24u);
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

// DeepSpeed's own estimator, estimate_zero2_model_states_mem_needs(total_params, num_gpus_per_node=8,
// cpu_offload=False) (deepspeed/runtime/zero/stage_1_and_2.py): 2P + int(18P/N) bytes, "2 =
// params_16bit, 18 = 2 grads_16bit + 4 grads_32bit + 4 params_32bit + 8 optimizer_states_32bit".
// Llama-3.1-8B: P = 8,030,261,248, N = 8: 16,060,522,496 + 18 · 1,003,782,656 = 34,128,610,304.
// Llama-3.1-70B: P = 70,553,706,496: 141,107,412,992 + 18 · 8,819,213,312 = 299,853,252,608.
// memtax's terms at the optimizer step are those five, byte for byte.
TEST(Train, DeepSpeedZero2EstimatorIsMemtaxsModelStatesAtTheStep) {
    EXPECT_EQ(deepspeed_zero2_gpu_bytes(8030261248ull, 8), 34128610304ull);
    EXPECT_EQ(deepspeed_zero2_gpu_bytes(70553706496ull, 8), 299853252608ull);
    for (const auto& [model, want] : {std::pair<const char*, u64>{"llama-3.1-8b", 34128610304ull}, {"llama-3.1-70b", 299853252608ull}}) {
        TrainSpec spec;
        spec.zero = 2;
        spec.precision = Precision::Mixed;
        const TrainEstimate e =
            estimate_train(resolve_model(model), resolve_gpu("h200"), Deployment{8, 1, 1, 1}, train_workload("hf-train", 1, 2048), spec);
        EXPECT_EQ(e.weight_bytes + e.gradient_bytes + e.fp32_gradient_bytes + e.master_weight_bytes + e.optimizer_bytes, want) << model;
        // DeepSpeed's estimator leaves out the reduction bucket (reduce_bucket_size 5e8 elements,
        // bf16, one without overlap_comm): memtax holds it with the partition through the backward.
        EXPECT_EQ(e.gradient_buffers, 1000000000ull + e.gradient_bytes) << model;
    }
}

// estimate_zero3_model_states_mem_needs (stage3.py): 4L + int(18P/N), L the largest module's
// parameters (Llama-3.1-8B: the embedding, 128,256 × 4,096 = 525,336,576), N = 8:
// 2,101,346,304 + 18,068,087,808 = 20,169,434,112. memtax gathers that module (2L bytes) and
// forms its gradient (2L) as DeepSpeed counts; it keeps what the estimator leaves out: the bf16
// gradient partition allocated at start-up (2P/N), one reduction bucket, the prefetch bucket
// (5e7 elements), and the step's sub-group (sub_group_size 1e9 elements < P/N = 1,003,782,656)
// flattened (2 B) and in fp32 (4 B) instead of the whole fp32 partition.
TEST(Train, DeepSpeedZero3EstimatorAndWhatItLeavesOut) {
    const u64 P = 8030261248ull, L = 525336576ull;
    EXPECT_EQ(deepspeed_zero3_gpu_bytes(P, L, 8), 20169434112ull);
    TrainSpec spec;
    spec.zero = 3;
    spec.precision = Precision::Mixed;
    const TrainEstimate e = estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h200"), Deployment{8, 1, 1, 1},
                                           train_workload("hf-train", 1, 2048), spec);
    EXPECT_EQ(e.weight_bytes, 2 * P / 8);
    EXPECT_EQ(e.master_weight_bytes + e.optimizer_bytes, 12 * P / 8);
    EXPECT_EQ(e.gathered_bytes - e.prefetch_bytes, 2 * L);
    EXPECT_EQ(e.prefetch_bytes, 100000000u);
    EXPECT_EQ(e.gradients_resident, 2 * P / 8 + 1000000000ull);
    EXPECT_EQ(e.fp32_gradient_bytes, 6 * 1000000000ull);
}

// The ZeRO-2 bucket peak, gqa-2l (P = 221,259,776; V × h = 32,000 × 2,048) on 2 GPUs, 16 tokens:
// from the LM head's backward on, the bucket (5e8 bf16 elements) and this GPU's partition
// (P/2 · 2 B) are allocated; the head's weight gradient (2Vh = 131,072,000 B) is formed beside
// them before it is copied into the bucket. The full gradients (2P) never coexist, as they do
// under ZeRO-1.
TEST(Train, Zero2HoldsTheBucketAndThePartitionNotEveryGradient) {
    const ModelSpec m = resolve_model(std::string(MEMTAX_TEST_DATA) + "/measured/gqa-2l.config.json");
    TrainSpec spec;
    spec.zero = 2;
    const TrainEstimate z2 = estimate_train(m, resolve_gpu("h200"), Deployment{2, 1, 1, 1}, train_workload("hf-train", 1, 16), spec);
    spec.zero = 1;
    const TrainEstimate z1 = estimate_train(m, resolve_gpu("h200"), Deployment{2, 1, 1, 1}, train_workload("hf-train", 1, 16), spec);
    const u64 P = 221259776, head_grad = 2ull * 32000 * 2048;
    EXPECT_EQ(z2.gradient_bytes, P);
    EXPECT_EQ(z2.gradient_buffers, 1000000000ull + P);
    EXPECT_GE(z2.backward_peak_bytes, z2.gradient_buffers + head_grad);
    EXPECT_LT(z2.backward_peak_bytes, z2.gradient_buffers + head_grad + 8 * 1024 * 1024);  // 16 tokens of activations
    EXPECT_GE(z1.backward_peak_bytes, 2 * P);
    EXPECT_EQ(z2.backward_peak_at, "LM head backward");
    // overlap_comm doubles the bucket.
    spec.zero = 2;
    spec.overlap_comm = true;
    const TrainEstimate ov = estimate_train(m, resolve_gpu("h200"), Deployment{2, 1, 1, 1}, train_workload("hf-train", 1, 16), spec);
    EXPECT_EQ(ov.gradient_buffers, 2000000000ull + P);
}

// Megatron-LM's theoretical_memory_usage.py: 18 bytes per parameter (bf16 weights 2, fp32 main
// gradients 4, fp32 master 4, Adam 8), 6 + 12/DP with the distributed optimizer. Llama-3.1-8B
// under megatron-train (main_grads: fp32), DP 8: 18P = 144,544,702,464; 7.5P = 60,226,959,360.
TEST(Train, MegatronEstimatorIsTheFp32MainGradientTerms) {
    const u64 P = 8030261248ull;
    EXPECT_EQ(megatron_weight_and_optimizer_bytes(P, 8, false), 144544702464ull);
    EXPECT_EQ(megatron_weight_and_optimizer_bytes(P, 8, true), 60226959360ull);
    for (const u64 zero : {0u, 1u}) {
        TrainSpec spec;
        spec.zero = zero;
        spec.precision = Precision::Mixed;
        const TrainEstimate e = estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h200"), Deployment{8, 1, 1, 1},
                                               train_workload("megatron-train", 1, 1024), spec);
        EXPECT_EQ(e.weight_bytes + e.gradient_bytes + e.master_weight_bytes + e.optimizer_bytes, zero ? 60226959360ull : 144544702464ull);
        EXPECT_EQ(e.gradients_resident, 4 * P);  // the main_grad buffer exists from start-up
        EXPECT_EQ(e.optimizer_step_bytes, 0u);   // a fused Adam
    }
    // Megatron keeps its gradient buffer whole: ZeRO-2 is refused with fp32 main gradients.
    TrainSpec z2;
    z2.zero = 2;
    EXPECT_THROW(estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h200"), Deployment{8, 1, 1, 1},
                                train_workload("megatron-train", 1, 1024), z2),
                 InputError);
}

// Tied embeddings under a pipeline: the first stage's embedding and the last stage's head copy
// each form their own gradient (Megatron keeps the copies in sync with an all-reduce), so every
// stage's gradients are its parameters' bytes, as bf16 weights are. Llama-3.2-1B, PP 2.
TEST(Train, EachPipelineStageFormsTheGradientsOfWhatItHolds) {
    Workload w = train_workload("hf-train", 1, 1024);
    w.logits_kept = 0;
    const auto stages = Plan::compile(resolve_model("llama-3.2-1b"), resolve_gpu("h200"), Deployment{2, 1, 2, 1}, w)
                            .train(TrainPoint{1, 1024, Recompute::None});
    ASSERT_EQ(stages.size(), 2u);
    for (const auto& st : stages) EXPECT_EQ(st.act.weight_grads, st.weights) << st.stage;
    // On one GPU the tied pair is one tensor with one gradient.
    const auto one =
        Plan::compile(resolve_model("llama-3.2-1b"), resolve_gpu("h200"), Deployment{}, w).train(TrainPoint{1, 1024, Recompute::None});
    EXPECT_EQ(one.front().act.weight_grads, one.front().weights);
}

// The loop that keeps `out`: its logits, 2,048 tokens × 32,000 vocab in bf16 = 131,072,000 B,
// stay through the backward. Its cache (use_cache on) costs nothing more under SDPA with native
// GQA, which saves K and V themselves; an eager kernel saves repeat_kv's copies, so the cache's
// own K and V come on top: 2 layers · 2 · 2,048 · 4 KV heads · 128 · 2 B = 8,388,608 B.
TEST(Train, TheOutputsLoopKeepsTheLogitsAndAnEagerCache) {
    const ModelSpec m = resolve_model(std::string(MEMTAX_TEST_DATA) + "/measured/gqa-2l.config.json");
    TrainSpec loss, outputs, nocache;
    outputs.loop = nocache.loop = Loop::Outputs;
    nocache.use_cache = false;
    for (const char* rt : {"hf-train", "hf-train-eager"}) {
        const Workload w = train_workload(rt, 1, 2048);
        const TrainEstimate a = estimate_train(m, resolve_gpu("h100-sxm"), Deployment{}, w, loss);
        const TrainEstimate b = estimate_train(m, resolve_gpu("h100-sxm"), Deployment{}, w, nocache);
        const TrainEstimate c = estimate_train(m, resolve_gpu("h100-sxm"), Deployment{}, w, outputs);
        EXPECT_EQ(b.saved_activation_bytes - a.saved_activation_bytes, 131072000u) << rt;
        EXPECT_EQ(b.backward_peak_bytes - a.backward_peak_bytes, 131072000u) << rt;
        EXPECT_EQ(c.saved_activation_bytes - b.saved_activation_bytes, std::string(rt) == "hf-train" ? 0u : 8388608u) << rt;
    }
}

// Gradient accumulation and zero_grad(set_to_none=False). gqa-2l, SDPA, 2,048 tokens: the peak
// is the loss's backward (two fp32 [tokens, vocab] gradients), where a first micro-batch has no
// weight gradient yet; a later one finds all of them (2P = 442,519,552 B) there.
// set_to_none=False keeps them allocated between steps: counted before the forward, not in the
// step's peak.
TEST(Train, AccumulationFindsTheGradientsThere) {
    const ModelSpec m = resolve_model(std::string(MEMTAX_TEST_DATA) + "/measured/gqa-2l.config.json");
    const Workload w = train_workload("hf-train", 1, 2048);
    TrainSpec one, two, zeros;
    two.micro_batches = 2;
    zeros.set_to_none = false;
    const TrainEstimate a = estimate_train(m, resolve_gpu("h100-sxm"), Deployment{}, w, one);
    const TrainEstimate b = estimate_train(m, resolve_gpu("h100-sxm"), Deployment{}, w, two);
    const TrainEstimate z = estimate_train(m, resolve_gpu("h100-sxm"), Deployment{}, w, zeros);
    EXPECT_EQ(a.gradient_bytes, 442519552u);
    EXPECT_EQ(a.backward_peak_at, "loss backward");
    EXPECT_EQ(b.backward_peak_bytes, a.backward_peak_bytes + 442519552u);
    EXPECT_EQ(z.backward_peak_bytes, a.backward_peak_bytes);
    EXPECT_EQ(z.gradients_resident, 442519552u);
    EXPECT_EQ(z.resident_before, a.resident_before + 442519552u);
}

// LoRA r 16 on q/k/v/o of Llama-3-8B (hidden 4,096, 1,024-wide K/V, 32 layers): per layer
// r·(4096 + 4096) + 2·r·(4096 + 1024) + r·(4096 + 4096) = 131,072 + 163,840 + 131,072 = 425,984;
// × 32 = 13,631,488, the trainable parameters peft prints. peft keeps 16-bit adapters in fp32
// (autocast_adapter_dtype): gradients 4 B and AdamW's two moments 8 B per trainable parameter.
TEST(Train, LoraTrainsItsAdaptersOnly) {
    TrainSpec spec;
    spec.lora = LoraSpec{};
    const TrainEstimate e =
        estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), Deployment{}, train_workload("hf-train", 1, 2048), spec);
    EXPECT_EQ(e.trainable_parameters, 13631488u);
    EXPECT_EQ(e.gradient_bytes, 4 * 13631488u);
    EXPECT_EQ(e.optimizer_bytes, 8 * 13631488u);
    EXPECT_EQ(e.master_weight_bytes, 0u);
    // A target no module has is refused, naming the modules that exist.
    spec.lora->targets = {"qkv"};
    EXPECT_THROW(
        estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), Deployment{}, train_workload("hf-train", 1, 2048), spec),
        InputError);
}

// QLoRA's base, Llama-3.1-8B's linear layers in nf4 with double quantization (bitsandbytes:
// blocks of 64 values, 4 bits each, an 8-bit absmax per block, an fp32 scale per 256 absmaxes
// and an fp32 offset per tensor): a 4,096 × 4,096 matrix takes 8,388,608 + 262,144 + 4 · 1,024
// + 4 = 8,654,852 B; 1,024 × 4,096: 2,097,152 + 65,536 + 1,024 + 4 = 2,163,716; 14,336 × 4,096:
// 29,360,128 + 917,504 + 14,336 + 4 = 30,291,972. A layer: 2 · 8,654,852 + 2 · 2,163,716
// + 3 · 30,291,972 = 112,513,052; 32 layers 3,600,417,664; the bf16 embedding and head
// (2 · 128,256 · 4,096 · 2) and 65 norms (65 · 4,096 · 2): 2,101,878,784. With the fp32 adapters
// (13,631,488 · 4): 5,756,822,400 B.
TEST(Train, QloraBaseInDoubleQuantizedNf4) {
    TrainSpec spec;
    spec.lora = LoraSpec{};
    Workload w = train_workload("hf-train", 1, 2048);
    DType nf4;
    ASSERT_TRUE(parse_dtype("nf4-dq", nf4));
    w.weight_dtype = nf4;
    const TrainEstimate e = estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), Deployment{}, w, spec);
    EXPECT_EQ(e.weight_bytes, 5756822400ull);
}

// ZeRO-Offload of Llama-3.1-8B over 8 GPUs, mixed precision: each GPU's process keeps its 1/8 of
// the fp32 master (4 B), AdamW's moments (8 B) and the fp32 gradients (4 B) in host memory:
// 16 · 1,003,782,656 = 16,060,522,496 B; offload_param (ZeRO-3) adds the bf16 shard:
// 18 · 1,003,782,656 = 18,068,087,808 B, and the GPU keeps no parameter shard.
TEST(Train, OffloadMovesTheOptimizerToTheHost) {
    const u64 shard = 8030261248ull / 8;
    TrainSpec spec;
    spec.zero = 2;
    spec.precision = Precision::Mixed;
    spec.offload = Offload::Optimizer;
    const Workload w = train_workload("hf-train", 1, 2048);
    const TrainEstimate z2 = estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), Deployment{8, 1, 1, 1}, w, spec);
    EXPECT_EQ(z2.host_bytes, 16 * shard);
    EXPECT_EQ(z2.optimizer_bytes + z2.master_weight_bytes + z2.fp32_gradient_bytes + z2.gradient_bytes, 0u);
    EXPECT_EQ(z2.gradient_buffers, 1000000000u);  // the bucket stays on the GPU
    spec.zero = 3;
    spec.offload = Offload::All;
    const TrainEstimate z3 = estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), Deployment{8, 1, 1, 1}, w, spec);
    EXPECT_EQ(z3.host_bytes, 18 * shard);
    EXPECT_EQ(z3.weight_bytes, 0u);
    spec.zero = 0;
    EXPECT_THROW(estimate_train(resolve_model("llama-3.1-8b"), resolve_gpu("h100-sxm"), Deployment{8, 1, 1, 1}, w, spec), InputError);
}

// Step time out of sample (issue 29's bar, committed before the comparison ran): the 42 steps of
// h100_hf_train_loops_oos.json (lease 303df4d9, Mistral-7B, Qwen2.5-3B and Llama-3-8B widths, two
// layers; SDPA and eager; recomputation; 4 micro-batches; set_to_none=False; LoRA r32 on q/v and
// r4 on every linear) against estimate_train_time on the calibrated H100 profile: median |error|
// within 10%, worst within 20%. No constant of the time model was read off these steps (the
// kernel rates come from the probe, the foreach rate and the host costs from
// tests/data/diagnostics/h100_train_phases.json, another lease).
// A third lease, recorded after that bar was committed (h100_hf_train_time_oos.json: 2 × 4,096 and
// 8 × 512 tokens, LoRA r16 on the MLP): 18 more steps under the same bar, and their memory under
// the 1% bar of the memory model.
TEST(TrainTime, MeasuredStepsOutOfSampleWithinTenPercentMedianTwentyWorst) {
    for (const auto& [file, cases] :
         {std::pair<const char*, size_t>{"h100_hf_train_loops_oos.json", 42}, {"h100_hf_train_time_oos.json", 18}}) {
        const MeasurementFile f = load_measurements(std::string(MEMTAX_TEST_DATA) + "/measured/" + file);
        const Validation v = validate_file(f, resolve_gpu("h100-sxm-calibrated"), 0.01, 0);
        EXPECT_TRUE(v.all_ok) << file;
        std::vector<double> errors;
        for (const auto& r : v.train) {
            ASSERT_TRUE(r.timed) << r.c.id;
            errors.push_back(std::abs(r.step_error));
            EXPECT_LE(std::abs(r.step_error), 0.20) << r.c.id << ": predicted " << r.step_s * 1e3 << " ms";
        }
        ASSERT_EQ(errors.size(), cases) << file;
        std::sort(errors.begin(), errors.end());
        const size_t n = errors.size();
        EXPECT_LE((errors[(n - 1) / 2] + errors[n / 2]) / 2, 0.10) << file;
    }
}

// The optimizer step's launches and bytes, by hand. Meta-Llama-3-8B's widths with two layers:
// 1,486,901,248 parameters in 21 tensors (the embedding, the head, the final norm, 9 per layer).
// A foreach pass launches ceil((ceil(P / 65,536) + tensors) / 320) = ceil((22,689 + 21) / 320) = 71
// kernels; AdamW's 8 passes 568, the count torch.profiler recorded on the H100
// (tests/data/diagnostics/h100_train_phases.json). Its bytes: 21 element accesses of 2 bytes a
// parameter = 62,449,852,416. gqa-2l (221,259,776 parameters): ceil((3,377 + 21) / 320) = 11 a
// pass, 88 recorded; LoRA r16 on q/k/v/o (425,984 fp32 parameters in 16 tensors): 1 a pass, 8.
TEST(TrainTime, OptimizerLaunchesAndBytesByHand) {
    const Topology one(single_node_cluster(resolve_gpu("h100-sxm-calibrated"), 1));
    auto time_of = [&](const char* config, std::optional<LoraSpec> lora) {
        TrainSpec spec;
        spec.lora = lora;
        const TrainEstimate e = estimate_train(resolve_model(std::string(MEMTAX_TEST_DATA) + "/measured/" + config),
                                               resolve_gpu("h100-sxm-calibrated"), Deployment{}, train_workload("hf-train", 1, 2048), spec);
        return estimate_train_time(e, one);
    };
    const TrainTime llama = time_of("llama3-8b-2l.config.json", std::nullopt);
    EXPECT_EQ(llama.optimizer.kernels, 568u);
    EXPECT_EQ(llama.optimizer.bytes, 62449852416ull);
    EXPECT_EQ(time_of("gqa-2l.config.json", std::nullopt).optimizer.kernels, 88u);
    const TrainTime lora = time_of("gqa-2l.config.json", LoraSpec{16, 32, {"q_proj", "k_proj", "v_proj", "o_proj"}});
    EXPECT_EQ(lora.optimizer.kernels, 8u);
    EXPECT_EQ(lora.optimizer.bytes, 21ull * 425984 * 4);
}

// The backward's FLOPs, by hand for gqa-2l at 1 × 2,048 tokens: every linear layer runs two GEMMs
// of its forward's FLOPs, fused attention 2.5× its forward's. Linear FLOPs per layer:
// 2 · 2,048 · (2,048² [q] + 2 · 2,048 · 512 [k, v] + 2,048² [o] + 3 · 2,048 · 5,632 [MLP])
// = 184,683,593,728; two layers 369,367,187,456; the LM head 2 · 2,048 · 2,048 · 32,000
// = 268,435,456,000. Fused causal attention: 4 · heads · head_dim · S · S/2 per layer
// (Q·Kᵀ and P·V over half the keys on average) = 4 · 16 · 128 · 2,048 · 1,024 = 17,179,869,184;
// its backward 2.5× both layers': 85,899,345,920. Backward: 2 · 637,802,643,456 + that
// = 1,361,504,632,832 (the elementwise ops' FLOPs are not counted in the backward).
TEST(TrainTime, BackwardIsTwoGemmsPerLinearAndTheFlashBackward) {
    TrainSpec spec;
    const TrainEstimate e = estimate_train(resolve_model(std::string(MEMTAX_TEST_DATA) + "/measured/gqa-2l.config.json"),
                                           resolve_gpu("h100-sxm-calibrated"), Deployment{}, train_workload("hf-train", 1, 2048), spec);
    const TrainTime t = estimate_train_time(e, Topology(single_node_cluster(resolve_gpu("h100-sxm-calibrated"), 1)));
    EXPECT_EQ(t.backward.flops, 1361504632832ull);
    // Full recomputation adds one forward of the layers to the backward: all the forward's FLOPs
    // but the head's (the LM head, and the final RMSNorm's 4 FLOPs an element: 4 · 2,048 · 2,048).
    spec.recompute = Recompute::Full;
    const TrainEstimate r = estimate_train(resolve_model(std::string(MEMTAX_TEST_DATA) + "/measured/gqa-2l.config.json"),
                                           resolve_gpu("h100-sxm-calibrated"), Deployment{}, train_workload("hf-train", 1, 2048), spec);
    const TrainTime tr = estimate_train_time(r, Topology(single_node_cluster(resolve_gpu("h100-sxm-calibrated"), 1)));
    EXPECT_EQ(tr.backward.flops, t.backward.flops + (t.forward.flops - 268435456000ull - 16777216ull));
}

TEST(TrainTime, BudgetAndRefusals) {
    Result ok = run_command({"estimate",
                             "--model",
                             "llama-3.1-8b",
                             "--gpu",
                             "h100-sxm-calibrated",
                             "--mode",
                             "train",
                             "--context",
                             "4096",
                             "--gpus",
                             "8",
                             "--zero",
                             "2",
                             "--time",
                             "--train-tokens",
                             "1e11",
                             "--gpu-hour-price",
                             "2.5",
                             "--format",
                             "json"});
    ASSERT_EQ(ok.code, 0) << ok.err;
    const auto j = nlohmann::json::parse(ok.out)["time"];
    const double tokens_per_s = j["tokens_per_s"];
    EXPECT_EQ(j["tokens_per_step"], 8 * 4096);
    EXPECT_NEAR(j["budget"]["gpu_hours"].get<double>(), 1e11 / tokens_per_s / 3600 * 8, 1e-6);
    EXPECT_NEAR(j["budget"]["dollars"].get<double>(), j["budget"]["gpu_hours"].get<double>() * 2.5, 1e-6);
    EXPECT_NEAR(j["budget"]["days"].get<double>(), 1e11 / tokens_per_s / 86400, 1e-9);
    for (const auto& [args, msg] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"--train-tokens", "1e9"}, "--train-tokens: a step-time question; add --time"},
             {{"--time", "--gpu-hour-price", "2"}, "--gpu-hour-price: prices a token budget; add --train-tokens"},
             {{"--time", "--offload", "optimizer", "--zero", "2", "--gpus", "2"},
              "--offload: the step time of an optimizer in host memory is not modelled"}}) {
        std::vector<std::string> cmd = {"estimate", "--model", "llama-3.1-8b", "--mode", "train", "--context", "2048"};
        cmd.insert(cmd.end(), args.begin(), args.end());
        Result bad = run_command(cmd);
        EXPECT_EQ(bad.code, 2) << msg;
        EXPECT_NE(bad.err.find(msg), std::string::npos) << bad.err;
    }
}
