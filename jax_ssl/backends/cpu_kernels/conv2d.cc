// 2-D convolution kernels for XLA:CPU through the XLA FFI (NHWC activations, HWIO kernels,
// float32), used by jax_ssl/backends/cpu_kernels/conv.py. Built on first use by build.py there.
//
// Each kernel works on groups of images copied into a zero-padded scratch buffer (in cache),
// so the inner loops are a VALID convolution with stride s and no bounds checks:
//   forward:        y[n, oy, ox, o]   = sum_{ky, kx, i} x[n, s oy + ky, s ox + kx, i] w[ky, kx, i, o]
//   input gradient: dx[n, s oy + ky, s ox + kx, i] += sum_o g[n, oy, ox, o] w[ky, kx, i, o]
//                   (accumulated in the padded scratch buffer, then cropped into dx)
//   weight grad.:   dw[ky, kx, i, o]  = sum_{n, oy, ox} x[n, s oy + ky, s ox + kx, i] g[n, oy, ox, o]
// The vector dimension is the output channels (forward, weight gradient) or the input
// channels (input gradient): it must be a multiple of 16 (the Python side checks). Inner loops
// keep a block of pixels x channel vectors in registers (GCC vector extensions, so the same
// code uses AVX-512, AVX2 or SSE, whatever -march=native gives). Work is split over XLA's
// intra-op thread pool: forward by pixels, input gradient by images (no two threads write the
// same pixel), weight gradient by pixels into per-chunk partial sums added in a fixed order
// (the result does not depend on thread timing).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kLanes = 16;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

inline Vec Load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(Vec));
  return v;
}
inline void Store(float* p, Vec v) { std::memcpy(p, &v, sizeof(Vec)); }

// Runs body(chunk) for chunk in [0, chunks) on the caller and the pool's threads. Chunks are
// claimed from a counter, so a task that starts late finds none left and returns; the caller
// waits only for chunks already being run.
struct ParallelState {
  std::function<void(int64_t)> body;
  int64_t chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  void Work() {
    for (int64_t c; (c = next.fetch_add(1)) < chunks;) {
      body(c);
      done.fetch_add(1);
    }
  }
};

void ParallelFor(ffi::ThreadPool& pool, int64_t chunks, std::function<void(int64_t)> body) {
  if (chunks <= 0) return;
  int64_t helpers = std::min<int64_t>(pool.num_threads(), chunks) - 1;
  if (helpers <= 0) {
    for (int64_t c = 0; c < chunks; ++c) body(c);
    return;
  }
  auto state = std::make_shared<ParallelState>();
  state->body = std::move(body);
  state->chunks = chunks;
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([state] { state->Work(); });
  state->Work();
  while (state->done.load() < chunks) std::this_thread::yield();
}

struct Geometry {
  int64_t n, h, w, ci, kh, kw, co, stride, pt, pl;  // unpadded input, kernel, padding
  int64_t hp, wp, oh, ow;                           // padded input, output
  // Start of the window of output pixel `pixel` (of a group: image-major) in the group's
  // padded buffer.
  int64_t x_offset(int64_t pixel) const {
    const int64_t b = pixel / (oh * ow), r = pixel % (oh * ow);
    return ((b * hp + (r / ow) * stride) * wp + (r % ow) * stride) * ci;
  }
  int64_t padded_image() const { return hp * wp * ci; }
};

Geometry MakeGeometry(int64_t n, int64_t h, int64_t w, int64_t ci, int64_t kh, int64_t kw,
                      int64_t co, int64_t stride, int64_t pt, int64_t pb, int64_t pl,
                      int64_t pr) {
  Geometry g{n, h, w, ci, kh, kw, co, stride, pt, pl};
  g.hp = h + pt + pb;
  g.wp = w + pl + pr;
  g.oh = (g.hp - kh) / stride + 1;
  g.ow = (g.wp - kw) / stride + 1;
  return g;
}

// Images per group: enough pixels per group for the register blocks and tiles, a padded
// buffer that stays in the L2 cache.
int64_t GroupImages(const Geometry& g, int64_t pixels) {
  const int64_t by_pixels = (pixels + g.oh * g.ow - 1) / (g.oh * g.ow);
  const int64_t by_bytes = std::max<int64_t>(1, (512 * 1024) / (4 * g.padded_image()));
  return std::max<int64_t>(1, std::min({by_pixels, by_bytes, g.n}));
}

