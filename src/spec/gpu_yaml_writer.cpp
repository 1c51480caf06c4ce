#include "spec/gpu_yaml_writer.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace memtax {
namespace {
std::string g6(double v) { return fmt::format("{:.6g}", v); }
}  // namespace

std::string write_calibrated_gpu_yaml(const CalibratedGpu& c) {
    YAML::Node root = YAML::Load(c.base_text);
    root["name"] = c.name;
    root["display_name"] = c.display_name;
    // The base profile keeps its aliases: a calibrated copy is chosen by its own name only.
    root.remove("aliases");
    YAML::Node eff;
    eff["bandwidth"] = g6(c.bandwidth_efficiency);
    eff["matmul"] = g6(c.matmul_efficiency);
    if (c.launch_overhead_s > 0) eff["launch_overhead_s"] = g6(c.launch_overhead_s);
    eff["calibrated"] = true;
    root["efficiency"] = eff;
    YAML::Node cal;
    cal["measurements"] = c.measurements;
    for (const auto& [k, v] : c.provenance) cal[k] = v;
    cal["tool"] = c.tool;
    YAML::Node kernels;
    for (const auto& [key, r] : c.kernels) {
        YAML::Node k;
        if (r.overhead_s > 0) k["overhead_s"] = g6(r.overhead_s);
        if (r.bandwidth > 0) k["bandwidth_bytes_per_s"] = g6(r.bandwidth);
        if (r.flops > 0) k["flops_per_s"] = g6(r.flops);
        if (r.queued_s > 0) k["queued_s"] = g6(r.queued_s);
        if (r.ll_overhead_s > 0) k["ll_overhead_s"] = g6(r.ll_overhead_s);
        if (r.ll_bandwidth > 0) k["ll_bandwidth_bytes_per_s"] = g6(r.ll_bandwidth);
        if (r.step_s > 0) k["step_s"] = g6(r.step_s);
        if (r.ll_step_s > 0) k["ll_step_s"] = g6(r.ll_step_s);
        k["cases"] = r.cases;
        if (r.rms_error > 0) k["rms_error"] = g6(r.rms_error);
        kernels[key] = k;
    }
    cal["kernels"] = kernels;
    root["calibration"] = cal;
    root["sources"]["efficiency"] = c.efficiency_source;
    root["sources"]["calibration"] = c.calibration_source;
    YAML::Emitter out;
    out << root;
    return c.header + out.c_str() + "\n";
}

}  // namespace memtax
