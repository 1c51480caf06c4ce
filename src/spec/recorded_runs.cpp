#include "spec/recorded_runs.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <set>

#include "spec/yaml_reader.hpp"

namespace memtax {

std::vector<RecordedRun> load_recorded_runs(const std::string& path) {
    const YAML::Node root = parse_yaml(read_input_file(path), path);
    YamlMap top(root, path, "");
    top.finish({"runs"});
    const YAML::Node runs = top.node("runs");
    if (!runs.IsSequence() || runs.size() == 0)
        throw InputError(top.pos("runs"), "runs", "expected a list of runs (file, lease, sample, why)");
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::vector<RecordedRun> out;
    std::set<std::string> seen;
    for (size_t i = 0; i < runs.size(); ++i) {
        YamlMap m(runs[i], path, fmt::format("runs[{}]", i));
        m.finish({"file", "lease", "sample", "why"});
        RecordedRun r;
        const std::string name = m.required_string("file");
        if (!seen.insert(name).second) m.fail("file", fmt::format("\"{}\" is listed twice", name));
        r.file = (dir / name).string();
        r.lease = m.required_string("lease");
        r.in_sample = m.required_choice("sample", {"in", "out"}) == "in";
        r.why = m.required_string("why");
        r.line = m.pos().line;
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace memtax