// Images [b0, b0 + count) of x [n, h, w, ci] into buf [count, hp, wp, ci], zero-padded.
void PadImages(const Geometry& g, const float* x, int64_t b0, int64_t count, float* buf) {
  std::memset(buf, 0, sizeof(float) * count * g.padded_image());
  const int64_t row = g.w * g.ci;
  for (int64_t b = 0; b < count; ++b)
    for (int64_t y = 0; y < g.h; ++y)
      std::memcpy(buf + ((b * g.hp + y + g.pt) * g.wp + g.pl) * g.ci,
                  x + ((b0 + b) * g.h + y) * row, sizeof(float) * row);
}

// Forward of P pixels x V output-channel vectors in registers over the taps [tap0, tap1)
// (tap = ky * kw + kx): the first tap starts from zero, later ones add to y. PS == 0: pixel
// p's window starts at x_offsets[p] (a pointer register per pixel); PS > 0: the P pixels lie
// in one output row, PS floats apart (stride x input channels, known at compile time), so one
// base register addresses them all.
template <int P, int V, int PS>
void ForwardBlock(const Geometry& g, const float* __restrict x, const float* __restrict w,
                  float* __restrict y, const int64_t* x_offsets, int64_t o0, int64_t tap0,
                  int64_t tap1) {
  Vec acc[P][V];
  const int64_t ci = g.ci, co = g.co;
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 32
    for (int v = 0; v < V; ++v) acc[p][v] = tap0 == 0 ? Vec{} : Load(y + p * co + o0 + v * kLanes);
  for (int64_t tap = tap0; tap < tap1; ++tap) {
    const int64_t shift = ((tap / g.kw) * g.wp + tap % g.kw) * ci;
    const float* xs[P];  // PS == 0 only
    const float* x0 = x + x_offsets[0] + shift;
    if constexpr (PS == 0) {
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) xs[p] = x + x_offsets[p] + shift;
    }
    const float* wt = w + tap * ci * co + o0;
    for (int64_t i = 0; i < ci; ++i) {
      Vec wv[V];
#pragma GCC unroll 32
      for (int v = 0; v < V; ++v) wv[v] = Load(wt + i * co + v * kLanes);
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) {
        float xv;
        if constexpr (PS == 0) {
          xv = xs[p][i];
        } else {
          xv = x0[p * PS + i];
        }
#pragma GCC unroll 32
        for (int v = 0; v < V; ++v) acc[p][v] += xv * wv[v];
      }
    }
  }
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 32
    for (int v = 0; v < V; ++v) Store(y + p * co + o0 + v * kLanes, acc[p][v]);
}

// Forward of a group's pixels [0, pixels) from its padded buffer x into y (the group's first
// output pixel): blocks of P pixels across rows and images, one tap at a time over the whole
// group (the tap's weights, ci x V vectors, stay in cache).
template <int P, int V>
void ForwardGroup(const Geometry& g, const float* x, const float* w, float* y, int64_t pixels) {
  std::vector<int64_t> offsets(pixels);
  for (int64_t p = 0; p < pixels; ++p) offsets[p] = g.x_offset(p);
  for (int64_t o0 = 0; o0 < g.co; o0 += V * kLanes) {
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        int64_t pixel = 0;
        const int64_t tap = ky * g.kw + kx;
        for (; pixel + P <= pixels; pixel += P)
          ForwardBlock<P, V, 0>(g, x, w, y + pixel * g.co, &offsets[pixel], o0, tap, tap + 1);
        for (; pixel < pixels; ++pixel)
          ForwardBlock<1, V, 0>(g, x, w, y + pixel * g.co, &offsets[pixel], o0, tap, tap + 1);
      }
    }
  }
}

// The same with the row kernel: blocks of P pixels within each output row, the rest of the
// row one pixel at a time.
template <int P, int V, int PS>
void ForwardGroupRows(const Geometry& g, const float* x, const float* w, float* y,
                      int64_t pixels) {
  const int64_t taps = g.kh * g.kw;
  for (int64_t row = 0; row * g.ow < pixels; ++row) {
    const int64_t first = row * g.ow;
    for (int64_t o0 = 0; o0 < g.co; o0 += V * kLanes) {
      for (int64_t p = 0; p < g.ow;) {
        const int64_t offset = g.x_offset(first + p);
        if (p + P <= g.ow) {
          ForwardBlock<P, V, PS>(g, x, w, y + (first + p) * g.co, &offset, o0, 0, taps);
          p += P;
        } else {
          ForwardBlock<1, V, 0>(g, x, w, y + (first + p) * g.co, &offset, o0, 0, taps);
          p += 1;
        }
      }
    }
  }
}

