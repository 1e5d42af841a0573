#include "cpu/gemm.h"

#include <cstdint>
#include <cstring>

#include "cpu/lane_vectors.h"

namespace ddad_rt::cpu {
namespace {

// C [rows x n] = A [rows x k] * B [k x n], all row-major, leading dimensions k / n / n.
DDAD_RT_INLINE void gemm_generic_impl(const float* a, const float* b, float* c, int rows, int k,
                                      int n) {
  for (int r = 0; r < rows; ++r) {
    float* cr = c + static_cast<std::int64_t>(r) * n;
    for (int j = 0; j < n; ++j) cr[j] = 0.0f;
    for (int q = 0; q < k; ++q) {
      const float av = a[static_cast<std::int64_t>(r) * k + q];
      const float* bq = b + static_cast<std::int64_t>(q) * n;
      for (int j = 0; j < n; ++j) cr[j] += av * bq[j];
    }
  }
}

}  // namespace

void gemm_generic(const float* a, const float* b, float* c, int rows, int k, int n) {
  gemm_generic_impl(a, b, c, rows, k, n);
}

void gemm_bf16_generic(const std::uint16_t* a, const std::uint16_t* b, float* c, int rows, int k,
                       int n) {
  for (int r = 0; r < rows; ++r) {
    float* cr = c + static_cast<std::int64_t>(r) * n;
    for (int j = 0; j < n; ++j) cr[j] = 0.0f;
    for (int q = 0; q < k; q += 2) {
      const float a0 = from_bf16(a[static_cast<std::int64_t>(r) * k + q]);
      const float a1 = from_bf16(a[static_cast<std::int64_t>(r) * k + q + 1]);
      const std::uint16_t* bq = b + static_cast<std::int64_t>(q / 2) * n * 2;
      for (int j = 0; j < n; ++j) cr[j] += a0 * from_bf16(bq[2 * j]) + a1 * from_bf16(bq[2 * j + 1]);
    }
  }
}

#if DDAD_RT_X86
namespace {

// MR rows x 64 columns of C, accumulated over k in 24 registers.
template <int MR>
DDAD_RT_AVX512 void micro_64(const float* a, const float* b, float* c, int k,
                                            int n) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (int q = 0; q < k; ++q) {
    const float* bq = b + static_cast<std::int64_t>(q) * n;
    const __m512 b0 = _mm512_loadu_ps(bq), b1 = _mm512_loadu_ps(bq + 16);
    const __m512 b2 = _mm512_loadu_ps(bq + 32), b3 = _mm512_loadu_ps(bq + 48);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[static_cast<std::int64_t>(r) * k + q]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(av, b3, acc[r][3]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = c + static_cast<std::int64_t>(r) * n;
    _mm512_storeu_ps(cr, acc[r][0]);
    _mm512_storeu_ps(cr + 16, acc[r][1]);
    _mm512_storeu_ps(cr + 32, acc[r][2]);
    _mm512_storeu_ps(cr + 48, acc[r][3]);
  }
}

}  // namespace

namespace {

// The panel loop both AVX-512 GEMMs share: 64-column panels of B (each stays in L1 over all
// rows), 6 rows of A at a time, then the remaining rows. micro[r] computes r rows x 64
// columns; B's panel j0 starts at column j0 * pack (pack: elements per column and k step).
template <typename T>
void gemm_panels(const T* a, const T* b, float* c, int rows, int k, int n, int pack,
                 void (*const micro[7])(const T*, const T*, float*, int, int)) {
  for (int j0 = 0; j0 < n; j0 += 64) {
    const T* bp = b + static_cast<std::int64_t>(j0) * pack;
    int r = 0;
    for (; r + 6 <= rows; r += 6) {
      micro[6](a + static_cast<std::int64_t>(r) * k, bp, c + static_cast<std::int64_t>(r) * n + j0, k, n);
    }
    if (r < rows) micro[rows - r](a + static_cast<std::int64_t>(r) * k, bp, c + static_cast<std::int64_t>(r) * n + j0, k, n);
  }
}

}  // namespace

DDAD_RT_AVX512 void gemm_avx512(const float* a, const float* b, float* c, int rows, int k, int n) {
  if (n % 64 != 0) {
    gemm_generic_impl(a, b, c, rows, k, n);
    return;
  }
  static void (*const micro[7])(const float*, const float*, float*, int, int) = {
      nullptr, micro_64<1>, micro_64<2>, micro_64<3>, micro_64<4>, micro_64<5>, micro_64<6>};
  gemm_panels(a, b, c, rows, k, n, 1, micro);
}

namespace {

// MR rows x 64 columns of C from bf16 A and B, two k at a time per vdpbf16ps (each lane
// multiplies a pair of inputs and adds both products to its fp32 accumulator).
template <int MR>
DDAD_RT_AVX512_BF16 void micro_64_bf16(const std::uint16_t* a, const std::uint16_t* b,
                                                      float* c, int k, int n) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (int q = 0; q < k; q += 2) {
    const std::uint16_t* bq = b + static_cast<std::int64_t>(q) * n;  // row q / 2 of [k/2][n][2]
    const __m512i b0 = _mm512_loadu_si512(bq), b1 = _mm512_loadu_si512(bq + 32);
    const __m512i b2 = _mm512_loadu_si512(bq + 64), b3 = _mm512_loadu_si512(bq + 96);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      std::int32_t pair;
      std::memcpy(&pair, a + static_cast<std::int64_t>(r) * k + q, sizeof pair);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, (__m512bh)b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, (__m512bh)b1);
      acc[r][2] = _mm512_dpbf16_ps(acc[r][2], av, (__m512bh)b2);
      acc[r][3] = _mm512_dpbf16_ps(acc[r][3], av, (__m512bh)b3);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = c + static_cast<std::int64_t>(r) * n;
    _mm512_storeu_ps(cr, acc[r][0]);
    _mm512_storeu_ps(cr + 16, acc[r][1]);
    _mm512_storeu_ps(cr + 32, acc[r][2]);
    _mm512_storeu_ps(cr + 48, acc[r][3]);
  }
}

}  // namespace

DDAD_RT_AVX512_BF16 void gemm_bf16_avx512(const std::uint16_t* a, const std::uint16_t* b, float* c,
                                          int rows, int k, int n) {
  if (n % 64 != 0 || k % 2 != 0) {
    gemm_bf16_generic(a, b, c, rows, k, n);
    return;
  }
  static void (*const micro[7])(const std::uint16_t*, const std::uint16_t*, float*, int, int) = {
      nullptr, micro_64_bf16<1>, micro_64_bf16<2>, micro_64_bf16<3>,
      micro_64_bf16<4>, micro_64_bf16<5>, micro_64_bf16<6>};
  gemm_panels(a, b, c, rows, k, n, 2, micro);  // B: [k/2][n][2], two elements per column
}
#else
void gemm_avx512(const float* a, const float* b, float* c, int rows, int k, int n) {
  gemm_generic(a, b, c, rows, k, n);
}
void gemm_bf16_avx512(const std::uint16_t* a, const std::uint16_t* b, float* c, int rows, int k,
                      int n) {
  gemm_bf16_generic(a, b, c, rows, k, n);
}
#endif

}  // namespace ddad_rt::cpu
