#pragma once
// Storage cost of a tensor element type. Sub-byte types carry their group-scale overhead:
// int4 stores two values per byte plus one fp16 scale per group of `group_size` values
// (the GPTQ/AWQ layout), so its cost is not simply n/2.
#include <string>
#include <vector>

#include "core/bytes.hpp"

namespace memtax {

struct DType {
    std::string name;          // canonical name, e.g. "bf16", "int4-g128"
    unsigned bits = 16;        // bits per element
    u64 group_size = 0;        // values per scale group; 0 = no group scales
    unsigned scale_bytes = 0;  // bytes per group scale
    // > 0: scales per block2d × block2d tile of a matrix, not per run of values (DeepSeek-V3's
    // fp8 weights: one fp32 scale per 128×128 block, partial blocks padded). A count of values
    // without its matrix shape is then costed as runs of block2d² values.
    u64 block2d = 0;
    // Bits of one zero point per group (AWQ and GPTQ checkpoints store a packed 4- or 8-bit zero
    // beside each fp16 scale: `qzeros`); 0 = symmetric, no zero points.
    unsigned zero_bits = 0;
    // Double quantization (QLoRA's NF4, bitsandbytes compress_statistics): the group scales are
    // themselves 8-bit, with one fp32 scale per `super_group` of them and one fp32 offset per
    // tensor; 0 = single-level scales.
    u64 super_group = 0;

    // Exact bytes to store n elements: ceil(n*bits/8) + ceil(n/group)*scale_bytes
    // + ceil(ceil(n/group)*zero_bits/8) (+ 4·ceil(groups/super_group) + 4 with double quantization).
    u64 bytes(u64 n, std::string_view term) const;
    // The same without throwing: false when the count does not fit 64 bits (hot paths report
    // the overflow as a status instead).
    bool try_bytes(u64 n, u64& out) const noexcept;
    // Bytes of a rows × cols matrix: with block2d, ceil(rows/b)·ceil(cols/b) scales.
    u64 matrix_bytes(u64 rows, u64 cols, std::string_view term) const;
    // Whole bytes per element, for dtypes that have one (fp32..fp8/int8); throws for int4.
    bool whole_bytes() const { return bits % 8 == 0 && group_size == 0; }
    friend bool operator==(const DType& a, const DType& b) { return a.name == b.name; }
};

// Parses "fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp8" (= fp8_e4m3, vLLM's and
// PyTorch's default fp8), "int8", "int4" (= int4-g128),
// "int4-gN" and "int8-gN" (one fp16 scale per N values: group-quantised KV caches, KIVI-style),
// "int4-gN-zp" and "int8-gN-zp" (the same plus a packed zero point per group: AWQ, GPTQ),
// "mxfp4" (OCP microscaling: 4-bit E2M1 values, one 1-byte E8M0 scale per 32; gpt-oss experts)
// and "fp8-b128" (e4m3 values, one fp32 scale per 128×128 block; DeepSeek-V3 weights).
// Returns false for anything else.
bool parse_dtype(const std::string& text, DType& out);
// The names parse_dtype accepts, for error messages.
const std::vector<std::string>& dtype_names();
// `unknown dtype "x" (did you mean "y"?); valid: ...`
std::string unknown_dtype_message(const std::string& text);

}  // namespace memtax
