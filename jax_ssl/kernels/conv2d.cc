// 2-D convolution kernels for XLA:CPU through the XLA FFI (NHWC activations, HWIO kernels,
// float32), used by jax_ssl/kernels/conv.py. Built on first use by jax_ssl/kernels/build.py.
//
// The input arrives already padded (the Python side pads it), so every kernel is a VALID
// convolution with stride s and no bounds checks:
//   forward:        y[n, oy, ox, o]   = sum_{ky, kx, i} x[n, s oy + ky, s ox + kx, i] w[ky, kx, i, o]
//   input gradient: dx[n, s oy + ky, s ox + kx, i] += sum_o g[n, oy, ox, o] w[ky, kx, i, o]
//                   (written into a zeroed padded buffer; the caller crops the padding)
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
  int64_t n, hp, wp, ci, kh, kw, co, oh, ow, stride;
  int64_t x_offset(int64_t pixel) const {  // start of the window of output pixel `pixel`
    int64_t b = pixel / (oh * ow), r = pixel % (oh * ow);
    return ((b * hp + (r / ow) * stride) * wp + (r % ow) * stride) * ci;
  }
};

// Forward: P pixels x V output-channel vectors in registers.
template <int P, int V>
void ForwardBlock(const Geometry& g, const float* __restrict x, const float* __restrict w,
                  float* __restrict y, const int64_t* x_offsets, int64_t pixel0, int64_t o0) {
  Vec acc[P][V];
  #pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
    #pragma GCC unroll 32
    for (int v = 0; v < V; ++v) acc[p][v] = Vec{};
  const int64_t ci = g.ci, co = g.co, row = g.wp * ci;
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const float* xs[P];
      #pragma GCC unroll 32
      for (int p = 0; p < P; ++p) xs[p] = x + x_offsets[p] + ky * row + kx * ci;
      const float* wt = w + (ky * g.kw + kx) * ci * co + o0;
      for (int64_t i = 0; i < ci; ++i) {
        Vec wv[V];
        #pragma GCC unroll 32
        for (int v = 0; v < V; ++v) wv[v] = Load(wt + i * co + v * kLanes);
        #pragma GCC unroll 32
        for (int p = 0; p < P; ++p) {
          const float xv = xs[p][i];
          #pragma GCC unroll 32
          for (int v = 0; v < V; ++v) acc[p][v] += xv * wv[v];
        }
      }
    }
  }
  #pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
    #pragma GCC unroll 32
    for (int v = 0; v < V; ++v) Store(y + (pixel0 + p) * co + o0 + v * kLanes, acc[p][v]);
}

// Pixels per tile: the tile's weights pass (each channel block of them) is reused by every
// pixel of the tile while it sits in cache; channels wide enough get longer tiles.
int64_t TilePixels(const Geometry& g) {
  return std::clamp<int64_t>((256 * 1024) / (4 * (g.ci * g.kh * g.kw + g.co)), 32, 512);
}

// Forward of P pixels of one output row: their windows start PS floats apart (PS = stride x
// input channels, known at compile time), so one base register addresses all of them.
template <int P, int V, int PS>
void ForwardRowBlock(const Geometry& g, const float* __restrict x, const float* __restrict w,
                     float* __restrict y, int64_t x0, int64_t pixel0, int64_t o0) {
  Vec acc[P][V];
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 32
    for (int v = 0; v < V; ++v) acc[p][v] = Vec{};
  const int64_t ci = g.ci, co = g.co, row = g.wp * ci;
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const float* xs = x + x0 + ky * row + kx * ci;
      const float* wt = w + (ky * g.kw + kx) * ci * co + o0;
      for (int64_t i = 0; i < ci; ++i) {
        Vec wv[V];
#pragma GCC unroll 32
        for (int v = 0; v < V; ++v) wv[v] = Load(wt + i * co + v * kLanes);
#pragma GCC unroll 32
        for (int p = 0; p < P; ++p) {
          const float xv = xs[p * PS + i];
#pragma GCC unroll 32
          for (int v = 0; v < V; ++v) acc[p][v] += xv * wv[v];
        }
      }
    }
  }
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 32
    for (int v = 0; v < V; ++v) Store(y + (pixel0 + p) * co + o0 + v * kLanes, acc[p][v]);
}

