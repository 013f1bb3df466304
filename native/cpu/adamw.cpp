// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019, Algorithm 2), one fused pass over
// the parameters: p, m and v are each read and written once.
#include <cmath>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

using namespace r1;

extern "C" {

R1_API void r1_adamw(float* p_in, const float* g_in, float* m_in, float* v_in, int64_t n, double lr, double beta1,
                     double beta2, double eps, double weight_decay, double bias1, double bias2) {
  // Coefficients are formed in double: 1 - 0.999 in float32 is off by 1e-5 relative to the bias correction.
  const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2);
  const float one_minus_b1 = static_cast<float>(1.0 - beta1), one_minus_b2 = static_cast<float>(1.0 - beta2);
  const float inv_bias1 = static_cast<float>(1.0 / bias1), inv_bias2 = static_cast<float>(1.0 / bias2);
  const float step = static_cast<float>(lr), decay = static_cast<float>(lr * weight_decay), epsilon = static_cast<float>(eps);
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    float* __restrict p = p_in;
    const float* __restrict g = g_in;
    float* __restrict m = m_in;
    float* __restrict v = v_in;
    for (int64_t i = b; i < e; ++i) {
      float mi = b1 * m[i] + one_minus_b1 * g[i];
      float vi = b2 * v[i] + one_minus_b2 * g[i] * g[i];
      m[i] = mi;
      v[i] = vi;
      p[i] -= step * (mi * inv_bias1 / (std::sqrt(vi * inv_bias2) + epsilon)) + decay * p[i];
    }
  });
}

}  // extern "C"
