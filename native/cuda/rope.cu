// Rotary position embedding (Su et al., RoFormer, 2021, eq. 34): each pair of dims (a, b) of a head rotates by
// the angle pos * inv_freq_i, a' = a cos - b sin, b' = b cos + a sin; the backward rotates by -angle. One thread
// per pair (it writes both dims), one per passed-through dim beyond rot_dim.
#include "common.cuh"

using namespace r1cuda;

namespace {

__global__ void rope_kernel(const float* x, float* y, const int32_t* positions, const float* cos, const float* sin,
                            int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved,
                            float sign) {
  const int64_t half = rot_dim / 2, per_head = half + (head_dim - rot_dim);
  const int64_t total = tokens * heads * per_head;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t th = e / per_head, i = e - th * per_head;
    const int64_t t = th / heads;
    const float* xh = x + th * head_dim;
    float* yh = y + th * head_dim;
    if (i >= half) {
      int64_t d = rot_dim + (i - half);
      yh[d] = xh[d];
      continue;
    }
    const int64_t table = static_cast<int64_t>(positions[t]) * half + i;
    const float c = cos[table], s = sign * sin[table];
    const int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
    const float a = xh[i1], b = xh[i2];
    yh[i1] = a * c - b * s;
    yh[i2] = b * c + a * s;
  }
}

}  // namespace

extern "C" {

R1_API void r1_rope(const float* x, float* y, const int32_t* positions, const float* cos, const float* sin,
                    int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved, int inverse) {
  const int64_t total = tokens * heads * (rot_dim / 2 + head_dim - rot_dim);
  if (total <= 0) return;
  rope_kernel<<<grid_for(total), kThreads, 0, stream()>>>(x, y, positions, cos, sin, tokens, heads, head_dim, rot_dim,
                                                          interleaved, inverse ? -1.0f : 1.0f);
  check_launch("r1_rope");
}

}  // extern "C"