// Forward over whole output rows [row0, row1) (rows of all images, flattened), in blocks of
// P pixels per row; the rest of each row goes through the generic kernel.
template <int P, int V, int PS>
void ForwardRows(const Geometry& g, const float* x, const float* w, float* y, int64_t row0,
                 int64_t row1) {
  int64_t offsets[8];
  for (int64_t r = row0; r < row1; ++r) {
    const int64_t pixel = r * g.ow;
    for (int64_t o0 = 0; o0 < g.co; o0 += V * kLanes) {
      int64_t p = 0;
      for (; p + P <= g.ow; p += P)
        ForwardRowBlock<P, V, PS>(g, x, w, y, g.x_offset(pixel + p), pixel + p, o0);
      for (; p < g.ow; ++p) {
        offsets[0] = g.x_offset(pixel + p);
        ForwardBlock<1, V>(g, x, w, y, offsets, pixel + p, o0);
      }
    }
  }
}

template <int P, int V>
void ForwardRange(const Geometry& g, const float* x, const float* w, float* y, int64_t begin,
                  int64_t end) {
  const int64_t tile = TilePixels(g);
  std::vector<int64_t> offsets(tile);
  for (int64_t t0 = begin; t0 < end; t0 += tile) {
    const int64_t count = std::min(tile, end - t0);
    for (int64_t p = 0; p < count; ++p) offsets[p] = g.x_offset(t0 + p);
    for (int64_t o0 = 0; o0 < g.co; o0 += V * kLanes) {
      int64_t p = 0;
      for (; p + P <= count; p += P) ForwardBlock<P, V>(g, x, w, y, &offsets[p], t0 + p, o0);
      for (; p < count; ++p) ForwardBlock<1, V>(g, x, w, y, &offsets[p], t0 + p, o0);
    }
  }
}

