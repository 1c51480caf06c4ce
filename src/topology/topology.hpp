#pragma once
// A cluster as a Boost.Graph: GPUs, one switch per node (NVSwitch/PCIe), one fabric between
// nodes (a NIC per GPU, rail-optimised). Paths are found by latency (Dijkstra); a path's
// bandwidth is its narrowest link. Collective costs follow the ring formulas NCCL's tests
// use to define bus bandwidth (nccl-tests doc/PERFORMANCE.md): all-reduce moves
// 2(n-1)/n of the message over the ring's slowest link, all-gather and all-to-all (n-1)/n.
#include <vector>

#include "spec/cluster_spec.hpp"
#include "spec/gpu_spec.hpp"

namespace memtax {

struct PathCost {
    double bandwidth_bytes_per_s = 0;  // the narrowest link
    double latency_s = 0;              // summed over the links
    int hops = 0;
};

class Topology {
public:
    explicit Topology(const ClusterSpec& c);
    u64 gpus() const { return gpus_; }
    const ClusterSpec& spec() const { return spec_; }
    PathCost path(u64 from, u64 to) const;
    // A ring through `ranks` in order: its slowest hop's bandwidth, its largest latency.
    PathCost ring(const std::vector<u64>& ranks) const;

private:
    PathCost shortest(u64 from, u64 to) const;  // the fabric as a graph, Dijkstra on latency
    ClusterSpec spec_;
    u64 gpus_ = 0;
    PathCost same_node_, cross_node_;
};

// One node of `gpus` GPUs joined by the GPU profile's interconnect (half its stated both-ways
// bandwidth each way, latency unknown = 0): the default when no cluster is given. Throws
// InputError when several GPUs are needed and the profile states no interconnect.
ClusterSpec single_node_cluster(const GpuSpec& gpu, u64 gpus);

double all_reduce_seconds(u64 bytes, u64 ranks, const PathCost& ring);
double all_gather_seconds(u64 total_bytes, u64 ranks, const PathCost& ring);
double all_to_all_seconds(u64 bytes_per_rank, u64 ranks, const PathCost& ring);
double p2p_seconds(u64 bytes, const PathCost& path);

}  // namespace memtax
