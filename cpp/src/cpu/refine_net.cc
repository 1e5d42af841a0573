// The refinement network on the CPU (see ddad_rt/kernels/refine_net.h).
//
// Layout: the input maps are NCHW (as the discrepancy kernel writes them); the two hidden
// activations are channels-last with a zero border of one pixel, padded to whole 4x4 tiles
// ([Hp, Wp, M], Hp = 4 * ceil(H / 4) + 2), so every 3x3 window and every 6x6 Winograd window
// reads memory without bounds checks. The M->M convolution runs block by block of tiles:
// input transform -> 36 GEMMs [tiles x M] x [M x M] -> output transform + bias + ReLU, so a
// block's transformed data stays in L2. Kernels are written once and compiled twice, for
// AVX-512 and for any x86-64 / other CPU, and chosen at run time.
#include "ddad_rt/kernels/refine_net.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "cpu/cpu_count.h"
#include "cpu/refine_kernels.h"
#include "cpu/refine_layers.h"
#include "cpu/refine_layout.h"
#include "cpu/spare_pool.h"
#include "cpu/thread_pool.h"

namespace ddad_rt {
namespace cpu {
namespace {

// Buffers of one run: hidden activations per image slot, Winograd blocks per thread.
struct Workspace {
  Geometry g{};
  int mid = 0;
  std::vector<std::vector<float>> h1, h2;  // per image slot: [hp * wp * mid], zero border
  std::vector<std::vector<float>> pm;      // per image slot: padded input maps [cin * hp * wp]
  std::vector<std::vector<float>> v, mm;   // per thread: [36 * kTileBlock * mid]
  std::vector<std::vector<std::uint16_t>> vb;  // per thread, bf16 network: v in bf16

  void prepare(const Geometry& geo, int cin, int m, int slots, int threads, bool bf16) {
    if (geo.h != g.h || geo.w != g.w || m != mid) {
      h1.clear();
      h2.clear();
      g = geo;
      mid = m;
    }
    const size_t act = static_cast<size_t>(g.pixels_padded()) * m;
    while (static_cast<int>(h1.size()) < slots) {
      h1.emplace_back(act, 0.0f);
      h2.emplace_back(act, 0.0f);
    }
    pm.resize(h1.size());
    for (auto& buf : pm) buf.resize(static_cast<size_t>(g.pixels_padded()) * cin);
    const size_t blk = static_cast<size_t>(wg::kA2) * (bf16 ? kTileBlockBf16 : kTileBlock) * m;
    while (static_cast<int>(v.size()) < threads) {
      v.emplace_back(bf16 ? 0 : blk);  // the bf16 network's transform writes vb instead
      mm.emplace_back(blk);
      vb.emplace_back(bf16 ? blk : 0);
    }
  }
};

}  // namespace

struct RefineNet::Impl {
  Packed p;
  Kernels k;
  std::shared_ptr<ThreadPool> pool;
  SparePool<Workspace> workspaces;  // of finished runs, for reuse

  int tile_block() const { return k.bf16() ? kTileBlockBf16 : kTileBlock; }

  // The M->M convolution of tiles [t0, t0 + nt) of one image; ws's buffers of thread t.
  void conv2_block(const Geometry& g, const float* h1, float* h2, std::int64_t t0, int nt,
                   Workspace& ws, int t) const {
    const int m = p.mid;
    float* mm = ws.mm[t].data();
    if (k.bf16()) {
      std::uint16_t* v = ws.vb[t].data();
      k.input_transform_bf16(p, g, h1, t0, nt, v);
      for (int e = 0; e < wg::kA2; ++e) {
        const std::int64_t off = static_cast<std::int64_t>(e) * nt * m;
        k.gemm_bf16(v + off, p.u2_bf16.data() + static_cast<std::int64_t>(e) * m * m, mm + off, nt, m, m);
      }
    } else {
      float* v = ws.v[t].data();
      k.input_transform(p, g, h1, t0, nt, v);
      for (int e = 0; e < wg::kA2; ++e) {
        const std::int64_t off = static_cast<std::int64_t>(e) * nt * m;
        k.gemm(v + off, p.u2.data() + static_cast<std::int64_t>(e) * m * m, mm + off, nt, m, m);
      }
    }
    k.output_transform(p, g, mm, t0, nt, h2);
  }

