// Rotary position embedding (Su et al., RoFormer, 2021, eq. 34): each pair of dims (a, b) of a head rotates by
// the angle pos * inv_freq_i, a' = a cos - b sin, b' = b cos + a sin; the backward rotates by -angle. Blocks of
// 32 x 8 threads: each row of 32 lanes takes one (token, head) row at a time, lane i the pairs i, i + 32, ... (it
// writes both dims) and then the passed-through dims beyond rot_dim, so that the only divisions are one per row.
#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kRopeRowsPerBlock = 8;

// y16 (nullable): y's bf16 copy, written in the same pass (output_copy): the forward's q and k are read by the
// tensor-core attention, the backward's dq and dk by the q and k projections' GEMMs.
__global__ void rope_kernel(const float* x, float* y, __nv_bfloat16* y16, const int32_t* positions, const float* cos,
                            const float* sin, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim,
                            int interleaved, float sign) {
  const int half = static_cast<int>(rot_dim / 2), dim = static_cast<int>(head_dim), rot = static_cast<int>(rot_dim);
  const int64_t rows = tokens * heads;
  for (int64_t th = blockIdx.x * int64_t(kRopeRowsPerBlock) + threadIdx.y; th < rows; th += int64_t(gridDim.x) * kRopeRowsPerBlock) {
    const float* xh = x + th * head_dim;
    float* yh = y + th * head_dim;
    const float* cos_row = cos + static_cast<int64_t>(positions[th / heads]) * half;
    const float* sin_row = sin + static_cast<int64_t>(positions[th / heads]) * half;
    for (int i = threadIdx.x; i < half; i += 32) {
      const float c = cos_row[i], s = sign * sin_row[i];
      const int i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
      const float a = xh[i1], b = xh[i2];
      const float r1 = a * c - b * s, r2 = b * c + a * s;
      yh[i1] = r1;
      yh[i2] = r2;
      if (y16) {
        y16[th * head_dim + i1] = __float2bfloat16_rn(r1);
        y16[th * head_dim + i2] = __float2bfloat16_rn(r2);
      }
    }
    for (int d = rot + threadIdx.x; d < dim; d += 32) {
      yh[d] = xh[d];
      if (y16) y16[th * head_dim + d] = __float2bfloat16_rn(xh[d]);
    }
  }
}

}  // namespace

extern "C" {

R1_API void r1_rope(const float* x, float* y, const int32_t* positions, const float* cos, const float* sin,
                    int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved, int inverse) {
  const int64_t rows = tokens * heads;
  if (rows <= 0 || head_dim <= 0) return;
  __nv_bfloat16* y16 = output_copy(y, rows * head_dim);
  rope_kernel<<<grid_for(rows, kRopeRowsPerBlock), dim3(32, kRopeRowsPerBlock), 0, stream()>>>(
      x, y, y16, positions, cos, sin, tokens, heads, head_dim, rot_dim, interleaved, inverse ? -1.0f : 1.0f);
  check_launch("r1_rope");
}

}  // extern "C"
