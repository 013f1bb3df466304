// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019, Algorithm 2), one fused pass over
// the parameters: p, m and v are each read and written once. The float coefficients are formed on the host in
// double exactly as native/cpu/adamw.cpp forms them, so both backends round the same way. When p is (part of) a
// weight registered with r1_cuda_register_weight, the same pass writes the new weight's bf16 copy, which bf16
// GEMMs then read until the next step.
#include "common.cuh"

using namespace r1cuda;

namespace {

struct AdamCoefficients {
  float b1, b2, one_minus_b1, one_minus_b2, inv_bias1, inv_bias2, step, decay, epsilon;
};

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamCoefficients c,
                             __nv_bfloat16* p_bf16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float mi = c.b1 * m[i] + c.one_minus_b1 * gi;
    const float vi = c.b2 * v[i] + c.one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float pi = p[i] - (c.step * (mi * c.inv_bias1 / (sqrtf(vi * c.inv_bias2) + c.epsilon)) + c.decay * p[i]);
    p[i] = pi;
    if (p_bf16) p_bf16[i] = __float2bfloat16_rn(pi);
  }
}

}  // namespace

extern "C" {

R1_API void r1_adamw(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double bias1, double bias2) {
  if (n <= 0) return;
  AdamCoefficients c{static_cast<float>(beta1),        static_cast<float>(beta2),
                     static_cast<float>(1.0 - beta1),  static_cast<float>(1.0 - beta2),
                     static_cast<float>(1.0 / bias1),  static_cast<float>(1.0 / bias2),
                     static_cast<float>(lr),           static_cast<float>(lr * weight_decay),
                     static_cast<float>(eps)};
  adamw_kernel<<<grid_for(n), kThreads, 0, stream()>>>(p, g, m, v, n, c, weight_shadow_for_update(p, n));
  check_launch("r1_adamw");
}

}  // extern "C"
