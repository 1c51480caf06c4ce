// Hand-written on purpose: std::from_chars<u64> takes no exponent, and a double loses exactness
// above 2^53 (and would accept 1.5e0 as 1); no Debian library parses "exact integer in
// scientific notation".
#include "core/number.hpp"

#include <fmt/format.h>

namespace memtax {
namespace {

__extension__ typedef unsigned __int128 u128;
constexpr u128 kU64Max = static_cast<u128>(~u64{0});
constexpr u128 kMantMax = (~u128{0}) / (10ull * (u64{1} << 40) * 16);  // room for a TiB multiplier

// value = mantissa digits · 10^exp10 · mul; exact or NotInteger/Overflow.
NumberParse parse(std::string_view s, u64 mul, u64& out) {
    size_t i = 0;
    u128 mant = 0;
    int frac = 0, digits = 0;
    bool overflow = false, dot = false;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '.') {
            if (dot) return NumberParse::Invalid;
            dot = true;
            continue;
        }
        if (c < '0' || c > '9') break;
        ++digits;
        if (dot) ++frac;
        if (mant > kMantMax) {  // beyond any u64 even after a negative exponent: remember it
            if (c != '0' || !dot) overflow = true;
            if (dot) --frac;  // a trailing fractional zero changes nothing
            continue;
        }
        mant = mant * 10 + static_cast<u128>(c - '0');
    }
    if (digits == 0) return NumberParse::Invalid;
    int exp10 = 0;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        bool neg = false;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
        const size_t start = i;
        for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
            if (exp10 < 1000) exp10 = exp10 * 10 + (s[i] - '0');
        if (i == start) return NumberParse::Invalid;
        if (neg) exp10 = -exp10;
    }
    if (i != s.size()) return NumberParse::Invalid;
    if (overflow) return NumberParse::Overflow;
    mant *= mul;  // mant <= kMantMax, so this cannot wrap
    int shift = exp10 - frac;
    for (; shift < 0; ++shift) {
        if (mant % 10) return NumberParse::NotInteger;
        mant /= 10;
    }
    for (; shift > 0; --shift) {
        if (mant == 0) break;
        if (mant > kU64Max) return NumberParse::Overflow;
        mant *= 10;
    }
    if (mant > kU64Max) return NumberParse::Overflow;
    out = static_cast<u64>(mant);
    return NumberParse::Ok;
}

}  // namespace

NumberParse parse_exact_integer(std::string_view text, u64& out) { return parse(text, 1, out); }

NumberParse parse_token_count(std::string_view text, u64& out) {
    u64 mul = 1;
    if (!text.empty()) {
        const char last = text.back();
        if (last == 'k' || last == 'K')
            mul = 1024;
        else if (last == 'M')
            mul = 1024 * 1024;
        if (mul != 1) text.remove_suffix(1);
    }
    return parse(text, mul, out);
}

NumberParse parse_byte_size(std::string_view text, u64& out) {
    // vLLM's human_readable_int: lower-case k/m/g/t are powers of 1000, upper-case K/M/G/T powers
    // of 1024; "GiB"/"GB" spell the same two.
    struct Suffix {
        std::string_view text;
        u64 mul;
    };
    static constexpr Suffix suffixes[] = {{"KiB", u64{1} << 10}, {"MiB", u64{1} << 20}, {"GiB", u64{1} << 30}, {"TiB", u64{1} << 40},
                                          {"KB", 1000},          {"MB", 1000000},       {"GB", 1000000000},    {"TB", 1000000000000},
                                          {"K", u64{1} << 10},   {"M", u64{1} << 20},   {"G", u64{1} << 30},   {"T", u64{1} << 40},
                                          {"k", 1000},           {"m", 1000000},        {"g", 1000000000},     {"t", 1000000000000}};
    for (const auto& sfx : suffixes)
        if (text.size() > sfx.text.size() && text.ends_with(sfx.text))
            return parse(text.substr(0, text.size() - sfx.text.size()), sfx.mul, out);
    return parse(text, 1, out);
}

std::optional<u64> parse_ppm(std::string_view s) {
    if (s.empty()) return std::nullopt;
    const size_t dot = s.find('.');
    std::string_view whole = s.substr(0, dot), frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    if (whole.size() > 1 || frac.size() > 6 || (whole.empty() && frac.empty())) return std::nullopt;
    u64 v = whole.empty() ? 0 : static_cast<u64>(whole[0] - '0');
    if (!whole.empty() && (whole[0] < '0' || whole[0] > '9')) return std::nullopt;
    for (size_t i = 0; i < 6; ++i) {
        const char c = i < frac.size() ? frac[i] : '0';
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<u64>(c - '0');
    }
    return v;
}

std::string number_problem(NumberParse p, std::string_view text, bool tokens) {
    switch (p) {
        case NumberParse::Ok:
            return {};
        case NumberParse::NotInteger:
            return fmt::format("\"{}\" is not a whole number", text);
        case NumberParse::Overflow:
            return fmt::format("\"{}\" does not fit in 64 bits", text);
        case NumberParse::Invalid:
            break;
    }
    return tokens ? fmt::format("expected a positive number of tokens (8192, 32k = 32,768, 1M = 1,048,576, 1e5), got \"{}\"", text)
                  : fmt::format("expected a positive integer, got \"{}\"", text);
}

}  // namespace memtax
