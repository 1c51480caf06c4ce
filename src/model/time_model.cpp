#include "model/time_model.hpp"

#include "model/time_internal.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <map>
#include <optional>

namespace memtax {

double peak_rate(const GpuSpec& g, const std::string& dtype, std::string* name) {
    auto rate = [&](const std::string& d) -> double {
        auto it = g.peak_flops.find(d);
        return it == g.peak_flops.end() ? 0.0 : it->second.value;
    };
    if (rate(dtype) > 0) {
        if (name) *name = dtype;
        return rate(dtype);
    }
    const bool bf = rate("bf16") > 0;
    if (name) *name = bf ? "bf16" : "fp16";
    return bf ? rate("bf16") : rate("fp16");
}

// One declared launch: the queued-kernel cost plus the longer of its bytes at its class's
// bandwidth and its elements at its class's element rate.
double launch_seconds(const Rates& r, const LaunchTraffic& l) {
    const double bytes = static_cast<double>(l.bytes), n = static_cast<double>(l.elements);
    double s = bytes / r.bw;
    switch (l.cls) {
        case LaunchClass::Vectorized:
            break;
        case LaunchClass::Strided:
            s = std::max(s, n / (r.eager.strided * r.bw));
            break;
        case LaunchClass::StridedCopy:
            s = std::max(s, n / (r.eager.strided_copy * r.bw));
            break;
        case LaunchClass::Cat:
            s = std::max(s, n / (r.eager.cat * r.bw));
            break;
        case LaunchClass::Reduce:
            s = bytes / (r.eager.reduce * r.bw);
            break;
        case LaunchClass::Softmax:
            s = bytes / (r.eager.softmax * r.bw);
            break;
    }
    return r.queued + s;
}

Rates rates_for(const Estimate& e) {
    const GpuSpec& g = e.gpu();
    Rates r;
    r.peak_act = peak_rate(g, e.model().dtype.name, &r.act_name);
    const ClassRates stream = class_rates(g, KernelClass::Stream, r.act_name);
    const ClassRates gemm = class_rates(g, KernelClass::Gemm, r.act_name);
    r.bw = stream.bandwidth;
    r.launch = stream.overhead_s;
    r.act_rate = gemm.flops;
    if (const auto& h = e.workload.runtime.host) {
        r.host_op = h->per_op_s;
        r.host_step = h->per_step_s;
    }
    r.queued = r.launch;
    if (auto it = g.kernel_rates.find("launch"); it != g.kernel_rates.end() && it->second.queued_s > 0) r.queued = it->second.queued_s;
    if (const auto& k = e.workload.runtime.kernels) {
        r.eager = *k;
        r.has_eager = true;
    }
    return r;
}

KindTime& kind_row(std::vector<KindTime>& rows, const std::string& name) {
    for (auto& r : rows)
        if (r.kind == name) return r;
    KindTime row;
    row.kind = name;
    rows.push_back(row);
    return rows.back();
}

// A collective's row: communication-bound by what it is, whatever its name.
KindTime& communication_row(std::vector<KindTime>& rows, const std::string& name) {
    KindTime& row = kind_row(rows, name);
    row.bound = "communication";
    return row;
}

StepTime step_time(const Estimate& e, const Topology& topo, const Rates& r, std::vector<std::vector<double>>* op_seconds_out) {
    StepTime st;
    const ModelSpec& m = e.model();
    u64 tokens_hidden_bytes = 0;  // one activation message: batch · tokens · hidden · act bytes
    std::array<std::optional<ClassRates>, 16> rates_cache;
    // The host and the GPU as two clocks: the host queues op after op (per_op_s each, after
    // per_step_s of input preparation); the GPU starts an op once it is queued and the one
    // before has finished. Without a host cost this is the plain sum of the GPU times.
    double host_clock = r.host_step, gpu_clock = 0;
    auto run_op = [&](double gpu_s, u64 launches) {
        host_clock += r.host_op * static_cast<double>(r.host_per_launch ? launches : 1);
        gpu_clock = std::max(gpu_clock, host_clock) + gpu_s;
    };
    std::vector<double> op_seconds;
    std::vector<u64> op_launches;
    if (op_seconds_out) op_seconds_out->clear();
    for (const GraphUse& gu : e.step_graphs) {
        op_seconds.clear();
        op_launches.clear();
        // `count`: the times the graph runs in a step of the whole model (a pipeline estimate
        // describes one stage; one step runs every layer once).
        const u64 count = gu.count;
        if (gu.is_layer) tokens_hidden_bytes = gu.hidden_bytes;
        // A mask built once per forward outside the layer graph is read by every layer.
        if (const u64 mask_read = gu.mask_read_bytes) {
            KindTime& row = kind_row(st.kinds, to_string(OpGroup::Attention));
            const u64 total = checked_mul(mask_read, count, "mask");
            row.bytes = checked_add(row.bytes, total, "bytes");
            row.memory_s += static_cast<double>(total) / r.bw;
            row.seconds += static_cast<double>(total) / r.bw;
            st.attention_matrix_bytes = checked_add(st.attention_matrix_bytes, total, "bytes");
        }
        for (const OpTraffic& t : gu.graph->traffic(gu.bindings)) {
            const OpInfo& op = *t.op;
            // fp8 weights run at the fp8 rate; int4 weights are dequantised to the compute dtype.
            const bool fp8 = !op.weights.empty() && op.weights.front().dtype == DtypeRole::Weight && e.workload.weight_dtype->bits == 8 &&
                             e.gpu().peak_flops.count(e.workload.weight_dtype->name);
            KernelClass cls = KernelClass::Stream;
            if (op.kind == OpKind::Matmul && t.flops > 0) cls = KernelClass::Gemm;
            if (op.kind == OpKind::Attention && t.flops > 0)
                cls = gu.bindings[Sym::Sq] == 1 ? KernelClass::AttentionDecode : KernelClass::AttentionPrefill;
            // The class's rates, looked up once per class (and the fp8 weights' dtype) per step.
            const size_t slot = static_cast<size_t>(cls) * 2 + (fp8 ? 1 : 0);
            if (!rates_cache[slot]) rates_cache[slot] = class_rates(e.gpu(), cls, fp8 ? e.workload.weight_dtype->name : r.act_name);
            // Eager decode's Q·Kᵀ and P·V are cuBLAS batched GEMVs over the keys; with a key count
            // that is not a multiple of 8 their rows are not 16-byte aligned and they read at the
            // runtime's unaligned-GEMV rate.
            ClassRates cr = *rates_cache[slot];
            if (cls == KernelClass::Gemm && op.weights.empty() && gu.bindings[Sym::Sq] == 1 && r.has_eager &&
                gu.bindings[Sym::Skv] % 8 != 0)
                cr.bandwidth = r.eager.gemv_unaligned * r.bw;
            // A fused prefill given an explicit mask (a sliding window shorter than the prompt)
            // computes every tile, and applies the mask in each, at the runtime's masked rate.
            if (cls == KernelClass::AttentionPrefill && r.has_eager && gu.bindings[Sym::MaskConv] == 1)
                cr.flops *= r.eager.masked_attention;
            const KernelTime kt = kernel_time(cr, cls, t.flops, t.bytes);
            const double c = static_cast<double>(count);
            KindTime& row = kind_row(st.kinds, to_string(op.group));
            const std::string& term = op.name;  // named in an overflow error
            row.flops = checked_add(row.flops, checked_mul(t.flops, count, term), term);
            if (t.n_launches > 0) {
                // The kernels eager PyTorch launches for the op, each at its class's rate.
                double op_s = 0;
                for (u64 i = 0; i < t.n_launches; ++i) {
                    const LaunchTraffic& l = t.launches[i];
                    const double ls = launch_seconds(r, l);
                    op_s += ls;
                    row.bytes = checked_add(row.bytes, checked_mul(l.bytes, count, term), term);
                    row.memory_s += c * (ls - r.queued);
                    row.launch_s += c * r.queued;
                }
                row.ops += count * t.n_launches;
                row.seconds += c * op_s;
                op_seconds.push_back(op_s);
                op_launches.push_back(t.n_launches);
            } else {
                row.ops += count;
                row.bytes = checked_add(row.bytes, checked_mul(t.bytes, count, term), term);
                const double op_s = std::max(kt.compute_s, kt.memory_s);
                if (kt.compute_s > kt.memory_s)
                    row.compute_s += c * op_s;
                else
                    row.memory_s += c * op_s;
                row.launch_s += c * kt.overhead_s;
                row.seconds += c * kt.seconds;
                op_seconds.push_back(kt.seconds);
                op_launches.push_back(1);
            }
            st.weight_bytes = checked_add(st.weight_bytes, checked_mul(t.weight_bytes, count, "bytes"), "bytes");
            st.kv_bytes = checked_add(st.kv_bytes, checked_mul(t.kv_bytes, count, "bytes"), "bytes");
            st.attention_matrix_bytes =
                checked_add(st.attention_matrix_bytes, checked_mul(t.attention_matrix_bytes, count, "bytes"), "bytes");
        }
        // The graph's ops in schedule order, `count` times (a mask read joins its layer's first op).
        const double mask_s = gu.mask_read_bytes ? static_cast<double>(gu.mask_read_bytes) / r.bw : 0;
        if (!op_seconds.empty()) op_seconds.front() += mask_s;
        u64 launches = 0;
        for (u64 n : op_launches) launches += n;
        for (u64 i = 0; i < count; ++i)
            for (size_t k = 0; k < op_seconds.size(); ++k) run_op(op_seconds[k], op_launches[k]);
        st.host_ops += count * (r.host_per_launch ? launches : op_seconds.size());
        if (op_seconds_out) op_seconds_out->push_back(op_seconds);
    }
    // The embedding gathers one row per token (read and write).
    {
        KindTime& row = kind_row(st.kinds, "embedding");
        row.ops = 1;
        row.bytes = checked_mul(2, tokens_hidden_bytes, "embedding");
        row.memory_s = static_cast<double>(row.bytes) / r.bw;
        row.launch_s = r.launch;
        row.seconds = row.memory_s + row.launch_s;
        run_op(row.seconds, 1);
        ++st.host_ops;
    }
    // Communication.
    const u64 tp = e.deployment.tp, pp = e.deployment.pp;
    if (tp * pp > topo.gpus())
        throw InputError(
            SourcePos{topo.spec().file, 0, 0}, "deployment.cluster",
            fmt::format("{} has {} GPUs; one replica needs TP {} × PP {} = {}", topo.spec().name, topo.gpus(), tp, pp, tp * pp));
    if (tp > 1) {
        std::vector<u64> ranks;
        for (u64 i = 0; i < tp; ++i) ranks.push_back(i);
        const PathCost ring = topo.ring(ranks);
        KindTime& ar = communication_row(st.kinds, "tp all-reduce");
        const u64 n = checked_add(checked_mul(2, m.num_layers, "all-reduces"), 1, "all-reduces");  // + the embedding's
        ar.ops = n;
        ar.bytes = checked_mul(n, tokens_hidden_bytes, "all-reduce");
        // A GPU profile calibrated with the probe's NCCL all-reduce (measured on such GPUs' own
        // node) gives the ring its measured bus bandwidth and fixed cost; else the topology's.
        if (e.gpu().kernel_rates.count("allreduce"))
            ar.seconds =
                static_cast<double>(n) * kernel_time(e.gpu(), KernelClass::AllReduce, "", 0,
                                                     checked_mul(2 * (tp - 1), tokens_hidden_bytes, "all-reduce") / tp, 2 * (tp - 1))
                                             .seconds;
        else
            ar.seconds = static_cast<double>(n) * all_reduce_seconds(tokens_hidden_bytes, tp, ring);
        KindTime& ag = communication_row(st.kinds, "logits all-gather");
        const u64 logits =
            e.workload.logits_dtype->bytes(checked_product({e.batch_per_replica, e.logits_kept, m.vocab_size}, "logits"), "logits");
        ag.ops = 1;
        ag.bytes = logits;
        ag.seconds = all_gather_seconds(logits, tp, ring);
    }
    if (const u64 ep = e.deployment.ep; ep > 1 && m.moe.enabled()) {
        // Expert parallelism: each MoE layer sends every token's hidden state to the ranks of its
        // k experts and gathers the results back (dispatch + combine), two all-to-alls over the
        // ep GPUs, each rank's share T·k·hidden.
        std::vector<u64> ranks;
        for (u64 i = 0; i < ep; ++i) ranks.push_back(i);
        const PathCost ring = topo.ring(ranks);
        u64 moe_layers = 0;
        for (const auto& l : m.layers) moe_layers += l.channel_mixer == "moe";
        KindTime& a2a = communication_row(st.kinds, "ep all-to-all");
        const u64 per_rank = checked_mul(tokens_hidden_bytes, m.moe.experts_per_token, "all-to-all");
        a2a.ops = checked_mul(2, moe_layers, "all-to-alls");
        a2a.bytes = checked_mul(a2a.ops, per_rank, "all-to-all");
        a2a.seconds = static_cast<double>(a2a.ops) * all_to_all_seconds(per_rank, ep, ring);
    }
    if (pp > 1) {
        KindTime& p2p = communication_row(st.kinds, "pp transfer");
        p2p.ops = pp - 1;
        p2p.bytes = checked_mul(pp - 1, tokens_hidden_bytes, "pp transfer");
        for (u64 s = 0; s + 1 < pp; ++s) p2p.seconds += p2p_seconds(tokens_hidden_bytes, topo.path(s * tp, (s + 1) * tp));
    }
    for (auto& row : st.kinds) {
        if (row.bound == "communication") {
            st.communication_s += row.seconds;
        } else {
            st.flops = checked_add(st.flops, row.flops, "step FLOPs (" + row.kind + ")");
            st.bytes = checked_add(st.bytes, row.bytes, "step bytes (" + row.kind + ")");
            row.bound = row.launch_s > std::max(row.compute_s, row.memory_s) ? "launch"
                        : row.compute_s > row.memory_s                       ? "compute"
                                                                             : "memory";
        }
        st.seconds += row.seconds;
    }
    st.gpu_s = st.seconds - st.communication_s;
    if (r.host_op > 0 || r.host_step > 0) {
        st.host_s = host_clock;
        st.seconds = std::max(gpu_clock, host_clock) + st.communication_s;
    }
    st.attention_matrix_s = static_cast<double>(st.attention_matrix_bytes) / r.bw;
    st.achieved_flops_per_s = st.seconds > 0 ? static_cast<double>(st.flops) / st.seconds : 0;
    st.compute_utilisation = r.peak_act > 0 ? st.achieved_flops_per_s / r.peak_act : 0;
    st.arithmetic_intensity = st.bytes ? static_cast<double>(st.flops) / static_cast<double>(st.bytes) : 0;
    return st;
}

std::string kernel_class_key(KernelClass c, const std::string& dtype) {
    switch (c) {
        case KernelClass::Stream:
            return "stream";
        case KernelClass::Gemm:
            return "gemm_" + dtype;
        case KernelClass::AttentionPrefill:
            return "attention_prefill";
        case KernelClass::AttentionDecode:
            return "attention_decode";
        case KernelClass::Launch:
            return "launch";
        case KernelClass::AllReduce:
            return "allreduce";
        case KernelClass::MemtaxFlash:
            return "memtax_flash";
        case KernelClass::MemtaxPagedDecode:
            return "memtax_paged_decode";
    }
    return "stream";
}

ClassRates class_rates(const GpuSpec& g, KernelClass c, const std::string& dtype) {
    std::string rate_dtype;
    const double peak = peak_rate(g, dtype, &rate_dtype);
    ClassRates base;  // the assumed efficiencies, or the calibrated stream class for bandwidth and overhead
    base.overhead_s = g.launch_overhead_s;
    base.bandwidth = g.hbm_bandwidth.value * g.bandwidth_efficiency;
    base.flops = peak * g.matmul_efficiency;
    if (auto it = g.kernel_rates.find("stream"); it != g.kernel_rates.end()) {
        if (it->second.bandwidth > 0) base.bandwidth = it->second.bandwidth;
        base.overhead_s = it->second.overhead_s;
    }
    if (auto it = g.kernel_rates.find(kernel_class_key(KernelClass::Gemm, rate_dtype)); it != g.kernel_rates.end() && it->second.flops > 0)
        base.flops = it->second.flops;
    if (c == KernelClass::AllReduce) {
        // Uncalibrated: the per-direction interconnect bandwidth (half the bidirectional figure
        // vendors state) at the profile's bandwidth efficiency.
        ClassRates a;
        a.overhead_s = g.launch_overhead_s;
        a.bandwidth = g.interconnect_bandwidth.value / 2 * g.bandwidth_efficiency;
        if (auto it = g.kernel_rates.find("allreduce"); it != g.kernel_rates.end()) {
            a.overhead_s = it->second.overhead_s;
            a.bandwidth = it->second.bandwidth;
            a.ll_overhead_s = it->second.ll_overhead_s;
            a.ll_bandwidth = it->second.ll_bandwidth;
            a.step_s = it->second.step_s;
            a.ll_step_s = it->second.ll_step_s;
            a.calibrated = true;
        }
        return a;
    }
    if (c == KernelClass::Stream || c == KernelClass::Launch) {
        if (auto it = g.kernel_rates.find("launch"); c == KernelClass::Launch && it != g.kernel_rates.end()) {
            base.overhead_s = it->second.overhead_s;
            base.calibrated = true;
            return base;
        }
        base.calibrated = g.kernel_rates.count("stream") > 0;
        return base;
    }
    const std::string key = c == KernelClass::Gemm ? kernel_class_key(c, rate_dtype) : kernel_class_key(c, dtype);
    // Our own kernels fall back to the runtime attention classes where those are calibrated.
    if (!g.kernel_rates.count(key) && (c == KernelClass::MemtaxFlash || c == KernelClass::MemtaxPagedDecode))
        return class_rates(g, c == KernelClass::MemtaxFlash ? KernelClass::AttentionPrefill : KernelClass::AttentionDecode, dtype);
    auto it = g.kernel_rates.find(key);
    if (it == g.kernel_rates.end()) return base;
    ClassRates r = base;
    r.calibrated = true;
    r.overhead_s = it->second.overhead_s;
    if (it->second.bandwidth > 0) r.bandwidth = it->second.bandwidth;
    if (it->second.flops > 0) r.flops = it->second.flops;
    return r;
}

KernelTime kernel_time(const GpuSpec& g, KernelClass c, const std::string& dtype, u64 flops, u64 bytes, u64 steps) {
    return kernel_time(class_rates(g, c, dtype), c, flops, bytes, steps);
}

KernelTime kernel_time(const ClassRates& rates, KernelClass c, u64 flops, u64 bytes, u64 steps) {
    KernelTime k;
    k.rates = rates;
    k.overhead_s = k.rates.overhead_s;
    k.memory_s = k.rates.bandwidth > 0 ? static_cast<double>(bytes) / k.rates.bandwidth : 0.0;
    k.compute_s = c != KernelClass::Stream && c != KernelClass::Launch && c != KernelClass::AllReduce && k.rates.flops > 0
                      ? static_cast<double>(flops) / k.rates.flops
                      : 0.0;
    if (c == KernelClass::AllReduce) k.overhead_s += static_cast<double>(steps) * k.rates.step_s;
    k.seconds = k.overhead_s + std::max(k.memory_s, k.compute_s);
    if (c == KernelClass::AllReduce && k.rates.ll_bandwidth > 0) {
        const double ll_memory = static_cast<double>(bytes) / k.rates.ll_bandwidth;
        const double ll_overhead = k.rates.ll_overhead_s + static_cast<double>(steps) * k.rates.ll_step_s;
        if (ll_overhead + ll_memory < k.seconds) {  // the low-latency protocol wins
            k.overhead_s = ll_overhead;
            k.memory_s = ll_memory;
            k.seconds = k.overhead_s + k.memory_s;
        }
    }
    k.bound = k.overhead_s > std::max(k.memory_s, k.compute_s) ? "overhead" : k.compute_s > k.memory_s ? "compute" : "memory";
    return k;
}

TimeEstimate estimate_time(const Plan& plan, const Point& p, const Topology& topo) {
    // Only the step graphs are read: nothing is formatted for these estimates.
    const Estimate prefill = plan.estimate(Point{Mode::Prefill, p.batch, p.context}, Detail::Steps);
    TimeEstimate t = estimate_time(prefill, plan.estimate(Point{Mode::Decode, p.batch, p.context}, Detail::Steps), topo);
    // The runtime family's scheduler: when each request's first token arrives.
    const RuntimePlan& rt = plan.runtime();
    StepCosts c;
    c.batch = prefill.batch_per_replica;
    c.prompt_tokens = p.context;
    c.batch_prefill_s = t.prefill.seconds;
    c.smallest_step_s = [&] {
        return estimate_time(plan.estimate(Point{Mode::Prefill, 1, 1}, Detail::Steps),
                             plan.estimate(Point{Mode::Decode, 1, p.context}, Detail::Steps), topo)
            .decode.seconds;
    };
    t.first_token = rt.first_tokens(c);
    t.ttft_meaning = rt.ttft_meaning(prefill.batch_per_replica, p.context);
    t.tpot_meaning = rt.tpot_meaning(prefill.batch_per_replica, p.context);
    return t;
}

TimeEstimate estimate_time(const Estimate& prefill, const Estimate& decode, const Topology& topo) {
    if (prefill.workload.mode != Mode::Prefill || decode.workload.mode != Mode::Decode)
        throw InternalError("estimate_time needs a prefill and a decode estimate");
    TimeEstimate t;
    const Rates r = rates_for(prefill);
    if (r.bw <= 0 || r.act_rate <= 0)
        throw InputError(SourcePos{prefill.gpu().file, 0, 0}, "hbm_bandwidth_bytes_per_s",
                         "needs a bandwidth and a matrix rate for the time model");
    t.bandwidth_bytes_per_s = r.bw;
    t.matmul_flops_per_s = r.act_rate;
    t.peak_matmul_flops_per_s = r.peak_act;
    t.launch_overhead_s = r.launch;
    t.rate_dtype = r.act_name;
    t.calibrated = prefill.gpu().calibrated;
    t.ridge_flops_per_byte = r.act_rate / r.bw;
    // A weight matmul over T tokens performs 2·T FLOPs per weight element read: compute-bound
    // once 2·T / bytes-per-element reaches the ridge point.
    const DType& wd = *prefill.workload.weight_dtype;
    const double bytes_per_weight = static_cast<double>(wd.bits) / 8.0;
    t.crossover_tokens = ceil_to_u64_saturating(t.ridge_flops_per_byte * bytes_per_weight / 2.0);
    t.topology = topo.spec().name;
    t.prefill = step_time(prefill, topo, r);
    t.decode = step_time(decode, topo, r);
    t.ttft_s = t.prefill.seconds;
    t.tpot_s = t.decode.seconds;
    const double batch = static_cast<double>(decode.batch_per_replica * decode.replicas);
    t.tokens_per_s = t.tpot_s > 0 ? batch / t.tpot_s : 0;
    return t;
}

}  // namespace memtax
