#pragma once
// Exact integers from text, as people write them: "186000000000", "186e9", "1.86e11", and for
// token counts "32k" / "1M". A value is accepted exactly when it is an integer ("1.5e0" is not);
// nothing goes through a double, so 2^64-1 and "9007199254740993" stay exact.
#include <optional>
#include <string>
#include <string_view>

#include "core/bytes.hpp"

namespace memtax {

enum class NumberParse { Ok, Invalid, NotInteger, Overflow };

// Digits with an optional fraction and exponent: 123, 1.5e3, 186e9, 2E+4. No sign, no spaces.
NumberParse parse_exact_integer(std::string_view text, u64& out);

// As parse_exact_integer, plus one binary suffix: k/K = 1,024 and M = 1,048,576 tokens (a "128k
// context" is 131,072 tokens, as model cards count it). "1.5k" = 1,536.
NumberParse parse_token_count(std::string_view text, u64& out);

// A size in bytes as vLLM's --kv-cache-memory-bytes takes it: 21474836480, 20G / 20GiB
// (×1024³), 20g / 20GB (×1000³); K, M, T likewise. "1.5G" = 1,610,612,736.
NumberParse parse_byte_size(std::string_view text, u64& out);

// "0.9" -> 900000 parts per million, exactly (no binary floating point); at most 6 decimals,
// value at most 9.999999. nullopt when it is not such a decimal.
std::optional<u64> parse_ppm(std::string_view s);

// What was wrong, for an error message: "expected an integer (e.g. 8192, 8e3), got \"x\"".
std::string number_problem(NumberParse p, std::string_view text, bool tokens);

}  // namespace memtax
