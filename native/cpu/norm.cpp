// RMSNorm (Zhang & Sennrich, 2019): y = w * x / sqrt(mean(x^2) + eps), one row of dim per token.
#include <algorithm>
#include <cmath>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

using namespace r1;

extern "C" {

R1_API void r1_rmsnorm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t dim,
                       float eps) {
  parallel_for(rows, row_grain(dim), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* __restrict xr = x + r * dim;
      float* __restrict yr = y + r * dim;
      float s = 1.0f / std::sqrt(dot(xr, xr, dim) / static_cast<float>(dim) + eps);
      rstd[r] = s;
      for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * s);
    }
  });
}

// With r = rstd and c = sum_i w_i dy_i x_i, dx_j = r (w_j dy_j - x_j r^2 c / dim), since dr/dx_j = -r^3 x_j / dim.
// dw_j += sum_r dy_rj x_rj r_r is a second pass split over columns, so that no two threads write one dw_j and
// the sum runs in row order whatever the thread count; it sums in double, since rows is every token of a batch.
R1_API void r1_rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                                float* dw, int64_t rows, int64_t dim) {
  parallel_for(rows, row_grain(dim), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* __restrict xr = x + r * dim;
      const float* __restrict gr = dy + r * dim;
      float* __restrict dr = dx + r * dim;
      float c = 0.0f;
      {
        f32x8 acc = splat(0.0f);
        int64_t i = 0;
        for (; i + 8 <= dim; i += 8) acc += load8(w + i) * load8(gr + i) * load8(xr + i);
        c = hsum(acc);
        for (; i < dim; ++i) c += w[i] * gr[i] * xr[i];
      }
      float s = rstd[r];
      float k = s * s * c / static_cast<float>(dim);
      for (int64_t i = 0; i < dim; ++i) dr[i] = s * (w[i] * gr[i] - xr[i] * k);
    }
  });
  constexpr int64_t kBlock = 256;
  int64_t blocks = (dim + kBlock - 1) / kBlock;
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(rows * kBlock, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t c0 = b * kBlock; c0 < std::min(dim, e * kBlock); c0 += kBlock) {
                   int64_t w = std::min(kBlock, dim - c0);
                   double acc[kBlock] = {};
                   for (int64_t r = 0; r < rows; ++r) {
                     const float* __restrict xr = x + r * dim + c0;
                     const float* __restrict gr = dy + r * dim + c0;
                     float s = rstd[r];
                     for (int64_t i = 0; i < w; ++i) acc[i] += static_cast<double>(gr[i]) * xr[i] * s;
                   }
                   for (int64_t i = 0; i < w; ++i) dw[c0 + i] += static_cast<float>(acc[i]);
                 }
               });
}

}  // extern "C"
