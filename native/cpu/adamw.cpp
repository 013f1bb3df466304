// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019, Algorithm 2), one fused pass over
// the parameters: p, m and v are each read and written once.
#include <cmath>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

using namespace r1;

extern "C" {

R1_API void r1_adamw(float* p_in, const float* g_in, float* m_in, float* v_in, int64_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, float bias1, float bias2) {
  float inv_bias1 = 1.0f / bias1, inv_bias2 = 1.0f / bias2;
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    float* __restrict p = p_in;
    const float* __restrict g = g_in;
    float* __restrict m = m_in;
    float* __restrict v = v_in;
    for (int64_t i = b; i < e; ++i) {
      float mi = beta1 * m[i] + (1.0f - beta1) * g[i];
      float vi = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
      m[i] = mi;
      v[i] = vi;
      p[i] -= lr * (mi * inv_bias1 / (std::sqrt(vi * inv_bias2) + eps) + weight_decay * p[i]);
    }
  });
}

}  // extern "C"
