// memtax models | gpus | runtimes | clusters: the built-in profiles. Four listings of one shape, so one
// file: each is a Command of its own.
#include "cli/common.hpp"
#include "spec/loaders.hpp"

namespace memtax::cli {
namespace {

class Listing final : public Command {
public:
    explicit Listing(std::string what) : what_(std::move(what)) {}
    CLI::App* add(CLI::App& app) override {
        auto* list = app.add_subcommand(what_, "list the built-in " +
                                                   std::string(what_ == "gpus"       ? "GPU"
                                                               : what_ == "models"   ? "model"
                                                               : what_ == "clusters" ? "cluster"
                                                                                     : "runtime") +
                                                   " profiles");
        add_format_option(list, format_);
        return list;
    }
    int run(std::ostream& out, std::ostream&) override {
        const Printer& print = printer(format_);
        if (what_ == "models")
            out << print.models(catalog_models(), tool_info());
        else if (what_ == "gpus")
            out << print.gpus(catalog_gpus(), tool_info());
        else if (what_ == "clusters")
            out << print.clusters(catalog_clusters(), tool_info());
        else
            out << print.runtimes(catalog_runtimes(), tool_info());
        return 0;
    }

private:
    std::string what_, format_ = "table";
};

}  // namespace

std::unique_ptr<Command> make_listing(const std::string& what) { return std::make_unique<Listing>(what); }

}  // namespace memtax::cli
