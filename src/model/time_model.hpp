#pragma once
// Bandwidth and time: the roofline of every op of a step. Each op moves at least its inputs
// once, its outputs once and its weight once, and performs its FLOPs; its time is
// max(FLOPs / achievable matrix rate, bytes / achievable bandwidth) + one kernel launch, with
// achievable = peak × the GPU profile's efficiency. Elementwise ops (norms, rotary, softmax,
// residuals, copies) are taken as memory-bound: a few FLOPs per element, far below any GPU's
// ridge point. Tensor parallelism adds a ring all-reduce after the attention output and the
// MLP down projection of every layer (Megatron row-parallel layers), one for the vocab-parallel
// embedding and an all-gather of the logits; pipeline stages add a point-to-point transfer of
// the hidden states per stage boundary. Prefill gives the time to first token, one decode
// step the time per output token.
#include <string>
#include <vector>

#include "model/plan.hpp"
#include "topology/topology.hpp"

namespace memtax {

// The classes of kernel the probe calibrates. Matrix products run at a dtype's matrix rate;
// fused attention at its own rate in prefill and at its own bandwidth in decode (paged KV
// through a block table); everything else streams at the copy bandwidth.
// AllReduce: an NCCL ring all-reduce; its bytes are the bus bytes, 2(n−1)/n × the message.
// AttentionPrefill / AttentionDecode: the runtime's fused attention (PyTorch's SDPA, measured by
// kernels/torch/measure_sdpa_time.py); MemtaxFlash / MemtaxPagedDecode: the probe's own kernels,
// which calibrate only themselves (PyTorch's Hopper kernels run 2× faster than our flash).
enum class KernelClass : std::uint8_t {
    Stream,
    Gemm,
    AttentionPrefill,
    AttentionDecode,
    Launch,
    AllReduce,
    MemtaxFlash,
    MemtaxPagedDecode
};
// "stream", "gemm_bf16", ..., "attention_prefill", "attention_decode", "memtax_flash",
// "memtax_paged_decode", "launch", "allreduce": GpuSpec::kernel_rates keys.
std::string kernel_class_key(KernelClass c, const std::string& dtype);

struct ClassRates {
    double overhead_s = 0, bandwidth = 0, flops = 0;
    double ll_overhead_s = 0, ll_bandwidth = 0;  // allreduce: the low-latency protocol's line (0 = none)
    double step_s = 0, ll_step_s = 0;            // allreduce: latency per ring step, per line
    bool calibrated = false;                     // from the GPU's calibration, not the assumed efficiencies
};
// The rates a kernel of this class runs at on `g`: the calibrated class where the profile has
// one, else peak × the profile's efficiencies (dtype: the matrix rate's dtype; bf16/fp16 share).
ClassRates class_rates(const GpuSpec& g, KernelClass c, const std::string& dtype);

struct KernelTime {
    double seconds = 0, overhead_s = 0, compute_s = 0, memory_s = 0;
    std::string bound;  // compute | memory | overhead
    ClassRates rates;
};
// One kernel: overhead + max(FLOPs / rate, bytes / bandwidth); stream kernels have no compute term.
// `steps`: ring steps of an all-reduce (2(n−1) over n GPUs); 0 for other kernels.
KernelTime kernel_time(const GpuSpec& g, KernelClass c, const std::string& dtype, u64 flops, u64 bytes, u64 steps = 0);
// The same with the class's rates already looked up (hot loops).
KernelTime kernel_time(const ClassRates& rates, KernelClass c, u64 flops, u64 bytes, u64 steps = 0);

struct KindTime {
    std::string kind;  // an op group ("mlp", "attention core", ...), "embedding" or a collective
    u64 ops = 0;       // kernel launches
    u64 flops = 0;
    u64 bytes = 0;
    double compute_s = 0, memory_s = 0, launch_s = 0;
    double seconds = 0;
    std::string bound;  // compute | memory | communication | launch
};

struct StepTime {
    double seconds = 0;
    u64 flops = 0, bytes = 0;
    u64 weight_bytes = 0, kv_bytes = 0;
    u64 attention_matrix_bytes = 0;  // S×S tensors written and re-read (eager)
    double attention_matrix_s = 0;   // their share of the step at the achievable bandwidth
    double communication_s = 0;
    // The host's dispatch (runtime profiles with a `host` cost): every op queued from Python
    // while the GPU runs the ones before it. `seconds` is then the later of the two clocks at the
    // last op, plus the communication; gpu_s is the GPU's busy time alone.
    double host_s = 0, gpu_s = 0;
    u64 host_ops = 0;
    double achieved_flops_per_s = 0;
    double compute_utilisation = 0;   // achieved FLOP/s ÷ peak matrix FLOP/s
    double arithmetic_intensity = 0;  // FLOPs per byte of the whole step
    std::vector<KindTime> kinds;
};

struct TimeEstimate {
    double bandwidth_bytes_per_s = 0;  // achievable
    double matmul_flops_per_s = 0;     // achievable, in the compute dtype
    double peak_matmul_flops_per_s = 0;
    double launch_overhead_s = 0;
    std::string rate_dtype;
    bool calibrated = false;
    double ridge_flops_per_byte = 0;  // achievable rate ÷ achievable bandwidth
    u64 crossover_tokens = 0;         // tokens per step from which the weight matmuls are compute-bound
    std::string topology;             // the cluster the communication used
    StepTime prefill;                 // the prompt of `context` tokens: TTFT
    StepTime decode;                  // one token at KV length `context`: TPOT
    double ttft_s = 0, tpot_s = 0;
    double tokens_per_s = 0;  // decode throughput of the whole deployment: batch / TPOT
    FirstToken first_token;   // per-request TTFT under the runtime's scheduler
    // What TTFT and TPOT mean under the runtime family (RuntimePlan::ttft_meaning).
    std::string ttft_meaning, tpot_meaning;
};

// `prefill` and `decode` are estimates of the same deployment and workload in each mode (a time
// needs both: InternalError otherwise).
TimeEstimate estimate_time(const Estimate& prefill, const Estimate& decode, const Topology& topology);
// Both steps of a point's workload from one plan: the prompt (TTFT) and a decode step at that KV
// length (TPOT).
TimeEstimate estimate_time(const Plan& plan, const Point& p, const Topology& topology);

}  // namespace memtax
