#pragma once
// The command line run in process, for the tests: exit code, stdout and stderr.
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"

struct Result {
    int code;
    std::string out, err;
};

inline Result run_command(std::vector<std::string> args) {
    std::ostringstream out, err;
    const int code = memtax::run_cli(args, out, err);
    return {code, out.str(), err.str()};
}
