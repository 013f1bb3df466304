// Rotary position embedding (Su et al., RoFormer, 2021, eq. 34): each pair of dims (a, b) of a head rotates by
// the angle pos * inv_freq_i, a' = a cos - b sin, b' = b cos + a sin. The backward is the rotation by -angle.
#include <cstring>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

using namespace r1;

extern "C" {

R1_API void r1_rope(const float* x, float* y, const int32_t* positions, const float* cos, const float* sin,
                    int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved, int inverse) {
  int64_t half = rot_dim / 2;
  float sign = inverse ? -1.0f : 1.0f;
  parallel_for(tokens, row_grain(heads * head_dim), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* __restrict c = cos + static_cast<int64_t>(positions[t]) * half;
      const float* __restrict s = sin + static_cast<int64_t>(positions[t]) * half;
      for (int64_t h = 0; h < heads; ++h) {
        const float* __restrict xh = x + (t * heads + h) * head_dim;
        float* __restrict yh = y + (t * heads + h) * head_dim;
        if (interleaved) {
          for (int64_t i = 0; i < half; ++i) {
            float a = xh[2 * i], bb = xh[2 * i + 1], si = sign * s[i];
            yh[2 * i] = a * c[i] - bb * si;
            yh[2 * i + 1] = bb * c[i] + a * si;
          }
        } else {
          // Llama/Qwen rotate_half: pairs (i, i + half).
          for (int64_t i = 0; i < half; ++i) {
            float a = xh[i], bb = xh[i + half], si = sign * s[i];
            yh[i] = a * c[i] - bb * si;
            yh[i + half] = bb * c[i] + a * si;
          }
        }
        if (rot_dim < head_dim) std::memcpy(yh + rot_dim, xh + rot_dim, (head_dim - rot_dim) * sizeof(float));
      }
    }
  });
}

}  // extern "C"
