// Rotary position embedding (Su et al., RoFormer, 2021, eq. 34): each pair of dims (a, b) of a head rotates by
// the angle pos * inv_freq_i, a' = a cos - b sin, b' = b cos + a sin; the backward rotates by -angle. Blocks of
// 32 x 8 threads: each row of 32 lanes takes a group of up to kRopeGroup heads of one token at a time, lane i
// the pairs i, i + 32, ... of every head of the group (it writes both dims), then the passed-through dims beyond
// rot_dim. A warp per head waited on its position, then its table, then its data (latency, not bandwidth); a
// group shares the token's position and table loads, and its heads' loads are all in flight at once.
#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kRopeRowsPerBlock = 8;
constexpr int kRopeGroup = 4;

// y16 (nullable): y's bf16 copy, written in the same pass (output_copy): the forward's q and k are read by the
// tensor-core attention, the backward's dq and dk by the q and k projections' GEMMs; copy_only: y is bf16-only
// (the backward's, when only those GEMMs read it). x may be bf16-only too (the projections' outputs).
__global__ void rope_kernel(Input x, float* y, __nv_bfloat16* y16, bool copy_only, const int32_t* positions,
                            const float* cos, const float* sin, int64_t tokens, int64_t heads, int64_t head_dim,
                            int64_t rot_dim, int interleaved, float sign) {
  const int half = static_cast<int>(rot_dim / 2), dim = static_cast<int>(head_dim), rot = static_cast<int>(rot_dim);
  const int64_t groups = (heads + kRopeGroup - 1) / kRopeGroup, rows = tokens * groups;
  for (int64_t row = blockIdx.x * int64_t(kRopeRowsPerBlock) + threadIdx.y; row < rows; row += int64_t(gridDim.x) * kRopeRowsPerBlock) {
    const int64_t t = row / groups, h0 = (row - t * groups) * kRopeGroup;
    const int count = static_cast<int>(heads - h0 < kRopeGroup ? heads - h0 : kRopeGroup);
    const int64_t first = (t * heads + h0) * head_dim;  // the group's heads are consecutive rows of head_dim
    const float* cos_row = cos + static_cast<int64_t>(positions[t]) * half;
    const float* sin_row = sin + static_cast<int64_t>(positions[t]) * half;
    for (int i = threadIdx.x; i < half; i += 32) {
      const float c = cos_row[i], s = sign * sin_row[i];
      const int i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
      // Every load of the group before any store, so that in place (x == y) each value is read before written.
      float a[kRopeGroup], b[kRopeGroup];
      #pragma unroll
      for (int j = 0; j < kRopeGroup; ++j) {
        if (j < count) {
          a[j] = read(x, first + j * head_dim + i1);
          b[j] = read(x, first + j * head_dim + i2);
        }
      }
      #pragma unroll
      for (int j = 0; j < kRopeGroup; ++j) {
        if (j < count) {
          const int64_t at = first + j * head_dim;
          const float r1 = a[j] * c - b[j] * s, r2 = b[j] * c + a[j] * s;
          if (!copy_only) {
            y[at + i1] = r1;
            y[at + i2] = r2;
          }
          if (y16) {
            y16[at + i1] = __float2bfloat16_rn(r1);
            y16[at + i2] = __float2bfloat16_rn(r2);
          }
        }
      }
    }
    for (int j = 0; j < count; ++j) {
      const int64_t at = first + j * head_dim;
      for (int d = rot + threadIdx.x; d < dim; d += 32) {
        const float value = read(x, at + d);
        if (!copy_only) y[at + d] = value;
        if (y16) y16[at + d] = __float2bfloat16_rn(value);
      }
    }
  }
}

}  // namespace

extern "C" {

R1_API void r1_rope(const float* x, float* y, const int32_t* positions, const float* cos, const float* sin,
                    int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved, int inverse) {
  const int64_t rows = tokens * ((heads + kRopeGroup - 1) / kRopeGroup);
  if (rows <= 0 || head_dim <= 0) return;
  const int64_t n = tokens * heads * head_dim;
  const Input in = input_of(x, n);  // before output_copy, which may end a promise of y == x
  bool copy_only = false;
  __nv_bfloat16* y16 = output_copy(y, n, &copy_only);
  rope_kernel<<<grid_for(rows, kRopeRowsPerBlock), dim3(32, kRopeRowsPerBlock), 0, stream()>>>(
      in, y, y16, copy_only, positions, cos, sin, tokens, heads, head_dim, rot_dim, interleaved, inverse ? -1.0f : 1.0f);
  check_launch("r1_rope");
}

}  // extern "C"
