// memtax cluster profile (YAML) -> ClusterSpec.
#include <fmt/format.h>

#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

Link read_link(YamlMap& parent, const std::string& key, const std::vector<std::string>& fabrics) {
    YamlMap m = parent.required_map(key);
    m.finish({"fabric", "bandwidth_bytes_per_s", "latency_s", "mesh_links"});
    Link l;
    l.fabric = m.required_choice("fabric", fabrics);
    l.mesh_links = m.optional_u64("mesh_links").value_or(0);
    if (l.mesh_links > 71) m.fail("mesh_links", fmt::format("{} direct links per GPU; valid: 1 to 71", l.mesh_links));
    l.bandwidth_bytes_per_s = m.required_rate("bandwidth_bytes_per_s");
    l.latency_s = m.required_rate("latency_s");
    if (l.latency_s > 1e-2) m.fail("latency_s", fmt::format("{} s per hop is implausible; valid: up to 1e-2", l.latency_s));
    return l;
}

}  // namespace

ClusterSpec load_cluster_yaml(const std::string& text, const std::string& file) {
    YAML::Node root = parse_yaml(text, file);
    YamlMap map(root, file, "");
    map.finish({"name", "description", "gpu", "nodes", "gpus_per_node", "intra_node", "inter_node", "sources"});
    ClusterSpec c;
    c.file = file;
    c.name = map.required_string("name");
    c.description = map.required_string("description");
    c.gpu = map.required_string("gpu");
    c.nodes = map.required_u64("nodes");
    c.gpus_per_node = map.required_u64("gpus_per_node");
    if (c.nodes == 0 || c.nodes > 100000) map.fail("nodes", fmt::format("{}; valid: 1 to 100000", c.nodes));
    if (c.gpus_per_node == 0 || c.gpus_per_node > 72) map.fail("gpus_per_node", fmt::format("{}; valid: 1 to 72", c.gpus_per_node));
    c.intra_node = read_link(map, "intra_node", {"nvswitch", "nvlink", "pcie", "infinity-fabric"});
    if (c.nodes > 1)
        c.inter_node = read_link(map, "inter_node", {"infiniband", "ethernet"});
    else if (map.has("inter_node"))
        c.inter_node = read_link(map, "inter_node", {"infiniband", "ethernet"});
    YamlMap src = map.required_map("sources");
    for (const auto& k : src.keys()) c.sources[k] = src.required_string(k);
    for (const char* need : {"intra_node", "inter_node"})
        if (map.has(need) && !c.sources.count(need))
            map.fail(need, fmt::format("has no citation: add sources.{} (datasheet, spec or measurement)", need));
    return c;
}

}  // namespace memtax
