// memtax GPU profile (YAML) -> GpuSpec. Every number must cite a source under `sources:`.
#include <fmt/format.h>

#include "core/number.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

const std::vector<std::string> kGpuKeys = {"name",
                                           "display_name",
                                           "aliases",
                                           "vendor",
                                           "source",
                                           "memory_bytes",
                                           "usable_memory_bytes",
                                           "hbm_bandwidth_bytes_per_s",
                                           "peak_flops_per_s",
                                           "l2_bytes",
                                           "sm_count",
                                           "compute_capability",
                                           "interconnect",
                                           "interconnect_bandwidth_bytes_per_s",
                                           "interconnect_mesh_links",
                                           "device_names",
                                           "efficiency",
                                           "calibration",
                                           "sources"};
const std::vector<std::string> kNumericKeys = {
    "memory_bytes", "usable_memory_bytes", "hbm_bandwidth_bytes_per_s",          "peak_flops_per_s",        "l2_bytes",
    "sm_count",     "compute_capability",  "interconnect_bandwidth_bytes_per_s", "interconnect_mesh_links", "efficiency",
    "calibration"};
const std::vector<std::string> kKernelClasses = {
    "stream",           "gemm_bf16",    "gemm_fp16",           "gemm_fp8_e4m3", "attention_prefill",
    "attention_decode", "memtax_flash", "memtax_paged_decode", "launch",        "allreduce"};

}  // namespace

