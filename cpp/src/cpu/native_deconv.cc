#include "cpu/native_deconv.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cpu/lane_vectors.h"
#include "cpu/refine_kernels.h"
#include "cpu/thread_pool.h"

namespace ddad_rt::cpu {
namespace {

// One image, one output channel: out [2h, 2w] from the zero-bordered input xp [cin, h + 2,
// w + 2]. Each output phase is a plane at the input resolution whose kLanes-wide pieces of a
// row are summed in one register over every channel and tap (4 * cin multiply-adds, one
// load each), then the four planes are interleaved. w must be a multiple of kLanes.
template <typename V>
DDAD_RT_INLINE void one_channel_impl(const float* xp, std::int64_t cin, std::int64_t h, std::int64_t w,
                                     const float* weights, std::int64_t cout, std::int64_t o, float* out,
                                     std::vector<float>& planes) {
  const std::int64_t wp = w + 2, plane_size = (h + 2) * wp;
  planes.resize(static_cast<size_t>(4 * h * w));
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      DeconvTap taps[4];
      deconv_phase_taps(a, b, taps);
      float* plane = planes.data() + (a * 2 + b) * h * w;
      for (std::int64_t i = 0; i < h; ++i) {
        for (std::int64_t j0 = 0; j0 < w; j0 += kLanes) {
          V acc(0.0f);
          for (std::int64_t c = 0; c < cin; ++c) {
            const float* xc = xp + c * plane_size + (i + 1) * wp + 1 + j0;
            const float* wk = weights + (c * cout + o) * 16;
            for (const DeconvTap& t : taps) acc = fma(V::load(xc + t.dy * wp + t.dx), V(wk[t.k]), acc);
          }
          acc.store(plane + i * w + j0);
        }
      }
    }
  }
  for (std::int64_t i = 0; i < h; ++i) {
    for (int a = 0; a < 2; ++a) {
      float* row = out + (2 * i + a) * 2 * w;
      const float* p0 = planes.data() + (a * 2) * h * w + i * w;
      const float* p1 = planes.data() + (a * 2 + 1) * h * w + i * w;
      for (std::int64_t j = 0; j < w; ++j) {
        row[2 * j] = p0[j];
        row[2 * j + 1] = p1[j];
      }
    }
  }
}

// Any width, one multiply-add at a time: the reference form of the same sums (rows narrower
// than or not a multiple of kLanes).
void one_channel_scalar(const float* xp, std::int64_t cin, std::int64_t h, std::int64_t w,
                        const float* weights, std::int64_t cout, std::int64_t o, float* out,
                        std::vector<float>&) {
  const std::int64_t wp = w + 2, plane_size = (h + 2) * wp;
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      DeconvTap taps[4];
      deconv_phase_taps(a, b, taps);
      for (std::int64_t i = 0; i < h; ++i) {
        for (std::int64_t j = 0; j < w; ++j) {
          float acc = 0.0f;
          for (std::int64_t c = 0; c < cin; ++c) {
            const float* xc = xp + c * plane_size + (i + 1) * wp + 1 + j;
            const float* wk = weights + (c * cout + o) * 16;
            for (const DeconvTap& t : taps) acc += xc[t.dy * wp + t.dx] * wk[t.k];
          }
          out[(2 * i + a) * 2 * w + 2 * j + b] = acc;
        }
      }
    }
  }
}

// x [cin, h, w] -> xp [cin, h + 2, w + 2] with a zero border.
void pad(const float* x, std::int64_t cin, std::int64_t h, std::int64_t w, std::vector<float>& xp) {
  const std::int64_t wp = w + 2;
  xp.assign(static_cast<size_t>(cin * (h + 2) * wp), 0.0f);
  for (std::int64_t c = 0; c < cin; ++c) {
    for (std::int64_t i = 0; i < h; ++i) {
      std::copy(x + (c * h + i) * w, x + (c * h + i + 1) * w, xp.data() + (c * (h + 2) + i + 1) * wp + 1);
    }
  }
}

using OneChannel = void (*)(const float*, std::int64_t, std::int64_t, std::int64_t, const float*,
                           std::int64_t, std::int64_t, float*, std::vector<float>&);


