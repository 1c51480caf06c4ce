// memtax entry point: thin; the CLI lives in cli/commands.cpp.
#include <iostream>

#include "cli/commands.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    return memtax::run_cli(args, std::cout, std::cerr);
}
