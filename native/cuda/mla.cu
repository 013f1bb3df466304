// Multi-head latent attention of a decode step against the latent cache (src/nn/mla.ts, the absorbed form): every
// head's query already lives in the latent space ([W_UK^T q_nope ; q_rope], D = kv_lora_rank + rope numbers), and
// the cache row [c_kv ; k_rope] is the one key all heads share (an MQA), whose first Dv = kv_lora_rank numbers are
// also its value. The keys a row attends to are [kv_start[b], kv_end[b]) in device memory, so a CUDA graph of the
// step replays at any column. r1_cuda_decode_attention cannot serve: its heads are 64 or 128 wide and its values
// are a cache of their own.
#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kMlaKeys = 32;       // keys per shared-memory tile: one per lane
constexpr int kMlaHeads = 8;       // heads per block: one warp each
constexpr int kMlaMaxValues = 32;  // values per lane (Dv <= 1024)

__device__ inline float load_as_float(const float* p) { return *p; }
__device__ inline float load_as_float(const __nv_bfloat16* p) { return __bfloat162float(*p); }

// Block (head group, row b): warp w handles head h = blockIdx.x * kMlaHeads + w. Per tile of 32 keys, lane j
// scores key j over all D dims (the key rows padded to D + 1 floats, so that the lanes' rows fall in distinct
// banks), the warp's max and sum give the online softmax (base 2), and each lane adds the tile's 32 weighted
// value rows into its Dv / 32 outputs. Sums in a fixed order (four partial sums over d, then keys ascending), so a
// row's result does not depend on the batch. (Sixteen keys a tile, each scored by a whole warp and reduced by
// shuffles, took 0.21 ms a layer at 256 rows of 193 keys, D 224: 28% of a 388M DeepSeek step on the H200.)
template <typename T>
__global__ void mla_decode_attention_kernel(const float* q, const T* cache, float* out, const int32_t* kv_start, const int32_t* kv_end,
                                            int64_t H, int64_t D, int64_t Dv, int64_t capacity, float scale2) {
  extern __shared__ float mla_shared[];
  const int64_t KS = D + 1;                // padded key row
  float* Qs = mla_shared;                  // [kMlaHeads][D], times scale2
  float* Ks = Qs + kMlaHeads * D;          // [kMlaKeys][KS]
  float* Ps = Ks + kMlaKeys * KS;          // [kMlaHeads][kMlaKeys]: the tile's weights
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
  const float* qh = Qs + warp * D;
  float* ph = Ps + warp * kMlaKeys;
  for (int64_t k0 = begin; k0 < end; k0 += kMlaKeys) {
    const int keys = static_cast<int>(min(int64_t(kMlaKeys), end - k0));
    __syncthreads();
    // Rows past the last key are zeros: their weight is 0, and 0 * (stale shared memory) could be NaN.
    const T* tile = rows + k0 * D;
    const int dim = static_cast<int>(D);
    for (int i = threadIdx.x; i < kMlaKeys * dim; i += blockDim.x) {
      const int j = i / dim, d = i - j * dim;
      Ks[j * (dim + 1) + d] = j < keys ? load_as_float(tile + i) : 0.0f;
    }
    __syncthreads();
    if (h >= H) continue;
    const float* krow = Ks + lane * KS;
    // Four partial sums (d mod 4) for independent FMAs, added at the end.
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int64_t d = 0;
    for (; d + 4 <= D; d += 4) {
      s0 = fmaf(qh[d], krow[d], s0);
      s1 = fmaf(qh[d + 1], krow[d + 1], s1);
      s2 = fmaf(qh[d + 2], krow[d + 2], s2);
      s3 = fmaf(qh[d + 3], krow[d + 3], s3);
    }
    for (; d < D; ++d) s0 = fmaf(qh[d], krow[d], s0);
    float s = (s0 + s1) + (s2 + s3);
    if (lane >= keys) s = -INFINITY;
    float tile_max = s;
    #pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
    const float m_new = fmaxf(m, tile_max);
    const float alpha = exp2f(m - m_new);  // m = -inf on the first tile: 0
    const float p = exp2f(s - m_new);
    float p_sum = p;
    #pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) p_sum += __shfl_xor_sync(0xffffffffu, p_sum, offset);
    l = l * alpha + p_sum;
    m = m_new;
    ph[lane] = p;
    __syncwarp();
    #pragma unroll
    for (int i = 0; i < kMlaMaxValues; ++i) {
      const int64_t d = lane + 32 * i;
      if (d >= Dv) break;
      float acc = o[i] * alpha;
      #pragma unroll 8
      for (int j = 0; j < kMlaKeys; ++j) acc = fmaf(ph[j], Ks[j * KS + d], acc);
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
  const size_t shared = sizeof(float) * (kMlaHeads * D + kMlaKeys * (D + 1) + kMlaHeads * kMlaKeys);
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
