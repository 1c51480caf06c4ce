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
    // A full mesh (AMD Infinity Fabric): each GPU has mesh_links direct links to its peers, and
    // bandwidth_bytes_per_s is all of them together; a group of n GPUs of a node reaches
    // min(n − 1, mesh_links) of its links, one peer one link. 0 = switched: any peer at full bandwidth.
    u64 mesh_links = 0;
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
