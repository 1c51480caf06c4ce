#pragma once
// Locale-independent number formatting shared by the formulas the engine records and the
// printers that render them.
#include <string>

#include "core/bytes.hpp"

namespace memtax {

std::string format_bytes_gib(u64 bytes);  // "71.3 GiB"
std::string group_digits(u64 v);          // "1,073,741,824"

}  // namespace memtax
