#include "cli/commands.hpp"

#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <ostream>

#include "cli/common.hpp"

namespace memtax {
namespace {

// Engine errors name field paths (a scenario file's keys); on the command line they are flags.
// An error at a line of a file (a scenario, a profile) names that file's own key and is kept.
InputError as_flags(const InputError& e) {
    if (e.pos().line != 0) return e;
    static const std::pair<const char*, const char*> paths[] = {{"workload.allow_long_context", "--allow-long-context"},
                                                                {"workload.batch", "--batch"},
                                                                {"workload.context", "--context"},
                                                                {"workload.kv_dtype", "--kv-dtype"},
                                                                {"workload.softmax_dtype", "--softmax-dtype"},
                                                                {"workload.logits_dtype", "--logits-dtype"},
                                                                {"deployment.tp", "--tp"},
                                                                {"deployment.pp", "--pp"},
                                                                {"deployment.ep", "--ep"},
                                                                {"deployment.gpus", "--gpus"},
                                                                {"deployment.cluster", "--cluster"},
                                                                {"runtime", "--runtime"},
                                                                {"runtime_settings.max_num_seqs", "--max-num-seqs"},
                                                                {"runtime_settings.max_num_batched_tokens", "--max-num-batched-tokens"},
                                                                {"runtime_settings.block_size", "--block-size"},
                                                                {"runtime_settings.gpu_memory_utilization", "--gpu-memory-utilization"},
                                                                {"runtime_settings.max_model_len", "--max-model-len"},
                                                                {"runtime_settings.kv_cache_memory_bytes", "--kv-cache-memory"},
                                                                {"runtime_settings.enforce_eager", "--enforce-eager"},
                                                                {"runtime_settings.attention_backend", "--attention-backend"},
                                                                {"workload.weight_dtype", "--weight-dtype"},
                                                                {"workload.mode", "--mode"},
                                                                {"sweep.contexts", "--contexts"},
                                                                {"validate.gpu", "--gpu"},
                                                                {"calibrate.gpu", "--gpu"},
                                                                {"calibrate.measurements", "--measurements"},
                                                                {"model", "--model"},
                                                                {"gpu", "--gpu"},
                                                                {"cluster", "--cluster"},
                                                                {"output", "--output"},
                                                                {"format", "--format"},
                                                                {"compare.technique", "--technique"},
                                                                {"train.zero", "--zero"},
                                                                {"train.micro_batches", "--micro-batches"},
                                                                {"train.recompute", "--recompute"},
                                                                {"train.sequence_parallel", "--sequence-parallel"},
                                                                {"train.loop", "--loop"},
                                                                {"train.grad_dtype", "--grad-dtype"},
                                                                {"train.lora.rank", "--lora-rank"},
                                                                {"train.lora.targets", "--lora-targets"},
                                                                {"train.lora", "--lora-rank"},
                                                                {"train.offload", "--offload"}};
    auto map = [&](std::string text, bool whole) {
        for (const auto& [path, flag] : paths) {
            if (whole) {
                if (text == path) return std::string(flag);
                continue;
            }
            // Only dotted paths inside a message (a bare word such as "runtime" is prose there).
            const std::string p = path;
            if (p.find('.') == std::string::npos) continue;
            for (size_t at = 0; (at = text.find(p, at)) != std::string::npos; at += std::string(flag).size())
                text.replace(at, p.size(), flag);
        }
        return text;
    };
    return InputError(e.pos(), map(e.field(), true), map(e.message(), false));
}

// A misspelt subcommand or flag, found before CLI11 parses (it would say "A subcommand is
// required" or list the extras without a suggestion). Returns the error line, or "".
std::string misspelling(const std::vector<std::string>& args, const std::vector<CLI::App*>& subs) {
    if (args.empty() || args[0].empty() || args[0][0] == '-') return {};
    std::vector<std::string> names;
    CLI::App* sub = nullptr;
    for (CLI::App* s : subs) {
        names.push_back(s->get_name());
        if (s->get_name() == args[0]) sub = s;
    }
    if (!sub)
        return fmt::format("unknown command \"{}\"{}; commands: {} (see memtax --help)", args[0], did_you_mean(args[0], names),
                           fmt::join(names, ", "));
    std::vector<std::string> flags;
    for (const CLI::Option* o : sub->get_options())
        for (const auto& l : o->get_lnames()) flags.push_back("--" + l);
    for (size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--") break;
        if (a.size() < 3 || a.compare(0, 2, "--") != 0) continue;
        const std::string flag = a.substr(0, a.find('='));
        if (std::find(flags.begin(), flags.end(), flag) == flags.end())
            return fmt::format("{}: unknown flag {}{} (see memtax {} --help)", sub->get_name(), flag, did_you_mean(flag, flags),
                               sub->get_name());
    }
    return {};
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    CLI::App app{"memtax: memory-cost simulator and capacity planner for long-context transformers", "memtax"};
    app.set_version_flag("--version", cli::tool_line());
    app.require_subcommand(1);
    // One file per subcommand (cmd_*.cpp); each registers its own flags.
    std::vector<std::unique_ptr<cli::Command>> commands;
    commands.push_back(cli::make_estimate());
    commands.push_back(cli::make_whatif());
    commands.push_back(cli::make_validate());
    commands.push_back(cli::make_accuracy());
    commands.push_back(cli::make_calibrate());
    commands.push_back(cli::make_probe());
    commands.push_back(cli::make_plan());
    commands.push_back(cli::make_sweep());
    commands.push_back(cli::make_max_batch());
    commands.push_back(cli::make_max_context());
    commands.push_back(cli::make_vs());
    commands.push_back(cli::make_serve());
    commands.push_back(cli::make_compare());
    commands.push_back(cli::make_report());
    commands.push_back(cli::make_check());
    for (const char* list : {"models", "gpus", "runtimes", "clusters"}) commands.push_back(cli::make_listing(list));
    std::vector<std::pair<CLI::App*, cli::Command*>> subcommands;
    std::vector<CLI::App*> subs;
    for (auto& c : commands) {
        subcommands.emplace_back(c->add(app), c.get());
        subs.push_back(subcommands.back().first);
    }
    if (const std::string typo = misspelling(args, subs); !typo.empty()) {
        err << "memtax: error: " << typo << "\n";
        return 2;
    }

    std::vector<std::string> argv_rev(args.rbegin(), args.rend());
    try {
        app.parse(argv_rev);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e, out, err);
    } catch (const CLI::ParseError& e) {
        std::string help = "memtax --help";
        for (CLI::App* sub : subs)
            if (!args.empty() && sub->get_name() == args[0]) help = "memtax " + args[0] + " --help";
        err << "memtax: error: " << e.what() << " (see " << help << ")\n";
        return 2;
    }
    cli::Command* active = nullptr;
    for (auto& [sub, command] : subcommands)
        if (*sub) active = command;
    if (!active) return 0;
    try {
        return active->run(out, err);
    } catch (const InputError& e) {
        err << "memtax: error: " << (active->reads_scenarios() ? e : as_flags(e)).what() << "\n";
        return 2;
    } catch (const OverflowError& e) {
        err << "memtax: error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        err << "memtax: internal error: " << e.what() << "\n";
        return 3;
    }
}

}  // namespace memtax
