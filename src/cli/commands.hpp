#pragma once
// The memtax command line. run() returns the process exit code: 0 ok, 1 a fit gate failed
// (--require-fit), 2 bad input, 3 internal error. It never calls exit().
#include <iosfwd>
#include <string>
#include <vector>

namespace memtax {

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace memtax