// Input gradient: P pixels of g, V input-channel vectors of dx; wt is w transposed to
// [kh, kw, co, ci].
template <int P, int V>
void InputGradBlock(const Geometry& g, const float* gy, const float* wt, float* dx,
                    const int64_t* x_offsets, int64_t pixel0, int64_t i0) {
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
          const float gv = gy[(pixel0 + p) * g.co + o];
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

// Input gradient of images [b0, b1): their dx is zeroed, then every output pixel adds its
// taps. The pixels of one block are distinct, so at one tap they write distinct dx locations.
template <int P, int V>
void InputGradImages(const Geometry& g, const float* gy, const float* wt, float* dx, int64_t b0,
                     int64_t b1) {
  const int64_t image = g.hp * g.wp * g.ci;
  std::memset(dx + b0 * image, 0, sizeof(float) * (b1 - b0) * image);
  const int64_t tile = TilePixels(g);
  std::vector<int64_t> offsets(tile);
  const int64_t end = b1 * g.oh * g.ow;
  for (int64_t t0 = b0 * g.oh * g.ow; t0 < end; t0 += tile) {
    const int64_t count = std::min(tile, end - t0);
    for (int64_t p = 0; p < count; ++p) offsets[p] = g.x_offset(t0 + p);
    for (int64_t i0 = 0; i0 < g.ci; i0 += V * kLanes) {
      int64_t p = 0;
      for (; p + P <= count; p += P) InputGradBlock<P, V>(g, gy, wt, dx, &offsets[p], t0 + p, i0);
      for (; p < count; ++p) InputGradBlock<1, V>(g, gy, wt, dx, &offsets[p], t0 + p, i0);
    }
  }
}

// Weight gradient over pixels [begin, end): I input channels x V output-channel vectors in
// registers, accumulated into `dw` (a chunk's partial sum, [kh, kw, ci, co]).
template <int I, int V>
void WeightGradRange(const Geometry& g, const float* x, const float* gy, float* dw,
                     int64_t begin, int64_t end) {
  const int64_t tile = TilePixels(g);
  std::vector<int64_t> offsets(tile);
  for (int64_t t0 = begin; t0 < end; t0 += tile) {
    const int64_t count = std::min(tile, end - t0);
    for (int64_t p = 0; p < count; ++p) offsets[p] = g.x_offset(t0 + p);
    const float* gt = gy + t0 * g.co;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t tap = (ky * g.wp + kx) * g.ci;
        float* dwt = dw + (ky * g.kw + kx) * g.ci * g.co;
        for (int64_t i0 = 0; i0 + I <= g.ci; i0 += I) {
          for (int64_t o0 = 0; o0 < g.co; o0 += V * kLanes) {
            Vec acc[I][V];
            #pragma GCC unroll 32
            for (int i = 0; i < I; ++i)
              #pragma GCC unroll 32
              for (int v = 0; v < V; ++v) acc[i][v] = Load(dwt + (i0 + i) * g.co + o0 + v * kLanes);
            for (int64_t p = 0; p < count; ++p) {
              Vec gv[V];
              #pragma GCC unroll 32
              for (int v = 0; v < V; ++v) gv[v] = Load(gt + p * g.co + o0 + v * kLanes);
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
        }
      }
    }
  }
}

Geometry MakeGeometry(ffi::Span<const int64_t> x_dims, ffi::Span<const int64_t> w_dims,
                      int64_t stride) {
  Geometry g;
  g.n = x_dims[0];
  g.hp = x_dims[1];
  g.wp = x_dims[2];
  g.ci = x_dims[3];
  g.kh = w_dims[0];
  g.kw = w_dims[1];
  g.co = w_dims[3];
  g.stride = stride;
  g.oh = (g.hp - g.kh) / stride + 1;
  g.ow = (g.wp - g.kw) / stride + 1;
  return g;
}

int64_t PixelChunks(ffi::ThreadPool& pool, int64_t pixels) {
  int64_t threads = std::max<int64_t>(1, pool.num_threads());
  return std::max<int64_t>(1, std::min<int64_t>(pixels / 256, threads * 8));
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                   int64_t stride, ffi::ResultBuffer<ffi::F32> y) {
  const Geometry g = MakeGeometry(x.dimensions(), w.dimensions(), stride);
  const float* xd = x.typed_data();
  const float* wd = w.typed_data();
  float* yd = y->typed_data();
  const int64_t pixels = g.n * g.oh * g.ow;
  const int64_t chunks = PixelChunks(pool, pixels);
  const int64_t rows = g.n * g.oh;
  const int64_t pixel_stride = g.stride * g.ci;
  const int64_t row_pixels = g.ow >= 14 ? 14 : 0;  // the row kernels' block: 1 or 2 per row
#ifdef __AVX512F__
  if (row_pixels && g.co == kLanes && (pixel_stride == 1 || pixel_stride == 16)) {
    ParallelFor(pool, std::min(chunks, rows), [&](int64_t c) {
      const int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
      if (pixel_stride == 1) ForwardRows<14, 1, 1>(g, xd, wd, yd, r0, r1);
      else ForwardRows<14, 1, 16>(g, xd, wd, yd, r0, r1);
    });
    return ffi::Error::Success();
  }
  if (row_pixels && g.co % (2 * kLanes) == 0 && pixel_stride == 32) {
    ParallelFor(pool, std::min(chunks, rows), [&](int64_t c) {
      const int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
      ForwardRows<14, 2, 32>(g, xd, wd, yd, r0, r1);
    });
    return ffi::Error::Success();
  }
#endif
  ParallelFor(pool, chunks, [&](int64_t c) {
    const int64_t begin = pixels * c / chunks, end = pixels * (c + 1) / chunks;
    if (g.co % (4 * kLanes) == 0) {
      ForwardRange<6, 4>(g, xd, wd, yd, begin, end);
    } else if (g.co % (2 * kLanes) == 0) {
      ForwardRange<8, 2>(g, xd, wd, yd, begin, end);
    } else {
      ForwardRange<8, 1>(g, xd, wd, yd, begin, end);
    }
  });
  return ffi::Error::Success();
}

ffi::Error InputGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> gy, ffi::Buffer<ffi::F32> w,
                     int64_t stride, ffi::ResultBuffer<ffi::F32> dx) {
  const auto w_dims = w.dimensions();
  const Geometry g = MakeGeometry(dx->dimensions(), w_dims, stride);
  // w [kh, kw, ci, co] -> wt [kh, kw, co, ci]
  std::vector<float> wt(w.element_count());
  const float* wd = w.typed_data();
  for (int64_t k = 0; k < g.kh * g.kw; ++k)
    for (int64_t i = 0; i < g.ci; ++i)
      for (int64_t o = 0; o < g.co; ++o)
        wt[(k * g.co + o) * g.ci + i] = wd[(k * g.ci + i) * g.co + o];
  const float* gd = gy.typed_data();
  float* dxd = dx->typed_data();
  const int64_t chunks = std::min<int64_t>(g.n, PixelChunks(pool, g.n * g.oh * g.ow));
  ParallelFor(pool, chunks, [&](int64_t c) {
    const int64_t b0 = g.n * c / chunks, b1 = g.n * (c + 1) / chunks;
    if (g.ci % (2 * kLanes) == 0) {
      InputGradImages<6, 2>(g, gd, wt.data(), dxd, b0, b1);
    } else {
      InputGradImages<12, 1>(g, gd, wt.data(), dxd, b0, b1);
    }
  });
  return ffi::Error::Success();
}

