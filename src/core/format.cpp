#include "core/format.hpp"

#include <fmt/format.h>

namespace memtax {

std::string group_digits(u64 v) {
    const std::string digits = std::to_string(v);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string format_bytes_gib(u64 bytes) { return fmt::format("{:.1f} GiB", to_gib(bytes)); }

}  // namespace memtax
