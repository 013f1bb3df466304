// Softmax, log-softmax and cross-entropy over the last axis, one row per task. Every row subtracts its max
// before exp, so exp never overflows, and the log-sum-exp is max + log(sum exp(x - max)).
#include <cmath>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

using namespace r1;

namespace {

// log(sum(exp(x))) of one row, stable.
inline float row_logsumexp(const float* x, int64_t n) {
  float m = row_max(x, n);
  if (m == -kInf || m == kInf) return m;  // all -inf: the sum is 0; an inf logit dominates
  return m + std::log(exp_shift_sum(x, n, m));
}

}  // namespace

extern "C" {

R1_API void r1_softmax(const float* x, float* y, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      float inv = 1.0f / exp_shift_sum(xr, yr, cols, row_max(xr, cols));
      f32x8 iv = splat(inv);
      int64_t i = 0;
      for (; i + 8 <= cols; i += 8) store8(yr + i, load8(yr + i) * iv);
      for (; i < cols; ++i) yr[i] *= inv;
    }
  });
}

// dx = y * (dy - sum(y * dy)).
R1_API void r1_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* __restrict yr = y + r * cols;
      const float* __restrict gr = dy + r * cols;
      float* __restrict dr = dx + r * cols;
      float s = dot(yr, gr, cols);
      for (int64_t i = 0; i < cols; ++i) dr[i] = yr[i] * (gr[i] - s);
    }
  });
}

R1_API void r1_log_softmax(const float* x, float* y, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* __restrict xr = x + r * cols;
      float* __restrict yr = y + r * cols;
      float lse = row_logsumexp(xr, cols);
      for (int64_t i = 0; i < cols; ++i) yr[i] = xr[i] - lse;
    }
  });
}

// y = x - lse, so softmax = exp(y) and dx = dy - exp(y) * sum(dy).
R1_API void r1_log_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* yr = y + r * cols;
      const float* gr = dy + r * cols;
      float* dr = dx + r * cols;
      f32x8 s = splat(row_sum(gr, cols));
      map8(yr, dr, cols, [](f32x8 v) { return exp8_bounded(v); });  // y <= 0
      int64_t i = 0;
      for (; i + 8 <= cols; i += 8) store8(dr + i, load8(gr + i) - load8(dr + i) * s);
      for (; i < cols; ++i) dr[i] = gr[i] - dr[i] * s[0];
    }
  });
}

R1_API void r1_cross_entropy(const float* logits, const int32_t* targets, float* loss, float* lse, int64_t rows,
                             int64_t vocab, int32_t ignore_index) {
  parallel_for(rows, row_grain(vocab), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* row = logits + r * vocab;
      float l = row_logsumexp(row, vocab);
      lse[r] = l;
      int32_t t = targets[r];
      if (t == ignore_index) {
        loss[r] = 0.0f;
      } else {
        // Out-of-range targets are rejected in TypeScript; NaN here rather than a read out of bounds.
        loss[r] = (t >= 0 && t < vocab) ? l - row[t] : NAN;
      }
    }
  });
}

R1_API void r1_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                                      const float* dloss, float* dlogits, int64_t rows, int64_t vocab,
                                      int32_t ignore_index) {
  parallel_for(rows, row_grain(vocab), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* row = logits + r * vocab;
      float* d = dlogits + r * vocab;
      int32_t t = targets[r];
      if (t == ignore_index) {
        for (int64_t i = 0; i < vocab; ++i) d[i] = 0.0f;
        continue;
      }
      f32x8 shift = splat(lse[r]), g = splat(dloss[r]);
      map8(row, d, vocab, [&](f32x8 v) { return exp8_bounded(v - shift) * g; });  // logit - lse <= 0
      if (t >= 0 && t < vocab) d[t] -= dloss[r];
    }
  });
}

}  // extern "C"
