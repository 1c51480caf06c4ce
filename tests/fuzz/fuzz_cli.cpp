// libFuzzer harness: the command line. Each line of the input is one argument; every command
// runs on the built-in profiles. Arguments that name files to write are dropped (the harness
// must not write where a fuzzer says). The exit code is whatever it is; what may not happen is
// a crash, an unexpected exception out of run_cli, a hang or a sanitizer report.
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args;
    std::string cur;
    for (std::size_t i = 0; i < size && args.size() < 32; ++i) {
        const char ch = static_cast<char>(data[i]);
        if (ch == '\n') {
            args.push_back(cur);
            cur.clear();
        } else {
            cur += ch;
        }
    }
    if (!cur.empty()) args.push_back(cur);
    // Commands that run programs or write files (probe, calibrate, report) are not the harness's to run.
    if (!args.empty() && (args[0] == "probe" || args[0] == "calibrate" || args[0] == "report")) return 0;
    std::size_t list_items = 0;
    for (const auto& a : args) {
        if (a.rfind("--output", 0) == 0 || a.rfind("-o", 0) == 0 || a.rfind("--out", 0) == 0) return 0;
        for (char ch : a) list_items += ch == ',';
    }
    // A what-if grid multiplies its lists; keep one input's work bounded (no false "hangs").
    if (list_items > 48) return 0;
    std::ostringstream out, err;
    const int code = memtax::run_cli(args, out, err);
    // Exit 3 is an internal error: no command line may reach it.
    if (code < 0 || code > 2) {
        std::fprintf(stderr, "exit %d: %s\n", code, err.str().c_str());
        __builtin_trap();
    }
    return 0;
}
