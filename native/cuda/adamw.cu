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

// One element: m and v take the gradient, then p its update (the decay reads the old p).
__device__ inline void adam_element(float& p, float g, float& m, float& v, const AdamCoefficients& c) {
  m = c.b1 * m + c.one_minus_b1 * g;
  v = c.b2 * v + c.one_minus_b2 * g * g;
  p = p - (c.step * (m * c.inv_bias1 / (sqrtf(v * c.inv_bias2) + c.epsilon)) + c.decay * p);
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamCoefficients c,
                             __nv_bfloat16* p_bf16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float pi = p[i], mi = m[i], vi = v[i];
    adam_element(pi, g[i], mi, vi, c);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    if (p_bf16) p_bf16[i] = __float2bfloat16_rn(pi);
  }
}

// The same, four elements per thread and step (16-byte loads and stores), for sizes divisible by 4 at 16-byte
// aligned addresses: every parameter of a model whose widths are multiples of 4.
__global__ void adamw4_kernel(float4* p, const float4* g, float4* m, float4* v, int64_t n4, AdamCoefficients c,
                              uint2* p_bf16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    float4 pi = p[i], mi = m[i], vi = v[i];
    const float4 gi = g[i];
    adam_element(pi.x, gi.x, mi.x, vi.x, c);
    adam_element(pi.y, gi.y, mi.y, vi.y, c);
    adam_element(pi.z, gi.z, mi.z, vi.z, c);
    adam_element(pi.w, gi.w, mi.w, vi.w, c);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (p_bf16) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(pi.x, pi.y), hi = __floats2bfloat162_rn(pi.z, pi.w);
      p_bf16[i] = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
    }
  }
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

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
  __nv_bfloat16* p_bf16 = weight_shadow_for_update(p, n);
  if (n % 4 == 0 && aligned(p, 16) && aligned(g, 16) && aligned(m, 16) && aligned(v, 16) && aligned(p_bf16, 8)) {
    adamw4_kernel<<<grid_for(n / 4), kThreads, 0, stream()>>>(reinterpret_cast<float4*>(p), reinterpret_cast<const float4*>(g),
                                                               reinterpret_cast<float4*>(m), reinterpret_cast<float4*>(v), n / 4, c,
                                                               reinterpret_cast<uint2*>(p_bf16));
  } else {
    adamw_kernel<<<grid_for(n), kThreads, 0, stream()>>>(p, g, m, v, n, c, p_bf16);
  }
  check_launch("r1_adamw");
}

}  // extern "C"
