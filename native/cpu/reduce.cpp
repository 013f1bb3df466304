// Reductions over one axis of [outer, len, inner], and the sum of squares for gradient-norm clipping.
// Sums accumulate in double: the reference backend sums in JavaScript numbers (double), and a float sum over a
// long axis (a bias gradient over every token of a batch) would drift from it by ~len * 2^-24.
#include <algorithm>
#include <vector>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

namespace r1 {
namespace {

inline void add_to_f64(f32x8 v, f64x4& lo, f64x4& hi) {
  lo += __builtin_convertvector((f32x4){v[0], v[1], v[2], v[3]}, f64x4);
  hi += __builtin_convertvector((f32x4){v[4], v[5], v[6], v[7]}, f64x4);
}

double sum_f64(const float* x, int64_t n) {
  f64x4 a = {0, 0, 0, 0}, b = a, c = a, d = a;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    add_to_f64(load8(x + i), a, b);
    add_to_f64(load8(x + i + 8), c, d);
  }
  for (; i + 8 <= n; i += 8) add_to_f64(load8(x + i), a, b);
  f64x4 s = (a + c) + (b + d);
  double total = (s[0] + s[2]) + (s[1] + s[3]);
  for (; i < n; ++i) total += x[i];
  return total;
}

double sum_squares_f64(const float* x, int64_t n) {
  f64x4 a = {0, 0, 0, 0}, b = a;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    f32x8 v = load8(x + i);
    f64x4 lo = __builtin_convertvector((f32x4){v[0], v[1], v[2], v[3]}, f64x4);
    f64x4 hi = __builtin_convertvector((f32x4){v[4], v[5], v[6], v[7]}, f64x4);
    a += lo * lo;
    b += hi * hi;
  }
  f64x4 s = a + b;
  double total = (s[0] + s[2]) + (s[1] + s[3]);
  for (; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

// inner == 1: each output is a contiguous row of len.
void reduce_rows(int op, const float* x, float* out, int64_t outer, int64_t len) {
  parallel_for(outer, row_grain(len), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const float* row = x + o * len;
      if (op == R1_SUM) {
        out[o] = static_cast<float>(sum_f64(row, len));
      } else if (op == R1_MAX_REDUCE) {
        out[o] = row_max(row, len);
      } else {
        float m = kInf;
        for (int64_t i = 0; i < len; ++i) m = row[i] < m ? row[i] : m;
        out[o] = m;
      }
    }
  });
}

// inner > 1: walk len rows of `inner` contiguous values, updating a running row of results, so every load is
// contiguous. Work is split over outer and over column blocks of inner, so a reduction over the first axis
// (outer == 1) still uses every core.
void reduce_columns(int op, const float* x, float* out, int64_t outer, int64_t len, int64_t inner) {
  constexpr int64_t kBlock = 512;
  int64_t blocks = (inner + kBlock - 1) / kBlock;
  int64_t tasks = outer * blocks;
  int64_t work_per_task = len * std::min(inner, kBlock);
  parallel_for(tasks, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(work_per_task, 1)),
               [&](int64_t tb, int64_t te) {
                 double acc[kBlock];
                 for (int64_t t = tb; t < te; ++t) {
                   int64_t o = t / blocks, c0 = (t % blocks) * kBlock, w = std::min(kBlock, inner - c0);
                   const float* base = x + o * len * inner + c0;
                   float* dst = out + o * inner + c0;
                   if (op == R1_SUM) {
                     for (int64_t i = 0; i < w; ++i) acc[i] = 0.0;
                     for (int64_t l = 0; l < len; ++l) {
                       const float* __restrict row = base + l * inner;
                       for (int64_t i = 0; i < w; ++i) acc[i] += row[i];
                     }
                     for (int64_t i = 0; i < w; ++i) dst[i] = static_cast<float>(acc[i]);
                   } else {
                     bool is_max = op == R1_MAX_REDUCE;
                     for (int64_t i = 0; i < w; ++i) dst[i] = is_max ? -kInf : kInf;
                     for (int64_t l = 0; l < len; ++l) {
                       const float* __restrict row = base + l * inner;
                       float* __restrict d = dst;
                       if (is_max) {
                         for (int64_t i = 0; i < w; ++i) d[i] = row[i] > d[i] ? row[i] : d[i];
                       } else {
                         for (int64_t i = 0; i < w; ++i) d[i] = row[i] < d[i] ? row[i] : d[i];
                       }
                     }
                   }
                 }
               });
}

}  // namespace
}  // namespace r1

using namespace r1;

extern "C" {

R1_API void r1_reduce(int op, const float* x, float* out, int64_t outer, int64_t len, int64_t inner) {
  if (inner == 1) {
    reduce_rows(op, x, out, outer, len);
  } else {
    reduce_columns(op, x, out, outer, len, inner);
  }
}

// Chunks of a fixed size, summed in order, so that the result does not depend on the number of threads.
R1_API double r1_sum_squares(const float* x, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) return sum_squares_f64(x, n);
  std::vector<double> partial(chunks);
  parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) partial[c] = sum_squares_f64(x + c * kChunk, std::min(kChunk, n - c * kChunk));
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // extern "C"
