// Core types: checked arithmetic, dtype storage costs, spelling suggestions.
#include <gtest/gtest.h>

#include "core/bytes.hpp"
#include "core/dtype.hpp"
#include "core/units.hpp"
#include "model/plan.hpp"

using namespace memtax;

TEST(CheckedArithmetic, MultiplyOverflowNamesTheTerm) {
    EXPECT_EQ(checked_mul(1ull << 32, 1ull << 31, "x"), 1ull << 63);
    try {
        checked_mul(1ull << 32, 1ull << 32, "kv cache");
        FAIL() << "no overflow reported";
    } catch (const OverflowError& e) {
        EXPECT_NE(std::string(e.what()).find("kv cache"), std::string::npos);
    }
}

TEST(CheckedArithmetic, AddOverflowAndProduct) {
    EXPECT_THROW(checked_add(~0ull, 1, "total"), OverflowError);
    EXPECT_EQ(checked_product({2, 3, 5, 7}, "p"), 210u);
    EXPECT_THROW(checked_product({1ull << 40, 1ull << 30}, "p"), OverflowError);
    EXPECT_EQ(ceil_div(10, 4), 3u);
    EXPECT_EQ(ceil_div(8, 4), 2u);
}

TEST(DType, WholeByteTypes) {
    DType d;
    ASSERT_TRUE(parse_dtype("bf16", d));
    EXPECT_EQ(d.bytes(10, "t"), 20u);
    ASSERT_TRUE(parse_dtype("fp32", d));
    EXPECT_EQ(d.bytes(10, "t"), 40u);
    ASSERT_TRUE(parse_dtype("fp8_e4m3", d));
    EXPECT_EQ(d.bytes(10, "t"), 10u);
    ASSERT_TRUE(parse_dtype("int8", d));
    EXPECT_TRUE(d.whole_bytes());
}

TEST(DType, Int4CountsGroupScales) {
    DType d;
    ASSERT_TRUE(parse_dtype("int4", d));
    EXPECT_EQ(d.name, "int4-g128");
    // 256 values: 128 bytes of nibbles + 2 groups x 2-byte fp16 scale.
    EXPECT_EQ(d.bytes(256, "t"), 132u);
    // 100 values: 50 bytes + one (partial) group's scale.
    EXPECT_EQ(d.bytes(100, "t"), 52u);
    ASSERT_TRUE(parse_dtype("int4-g64", d));
    EXPECT_EQ(d.bytes(128, "t"), 64u + 2 * 2);
    EXPECT_FALSE(d.whole_bytes());
}

TEST(DType, RejectsUnknownNames) {
    DType d;
    for (const char* bad : {"fp9", "int4-g0", "int4-gx", "int4-g", "BF16", ""}) EXPECT_FALSE(parse_dtype(bad, d)) << bad;
}

TEST(Spelling, ClosestMatch) {
    EXPECT_EQ(closest_match("hiden_size", {"hidden_size", "head_dim", "vocab_size"}), "hidden_size");
    EXPECT_EQ(closest_match("zzzzzz", {"hidden_size", "head_dim"}), "");
}

TEST(Format, GroupDigitsIsLocaleFree) {
    EXPECT_EQ(group_digits(1073741824), "1,073,741,824");
    EXPECT_EQ(group_digits(999), "999");
    EXPECT_EQ(group_digits(0), "0");
}

TEST(Units, FlopsAndTime) {
    // 2·m·k·n for an 8192³ product: 2 · 2^39 = 2^40 FLOPs.
    EXPECT_EQ(matmul_flops(8192, 8192, 8192, "gemm").value, 1ull << 40);
    EXPECT_THROW(matmul_flops(1ull << 32, 1ull << 32, 2, "gemm"), OverflowError);
    EXPECT_EQ(add(FlopCount{3}, FlopCount{4}, "sum").value, 7u);
    // Llama-3.1-8B's bf16 weights (16,060,522,496 B) read once at 3.35e12 B/s.
    EXPECT_DOUBLE_EQ(time_at(16060522496ull, BytesPerSecond{3.35e12}).value, 16060522496.0 / 3.35e12);
    EXPECT_DOUBLE_EQ(time_at(FlopCount{1ull << 40}, FlopsPerSecond{989.4e12}).value, 1099511627776.0 / 989.4e12);
    EXPECT_THROW(time_at(1, BytesPerSecond{0}), InternalError);
}
