#include "core/dtype.hpp"

#include <fmt/format.h>

#include <charconv>

namespace memtax {

u64 DType::bytes(u64 n, std::string_view term) const {
    u64 payload = ceil_div(checked_mul(n, bits, term), 8);
    if (group_size == 0) return payload;
    const u64 groups = ceil_div(n, group_size);
    const u64 zeros = ceil_div(checked_mul(groups, zero_bits, term), 8);
    const u64 second = super_group ? checked_add(checked_mul(ceil_div(groups, super_group), 4, term), 4, term) : 0;
    return checked_add(checked_add(checked_add(payload, checked_mul(groups, scale_bytes, term), term), zeros, term), second, term);
}

bool DType::try_bytes(u64 n, u64& out) const noexcept {
    u64 bits_total;
    if (__builtin_mul_overflow(n, bits, &bits_total)) return false;
    out = ceil_div(bits_total, 8);
    if (group_size == 0) return true;
    const u64 groups = ceil_div(n, group_size);
    u64 scales, zero_bits_total;
    if (__builtin_mul_overflow(groups, scale_bytes, &scales)) return false;
    if (__builtin_mul_overflow(groups, zero_bits, &zero_bits_total)) return false;
    const u64 second = super_group ? ceil_div(groups, super_group) * 4 + 4 : 0;  // groups ≤ n / group: no overflow
    return !__builtin_add_overflow(out, scales, &out) && !__builtin_add_overflow(out, ceil_div(zero_bits_total, 8), &out) &&
           !__builtin_add_overflow(out, second, &out);
}

u64 DType::matrix_bytes(u64 rows, u64 cols, std::string_view term) const {
    const u64 n = checked_mul(rows, cols, term);
    if (block2d == 0) return bytes(n, term);
    const u64 blocks = checked_mul(ceil_div(rows, block2d), ceil_div(cols, block2d), term);
    return checked_add(ceil_div(checked_mul(n, bits, term), 8), checked_mul(blocks, scale_bytes, term), term);
}

const std::vector<std::string>& dtype_names() {
    static const std::vector<std::string> names = {"fp32",  "bf16",     "fp16",    "fp8",     "fp8_e4m3",   "fp8_e5m2",
                                                   "int8",  "int4",     "int4-gN", "int8-gN", "int4-gN-zp", "int8-gN-zp",
                                                   "mxfp4", "fp8-b128", "nf4",     "nf4-dq"};
    return names;
}

std::string unknown_dtype_message(const std::string& text) {
    return fmt::format("unknown dtype \"{}\"{}; valid: {}", text, did_you_mean(text, dtype_names()), fmt::join(dtype_names(), ", "));
}

bool parse_dtype(const std::string& text, DType& out) {
    struct Entry {
        const char* name;
        unsigned bits;
    };
    static const Entry whole[] = {{"fp32", 32}, {"bf16", 16}, {"fp16", 16}, {"fp8_e4m3", 8}, {"fp8_e5m2", 8}, {"int8", 8}};
    if (text == "fp8") {
        out = DType{"fp8_e4m3", 8, 0, 0};
        return true;
    }
    for (const auto& e : whole) {
        if (text == e.name) {
            out = DType{e.name, e.bits, 0, 0};
            return true;
        }
    }
    // bitsandbytes' 4-bit NormalFloat (QLoRA): blocks of 64 values, an fp32 absmax each;
    // nf4-dq with double quantization: 8-bit absmaxes, one fp32 scale per 256 of them and an
    // fp32 offset per tensor (Dettmers et al. 2023, §3: 4 + 8/64 + 32/(64·256) bits a value).
    if (text == "nf4") {
        out = DType{"nf4", 4, 64, 4};
        return true;
    }
    if (text == "nf4-dq") {
        out = DType{"nf4-dq", 4, 64, 1};
        out.super_group = 256;
        return true;
    }
    if (text == "mxfp4") {
        out = DType{"mxfp4", 4, 32, 1};
        return true;
    }
    if (text == "fp8-b128") {
        out = DType{"fp8-b128", 8, 128 * 128, 4, 128};
        return true;
    }
    // int4: two values per byte, one fp16 scale per group (default 128, as GPTQ/AWQ ship).
    u64 group = 0;
    const bool int8 = text.rfind("int8-g", 0) == 0;
    const bool zero_points = text.size() > 3 && text.ends_with("-zp");
    const std::string_view body = zero_points ? std::string_view(text).substr(0, text.size() - 3) : std::string_view(text);
    if (text == "int4") {
        group = 128;
    } else if ((int8 || text.rfind("int4-g", 0) == 0) && body.size() > 6) {
        const char* first = body.data() + 6;
        const char* last = body.data() + body.size();
        auto [ptr, ec] = std::from_chars(first, last, group);
        if (ec != std::errc() || ptr != last || group == 0 || group > (1u << 20)) return false;
    } else {
        return false;
    }
    out = DType{(int8 ? "int8-g" : "int4-g") + std::to_string(group) + (zero_points ? "-zp" : ""), int8 ? 8u : 4u, group, 2};
    out.zero_bits = zero_points ? out.bits : 0;
    return true;
}

}  // namespace memtax
