// docs/accuracy.md is generated: every "<!-- BEGIN memtax validate ... -->" block must hold what
// that command prints today (scripts/gen-accuracy.sh regenerates them).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.hpp"

namespace {

std::vector<std::string> split(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

}  // namespace

TEST(AccuracyDoc, EveryGeneratedSectionIsCurrent) {
    const std::filesystem::path root(MEMTAX_SOURCE_DIR);
    std::ifstream in(root / "docs" / "accuracy.md");
    ASSERT_TRUE(in) << "docs/accuracy.md missing";
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string doc = buf.str();
    const std::string begin = "<!-- BEGIN memtax ", end = "<!-- END -->";
    const auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(root);  // the commands name files relative to the repository
    size_t blocks = 0;
    for (size_t at = doc.find(begin); at != std::string::npos; at = doc.find(begin, at + 1)) {
        const size_t line_end = doc.find(" -->\n", at);
        ASSERT_NE(line_end, std::string::npos);
        const std::string command = doc.substr(at + begin.size(), line_end - at - begin.size());
        const size_t body = line_end + 5, stop = doc.find(end, body);
        ASSERT_NE(stop, std::string::npos) << command;
        std::ostringstream out, err;
        const int code = memtax::run_cli(split(command), out, err);
        EXPECT_TRUE(code == 0 || code == 1) << command << ": " << err.str();
        EXPECT_EQ(doc.substr(body, stop - body), "\n" + out.str() + "\n") << command << ": regenerate with scripts/gen-accuracy.sh";
        ++blocks;
    }
    std::filesystem::current_path(cwd);
    EXPECT_GE(blocks, 5u);
}
