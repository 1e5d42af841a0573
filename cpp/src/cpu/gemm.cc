#include "cpu/gemm.h"

#include <cstdint>

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

#if DDAD_RT_X86
namespace {

// MR rows x 64 columns of C, accumulated over k in 24 registers.
template <int MR>
DDAD_RT_AVX512 DDAD_RT_INLINE void micro_64(const float* a, const float* b, float* c, int k,
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

DDAD_RT_AVX512 void gemm_avx512(const float* a, const float* b, float* c, int rows, int k, int n) {
  if (n % 64 != 0) {
    gemm_generic_impl(a, b, c, rows, k, n);
    return;
  }
  for (int j0 = 0; j0 < n; j0 += 64) {  // a 64-column panel of B stays in L1 over all rows
    int r = 0;
    for (; r + 6 <= rows; r += 6) {
      micro_64<6>(a + static_cast<std::int64_t>(r) * k, b + j0, c + static_cast<std::int64_t>(r) * n + j0, k, n);
    }
    const float* ar = a + static_cast<std::int64_t>(r) * k;
    float* cr = c + static_cast<std::int64_t>(r) * n + j0;
    switch (rows - r) {
      case 5: micro_64<5>(ar, b + j0, cr, k, n); break;
      case 4: micro_64<4>(ar, b + j0, cr, k, n); break;
      case 3: micro_64<3>(ar, b + j0, cr, k, n); break;
      case 2: micro_64<2>(ar, b + j0, cr, k, n); break;
      case 1: micro_64<1>(ar, b + j0, cr, k, n); break;
      default: break;
    }
  }
}
#else
void gemm_avx512(const float* a, const float* b, float* c, int rows, int k, int n) {
  gemm_generic(a, b, c, rows, k, n);
}
#endif

}  // namespace ddad_rt::cpu
