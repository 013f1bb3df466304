// Embedding lookup, gather along an axis, and their adjoints (accumulating scatters). Indices are trusted:
// the TypeScript op layer checks them against the table size before calling.
#include <algorithm>
#include <cstring>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

using namespace r1;

namespace {

// The scatters below split work over columns, never over ids: repeated ids then add up in the same order on
// any number of threads, with no two threads writing one element.
constexpr int64_t kColumnBlock = 64;

}  // namespace

extern "C" {

R1_API void r1_embedding(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  parallel_for(n, row_grain(dim), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(out + i * dim, table + static_cast<int64_t>(ids[i]) * dim, dim * sizeof(float));
  });
}

R1_API void r1_embedding_backward(const int32_t* ids, const float* dout, float* dtable, int64_t n, int64_t dim) {
  int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(n * kColumnBlock, 1)),
               [&](int64_t b, int64_t e) {
                 int64_t c0 = b * kColumnBlock, c1 = std::min(dim, e * kColumnBlock);
                 for (int64_t i = 0; i < n; ++i) {
                   const float* __restrict src = dout + i * dim;
                   float* __restrict dst = dtable + static_cast<int64_t>(ids[i]) * dim;
                   for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
                 }
               });
}

R1_API void r1_gather(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t len, int64_t inner,
                      int64_t k) {
  parallel_for(outer * k, row_grain(inner), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      int64_t o = row / k;
      const float* __restrict src = x + o * len * inner;
      const int32_t* __restrict ix = idx + row * inner;
      float* __restrict dst = out + row * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] = src[static_cast<int64_t>(ix[i]) * inner + i];
    }
  });
}

R1_API void r1_scatter_add(const int32_t* idx, const float* dout, float* dx, int64_t outer, int64_t len,
                           int64_t inner, int64_t k) {
  // Tasks are (o, column block): each owns dx[o, :, block] and adds its k rows in order.
  int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  int64_t per_task = k * std::min(inner, kColumnBlock);
  parallel_for(outer * blocks, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(per_task, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t t = b; t < e; ++t) {
                   int64_t o = t / blocks, c0 = (t % blocks) * kColumnBlock, c1 = std::min(inner, c0 + kColumnBlock);
                   float* base = dx + o * len * inner;
                   for (int64_t j = 0; j < k; ++j) {
                     const int32_t* ix = idx + (o * k + j) * inner;
                     const float* src = dout + (o * k + j) * inner;
                     for (int64_t i = c0; i < c1; ++i) base[static_cast<int64_t>(ix[i]) * inner + i] += src[i];
                   }
                 }
               });
}

}  // extern "C"
