#pragma once
// FLOP counts, rates and time. Counts are exact (u64, overflow-checked like bytes); rates are
// per second in decimal units as vendors state them (3.35e12 B/s, 989.4e12 FLOP/s); time is
// seconds. Distinct types keep a bandwidth from being passed where a FLOP rate is expected.
#include "core/bytes.hpp"

namespace memtax {

struct FlopCount {
    u64 value = 0;
};
struct BytesPerSecond {
    double value = 0;
};
struct FlopsPerSecond {
    double value = 0;
};
struct Seconds {
    double value = 0;
};

inline FlopCount add(FlopCount a, FlopCount b, std::string_view term) { return {checked_add(a.value, b.value, term)}; }

// A matrix product [m×k]·[k×n] does one multiply and one add per term: 2·m·k·n FLOPs.
inline FlopCount matmul_flops(u64 m, u64 k, u64 n, std::string_view term) { return {checked_product({2, m, k, n}, term)}; }

// Time to stream `bytes` at `rate`, or to do `flops` at `rate`; a zero rate is a caller bug.
inline Seconds time_at(u64 bytes, BytesPerSecond rate) {
    if (!(rate.value > 0)) throw InternalError("time_at: bandwidth must be positive");
    return {static_cast<double>(bytes) / rate.value};
}
inline Seconds time_at(FlopCount flops, FlopsPerSecond rate) {
    if (!(rate.value > 0)) throw InternalError("time_at: FLOP rate must be positive");
    return {static_cast<double>(flops.value) / rate.value};
}

}  // namespace memtax
