// memtax estimate: per-GPU memory of one step, with the fit verdict; --time adds the roofline of
// both steps of the workload.
#include <fmt/format.h>

#include <algorithm>

#include <optional>

#include "cli/common.hpp"
#include "model/time_model.hpp"
#include "model/training.hpp"
#include "report/train_report.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

class Estimate final : public Command {
public:
    CLI::App* add(CLI::App& app) override {
        auto* est = app.add_subcommand("estimate", "per-GPU memory of one inference step, with the fit verdict");
        add_workload_options(est, a_);
        est->add_option("--batch", a_.batch, "sequences (split over replicas)")->transform(positive_int())->capture_default_str();
        est->add_option("--context", a_.context,
                        "prefill: prompt tokens; decode: KV length after the step; 32k = 32,768, 1M = 1,048,576 "
                        "(default: 8192, or the model's max context if smaller)")
            ->transform(token_count());
        add_format_option(est, a_.format);
        est->add_option("--output,-o", a_.output, "write the report to this file (atomically) instead of stdout");
        est->add_flag("--explain", a_.explain, "print each term's formula with its numbers");
        est->add_flag("--require-fit", a_.require_fit, "exit 1 when the step does not fit (for CI gates)");
        est->add_flag("--time", a_.time,
                      "add the roofline: TTFT, TPOT, tokens/s and the bound per op kind (--mode train: the step time, tokens/s, MFU)");
        est->add_option("--cluster", a_.cluster,
                        "cluster profile for communication (--time): built-in name or YAML path; "
                        "default: one node joined by the GPU's interconnect");
        est->add_flag("--sequence-parallel", a_.sequence_parallel,
                      "--mode train: Megatron sequence parallelism over the TP group (megatron-train)");
        est->add_option("--recompute", a_.recompute, "--mode train: none (default) | selective | full (checkpoint every layer)")
            ->check(CLI::IsMember({"none", "selective", "full"}));
        est->add_option("--zero", a_.zero, "--mode train: ZeRO stage 0-3 over the data-parallel replicas (--gpus / (tp · pp))")
            ->check(CLI::Range(0, 3));
        est->add_option("--micro-batches", a_.micro_batches,
                        "--mode train: micro-batches per optimizer step (accumulation, or the pipeline's)")
            ->transform(positive_int());
        est->add_option("--optimizer", a_.optimizer, "--mode train: adamw (default) | adam | sgd | sgd-momentum")
            ->check(CLI::IsMember({"adamw", "adam", "sgd", "sgd-momentum"}));
        est->add_option("--precision", a_.precision,
                        "--mode train: bf16 (default: parameters, gradients and states in the model's dtype) | mixed (fp32 master weights "
                        "and states)")
            ->check(CLI::IsMember({"bf16", "mixed"}));
        est->add_option("--loop", a_.loop,
                        "--mode train: what the loop holds through the backward: loss (default: `loss = model(...).loss`, as the "
                        "Trainer) | outputs (`out = model(...)`: its logits, and its cache with --use-cache on)")
            ->check(CLI::IsMember({"loss", "outputs"}));
        est->add_option("--use-cache", a_.use_cache, "--mode train --loop outputs: on (default, transformers' configs) | off")
            ->check(CLI::IsMember({"on", "off"}));
        est->add_option("--zero-grad", a_.zero_grad,
                        "--mode train: none (default: zero_grad(set_to_none=True)) | zeros (set_to_none=False: gradients stay allocated)")
            ->check(CLI::IsMember({"none", "zeros"}));
        est->add_flag("--fsdp", a_.fsdp, "--mode train: PyTorch FSDP2 (fully_shard per decoder layer): ZeRO-3 by its other name");
        est->add_option("--reduce-bucket", a_.reduce_bucket, "--mode train, ZeRO-2/3: DeepSpeed's reduce_bucket_size in elements (5e8)")
            ->transform(positive_int());
        est->add_option("--prefetch-bucket", a_.prefetch_bucket,
                        "--mode train, ZeRO-3: DeepSpeed's stage3_prefetch_bucket_size in elements (5e7)")
            ->transform(positive_int());
        est->add_option("--overlap-comm", a_.overlap_comm,
                        "--mode train, ZeRO-2: on (two buckets) | off (DeepSpeed's default below ZeRO-3)")
            ->check(CLI::IsMember({"on", "off"}));
        est->add_option("--grad-dtype", a_.grad_dtype,
                        "--mode train: params (autograd's gradients in the parameters' dtype) | fp32 (Megatron's main gradients); "
                        "default: the runtime's (megatron-train: fp32)")
            ->check(CLI::IsMember({"params", "fp32"}));
        est->add_option("--lora-rank", a_.lora_rank,
                        "--mode train: LoRA fine-tuning with adapters of this rank, the base frozen (peft); QLoRA: add --weight-dtype "
                        "nf4-dq")
            ->transform(positive_int());
        est->add_option(
               "--train-tokens", a_.train_tokens,
               "--mode train --time: a token budget (e.g. 15e12): the days, GPU-hours and, with --gpu-hour-price, dollars it takes")
            ->transform(positive_int());
        est->add_option("--gpu-hour-price", a_.gpu_hour_price, "--mode train --time --train-tokens: $ per GPU-hour (e.g. 2.5)")
            ->check(CLI::NonNegativeNumber);
        est->add_option("--lora-alpha", a_.lora_alpha, "--mode train: LoRA's alpha (default 2 × rank; scales, costs no memory)")
            ->transform(positive_int());
        est->add_option("--lora-targets", a_.lora_targets, "--mode train: the modules adapted (default q_proj,k_proj,v_proj,o_proj)")
            ->delimiter(',');
        est->add_option("--offload", a_.offload,
                        "--mode train: none (default) | optimizer (ZeRO-Offload: fp32 master, states and gradients in host memory) | "
                        "all (ZeRO-3: the parameters too)")
            ->check(CLI::IsMember({"none", "optimizer", "all"}));
        return est;
    }

