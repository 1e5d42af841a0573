// The refinement network's weights: shape checks and packing for the CPU kernels.
#include <stdexcept>
#include <string>

#include "cpu/lane_vectors.h"
#include "cpu/refine_layout.h"

namespace ddad_rt {

void RefineNetWeights::validate() const {
  const auto check = [](const Conv3x3& c, const char* name) {
    if (c.cin < 1 || c.cout < 1 || c.w.size() != static_cast<size_t>(c.cout) * c.cin * 9 ||
        c.b.size() != static_cast<size_t>(c.cout)) {
      throw std::invalid_argument(std::string("refinement network: ") + name +
                                  " has inconsistent weight shapes");
    }
  };
  check(conv1, "conv1");
  check(conv2, "conv2");
  check(conv3, "conv3");
  if (conv2.cin != conv1.cout || conv2.cout != conv2.cin || conv3.cin != conv2.cout ||
      conv3.cout != 2) {
    throw std::invalid_argument("refinement network: expected channels C -> M -> M -> 2");
  }
  if (conv1.cout % 16 != 0) {
    throw std::invalid_argument("refinement network: the hidden width must be a multiple of 16");
  }
}

namespace cpu {

Packed pack(const RefineNetWeights& wt) {
  Packed p;
  p.cin = wt.conv1.cin;
  p.mid = wt.conv1.cout;
  const int c = p.cin, m = p.mid;
  p.w1.resize(static_cast<size_t>(c) * 9 * m);
  for (int o = 0; o < m; ++o) {
    for (int i = 0; i < c; ++i) {
      for (int t = 0; t < 9; ++t) p.w1[(i * 9 + t) * m + o] = wt.conv1.w[(o * c + i) * 9 + t];
    }
  }
  p.b1 = wt.conv1.b;
  p.u2.resize(static_cast<size_t>(wg::kA2) * m * m);
  for (int o = 0; o < m; ++o) {
    for (int i = 0; i < m; ++i) {
      double g[9], u[wg::kA2];  // transform in double: the fp32 weights carry its rounding only once
      for (int t = 0; t < 9; ++t) g[t] = wt.conv2.w[(static_cast<size_t>(o) * m + i) * 9 + t];
      wg::weight_transform(g, u);
      for (int e = 0; e < wg::kA2; ++e) {
        p.u2[(static_cast<size_t>(e) * m + i) * m + o] = static_cast<float>(u[e]);
      }
    }
  }
  p.b2 = wt.conv2.b;
  p.w3.resize(2 * 9 * static_cast<size_t>(m));
  for (int o = 0; o < 2; ++o) {
    for (int i = 0; i < m; ++i) {
      for (int t = 0; t < 9; ++t) p.w3[(o * 9 + t) * m + i] = wt.conv3.w[(o * m + i) * 9 + t];
    }
    p.b3[o] = wt.conv3.b[o];
  }
  return p;
}

void pack_bf16(Packed& p) {
  const int m = p.mid;
  p.u2_bf16.resize(p.u2.size());
  for (int e = 0; e < wg::kA2; ++e) {
    for (int i = 0; i < m; ++i) {
      for (int o = 0; o < m; ++o) {
        const size_t src = (static_cast<size_t>(e) * m + i) * m + o;
        const size_t dst = ((static_cast<size_t>(e) * (m / 2) + i / 2) * m + o) * 2 + i % 2;
        p.u2_bf16[dst] = to_bf16(p.u2[src]);
      }
    }
  }
}

}  // namespace cpu
}  // namespace ddad_rt