GpuSpec load_gpu_yaml(const std::string& text, const std::string& file) {
    YAML::Node root = parse_yaml(text, file);
    YamlMap map(root, file, "");
    map.finish(kGpuKeys);
    GpuSpec g;
    g.file = file;
    g.name = map.required_string("name");
    g.display_name = map.optional_string("display_name").value_or(g.name);
    g.aliases = map.optional_strings("aliases");
    g.vendor = map.required_choice("vendor", {"nvidia", "amd"});
    g.source = map.required_string("source");
    g.memory_bytes = map.required_u64("memory_bytes");
    if (g.memory_bytes == 0) map.fail("memory_bytes", "must be positive");
    g.usable_memory_bytes = map.optional_u64("usable_memory_bytes").value_or(g.memory_bytes);
    if (g.usable_memory_bytes == 0 || g.usable_memory_bytes > g.memory_bytes)
        map.fail("usable_memory_bytes",
                 fmt::format("{} must be positive and at most memory_bytes = {}", g.usable_memory_bytes, g.memory_bytes));
    g.hbm_bandwidth = {map.required_rate("hbm_bandwidth_bytes_per_s")};
    // Optional: a GPU whose matrix rates have no source gives none (memory estimates need none;
    // --time then says what is missing).
    if (auto flops = map.optional_map("peak_flops_per_s")) {
        std::vector<std::string> dtypes = {"fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int8", "int4"};
        flops->finish(dtypes);
        for (const auto& d : dtypes)
            if (flops->has(d)) g.peak_flops[d] = {flops->required_rate(d)};
        if (!g.peak_flops.count("bf16") && !g.peak_flops.count("fp16"))
            map.fail("peak_flops_per_s", "needs at least bf16 or fp16 (dense, without 2:4 sparsity)");
    }
    g.l2_bytes = map.optional_u64("l2_bytes").value_or(0);
    g.sm_count = map.optional_u64("sm_count").value_or(0);
    if (map.has("sm_count") && g.sm_count == 0) map.fail("sm_count", "must be positive (omit it when unknown)");
    if (map.has("compute_capability")) {
        // NVIDIA's "major.minor" (9.0 Hopper, 10.0 Blackwell): runtimes pick kernels by it.
        const std::string cc = map.required_string("compute_capability");
        const size_t dot = cc.find('.');
        u64 major = 0, minor = 0;
        if (g.vendor != "nvidia") map.fail("compute_capability", "is NVIDIA's; omit it for vendor " + g.vendor);
        if (dot == std::string::npos || parse_exact_integer(cc.substr(0, dot), major) != NumberParse::Ok ||
            parse_exact_integer(cc.substr(dot + 1), minor) != NumberParse::Ok || major == 0 || major > 99 || minor > 9)
            map.fail("compute_capability", fmt::format("\"{}\" is not a compute capability; expected MAJOR.MINOR, e.g. 9.0", cc));
        g.compute_capability = static_cast<unsigned>(major * 10 + minor);
    }
    g.interconnect = map.required_string("interconnect");
    if (map.has("interconnect_bandwidth_bytes_per_s")) g.interconnect_bandwidth = {map.required_rate("interconnect_bandwidth_bytes_per_s")};
    g.interconnect_mesh_links = map.optional_u64("interconnect_mesh_links").value_or(0);
    if (g.interconnect_mesh_links > 71)
        map.fail("interconnect_mesh_links",
                 fmt::format("{} direct links per GPU; valid: 1 to 71 (a mesh of up to 72 GPUs)", g.interconnect_mesh_links));
    if (g.interconnect_mesh_links && g.interconnect_bandwidth.value <= 0)
        map.fail("interconnect_mesh_links", "needs interconnect_bandwidth_bytes_per_s, the links' bandwidth together");
    YAML::Node names = map.node("device_names");
    if (names.IsDefined() && !names.IsNull()) {
        if (!names.IsSequence()) map.fail("device_names", "expected a list of device names as CUDA reports them");
        for (size_t i = 0; i < names.size(); ++i) {
            if (!names[i].IsScalar()) map.fail("device_names", "expected a list of strings");
            g.device_names.push_back(names[i].Scalar());
        }
    }

    if (auto eff = map.optional_map("efficiency")) {
        eff->finish({"bandwidth", "matmul", "launch_overhead_s", "calibrated"});
        auto fraction = [&](const char* key) {
            double v = eff->required_rate(key);
            if (v > 1.0) eff->fail(key, fmt::format("{} is a fraction of the peak; valid: (0, 1]", v));
            return v;
        };
        g.bandwidth_efficiency = fraction("bandwidth");
        g.matmul_efficiency = fraction("matmul");
        g.launch_overhead_s = eff->has("launch_overhead_s") ? eff->required_rate("launch_overhead_s") : 0.0;
        if (g.launch_overhead_s > 1e-3)
            eff->fail("launch_overhead_s", fmt::format("{} s per kernel is implausible; valid: up to 1e-3", g.launch_overhead_s));
        g.calibrated = eff->optional_bool("calibrated").value_or(false);
    } else {
        g.bandwidth_efficiency = kDefaultBandwidthEfficiency;
        g.matmul_efficiency = kDefaultMatmulEfficiency;
        g.launch_overhead_s = kDefaultLaunchOverheadS;
        g.warnings.push_back(
            fmt::format("{}: GPU profile {} has no efficiency: block; times assume bandwidth {:.2f} and matmul {:.2f} of peak and {:g} µs "
                        "per kernel launch (memtax's H100 SXM measurement); `memtax probe` + `memtax calibrate` measure this GPU",
                        file, g.name, kDefaultBandwidthEfficiency, kDefaultMatmulEfficiency, kDefaultLaunchOverheadS * 1e6));
    }

    // calibration: written by `memtax calibrate` (hardware/calibrated/): provenance strings and
    // the fitted kernel classes.
    if (auto cal = map.optional_map("calibration")) {
        const std::vector<std::string> prov = {"measurements", "gpu", "driver", "date", "command", "tool"};
        std::vector<std::string> keys = prov;
        keys.push_back("kernels");
        cal->finish(keys);
        for (const auto& k : prov)
            if (cal->has(k)) g.calibration[k] = cal->required_string(k);
        if (!cal->has("measurements")) cal->fail("measurements", "required: the measurement file the fit used");
        YamlMap kernels = cal->required_map("kernels");
        kernels.finish(kKernelClasses);
        for (const auto& k : kKernelClasses) {
            if (!kernels.has(k)) continue;
            YamlMap c = kernels.required_map(k);
            c.finish({"overhead_s", "bandwidth_bytes_per_s", "flops_per_s", "queued_s", "ll_overhead_s", "ll_bandwidth_bytes_per_s",
                      "step_s", "ll_step_s", "cases", "rms_error"});
            KernelRates r;
            r.ll_overhead_s = c.has("ll_overhead_s") ? c.required_rate("ll_overhead_s") : 0.0;
            r.ll_bandwidth = c.has("ll_bandwidth_bytes_per_s") ? c.required_rate("ll_bandwidth_bytes_per_s") : 0.0;
            r.step_s = c.has("step_s") ? c.required_rate("step_s") : 0.0;
            r.ll_step_s = c.has("ll_step_s") ? c.required_rate("ll_step_s") : 0.0;
            r.overhead_s = c.has("overhead_s") ? c.required_rate("overhead_s") : 0.0;
            if (r.overhead_s > 1e-3) c.fail("overhead_s", fmt::format("{} s per kernel is implausible; valid: up to 1e-3", r.overhead_s));
            r.bandwidth = c.has("bandwidth_bytes_per_s") ? c.required_rate("bandwidth_bytes_per_s") : 0.0;
            r.flops = c.has("flops_per_s") ? c.required_rate("flops_per_s") : 0.0;
            r.queued_s = c.has("queued_s") ? c.required_rate("queued_s") : 0.0;
            if (k == "launch" ? r.overhead_s == 0 : r.bandwidth == 0 && r.flops == 0)
                c.fail(k, k == "launch" ? "needs overhead_s" : "needs bandwidth_bytes_per_s or flops_per_s");
            r.cases = c.optional_u64("cases").value_or(0);
            r.rms_error = c.has("rms_error") ? c.required_rate("rms_error") : 0.0;
            g.kernel_rates[k] = r;
        }
    }

    YamlMap sources = map.required_map("sources");
    sources.finish(kNumericKeys);
    for (const auto& key : kNumericKeys) {
        if (!map.has(key)) continue;
        if (!sources.has(key)) map.fail(key, fmt::format("has no citation: add sources.{} (datasheet, paper or measurement)", key));
        g.sources[key] = sources.required_string(key);
    }
    return g;
}

}  // namespace memtax
