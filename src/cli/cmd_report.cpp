// memtax report [SCENARIO...] [--out DIR]: each scenario's capacity report as HTML (inline SVG),
// Markdown (tables and Mermaid), JSON, CSV and JUnit XML, plus an index; every file written
// atomically, the same inputs giving the same bytes. Without files: scenarios/*.yaml into reports/.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "report/capacity_report.hpp"
#include "report/train_plan_report.hpp"

namespace memtax::cli {

std::vector<std::string> scenario_files(const std::vector<std::string>& given) {
    if (!given.empty()) return given;
    namespace fs = std::filesystem;
    std::vector<std::string> out;
    std::error_code ec;
    if (fs::is_directory("scenarios", ec))
        for (const auto& e : fs::directory_iterator("scenarios", ec))
            if (e.path().extension() == ".yaml") out.push_back(e.path().generic_string());
    std::sort(out.begin(), out.end());
    if (out.empty()) throw InputError(SourcePos{}, "scenarios", "no scenario files given and no scenarios/*.yaml here; name the files");
    return out;
}

namespace {

class ReportCommand final : public Command {
public:
    bool reads_scenarios() const override { return true; }
    CLI::App* add(CLI::App& app) override {
        auto* r =
            app.add_subcommand("report", "capacity reports (HTML, Markdown, JSON, CSV, JUnit) for scenarios (default: scenarios/*.yaml)");
        r->add_option("scenarios", files_, "scenario files (default: scenarios/*.yaml)");
        r->add_option("--out", out_dir_, "the folder to write into")->capture_default_str();
        return r;
    }
    int run(std::ostream& out, std::ostream& err) override {
        const std::vector<std::string> files = scenario_files(files_);
        std::vector<ScenarioSpec> scenarios;
        for (const auto& f : files) scenarios.push_back(load_scenario_file(f));  // every file checked before any is written
        for (size_t i = 0; i < scenarios.size(); ++i)
            for (size_t k = 0; k < i; ++k)
                if (scenarios[i].name == scenarios[k].name)
                    throw InputError(SourcePos{scenarios[i].file, 0, 0}, "name",
                                     fmt::format("\"{}\" is also the name of {}", scenarios[i].name, scenarios[k].file));
        // A scenario that cannot be planned is named and skipped; the others are written, and the
        // command then exits 2.
        // Each scenario's files and its line in the index, in the order of the files.
        struct Written {
            CapacityFiles files;
            IndexEntry entry;
        };
        std::vector<Written> reports;
        std::vector<std::string> failed;
        for (const auto& s : scenarios) {
            Progress bar(err, "report " + s.name);
            try {
                if (s.training) {
                    const TrainPlanReport r = plan_training(s, bar.callback());
                    reports.push_back({render_training_report(r, tool_info().version), training_index_entry(r)});
                } else {
                    const CapacityReport r = build_capacity_report(s, bar.callback());
                    reports.push_back({render_capacity_report(r, tool_info().version), capacity_index_entry(r)});
                }
            } catch (const std::exception& e) {
                failed.push_back(fmt::format("{} ({}): not reported: {}", s.name, s.file, e.what()));
            }
            bar.done();
        }
        std::error_code ec;
        std::filesystem::create_directories(out_dir_, ec);
        if (!std::filesystem::is_directory(out_dir_))
            throw InputError(SourcePos{}, "--out", fmt::format("\"{}\" is not a folder that can be created", out_dir_));
        std::vector<IndexEntry> index;
        for (const auto& [f, entry] : reports) {
            const std::string base = (std::filesystem::path(out_dir_) / entry.name).string();
            for (const auto& [ext, text] : {std::pair<const char*, const std::string*>{".html", &f.html},
                                            {".md", &f.markdown},
                                            {".json", &f.json},
                                            {".csv", &f.csv},
                                            {".junit.xml", &f.junit}})
                write_profile(base + ext, *text, files);
            out << fmt::format("{}: {} ({}.html, .md, .json, .csv, .junit.xml)\n", entry.name,
                               !entry.feasible      ? "nothing satisfies it"
                               : entry.gates_passed ? "gates pass"
                                                    : "gates FAIL",
                               base);
            index.push_back(entry);
        }
        write_profile((std::filesystem::path(out_dir_) / "index.md").string(), capacity_index_markdown(index), files);
        write_profile((std::filesystem::path(out_dir_) / "index.html").string(), capacity_index_html(index), files);
        out << fmt::format("wrote {} report{} and the index to {}\n", reports.size(), reports.size() == 1 ? "" : "s", out_dir_);
        for (const auto& f : failed) err << "memtax: error: " << f << "\n";
        return failed.empty() ? 0 : 2;
    }

private:
    std::vector<std::string> files_;
    std::string out_dir_ = "reports";
};

}  // namespace

std::unique_ptr<Command> make_report() { return std::make_unique<ReportCommand>(); }

}  // namespace memtax::cli
