#include "topology/topology.hpp"

#include <fmt/format.h>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/dijkstra_shortest_paths.hpp>

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace memtax {
namespace {

struct EdgeProps {
    double bandwidth = 0;
    double latency = 0;
};
using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, boost::no_property, EdgeProps>;

}  // namespace

Topology::Topology(const ClusterSpec& c) : spec_(c), gpus_(checked_mul(c.nodes, c.gpus_per_node, "cluster GPUs")) {
    if (gpus_ > 1'000'000) throw InputError(SourcePos{c.file, 0, 0}, "nodes", "more than 1,000,000 GPUs");
    // Every GPU of a node sits alike on its node's switch (or mesh) and the fabric, so a path is
    // one of two: inside a node or across two. Both are found once here, not per query: the time
    // model asks for paths per collective of every step it prices.
    if (c.gpus_per_node >= 2) same_node_ = shortest(0, 1);
    if (c.nodes >= 2) cross_node_ = shortest(0, c.gpus_per_node);
}

PathCost Topology::path(u64 a, u64 b) const {
    if (a >= gpus_ || b >= gpus_) throw InternalError(fmt::format("topology {}: GPU {} or {} beyond its {}", spec_.name, a, b, gpus_));
    if (a == b) return PathCost{std::numeric_limits<double>::infinity(), 0, 0};
    return a / spec_.gpus_per_node == b / spec_.gpus_per_node ? same_node_ : cross_node_;
}

PathCost Topology::shortest(u64 a, u64 b) const {
    // Only the two nodes involved matter: build that subgraph (2 switches, their GPUs, the
    // fabric) so a path query on a large cluster stays small.
    const u64 per = spec_.gpus_per_node, na = a / per, nb = b / per;
    std::vector<u64> nodes = {na};
    if (nb != na) nodes.push_back(nb);
    Graph g;
    auto gpu_vertex = [&](u64 node_slot, u64 local) { return node_slot * (per + 1) + local; };
    auto switch_vertex = [&](u64 node_slot) { return node_slot * (per + 1) + per; };
    const u64 fabric = nodes.size() * (per + 1);
    for (u64 i = 0; i <= fabric; ++i) boost::add_vertex(g);
    for (u64 slot = 0; slot < nodes.size(); ++slot)
        for (u64 l = 0; l < per; ++l) {
            boost::add_edge(gpu_vertex(slot, l), switch_vertex(slot),
                            EdgeProps{spec_.intra_node.bandwidth_bytes_per_s, spec_.intra_node.latency_s / 2}, g);
            if (spec_.nodes > 1)
                boost::add_edge(gpu_vertex(slot, l), fabric,
                                EdgeProps{spec_.inter_node.bandwidth_bytes_per_s, spec_.inter_node.latency_s / 2}, g);
        }
    const u64 src = gpu_vertex(0, a % per), dst = gpu_vertex(nodes.size() - 1, b % per);
    std::vector<Graph::vertex_descriptor> pred(boost::num_vertices(g));
    std::vector<double> dist(boost::num_vertices(g));
    boost::dijkstra_shortest_paths(g, src,
                                   boost::weight_map(boost::get(&EdgeProps::latency, g))
                                       .predecessor_map(boost::make_iterator_property_map(pred.begin(), boost::get(boost::vertex_index, g)))
                                       .distance_map(boost::make_iterator_property_map(dist.begin(), boost::get(boost::vertex_index, g))));
    PathCost r{std::numeric_limits<double>::infinity(), dist[dst], 0};
    for (auto v = dst; v != src; v = pred[v]) {
        if (pred[v] == v) throw InternalError(fmt::format("topology {}: no path from GPU {} to {}", spec_.name, a, b));
        auto [e, ok] = boost::edge(pred[v], v, g);
        r.bandwidth_bytes_per_s = std::min(r.bandwidth_bytes_per_s, g[e].bandwidth);
        ++r.hops;
    }
    // In a mesh, two GPUs of one node share one direct link of the GPU's mesh_links.
    if (const u64 L = spec_.intra_node.mesh_links; L > 0 && na == nb)
        r.bandwidth_bytes_per_s = std::min(r.bandwidth_bytes_per_s, spec_.intra_node.bandwidth_bytes_per_s / static_cast<double>(L));
    return r;
}

PathCost Topology::ring(const std::vector<u64>& ranks) const {
    PathCost r{std::numeric_limits<double>::infinity(), 0, 0};
    if (ranks.size() < 2) return r;
    for (size_t i = 0; i < ranks.size(); ++i) {
        PathCost p = path(ranks[i], ranks[(i + 1) % ranks.size()]);
        r.bandwidth_bytes_per_s = std::min(r.bandwidth_bytes_per_s, p.bandwidth_bytes_per_s);
        r.latency_s = std::max(r.latency_s, p.latency_s);
        r.hops = std::max(r.hops, p.hops);
    }
    // Inside one node of a mesh, a collective runs over every direct link among the group (RCCL
    // builds one ring per link): min(n − 1, links) links of the GPU's, not the one a path takes.
    const u64 L = spec_.intra_node.mesh_links, per = spec_.gpus_per_node;
    const bool one_node = std::all_of(ranks.begin(), ranks.end(), [&](u64 x) { return x / per == ranks.front() / per; });
    if (L > 0 && one_node)
        r.bandwidth_bytes_per_s =
            spec_.intra_node.bandwidth_bytes_per_s * static_cast<double>(std::min<u64>(ranks.size() - 1, L)) / static_cast<double>(L);
    return r;
}

ClusterSpec single_node_cluster(const GpuSpec& gpu, u64 gpus) {
    ClusterSpec c;
    c.name = fmt::format("{}x {} (from the GPU profile)", gpus, gpu.name);
    c.description = "one node joined by the GPU profile's interconnect";
    c.gpu = gpu.name;
    c.nodes = 1;
    c.gpus_per_node = gpus;
    if (gpus > 1 && gpu.interconnect_bandwidth.value <= 0)
        throw InputError(SourcePos{gpu.file, 0, 0}, "deployment.cluster",
                         fmt::format("{} states no interconnect bandwidth; name a cluster profile for {} GPUs", gpu.name, gpus));
    // Vendors state NVLink bandwidth for both directions together.
    c.intra_node = Link{gpu.interconnect, gpu.interconnect_bandwidth.value / 2, 0.0, gpu.interconnect_mesh_links};
    c.sources["intra_node"] =
        "half the GPU profile's interconnect_bandwidth_bytes_per_s (stated for both directions); latency not known without a cluster "
        "profile";
    return c;
}

double all_reduce_seconds(u64 bytes, u64 n, const PathCost& ring) {
    if (n < 2 || bytes == 0) return 0;
    const double steps = 2.0 * static_cast<double>(n - 1);
    return steps / static_cast<double>(n) * static_cast<double>(bytes) / ring.bandwidth_bytes_per_s + steps * ring.latency_s;
}

double all_gather_seconds(u64 total_bytes, u64 n, const PathCost& ring) {
    if (n < 2 || total_bytes == 0) return 0;
    const double steps = static_cast<double>(n - 1);
    return steps / static_cast<double>(n) * static_cast<double>(total_bytes) / ring.bandwidth_bytes_per_s + steps * ring.latency_s;
}

double all_to_all_seconds(u64 bytes_per_rank, u64 n, const PathCost& ring) {
    // Each rank keeps 1/n of its data and sends the rest, one peer after another.
    return all_gather_seconds(bytes_per_rank, n, ring);
}

double p2p_seconds(u64 bytes, const PathCost& path) {
    if (bytes == 0) return 0;
    return static_cast<double>(bytes) / path.bandwidth_bytes_per_s + path.latency_s;
}

}  // namespace memtax
