#pragma once
// A cluster: nodes of GPUs, the fabric inside a node (NVSwitch, NVLink, PCIe) and between
// nodes (InfiniBand, Ethernet), each with a per-GPU, per-direction bandwidth and a latency.
#include <map>
#include <string>

#include "core/bytes.hpp"

namespace memtax {

struct Link {
    std::string fabric;                // nvswitch | nvlink | pcie | infiniband | ethernet
    double bandwidth_bytes_per_s = 0;  // per GPU, per direction
    double latency_s = 0;              // one hop, end to end
};

struct ClusterSpec {
    std::string name, description, gpu;  // gpu: a GPU profile name
    u64 nodes = 1;
    u64 gpus_per_node = 1;
    Link intra_node;
    Link inter_node;  // unused when nodes == 1
    std::map<std::string, std::string> sources;
    std::string file;
    u64 gpus() const { return nodes * gpus_per_node; }
};

}  // namespace memtax
