// Multi-head latent attention of a decode step against the latent cache (src/nn/mla.ts, the absorbed form): every
// head's query already lives in the latent space ([W_UK^T q_nope ; q_rope], D = kv_lora_rank + rope numbers), and
// the cache row [c_kv ; k_rope] is the one key all heads share (an MQA), whose first Dv = kv_lora_rank numbers are
// also its value. The keys a row attends to are [kv_start[b], kv_end[b]) in device memory, so a CUDA graph of the
// step replays at any column. r1_cuda_decode_attention cannot serve: its heads are 64 or 128 wide and its values
// are a cache of their own.
#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kMlaKeys = 16;       // keys per shared-memory tile
constexpr int kMlaHeads = 8;       // heads per block: one warp each
constexpr int kMlaMaxValues = 32;  // values per lane (Dv <= 1024)

__device__ inline float load_as_float(const float* p) { return *p; }
__device__ inline float load_as_float(const __nv_bfloat16* p) { return __bfloat162float(*p); }

// Block (head group, row b): warp w handles head h = blockIdx.x * kMlaHeads + w. Per tile of keys, each lane sums
// its dims' share of the kMlaKeys dot products, a butterfly gives every lane all of them, and the online softmax
// (base 2) rescales the lane's Dv / 32 outputs. Scores are float32 sums in a fixed order (lane-strided then the
// butterfly), so a row's result does not depend on the batch.
template <typename T>
__global__ void mla_decode_attention_kernel(const float* q, const T* cache, float* out, const int32_t* kv_start, const int32_t* kv_end,
                                            int64_t H, int64_t D, int64_t Dv, int64_t capacity, float scale2) {
  extern __shared__ float mla_shared[];
  float* Qs = mla_shared;                  // [kMlaHeads][D], times scale2
  float* Ks = Qs + kMlaHeads * D;          // [kMlaKeys][D]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = blockIdx.y, h0 = int64_t(blockIdx.x) * kMlaHeads;
  const int64_t h = h0 + warp;
  const int64_t heads_here = min(int64_t(kMlaHeads), H - h0);
  for (int64_t i = threadIdx.x; i < heads_here * D; i += blockDim.x) Qs[i] = q[(b * H + h0) * D + i] * scale2;
  const int64_t begin = max(int64_t(0), int64_t(kv_start[b]));
  const int64_t end = min(capacity, int64_t(kv_end[b]));
  const T* rows = cache + b * capacity * D;
  float o[kMlaMaxValues];
  #pragma unroll
  for (int i = 0; i < kMlaMaxValues; ++i) o[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int64_t k0 = begin; k0 < end; k0 += kMlaKeys) {
    const int keys = static_cast<int>(min(int64_t(kMlaKeys), end - k0));
    __syncthreads();
    // Rows past the last key are zeros: their weight is 0, and 0 * (stale shared memory) could be NaN.
    for (int64_t i = threadIdx.x; i < kMlaKeys * D; i += blockDim.x) Ks[i] = i < keys * D ? load_as_float(rows + k0 * D + i) : 0.0f;
    __syncthreads();
    if (h >= H) continue;
    float s[kMlaKeys];
    #pragma unroll
    for (int j = 0; j < kMlaKeys; ++j) s[j] = 0.0f;
    const float* qh = Qs + warp * D;
    for (int64_t d = lane; d < D; d += 32) {
      const float qd = qh[d];
      #pragma unroll
      for (int j = 0; j < kMlaKeys; ++j) s[j] = fmaf(qd, Ks[j * D + d], s[j]);
    }
    #pragma unroll
    for (int j = 0; j < kMlaKeys; ++j) {
      #pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) s[j] += __shfl_xor_sync(0xffffffffu, s[j], offset);
      if (j >= keys) s[j] = -INFINITY;
    }
    float tile_max = -INFINITY;
    #pragma unroll
    for (int j = 0; j < kMlaKeys; ++j) tile_max = fmaxf(tile_max, s[j]);
    const float m_new = fmaxf(m, tile_max);
    const float alpha = exp2f(m - m_new);  // m = -inf on the first tile: 0
    float p_sum = 0.0f;
    #pragma unroll
    for (int j = 0; j < kMlaKeys; ++j) {
      s[j] = exp2f(s[j] - m_new);
      p_sum += s[j];
    }
    l = l * alpha + p_sum;
    m = m_new;
    #pragma unroll
    for (int i = 0; i < kMlaMaxValues; ++i) {
      const int64_t d = lane + 32 * i;
      if (d >= Dv) break;
      float acc = o[i] * alpha;
      #pragma unroll
      for (int j = 0; j < kMlaKeys; ++j) acc = fmaf(s[j], Ks[j * D + d], acc);
      o[i] = acc;
    }
  }
  if (h >= H) return;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no key: zeros, as r1_attention leaves a fully masked row
  #pragma unroll
  for (int i = 0; i < kMlaMaxValues; ++i) {
    const int64_t d = lane + 32 * i;
    if (d >= Dv) break;
    out[(b * H + h) * Dv + d] = o[i] * inv;
  }
}

}  // namespace

extern "C" {

R1_API void r1_cuda_mla_decode_attention(const float* q, const void* cache, float* out, const int32_t* kv_start, const int32_t* kv_end,
                                         int64_t B, int64_t H, int64_t D, int64_t Dv, int64_t capacity, float scale, int bf16) {
  if (B <= 0 || H <= 0) return;
  if (Dv > 32 * kMlaMaxValues || Dv > D) {
    record_message("r1_cuda_mla_decode_attention", "the value width must be at most 1024 and at most the key width");
    return;
  }
  const size_t shared = sizeof(float) * (kMlaHeads + kMlaKeys) * D;
  const dim3 grid(static_cast<unsigned>((H + kMlaHeads - 1) / kMlaHeads), static_cast<unsigned>(B));
  const float scale2 = scale * 1.4426950408889634f;  // scores in base 2
  auto run = [&](auto kernel, auto typed_cache) {
    if (shared > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    kernel<<<grid, 32 * kMlaHeads, shared, stream()>>>(q, typed_cache, out, kv_start, kv_end, H, D, Dv, capacity, scale2);
  };
  if (bf16) run(mla_decode_attention_kernel<__nv_bfloat16>, static_cast<const __nv_bfloat16*>(cache));
  else run(mla_decode_attention_kernel<float>, static_cast<const float*>(cache));
  check_launch("r1_cuda_mla_decode_attention");
}

}  // extern "C"
