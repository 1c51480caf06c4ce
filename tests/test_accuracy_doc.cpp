// docs/accuracy.md is generated: every "<!-- BEGIN memtax validate ... -->" block must hold what
// that command prints today (scripts/gen-accuracy.sh regenerates them).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "cli/commands.hpp"
#include "spec/measurements.hpp"
#include "spec/recorded_runs.hpp"

namespace {

std::vector<std::string> split(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

}  // namespace

// Every generated block of README.md and docs/*.md holds what its command prints today.
TEST(AccuracyDoc, EveryGeneratedSectionIsCurrent) {
    const std::filesystem::path root(MEMTAX_SOURCE_DIR);
    std::vector<std::filesystem::path> docs = {root / "README.md"};
    for (const auto& e : std::filesystem::directory_iterator(root / "docs"))
        if (e.path().extension() == ".md") docs.push_back(e.path());
    const auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(root);  // the commands name files relative to the repository
    size_t blocks = 0, accuracy_blocks = 0;
    for (const auto& path : docs) {
        std::ifstream in(path);
        ASSERT_TRUE(in) << path;
        std::stringstream buf;
        buf << in.rdbuf();
        const std::string doc = buf.str();
        const std::string begin = "<!-- BEGIN memtax ", end = "<!-- END -->";
        for (size_t at = doc.find(begin); at != std::string::npos; at = doc.find(begin, at + 1)) {
            const size_t line_end = doc.find(" -->\n", at);
            ASSERT_NE(line_end, std::string::npos);
            const std::string command = doc.substr(at + begin.size(), line_end - at - begin.size());
            const size_t body = line_end + 5, stop = doc.find(end, body);
            ASSERT_NE(stop, std::string::npos) << command;
            std::ostringstream out, err;
            const int code = memtax::run_cli(split(command), out, err);
            EXPECT_TRUE(code == 0 || code == 1) << command << ": " << err.str();
            EXPECT_EQ(doc.substr(body, stop - body), "\n" + out.str() + "\n")
                << path.filename() << ": " << command << ": regenerate with scripts/gen-accuracy.sh";
            ++blocks;
            accuracy_blocks += command.rfind("accuracy", 0) == 0;
        }
    }
    std::filesystem::current_path(cwd);
    EXPECT_GE(blocks, 5u);
    EXPECT_GE(accuracy_blocks, 2u);  // README.md and docs/accuracy.md
}

// Data hygiene: every measurement file in tests/data/measured/ is a run that `memtax accuracy`
// validates (listed in runs.yaml, with provenance: GPU, date, command, and the lease from
// 2026-12-07 on); every config there is named by a listed run; every file in
// tests/data/diagnostics/ is described in its README.
TEST(MeasuredData, EveryFileIsAValidatedRunOrItsConfig) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(MEMTAX_TEST_DATA) / "measured";
    const auto runs = memtax::load_recorded_runs((dir / "runs.yaml").string());
    std::set<std::string> listed;
    std::string listed_text;
    for (const auto& r : runs) {
        ASSERT_TRUE(fs::exists(r.file)) << r.file;
        listed.insert(fs::path(r.file).filename().string());
        std::ifstream in(r.file);
        std::stringstream b;
        b << in.rdbuf();
        listed_text += b.str();
        const auto f = memtax::load_measurements(r.file);
        for (const char* k : {"gpu", "date", "command"}) EXPECT_TRUE(f.provenance.count(k)) << r.file << ": provenance." << k;
        if (f.provenance.count("date") && f.provenance.at("date") >= "2026-12-07")
            EXPECT_TRUE(f.provenance.count("lease")) << r.file << ": provenance.lease";
    }
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name == "README.md" || name == "runs.yaml") continue;
        const bool config = name.size() > 12 && name.ends_with(".config.json");
        if (config)
            EXPECT_NE(listed_text.find("\"" + name + "\""), std::string::npos) << name << " is named by no listed run";
        else
            EXPECT_TRUE(listed.count(name)) << name << " is not in runs.yaml";
    }
    std::ifstream in(fs::path(MEMTAX_TEST_DATA) / "diagnostics" / "README.md");
    std::stringstream b;
    b << in.rdbuf();
    for (const auto& e : fs::directory_iterator(fs::path(MEMTAX_TEST_DATA) / "diagnostics")) {
        const std::string name = e.path().filename().string();
        if (name != "README.md") EXPECT_NE(b.str().find("`" + name + "`"), std::string::npos) << name;
    }
}

// No measured figure in prose: outside the generated blocks, README.md and docs/accuracy.md may
// state a percentage only as a bar (1, 5, 10, 15, 20 or 90%), and no "N of M" or "N within"
// count, so that every result a reader sees is one a test holds current.
TEST(AccuracyDoc, ProseQuotesNoMeasuredFigure) {
    const std::filesystem::path root(MEMTAX_SOURCE_DIR);
    const std::regex percent(R"(([0-9]+(\.[0-9]+)?)%)"), count(R"(\b[0-9][0-9,]* (of [0-9]|within ))");
    const std::set<std::string> bars = {"1", "5", "10", "15", "20", "90"};
    for (const char* name : {"README.md", "docs/accuracy.md"}) {
        std::ifstream in(root / name);
        ASSERT_TRUE(in) << name;
        bool generated = false;
        int n = 0;
        for (std::string line; std::getline(in, line);) {
            ++n;
            if (line.rfind("<!-- BEGIN memtax ", 0) == 0) generated = true;
            if (line == "<!-- END -->") generated = false;
            if (generated) continue;
            for (std::sregex_iterator it(line.begin(), line.end(), percent), e; it != e; ++it)
                EXPECT_TRUE(bars.count((*it)[1].str())) << name << ":" << n << ": a measured figure in prose: " << line;
            EXPECT_FALSE(std::regex_search(line, count)) << name << ":" << n << ": a measured count in prose: " << line;
        }
    }
}