  // One whole image on thread t, in image slot t of ws.
  void image(const Geometry& g, const float* maps, float* logits, Workspace& ws, int t) const {
    float* h1 = ws.h1[t].data();
    pad_maps(p, g, maps, ws.pm[t].data());
    k.conv1_rows(p, g, ws.pm[t].data(), h1, 0, g.h);
    const int block = tile_block();
    for (std::int64_t t0 = 0; t0 < g.tiles(); t0 += block) {
      conv2_block(g, h1, ws.h2[t].data(), t0,
                  static_cast<int>(std::min<std::int64_t>(block, g.tiles() - t0)), ws, t);
    }
    k.conv3_rows(p, g, ws.h2[t].data(), logits, 0, g.h);
  }
};

RefineNet::RefineNet(RefineNetWeights weights, int threads, const std::string& isa,
                     const std::string& precision)
    : RefineNet(std::move(weights), std::make_shared<ThreadPool>(resolve_threads(threads)), isa,
                precision) {}

RefineNet::RefineNet(RefineNetWeights weights, std::shared_ptr<ThreadPool> pool,
                     const std::string& isa, const std::string& precision)
    : impl_(std::make_unique<Impl>()) {
  weights.validate();
  impl_->p = pack(weights);
  if (isa != "auto" && isa != "generic") {
    throw std::invalid_argument("RefineNet isa must be 'auto' or 'generic', got '" + isa + "'");
  }
  if (precision != "fp32" && precision != "bf16") {
    throw std::invalid_argument("RefineNet precision must be 'fp32' or 'bf16', got '" + precision + "'");
  }
  if (precision == "bf16") {
    impl_->k = bf16_kernels(isa);
    pack_bf16(impl_->p);
  } else {
    impl_->k = isa == "generic" ? generic_kernels() : choose_kernels(impl_->p.mid);
  }
  if (!pool) throw std::invalid_argument("RefineNet needs a thread pool");
  impl_->pool = std::move(pool);
}

RefineNet::~RefineNet() = default;

std::string RefineNet::isa() { return choose_kernels(kLanes).isa; }

bool RefineNet::has_native_bf16() { return cpu_has_avx512_bf16(); }

std::string RefineNet::kernels() const { return impl_->k.isa; }

void RefineNet::run(const float* maps, std::int64_t n, std::int64_t h, std::int64_t w,
                    float* logits) const {
  Impl& s = *impl_;
  const Geometry g = geometry(h, w);
  const std::int64_t in_stride = static_cast<std::int64_t>(s.p.cin) * h * w;
  const std::int64_t out_stride = 2 * h * w;
  // The workspace goes back to the spare list however run() ends.
  struct Lease {
    Impl& s;
    std::unique_ptr<Workspace> ws;
    ~Lease() { s.workspaces.give_back(std::move(ws)); }
  } lease{s, s.workspaces.take()};
  Workspace& ws = *lease.ws;
  // A concurrent caller that finds the pool busy runs on its own thread.
  std::unique_lock<std::mutex> claim = s.pool->try_claim();
  const bool bf16 = s.k.bf16();
  if (!claim.owns_lock()) {
    ws.prepare(g, s.p.cin, s.p.mid, 1, 1, bf16);
    for (std::int64_t i = 0; i < n; ++i) s.image(g, maps + i * in_stride, logits + i * out_stride, ws, 0);
    return;
  }
  ThreadPool& pool = *s.pool;
  const int threads = pool.size();
  if (n >= threads) {
    // Whole images per thread: no synchronisation inside an image.
    ws.prepare(g, s.p.cin, s.p.mid, threads, threads, bf16);
    pool.parallel_for(n, [&](std::int64_t i, int t) {
      s.image(g, maps + i * in_stride, logits + i * out_stride, ws, t);
    });
    return;
  }
  // Fewer images than threads (e.g. one image, two threads): split each layer.
  ws.prepare(g, s.p.cin, s.p.mid, 1, threads, bf16);
  float* pm = ws.pm[0].data();
  float* h1 = ws.h1[0].data();
  float* h2 = ws.h2[0].data();
  const std::int64_t row_chunks = std::min<std::int64_t>(g.h, 4 * threads);
  const int block = s.tile_block();
  const std::int64_t blocks = (g.tiles() + block - 1) / block;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* in = maps + i * in_stride;
    float* out = logits + i * out_stride;
    pad_maps(s.p, g, in, pm);
    pool.parallel_for(row_chunks, [&](std::int64_t r, int) {
      s.k.conv1_rows(s.p, g, pm, h1, r * g.h / row_chunks, (r + 1) * g.h / row_chunks);
    });
    pool.parallel_for(blocks, [&](std::int64_t b, int t) {
      const std::int64_t t0 = b * block;
      s.conv2_block(g, h1, h2, t0, static_cast<int>(std::min<std::int64_t>(block, g.tiles() - t0)), ws, t);
    });
    pool.parallel_for(row_chunks, [&](std::int64_t r, int) {
      s.k.conv3_rows(s.p, g, h2, out, r * g.h / row_chunks, (r + 1) * g.h / row_chunks);
    });
  }
}

}  // namespace cpu
}  // namespace ddad_rt
