// float -> IEEE half (binary16) with round-to-nearest-even, for weights handed to TensorRT
// in fp16. Host-only and header-independent, so the CPU tests check it against NumPy.
#pragma once

#include <cstdint>
#include <cstring>

namespace ddad_rt::trt {

//! The binary16 bit pattern nearest to `f` (ties to even); overflow gives +-inf, NaN stays NaN.
inline std::uint16_t float_to_half_bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    return static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < 2^-25 rounds to 0
    // value = mant * 2^(e - 150); in units of the smallest subnormal (2^-24) that is
    // mant * 2^(e - 126), so drop 126 - e bits (14..24) with round-to-nearest-even.
    const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const int rshift = 126 - static_cast<int>(abs >> 23);
    const std::uint32_t kept = mant >> rshift;
    const std::uint32_t rem = mant & ((1u << rshift) - 1u);
    const std::uint32_t halfway = 1u << (rshift - 1);
    std::uint32_t r = kept;
    if (rem > halfway || (rem == halfway && (kept & 1u))) ++r;  // may become the smallest normal
    return static_cast<std::uint16_t>(sign | r);
  }
  // normal: rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits
  std::uint32_t h = ((abs >> 13) - ((127u - 15u) << 10));
  const std::uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: fine
  return static_cast<std::uint16_t>(sign | h);
}

}  // namespace ddad_rt::trt
