// Element types normkit reads and writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace normkit {

// The data types of tensors normkit handles. `int64` appears only in outputs (counts).
enum class DType : std::uint8_t {
  float32,
  float64,
  float16,   // IEEE 754 binary16
  bfloat16,  // the upper 16 bits of a float32
  uint8,
  int64,
};

constexpr std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::float32: return 4;
    case DType::float64: return 8;
    case DType::float16: return 2;
    case DType::bfloat16: return 2;
    case DType::uint8: return 1;
    case DType::int64: return 8;
  }
  return 0;
}

// "float32", "float64", "float16", "bfloat16", "uint8", "int64".
const char* dtype_name(DType dtype) noexcept;

// Parses a name written by dtype_name; returns false for anything else.
bool parse_dtype(const std::string& name, DType* dtype) noexcept;

// True for the dtypes statistics accept as input (all but int64).
constexpr bool is_input_dtype(DType dtype) noexcept { return dtype != DType::int64; }

}  // namespace normkit