void ForwardGroupAny(const Geometry& g, const float* x, const float* w, float* y,
                     int64_t pixels) {
  const int64_t pixel_stride = g.stride * g.ci;
#ifdef __AVX512F__
  if (g.ow >= 14 && g.co == kLanes && pixel_stride == 1)
    return ForwardGroupRows<14, 1, 1>(g, x, w, y, pixels);
  if (g.ow >= 14 && g.co == kLanes && pixel_stride == 16)
    return ForwardGroupRows<14, 1, 16>(g, x, w, y, pixels);
  if (g.ow >= 14 && g.co % (2 * kLanes) == 0 && g.co < 4 * kLanes && pixel_stride == 32)
    return ForwardGroupRows<14, 2, 32>(g, x, w, y, pixels);
#endif
  if (g.co % (4 * kLanes) == 0) return ForwardGroup<6, 4>(g, x, w, y, pixels);
  if (g.co % (2 * kLanes) == 0) return ForwardGroup<8, 2>(g, x, w, y, pixels);
  return ForwardGroup<8, 1>(g, x, w, y, pixels);
}

// Input gradient: P pixels of g, V input-channel vectors of dx (a group's padded buffer); wt
// is w transposed to [kh, kw, co, ci]. The pixels of one block are distinct, so at one tap
// they write distinct dx locations.
template <int P, int V>
void InputGradBlock(const Geometry& g, const float* __restrict gy, const float* __restrict wt,
                    float* __restrict dx, const int64_t* x_offsets, int64_t i0) {
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const int64_t tap = (ky * g.wp + kx) * g.ci + i0;
      const float* wk = wt + (ky * g.kw + kx) * g.co * g.ci + i0;
      Vec acc[P][V];
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 32
        for (int v = 0; v < V; ++v) acc[p][v] = Load(dx + x_offsets[p] + tap + v * kLanes);
      for (int64_t o = 0; o < g.co; ++o) {
        Vec wv[V];
#pragma GCC unroll 32
        for (int v = 0; v < V; ++v) wv[v] = Load(wk + o * g.ci + v * kLanes);
#pragma GCC unroll 32
        for (int p = 0; p < P; ++p) {
          const float gv = gy[p * g.co + o];
#pragma GCC unroll 32
          for (int v = 0; v < V; ++v) acc[p][v] += gv * wv[v];
        }
      }
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 32
        for (int v = 0; v < V; ++v) Store(dx + x_offsets[p] + tap + v * kLanes, acc[p][v]);
    }
  }
}

template <int P, int V>
void InputGradGroup(const Geometry& g, const float* gy, const float* wt, float* dx,
                    int64_t pixels) {
  int64_t offsets[P];
  for (int64_t i0 = 0; i0 < g.ci; i0 += V * kLanes) {
    int64_t pixel = 0;
    for (; pixel + P <= pixels; pixel += P) {
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) offsets[p] = g.x_offset(pixel + p);
      InputGradBlock<P, V>(g, gy + pixel * g.co, wt, dx, offsets, i0);
    }
    for (; pixel < pixels; ++pixel) {
      offsets[0] = g.x_offset(pixel);
      InputGradBlock<1, V>(g, gy + pixel * g.co, wt, dx, offsets, i0);
    }
  }
}

// Weight gradient of a group's pixels [0, pixels): I input channels x V output-channel
// vectors in registers, accumulated into `dw` ([kh, kw, ci, co], this chunk's partial sum).
// The output-channel block is the outer loop, so its panel of g (pixels x V vectors) is
// reused from cache by every tap and input-channel block.
template <int I, int V>
void WeightGradBlock(const Geometry& g, const float* __restrict x, const float* __restrict gy,
                     float* __restrict dwt, int64_t pixels, const int64_t* offsets, int64_t tap,
                     int64_t i0, int64_t o0) {
          Vec acc[I][V];
#pragma GCC unroll 32
          for (int i = 0; i < I; ++i)
#pragma GCC unroll 32
            for (int v = 0; v < V; ++v) acc[i][v] = Load(dwt + (i0 + i) * g.co + o0 + v * kLanes);
          for (int64_t p = 0; p < pixels; ++p) {
            Vec gv[V];
#pragma GCC unroll 32
            for (int v = 0; v < V; ++v) gv[v] = Load(gy + p * g.co + o0 + v * kLanes);
            const float* xp = x + offsets[p] + tap + i0;
#pragma GCC unroll 32
            for (int i = 0; i < I; ++i) {
              const float xv = xp[i];
#pragma GCC unroll 32
              for (int v = 0; v < V; ++v) acc[i][v] += xv * gv[v];
            }
          }
#pragma GCC unroll 32
          for (int i = 0; i < I; ++i)
#pragma GCC unroll 32
            for (int v = 0; v < V; ++v) Store(dwt + (i0 + i) * g.co + o0 + v * kLanes, acc[i][v]);
}