// Written once over the lane-vector type, compiled twice as the refiner's kernels are: for
// any CPU and for AVX-512.
void one_channel_generic(const float* xp, std::int64_t cin, std::int64_t h, std::int64_t w,
                         const float* weights, std::int64_t cout, std::int64_t o, float* out,
                         std::vector<float>& planes) {
  one_channel_impl<VecG>(xp, cin, h, w, weights, cout, o, out, planes);
}
#if DDAD_RT_X86
DDAD_RT_AVX512 DDAD_RT_FLATTEN void one_channel_avx512(const float* xp, std::int64_t cin, std::int64_t h,
                                                       std::int64_t w, const float* weights,
                                                       std::int64_t cout, std::int64_t o, float* out,
                                                       std::vector<float>& planes) {
  one_channel_impl<Vec512>(xp, cin, h, w, weights, cout, o, out, planes);
}
#endif

OneChannel choose_one_channel(std::int64_t w) {
  if (w % kLanes != 0) return one_channel_scalar;
#if DDAD_RT_X86
  if (cpu_has_avx512()) return one_channel_avx512;
#endif
  return one_channel_generic;
}

}  // namespace

void transposed_conv4x4s2(const float* x, std::int64_t n, std::int64_t cin, std::int64_t h,
                          std::int64_t w, const float* weights, std::int64_t cout, float* y,
                          ThreadPool* pool) {
  const OneChannel one_channel = choose_one_channel(w);
  struct Buffers {
    std::vector<float> xp, planes;
  };
  const auto image = [&](std::int64_t i, Buffers& buf) {
    pad(x + i * cin * h * w, cin, h, w, buf.xp);
    for (std::int64_t o = 0; o < cout; ++o) {
      one_channel(buf.xp.data(), cin, h, w, weights, cout, o, y + (i * cout + o) * 4 * h * w, buf.planes);
    }
  };
  // A concurrent caller that finds the pool busy (another infer request) runs on its own thread.
  std::unique_lock<std::mutex> claim;
  if (pool != nullptr && n > 1) claim = pool->try_claim();
  if (!claim.owns_lock()) {
    Buffers buf;
    for (std::int64_t i = 0; i < n; ++i) image(i, buf);
    return;
  }
  std::vector<Buffers> buf(static_cast<size_t>(pool->size()));
  pool->parallel_for(n, [&](std::int64_t i, int t) { image(i, buf[static_cast<size_t>(t)]); });
}

NativeTransposedConv::NativeTransposedConv(const ov::Output<ov::Node>& x,
                                           std::shared_ptr<const std::vector<float>> weights,
                                           std::int64_t cin, std::int64_t cout,
                                           std::shared_ptr<ThreadPool> pool)
    : Op({x}), weights_(std::move(weights)), cin_(cin), cout_(cout), pool_(std::move(pool)) {
  if (!weights_ || weights_->size() != static_cast<size_t>(cin_ * cout_ * 16)) {
    throw std::invalid_argument("NativeTransposedConv: weights must be [C_in, C_out, 4, 4]");
  }
  constructor_validate_and_infer_types();
}

void NativeTransposedConv::validate_and_infer_types() {
  const ov::PartialShape& in = get_input_partial_shape(0);
  ov::PartialShape out = ov::PartialShape::dynamic(4);
  if (in.rank().is_static()) {
    NODE_VALIDATION_CHECK(this, in.rank().get_length() == 4, "expects a 4-d input");
    NODE_VALIDATION_CHECK(this, in[1].compatible(cin_), "expects ", cin_, " input channels");
    out = ov::PartialShape{in[0], cout_, in[2] * 2, in[3] * 2};
  }
  set_output_type(0, ov::element::f32, out);
}

std::shared_ptr<ov::Node> NativeTransposedConv::clone_with_new_inputs(const ov::OutputVector& inputs) const {
  check_new_args_count(this, inputs);
  return std::make_shared<NativeTransposedConv>(inputs.at(0), weights_, cin_, cout_, pool_);
}

bool NativeTransposedConv::visit_attributes(ov::AttributeVisitor& visitor) {
  visitor.on_attribute("cin", cin_);
  visitor.on_attribute("cout", cout_);
  return true;
}

bool NativeTransposedConv::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
  const ov::Tensor& x = inputs.at(0);
  if (x.get_element_type() != ov::element::f32) return false;
  const ov::Shape& s = x.get_shape();
  ov::Tensor& y = outputs.at(0);
  y.set_shape({s[0], static_cast<size_t>(cout_), s[2] * 2, s[3] * 2});
  transposed_conv4x4s2(x.data<const float>(), static_cast<std::int64_t>(s[0]), cin_,
                       static_cast<std::int64_t>(s[2]), static_cast<std::int64_t>(s[3]),
                       weights_->data(), cout_, y.data<float>(), pool_.get());
  return true;
}

}  // namespace ddad_rt::cpu