ffi::Error WeightGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> gy,
                      int64_t kernel_h, int64_t kernel_w, int64_t stride,
                      ffi::ResultBuffer<ffi::F32> dw) {
  const auto x_dims = x.dimensions();
  const auto g_dims = gy.dimensions();
  Geometry g;
  g.n = x_dims[0];
  g.hp = x_dims[1];
  g.wp = x_dims[2];
  g.ci = x_dims[3];
  g.kh = kernel_h;
  g.kw = kernel_w;
  g.oh = g_dims[1];
  g.ow = g_dims[2];
  g.co = g_dims[3];
  g.stride = stride;
  const int64_t size = g.kh * g.kw * g.ci * g.co;
  const int64_t pixels = g.n * g.oh * g.ow;
  const int64_t chunks = std::min<int64_t>(PixelChunks(pool, pixels),
                                           std::max<int64_t>(1, pool.num_threads()));
  std::vector<float> partial(chunks * size, 0.0f);
  const float* xd = x.typed_data();
  const float* gd = gy.typed_data();
  ParallelFor(pool, chunks, [&](int64_t c) {
    const int64_t begin = pixels * c / chunks, end = pixels * (c + 1) / chunks;
    float* out = partial.data() + c * size;
    if (g.ci % 4 == 0 && g.co % (2 * kLanes) == 0) {
      WeightGradRange<4, 2>(g, xd, gd, out, begin, end);
    } else if (g.ci % 8 == 0) {
      WeightGradRange<8, 1>(g, xd, gd, out, begin, end);
    } else {
      WeightGradRange<1, 1>(g, xd, gd, out, begin, end);
    }
  });
  float* out = dw->typed_data();
  std::memcpy(out, partial.data(), sizeof(float) * size);
  for (int64_t c = 1; c < chunks; ++c)
    for (int64_t k = 0; k < size; ++k) out[k] += partial[c * size + k];
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxSslConvForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride")
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxSslConvInputGrad, InputGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride")
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxSslConvWeightGrad, WeightGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("kernel_h")
                                  .Attr<int64_t>("kernel_w")
                                  .Attr<int64_t>("stride")
                                  .Ret<ffi::Buffer<ffi::F32>>());