    int run(std::ostream& out, std::ostream& err) override {
        if (a_.mode == "train") return run_train(out);
        for (const auto& [flag, set] : {std::pair<const char*, bool>{"--recompute", !a_.recompute.empty()},
                                        {"--optimizer", !a_.optimizer.empty()},
                                        {"--precision", !a_.precision.empty()},
                                        {"--zero", a_.zero != 0},
                                        {"--micro-batches", a_.micro_batches != 1},
                                        {"--sequence-parallel", a_.sequence_parallel},
                                        {"--loop", !a_.loop.empty()},
                                        {"--use-cache", !a_.use_cache.empty()},
                                        {"--zero-grad", !a_.zero_grad.empty()},
                                        {"--fsdp", a_.fsdp},
                                        {"--reduce-bucket", a_.reduce_bucket != 0},
                                        {"--prefetch-bucket", a_.prefetch_bucket != 0},
                                        {"--overlap-comm", !a_.overlap_comm.empty()},
                                        {"--grad-dtype", !a_.grad_dtype.empty()},
                                        {"--lora-rank", a_.lora_rank != 0},
                                        {"--lora-alpha", a_.lora_alpha != 0},
                                        {"--lora-targets", !a_.lora_targets.empty()},
                                        {"--offload", !a_.offload.empty()},
                                        {"--train-tokens", a_.train_tokens != 0},
                                        {"--gpu-hour-price", a_.gpu_hour_price != 0}})
            if (set) throw InputError(SourcePos{}, flag, "only with --mode train");
        const EstimateArgs& a = a_;
        const Printer& print = printer(a.format);
        const ModelSpec m = model_from(a.model, a.dtype);
        const GpuSpec g = resolve_gpu(a.gpu);
        const Deployment dep{a.gpus ? a.gpus : a.tp * a.pp, a.tp, a.pp, a.ep};
        const Workload w = workload_from(a, m);
        const Plan plan = Plan::compile(m, g, dep, w);
        const memtax::Estimate e = plan.estimate(plan.point_of(w));
        std::optional<TimeEstimate> time;
        if (a.time) {
            warn_about(g, err);
            const ClusterSpec c = a.cluster.empty() ? single_node_cluster(g, a.tp * a.pp) : cluster_arg(a.cluster, g);
            const Topology topo(c);
            time = estimate_time(plan, plan.point_of(w), topo);
        } else if (!a.cluster.empty()) {
            throw InputError(SourcePos{}, "--cluster", "only used by --time; add --time");
        }
        emit(print.estimate(e, tool_info(), a.explain, time ? &*time : nullptr), a.output, out, {a.model, a.gpu, a.runtime, a.cluster});
        return a.require_fit && !e.fits ? 1 : 0;
    }

private:
    // One training step: --batch is the micro-batch (sequences per data-parallel replica).
    int run_train(std::ostream& out) {
        EstimateArgs a = a_;
        if (!a.time && (a.train_tokens || a.gpu_hour_price > 0))
            throw InputError(SourcePos{}, a.train_tokens ? "--train-tokens" : "--gpu-hour-price", "a step-time question; add --time");
        if (a.gpu_hour_price > 0 && !a.train_tokens)
            throw InputError(SourcePos{}, "--gpu-hour-price", "prices a token budget; add --train-tokens");
        if (a.runtime.empty()) a.runtime = a.attention == "eager" ? "hf-train-eager" : "hf-train";
        a.attention.clear();
        a.mode = "prefill";
        const ModelSpec m = model_from(a.model, a.dtype);
        const GpuSpec g = resolve_gpu(a.gpu);
        const Deployment dep{a.gpus ? a.gpus : a.tp * a.pp, a.tp, a.pp, a.ep};
        const Workload w = workload_from(a, m);
        if (!RuntimeRegistry::builtin().family(w.runtime).trains)
            throw InputError(SourcePos{}, "--runtime",
                             fmt::format("{} serves inference; training runs under hf-train or hf-train-eager", w.runtime.name));
        TrainSpec spec;
        spec.recompute = recompute_from(a.recompute.empty() ? "none" : a.recompute, "--recompute");
        spec.zero = a.zero;
        spec.micro_batches = a.micro_batches;
        spec.optimizer = optimizer_from(a.optimizer.empty() ? "adamw" : a.optimizer, "--optimizer");
        spec.precision = a.precision == "mixed" ? Precision::Mixed : Precision::ModelDtype;
        spec.sequence_parallel = a.sequence_parallel;
        spec.loop = loop_from(a.loop.empty() ? "loss" : a.loop, "--loop");
        if (!a.use_cache.empty() && spec.loop != Loop::Outputs)
            throw InputError(SourcePos{}, "--use-cache", "only with --loop outputs (the loss loop releases the output's cache)");
        spec.use_cache = a.use_cache != "off";
        spec.set_to_none = a.zero_grad != "zeros";
        if (a.fsdp) {
            if (a.zero != 0 && a.zero != 3)
                throw InputError(SourcePos{}, "--zero",
                                 fmt::format("{} with --fsdp; FSDP2 is ZeRO-3: valid: 3, or leave --zero out", a.zero));
            spec.zero = 3;
            spec.sharder = Sharder::Fsdp;
        }
        for (const auto& [flag, set] : {std::pair<const char*, bool>{"--reduce-bucket", a.reduce_bucket != 0},
                                        {"--prefetch-bucket", a.prefetch_bucket != 0},
                                        {"--overlap-comm", !a.overlap_comm.empty()}})
            if (set && (spec.zero < 2 || a.fsdp))
                throw InputError(SourcePos{}, flag, "DeepSpeed's ZeRO-2/3 setting; add --zero 2 or --zero 3 (without --fsdp)");
        if (a.prefetch_bucket != 0 && spec.zero != 3) throw InputError(SourcePos{}, "--prefetch-bucket", "ZeRO-3's setting; add --zero 3");
        if (a.reduce_bucket) spec.reduce_bucket = a.reduce_bucket;
        if (a.prefetch_bucket) spec.prefetch_bucket = a.prefetch_bucket;
        if (!a.overlap_comm.empty()) spec.overlap_comm = a.overlap_comm == "on";
        if (!a.grad_dtype.empty()) spec.fp32_grads = a.grad_dtype == "fp32";
        if ((a.lora_alpha || !a.lora_targets.empty()) && !a.lora_rank)
            throw InputError(SourcePos{}, a.lora_alpha ? "--lora-alpha" : "--lora-targets", "a LoRA setting; add --lora-rank");
        if (a.lora_rank) {
            LoraSpec l;
            l.rank = a.lora_rank;
            l.alpha = a.lora_alpha ? a.lora_alpha : 2 * a.lora_rank;
            if (!a.lora_targets.empty()) l.targets = a.lora_targets;
            spec.lora = l;
        }
        if (a.offload == "optimizer") spec.offload = Offload::Optimizer;
        if (a.offload == "all") spec.offload = Offload::All;
        const TrainEstimate e = estimate_train(m, g, dep, w, spec);
        std::optional<TrainTime> time;
        if (a.time) {
            const ClusterSpec c = a.cluster.empty() ? single_node_cluster(g, dep.gpus) : cluster_arg(a.cluster, g);
            time = estimate_train_time(e, Topology(c), a.train_tokens, a.gpu_hour_price);
        } else if (!a.cluster.empty()) {
            throw InputError(SourcePos{}, "--cluster", "only used by --time; add --time");
        }
        emit(train_report(e, tool_info(), a.format, time ? &*time : nullptr), a.output, out, {a.model, a.gpu, a.runtime, a.cluster});
        return a.require_fit && !e.fits ? 1 : 0;
    }

    EstimateArgs a_;
};

}  // namespace

std::unique_ptr<Command> make_estimate() { return std::make_unique<Estimate>(); }

}  // namespace memtax::cli
