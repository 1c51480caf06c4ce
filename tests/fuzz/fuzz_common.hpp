#pragma once
// Shared by the libFuzzer harnesses: an input may be rejected only with the two error types
// the CLI turns into exit code 2; any other exception, crash, hang, leak or sanitizer report
// is a bug the harness exposes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "core/error.hpp"

namespace memtax::fuzz {

template <typename F>
void expect_clean(F&& f) {
    try {
        f();
    } catch (const InputError&) {
    } catch (const OverflowError&) {
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        std::abort();
    }
}

}  // namespace memtax::fuzz
