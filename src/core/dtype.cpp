#include "core/dtype.hpp"

#include <fmt/format.h>

#include <charconv>

namespace memtax {

u64 DType::bytes(u64 n, std::string_view term) const {
    u64 payload = ceil_div(checked_mul(n, bits, term), 8);
    if (group_size == 0) return payload;
    return checked_add(payload, checked_mul(ceil_div(n, group_size), scale_bytes, term), term);
}

bool DType::try_bytes(u64 n, u64& out) const noexcept {
    u64 bits_total;
    if (__builtin_mul_overflow(n, bits, &bits_total)) return false;
    out = ceil_div(bits_total, 8);
    if (group_size == 0) return true;
    u64 scales;
    if (__builtin_mul_overflow(ceil_div(n, group_size), scale_bytes, &scales)) return false;
    return !__builtin_add_overflow(out, scales, &out);
}

const std::vector<std::string>& dtype_names() {
    static const std::vector<std::string> names = {"fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2",
                                                   "int8", "int4", "int4-gN"};
    return names;
}

std::string unknown_dtype_message(const std::string& text) {
    return fmt::format("unknown dtype \"{}\"{}; valid: {}", text, did_you_mean(text, dtype_names()),
                       fmt::join(dtype_names(), ", "));
}

bool parse_dtype(const std::string& text, DType& out) {
    struct Entry { const char* name; unsigned bits; };
    static const Entry whole[] = {{"fp32", 32}, {"bf16", 16}, {"fp16", 16},
                                  {"fp8_e4m3", 8}, {"fp8_e5m2", 8}, {"int8", 8}};
    for (const auto& e : whole) {
        if (text == e.name) {
            out = DType{e.name, e.bits, 0, 0};
            return true;
        }
    }
    // int4: two values per byte, one fp16 scale per group (default 128, as GPTQ/AWQ ship).
    u64 group = 0;
    if (text == "int4") {
        group = 128;
    } else if (text.rfind("int4-g", 0) == 0 && text.size() > 6) {
        const char* first = text.data() + 6;
        const char* last = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(first, last, group);
        if (ec != std::errc() || ptr != last || group == 0 || group > (1u << 20)) return false;
    } else {
        return false;
    }
    out = DType{"int4-g" + std::to_string(group), 4, group, 2};
    return true;
}

}  // namespace memtax