// Blocks of I input channels, the last ones (ci not a multiple of I) two or one at a time.
template <int I, int V>
void WeightGradGroup(const Geometry& g, const float* __restrict x, const float* __restrict gy,
                     float* __restrict dw, int64_t pixels, int64_t* offsets) {
  for (int64_t p = 0; p < pixels; ++p) offsets[p] = g.x_offset(p);
  for (int64_t o0 = 0; o0 < g.co; o0 += V * kLanes) {
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t tap = (ky * g.wp + kx) * g.ci;
        float* dwt = dw + (ky * g.kw + kx) * g.ci * g.co;
        int64_t i0 = 0;
        for (; i0 + I <= g.ci; i0 += I)
          WeightGradBlock<I, V>(g, x, gy, dwt, pixels, offsets, tap, i0, o0);
        for (; i0 + 2 <= g.ci; i0 += 2)
          WeightGradBlock<2, V>(g, x, gy, dwt, pixels, offsets, tap, i0, o0);
        for (; i0 < g.ci; ++i0)
          WeightGradBlock<1, V>(g, x, gy, dwt, pixels, offsets, tap, i0, o0);
      }
    }
  }
}

// Chunks of images for the pool: a few per thread (load balance), each a whole number of
// groups; at least one image each.
int64_t ImageChunks(ffi::ThreadPool& pool, const Geometry& g, int64_t group) {
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t groups = (g.n + group - 1) / group;
  return std::max<int64_t>(1, std::min(groups, threads * 4));
}

// Runs body(b0, count, scratch) over groups of `group` images, chunked over the pool.
template <typename Body>
void ForEachGroup(ffi::ThreadPool& pool, const Geometry& g, int64_t group, int64_t chunks,
                  Body body) {
  const int64_t groups = (g.n + group - 1) / group;
  ParallelFor(pool, chunks, [&](int64_t c) {
    std::vector<float> scratch(group * g.padded_image());
    for (int64_t k = groups * c / chunks; k < groups * (c + 1) / chunks; ++k) {
      const int64_t b0 = k * group;
      body(c, b0, std::min(group, g.n - b0), scratch.data());
    }
  });
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                   int64_t stride, int64_t pad_top, int64_t pad_bottom, int64_t pad_left,
                   int64_t pad_right, ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions(), wd = w.dimensions();
  const Geometry g = MakeGeometry(xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], stride,
                                  pad_top, pad_bottom, pad_left, pad_right);
  const int64_t group = GroupImages(g, 256);
  const float* xs = x.typed_data();
  const float* ws = w.typed_data();
  float* ys = y->typed_data();
  ForEachGroup(pool, g, group, ImageChunks(pool, g, group),
               [&](int64_t, int64_t b0, int64_t count, float* buf) {
                 PadImages(g, xs, b0, count, buf);
                 ForwardGroupAny(g, buf, ws, ys + b0 * g.oh * g.ow * g.co,
                                 count * g.oh * g.ow);
               });
  return ffi::Error::Success();
}

