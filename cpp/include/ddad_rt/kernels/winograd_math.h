// Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): a 3x3 convolution computed tile by tile, 4x4 outputs from a 6x6 input window, with
// 36 multiplies per tile and channel pair instead of 144. Per tile and channel pair:
//   Y = A^T [ (G g G^T) . (B^T d B) ] A
// This header holds the per-element math of the three transforms, shared by every backend
// (DDAD_RT_HD marks it callable from CUDA device code too).
#pragma once

#if defined(__CUDACC__)
#define DDAD_RT_HD __host__ __device__
#else
#define DDAD_RT_HD
#endif

namespace ddad_rt::winograd {

constexpr int kM = 4;       //!< outputs per tile side
constexpr int kR = 3;       //!< kernel side
constexpr int kA = 6;       //!< input window side (kM + kR - 1)
constexpr int kA2 = kA * kA;

//! Weight transform of one 3x3 kernel g (row-major) to u = G g G^T, 6x6 row-major.
template <typename T>
DDAD_RT_HD inline void weight_transform(const T* g, T* u) {
  // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
  const T G[6][3] = {{T(1) / 4, 0, 0},
                     {-T(1) / 6, -T(1) / 6, -T(1) / 6},
                     {-T(1) / 6, T(1) / 6, -T(1) / 6},
                     {T(1) / 24, T(1) / 12, T(1) / 6},
                     {T(1) / 24, -T(1) / 12, T(1) / 6},
                     {0, 0, 1}};
  T tmp[6][3];
  for (int i = 0; i < 6; ++i) {
    for (int j = 0; j < 3; ++j) {
      tmp[i][j] = G[i][0] * g[0 * 3 + j] + G[i][1] * g[1 * 3 + j] + G[i][2] * g[2 * 3 + j];
    }
  }
  for (int i = 0; i < 6; ++i) {
    for (int j = 0; j < 6; ++j) {
      u[i * 6 + j] = tmp[i][0] * G[j][0] + tmp[i][1] * G[j][1] + tmp[i][2] * G[j][2];
    }
  }
}

//! One row (or column) of the input transform B^T d: 6 values in, 6 out.
template <typename V>
DDAD_RT_HD inline void input_1d(const V d[6], V out[6]) {
  // B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
  out[0] = V(4) * d[0] - V(5) * d[2] + d[4];
  out[1] = d[3] + d[4] - V(4) * (d[1] + d[2]);
  out[2] = V(4) * (d[1] - d[2]) + d[4] - d[3];
  out[3] = V(2) * (d[3] - d[1]) + d[4] - d[2];
  out[4] = V(2) * (d[1] - d[3]) + d[4] - d[2];
  out[5] = V(4) * d[1] - V(5) * d[3] + d[5];
}

//! One row (or column) of the output transform A^T m: 6 values in, 4 out.
template <typename V>
DDAD_RT_HD inline void output_1d(const V m[6], V out[4]) {
  // A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
  const V s12 = m[1] + m[2], d12 = m[1] - m[2];
  const V s34 = m[3] + m[4], d34 = m[3] - m[4];
  out[0] = m[0] + s12 + s34;
  out[1] = d12 + V(2) * d34;
  out[2] = s12 + V(4) * s34;
  out[3] = d12 + V(8) * d34 + m[5];
}

}  // namespace ddad_rt::winograd
