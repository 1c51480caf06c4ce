#pragma once
// Exact, overflow-checked unsigned 64-bit arithmetic for byte, element and FLOP counts.
// Every multiply and add names the term it computes so an overflow error says which one.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace memtax {

using u64 = std::uint64_t;

inline u64 checked_mul(u64 a, u64 b, std::string_view term) {
    u64 r;
    if (__builtin_mul_overflow(a, b, &r)) throw OverflowError(std::string(term));
    return r;
}

inline u64 checked_add(u64 a, u64 b, std::string_view term) {
    u64 r;
    if (__builtin_add_overflow(a, b, &r)) throw OverflowError(std::string(term));
    return r;
}

inline u64 checked_sub(u64 a, u64 b, std::string_view term) {
    if (b > a) throw InternalError(std::string(term) + ": negative byte count");
    return a - b;
}

// Product of several factors, each step checked.
inline u64 checked_product(std::initializer_list<u64> factors, std::string_view term) {
    u64 r = 1;
    for (u64 f : factors) r = checked_mul(r, f, term);
    return r;
}

// Sum of several terms, each step checked.
inline u64 checked_sum(std::initializer_list<u64> terms, std::string_view term) {
    u64 r = 0;
    for (u64 t : terms) r = checked_add(r, t, term);
    return r;
}

inline u64 ceil_div(u64 a, u64 b) { return a / b + (a % b != 0); }
// floor(a · b / c) without overflowing the product (128-bit intermediate; c > 0). The result
// fits whenever b <= c, which is how callers use it (a fraction of a count).
inline u64 mul_frac(u64 a, u64 b, u64 c) {
    __extension__ using u128 = unsigned __int128;
    return static_cast<u64>(static_cast<u128>(a) * b / c);
}

// 1 GiB = 2^30 bytes; memtax prints binary units and says so in every header.
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;
// A non-negative real rounded up to a count, saturating at 2^64-1 (a converted double past the
// u64 range is undefined behaviour); NaN and negatives give 0.
inline u64 ceil_to_u64_saturating(double v) {
    if (!(v > 0)) return 0;
    if (v >= 18446744073709551615.0) return ~u64{0};
    return static_cast<u64>(std::ceil(v));
}

inline double to_gib(u64 b) { return static_cast<double>(b) / kGiB; }

}  // namespace memtax