ffi::Error InputGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> gy, ffi::Buffer<ffi::F32> w,
                     int64_t stride, int64_t pad_top, int64_t pad_bottom, int64_t pad_left,
                     int64_t pad_right, ffi::ResultBuffer<ffi::F32> dx) {
  const auto xd = dx->dimensions(), wd = w.dimensions();
  const Geometry g = MakeGeometry(xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], stride,
                                  pad_top, pad_bottom, pad_left, pad_right);
  // w [kh, kw, ci, co] -> wt [kh, kw, co, ci]
  std::vector<float> wt(w.element_count());
  const float* ws = w.typed_data();
  for (int64_t k = 0; k < g.kh * g.kw; ++k)
    for (int64_t i = 0; i < g.ci; ++i)
      for (int64_t o = 0; o < g.co; ++o) wt[(k * g.co + o) * g.ci + i] = ws[(k * g.ci + i) * g.co + o];
  const int64_t group = GroupImages(g, 256);
  const float* gs = gy.typed_data();
  float* dxs = dx->typed_data();
  ForEachGroup(pool, g, group, ImageChunks(pool, g, group),
               [&](int64_t, int64_t b0, int64_t count, float* buf) {
                 std::memset(buf, 0, sizeof(float) * count * g.padded_image());
                 const float* gb = gs + b0 * g.oh * g.ow * g.co;
                 if (g.ci % (2 * kLanes) == 0) {
                   InputGradGroup<6, 2>(g, gb, wt.data(), buf, count * g.oh * g.ow);
                 } else {
                   InputGradGroup<8, 1>(g, gb, wt.data(), buf, count * g.oh * g.ow);
                 }
                 const int64_t row = g.w * g.ci;
                 for (int64_t b = 0; b < count; ++b)
                   for (int64_t r = 0; r < g.h; ++r)
                     std::memcpy(dxs + ((b0 + b) * g.h + r) * row,
                                 buf + ((b * g.hp + r + g.pt) * g.wp + g.pl) * g.ci,
                                 sizeof(float) * row);
               });
  return ffi::Error::Success();
}

ffi::Error WeightGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> gy,
                      int64_t kernel_h, int64_t kernel_w, int64_t stride, int64_t pad_top,
                      int64_t pad_bottom, int64_t pad_left, int64_t pad_right,
                      ffi::ResultBuffer<ffi::F32> dw) {
  const auto xd = x.dimensions();
  const int64_t co = gy.dimensions()[3];
  const Geometry g = MakeGeometry(xd[0], xd[1], xd[2], xd[3], kernel_h, kernel_w, co, stride,
                                  pad_top, pad_bottom, pad_left, pad_right);
  const int64_t size = g.kh * g.kw * g.ci * g.co;
  // Longer groups than the other kernels': the partial sums are loaded and stored once per
  // group and weight-block, so more pixels amortise them.
  const int64_t group = GroupImages(g, 1024);
  // One partial sum per chunk, as many chunks as threads, summed in chunk order: the result
  // does not depend on which thread ran which chunk.
  const int64_t chunks = std::min(ImageChunks(pool, g, group),
                                  std::max<int64_t>(1, pool.num_threads()));
  std::vector<float> partial(chunks * size, 0.0f);
  const float* xs = x.typed_data();
  const float* gs = gy.typed_data();
  ForEachGroup(pool, g, group, chunks,
               [&](int64_t c, int64_t b0, int64_t count, float* buf) {
                 PadImages(g, xs, b0, count, buf);
                 const int64_t pixels = count * g.oh * g.ow;
                 std::vector<int64_t> offsets(pixels);
                 const float* gb = gs + b0 * g.oh * g.ow * g.co;
                 float* out = partial.data() + c * size;
                 if (g.co % (4 * kLanes) == 0) {
                   WeightGradGroup<6, 4>(g, buf, gb, out, pixels, offsets.data());
                 } else if (g.co % (2 * kLanes) == 0) {
                   WeightGradGroup<8, 2>(g, buf, gb, out, pixels, offsets.data());
                 } else if (g.ci % 16 == 0) {
                   WeightGradGroup<16, 1>(g, buf, gb, out, pixels, offsets.data());
                 } else {
                   WeightGradGroup<12, 1>(g, buf, gb, out, pixels, offsets.data());
                 }
               });
  float* out = dw->typed_data();
  std::memcpy(out, partial.data(), sizeof(float) * size);
  for (int64_t c = 1; c < chunks; ++c)
    for (int64_t k = 0; k < size; ++k) out[k] += partial[c * size + k];
  return ffi::Error::Success();
}

}  // namespace

#define JAX_SSL_PADDING_ATTRS                 \
  .Attr<int64_t>("stride")                    \
      .Attr<int64_t>("pad_top")               \
      .Attr<int64_t>("pad_bottom")            \
      .Attr<int64_t>("pad_left")              \
      .Attr<int64_t>("pad_right")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxSslConvForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>() JAX_SSL_PADDING_ATTRS
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxSslConvInputGrad, InputGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>() JAX_SSL_PADDING_ATTRS
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxSslConvWeightGrad, WeightGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("kernel_h")
                                  .Attr<int64_t>("kernel_w") JAX_SSL_PADDING_ATTRS
                                  .Ret<ffi::Buffer<ffi::F32>>());
