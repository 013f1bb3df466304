// Fused scaled-dot-product attention, forward and backward, float32 on CUDA cores.
//
// Forward (flash-attention style): a block holds 32 query rows and walks the visible keys in tiles of 64,
// keeping each row's running max m, sum l and unnormalised output in registers (online softmax), so [Tq, Tk]
// is never materialised. 4 threads share a row: each scores 16 keys of a tile and owns a quarter of the output
// columns. The 32 rows are either 32 consecutive queries of one head (prefill, training) or, when the query
// heads of a GQA group times Tq fit in 32 rows (decoding), every query head of one kv head: then each K/V tile
// is read from memory once for the whole group, and the keys are split over several blocks ("split-K") whose
// partial (m, l, output) are merged by a second kernel, so that one decoding sequence still fills the GPU.
//
// Backward (FlashAttention-2, Dao 2023, Algorithm 2): a block owns 32 keys of one kv head and walks every query
// tile of every query head of its group that can see them, recomputing P = exp(s - lse) from the saved lse;
// dK and dV accumulate in registers and are written once; dQ receives each block's share with atomicAdd.
// D_i = dO_i . O_i is computed first by its own kernel.
//
// Head sizes up to 256 (D and Dv padded to a multiple of 4 in shared memory; templates for 64, 128 and 256).
//
// In bf16 matmul precision, prefill and training shapes with D == Dv of 64 or 128 run on tensor cores instead
// (attention_bf16.cu); decoding (the grouped path) and every other shape stay here.
#include <algorithm>
#include <utility>

#include <cuda_bf16.h>

#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kRows = 32;      // query rows per block (forward) / per tile (backward)
constexpr int kKeys = 64;      // keys per tile (forward)
constexpr int kBwdKeys = 32;   // keys per block (backward)
constexpr int kThreadsAttn = 128;

struct ForwardArgs {
  const float *q, *k, *v;
  float *out, *lse;
  const int32_t* kv_start;
  int64_t B, Tq, Tk, Hq, Hkv, D, Dv, kv_batch_stride, v_batch_stride;
  float scale;
  int causal;
  int grouped;             // rows are (query head of the group, query); else 32 queries of one head
  int vectorized;          // D and Dv multiples of 4, k and v 16-byte aligned: K/V tiles load as float4
  int splits;              // key ranges per row set (grouped only); > 1 writes partials
  int64_t keys_per_split;  // a multiple of kKeys
  float* partial;          // [splits, B, Hq, Tq, 2 + Dv]: m, l, unnormalised output
};

__host__ __device__ inline int64_t round4(int64_t x) { return (x + 3) & ~int64_t(3); }

template <int DMAX>
__global__ void __launch_bounds__(kThreadsAttn) attention_forward_kernel(ForwardArgs a) {
  extern __shared__ float4 shared4[];
  float* shared = reinterpret_cast<float*>(shared4);
  const int64_t Dp = round4(a.D), Dvp = round4(a.Dv);
  const int64_t qs = Dp + 4, ks = Dp + 4, vs = Dvp + 4;  // row strides: +4 keeps float4 rows off one bank
  float* Qs = shared;                      // [kRows][qs]
  float* Ks = Qs + kRows * qs;             // [kKeys][ks]
  float* Vs = Ks + kKeys * ks;             // [kKeys][vs]
  float* Ps = Vs + kKeys * vs;             // [kRows][kKeys + 1]

  const int tid = threadIdx.x, row = tid >> 2, quarter = tid & 3;
  const int64_t b = blockIdx.z;
  const int64_t group = a.Hq / a.Hkv;
  int64_t hk, first_query;
  if (a.grouped) {
    hk = blockIdx.y;
    first_query = 0;
  } else {
    hk = blockIdx.y / group;
    first_query = int64_t(blockIdx.x) * kRows;
  }
  // Row r of this block: query head and query index (valid when active).
  auto row_head = [&](int r) -> int64_t { return a.grouped ? hk * group + r / a.Tq : int64_t(blockIdx.y); };
  auto row_query = [&](int r) -> int64_t { return a.grouped ? r % a.Tq : first_query + r; };
  auto row_active = [&](int r) -> bool { return a.grouped ? r < group * a.Tq : first_query + r < a.Tq; };

  const int64_t h = row_head(row), qi = row_query(row);
  const bool active = row_active(row);
  const int64_t key_lo = a.kv_start ? max(int64_t(0), int64_t(a.kv_start[b])) : 0;
  const int64_t row_last = a.causal ? min(a.Tk - 1, a.Tk - a.Tq + qi) : a.Tk - 1;  // last visible key (inclusive)
  // The keys this block scans: visible to at least one of its rows, and inside its split.
  int64_t block_last_query = a.grouped ? a.Tq - 1 : min(a.Tq - 1, first_query + kRows - 1);
  int64_t key_end = a.causal ? min(a.Tk, a.Tk - a.Tq + block_last_query + 1) : a.Tk;
  int64_t key_begin = key_lo;
  const int split = a.grouped ? blockIdx.x : 0;
  if (a.splits > 1) {
    key_begin = max(key_begin, split * a.keys_per_split);
    key_end = min(key_end, (split + 1) * a.keys_per_split);
  }

  // Q tile (zero-padded beyond D and for inactive rows).
  for (int64_t e = tid; e < kRows * Dp; e += kThreadsAttn) {
    int r = static_cast<int>(e / Dp);
    int64_t d = e - r * Dp;
    float value = 0.0f;
    if (d < a.D && row_active(r)) value = a.q[((b * a.Tq + row_query(r)) * a.Hq + row_head(r)) * a.D + d];
    Qs[r * qs + d] = value;
  }

  constexpr int kCols = DMAX / 16;  // float4 output chunks per thread: chunk quarter + 4 c
  float4 acc[kCols];
  for (int c = 0; c < kCols; ++c) acc[c] = make_float4(0.f, 0.f, 0.f, 0.f);
  float m = -INFINITY, l = 0.0f;

  const float* kb = a.k + b * a.kv_batch_stride;
  const float* vb = a.v + b * a.v_batch_stride;
  const int64_t tile_start = key_begin < key_end ? (key_begin / kKeys) * kKeys : key_end;
  for (int64_t k0 = tile_start; k0 < key_end; k0 += kKeys) {
    __syncthreads();  // the previous tile's K, V and P are no longer read
    if (a.vectorized) {  // 16-byte loads: the decode path is bound by reading the cache
      const int D4 = static_cast<int>(a.D / 4), Dv4 = static_cast<int>(a.Dv / 4);
      for (int e = tid; e < kKeys * D4; e += kThreadsAttn) {
        const int j = e / D4, d4 = e - j * D4;
        const int64_t key = k0 + j;
        reinterpret_cast<float4*>(Ks + j * ks)[d4] =
            key < a.Tk ? reinterpret_cast<const float4*>(kb + (key * a.Hkv + hk) * a.D)[d4] : make_float4(0.f, 0.f, 0.f, 0.f);
      }
      for (int e = tid; e < kKeys * Dv4; e += kThreadsAttn) {
        const int j = e / Dv4, d4 = e - j * Dv4;
        const int64_t key = k0 + j;
        reinterpret_cast<float4*>(Vs + j * vs)[d4] =
            key < a.Tk ? reinterpret_cast<const float4*>(vb + (key * a.Hkv + hk) * a.Dv)[d4] : make_float4(0.f, 0.f, 0.f, 0.f);
      }
    } else {
      const int Dpi = static_cast<int>(Dp), Dvpi = static_cast<int>(Dvp);
      for (int e = tid; e < kKeys * Dpi; e += kThreadsAttn) {
        const int j = e / Dpi, d = e - j * Dpi;
        const int64_t key = k0 + j;
        Ks[j * ks + d] = d < a.D && key < a.Tk ? kb[(key * a.Hkv + hk) * a.D + d] : 0.0f;
      }
      for (int e = tid; e < kKeys * Dvpi; e += kThreadsAttn) {
        const int j = e / Dvpi, d = e - j * Dvpi;
        const int64_t key = k0 + j;
        Vs[j * vs + d] = d < a.Dv && key < a.Tk ? vb[(key * a.Hkv + hk) * a.Dv + d] : 0.0f;
      }
    }
    __syncthreads();

    // Scores of this row against keys quarter + 4 t.
    float s[kKeys / 4];
    for (int t = 0; t < kKeys / 4; ++t) s[t] = 0.0f;
    const float4* q4 = reinterpret_cast<const float4*>(Qs + row * qs);
    for (int64_t d4 = 0; d4 < Dp / 4; ++d4) {
      float4 qv = q4[d4];
      #pragma unroll
      for (int t = 0; t < kKeys / 4; ++t) {
        float4 kv = reinterpret_cast<const float4*>(Ks + (quarter + 4 * t) * ks)[d4];
        s[t] = fmaf(qv.x, kv.x, s[t]);
        s[t] = fmaf(qv.y, kv.y, s[t]);
        s[t] = fmaf(qv.z, kv.z, s[t]);
        s[t] = fmaf(qv.w, kv.w, s[t]);
      }
    }
    float tile_max = -INFINITY;
    #pragma unroll
    for (int t = 0; t < kKeys / 4; ++t) {
      int64_t key = k0 + quarter + 4 * t;
      bool visible = active && key >= key_begin && key < key_end && key <= row_last;
      s[t] = visible ? a.scale * s[t] : -INFINITY;
      tile_max = fmaxf(tile_max, s[t]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    const float m_new = fmaxf(m, tile_max);
    // A row that has seen no visible key yet keeps m = -inf, l = 0 and a zero output.
    const float alpha = m_new == -INFINITY ? 1.0f : expf(m - m_new);
    float tile_sum = 0.0f;
    #pragma unroll
    for (int t = 0; t < kKeys / 4; ++t) {
      float p = m_new == -INFINITY ? 0.0f : expf(s[t] - m_new);
      tile_sum += p;
      Ps[row * (kKeys + 1) + quarter + 4 * t] = p;
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 2);
    l = l * alpha + tile_sum;
    m = m_new;
    for (int c = 0; c < kCols; ++c) {
      acc[c].x *= alpha, acc[c].y *= alpha, acc[c].z *= alpha, acc[c].w *= alpha;
    }
    __syncwarp();  // the 4 threads of a row are in one warp: P of this row is complete
    const float* prow = Ps + row * (kKeys + 1);
    for (int j = 0; j < kKeys; ++j) {
      const float p = prow[j];
      const float4* v4 = reinterpret_cast<const float4*>(Vs + j * vs);
      #pragma unroll
      for (int c = 0; c < kCols; ++c) {
        int64_t chunk = quarter + 4 * c;
        if (chunk < Dvp / 4) {
          float4 vv = v4[chunk];
          acc[c].x = fmaf(p, vv.x, acc[c].x);
          acc[c].y = fmaf(p, vv.y, acc[c].y);
          acc[c].z = fmaf(p, vv.z, acc[c].z);
          acc[c].w = fmaf(p, vv.w, acc[c].w);
        }
      }
    }
  }

  if (!active) return;
  if (a.splits > 1) {
    float* part = a.partial + (((split * a.B + b) * a.Hq + h) * a.Tq + qi) * (2 + a.Dv);
    if (quarter == 0) part[0] = m, part[1] = l;
    for (int c = 0; c < kCols; ++c) {
      int64_t col = (quarter + 4 * c) * 4;
      const float vals[4] = {acc[c].x, acc[c].y, acc[c].z, acc[c].w};
      for (int i = 0; i < 4; ++i) if (col + i < a.Dv) part[2 + col + i] = vals[i];
    }
    return;
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  float* o = a.out + ((b * a.Tq + qi) * a.Hq + h) * a.Dv;
  for (int c = 0; c < kCols; ++c) {
    int64_t col = (quarter + 4 * c) * 4;
    const float vals[4] = {acc[c].x, acc[c].y, acc[c].z, acc[c].w};
    for (int i = 0; i < 4; ++i) if (col + i < a.Dv) o[col + i] = vals[i] * inv;
  }
  if (a.lse && quarter == 0) a.lse[(b * a.Hq + h) * a.Tq + qi] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// Merges the split-K partials of each (b, h, query): one block per row. Each split's weight exp(m_s - M) is
// formed once, into shared memory, so that an output column is a sum over the splits whose loads are
// independent of each other (a long cache split 256 ways would otherwise be a chain of 256 dependent loads).
constexpr int kMaxSplits = 512;
// out16 (decoding only): out written rounded to bf16 there instead.
__global__ void attention_combine_kernel(const float* partial, float* out, float* lse, int splits, int64_t B,
                                         int64_t Hq, int64_t Tq, int64_t Dv, __nv_bfloat16* out16) {
  wait_for_previous_grid();  // launched overlapped in decode graphs (common.cuh)
  allow_next_grid();
  __shared__ float weight[kMaxSplits];
  const int64_t rowi = blockIdx.x;  // (b * Hq + h) * Tq + qi
  const int64_t qi = rowi % Tq, bh = rowi / Tq, h = bh % Hq, b = bh / Hq;
  const int64_t row_stride = B * Hq * Tq * (2 + Dv);
  const float* p = partial + rowi * (2 + Dv);
  float M = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) M = fmaxf(M, p[s * row_stride]);
  M = block_reduce(M, Max{}, -INFINITY);
  float L = 0.0f;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) {
    const float m = p[s * row_stride];
    const float w = m == -INFINITY ? 0.0f : expf(m - M);  // a split that saw no key adds nothing
    weight[s] = w;
    L += w * p[s * row_stride + 1];
  }
  L = block_reduce(L, Add{}, 0.0f);  // its barriers also publish weight[]
  const float inv = L > 0.0f ? 1.0f / L : 0.0f;
  const int64_t o = ((b * Tq + qi) * Hq + h) * Dv;
  for (int64_t col = threadIdx.x; col < Dv; col += blockDim.x) {
    float acc = 0.0f;
    #pragma unroll 8
    for (int s = 0; s < splits; ++s) acc = fmaf(weight[s], p[s * row_stride + 2 + col], acc);
    if (out16) out16[o + col] = __float2bfloat16_rn(acc * inv);
    else out[o + col] = acc * inv;
  }
  if (lse && threadIdx.x == 0) lse[rowi] = L > 0.0f ? M + logf(L) : -INFINITY;
}

// ---- decoding: every query head of a kv head (times Tq) against a long KV cache ----
// Bound by reading the cache, so K and V stream through shared memory by cp.async (16-byte copies, the next
// 64-key tile in flight while this one is scored), each tile read once for all R = group * Tq rows of its kv
// head. Scores: thread t takes key t % 64 and rows t / 64, t / 64 + 2, ... (whole head-size dot products, Q
// broadcast from shared memory). P V: thread t takes one output column for every row, over its share of the
// tile's keys. The keys are split over blocks as in the grouped path above, merged by attention_combine_kernel.
// The cache holds float32 or (a sampling engine's bf16 KV cache, half the bytes to stream) bf16, widened to
// float32 as it is read from shared memory; everything else is float32 either way.
constexpr int kDecodeKeys = 64;
constexpr int kDecodeThreads = 128;

struct DecodeArgs {
  const float* q;
  const void *k, *v;  // float or __nv_bfloat16, as the kernel's template says
  float *out, *lse, *partial;  // partial: [splits, B, Hq, Tq, 2 + D] when splits > 1
  const int32_t* kv_start;
  const int32_t* kv_end;  // per row, keys j >= kv_end[b] are masked (null: none); r1_cuda_decode_attention's
  int64_t B, Tq, Tk, Hq, Hkv, kv_batch_stride, v_batch_stride, keys_per_split;
  float scale2;  // scale * log2 e: scores are kept in base 2
  int causal, splits;
  __nv_bfloat16* out16;  // when set, out is written here rounded to bf16 instead (r1_cuda_decode_attention's out_bf16)
  unsigned* counters;    // when set (and splits > 1, no lse), the last split of each (b, kv head) merges them (arrival_counters)
};

__device__ inline void cp_async16(void* shared, const void* global, bool valid) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(valid ? 16 : 0));
}

__device__ inline float widen(float x) { return x; }
__device__ inline float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
// Four consecutive cache elements (4-element aligned in shared memory) as float4.
__device__ inline float4 widen4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ inline float4 widen4(const __nv_bfloat16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
  const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

// Dynamic shared memory of decode_attention_kernel<D, RMAX, T>.
template <typename T>
size_t decode_shared_bytes(int rmax, int64_t D) {
  const int64_t ks = D + 16 / sizeof(T);
  return sizeof(float) * (rmax * D + rmax * kDecodeKeys + 7 * rmax) + sizeof(T) * (2 * kDecodeKeys * ks + 2 * kDecodeKeys * D);
}

template <int D, int RMAX, typename T>
__global__ void __launch_bounds__(kDecodeThreads) decode_attention_kernel(DecodeArgs a) {
  wait_for_previous_grid();  // launched overlapped in decode graphs (common.cuh)
  allow_next_grid();
  constexpr int kPerChunk = 16 / sizeof(T);  // cache elements per 16-byte copy
  constexpr int KS = D + kPerChunk;  // K row stride: consecutive rows of a 16-byte phase land in distinct banks
  constexpr int kColGroups = kDecodeThreads / D, kKeysPerGroup = kDecodeKeys / kColGroups;
  constexpr float kLn2 = 0.6931471805599453f;
  extern __shared__ float4 decode_shared[];
  float* Qs = reinterpret_cast<float*>(decode_shared);  // [RMAX][D], times scale2
  T* Ks = reinterpret_cast<T*>(Qs + RMAX * D);  // [2 stages][kDecodeKeys][KS]
  T* Vs = Ks + 2 * kDecodeKeys * KS;            // [2 stages][kDecodeKeys][D]
  float* Ps = reinterpret_cast<float*>(Vs + 2 * kDecodeKeys * D);  // [RMAX][kDecodeKeys]
  float* row_m = Ps + RMAX * kDecodeKeys;    // running max (base 2)
  float* row_l = row_m + RMAX;               // running sum
  float* row_alpha = row_l + RMAX;           // this tile's rescaling
  float* part_max = row_alpha + RMAX;        // [2 warp pairs][RMAX]
  float* part_sum = part_max + 2 * RMAX;     // [2 warp pairs][RMAX]

  const int tid = threadIdx.x, lane = tid & 31, pair = (tid >> 5) & 1;
  const int64_t b = blockIdx.z, hk = blockIdx.y, split = blockIdx.x;
  const int64_t group = a.Hq / a.Hkv;
  const int R = static_cast<int>(group * a.Tq);
  // The row's keys [key_lo, key_hi), in tiles from the one holding key_lo, are shared out evenly over the splits:
  // a graph fixes the split count by the cache's capacity, while a row attends to its own stretch of it.
  const int64_t key_lo = a.kv_start ? max(int64_t(0), int64_t(a.kv_start[b])) : 0;
  const int64_t key_hi = a.kv_end ? min(a.Tk, int64_t(a.kv_end[b])) : a.Tk;
  const int64_t tile_lo = (key_lo / kDecodeKeys) * kDecodeKeys;
  const int64_t tiles_per_split = (max(int64_t(0), key_hi - tile_lo) + int64_t(kDecodeKeys) * a.splits - 1) / (int64_t(kDecodeKeys) * a.splits);
  const int64_t key_begin = max(key_lo, tile_lo + split * tiles_per_split * kDecodeKeys);
  const int64_t key_end = min(key_hi, tile_lo + (split + 1) * tiles_per_split * kDecodeKeys);
  const T* kb = static_cast<const T*>(a.k) + b * a.kv_batch_stride + hk * D;
  const T* vb = static_cast<const T*>(a.v) + b * a.v_batch_stride + hk * D;

  // Keys outside [key_begin, key_end) arrive as zeros: never-written cache slots must not bring NaN into P V.
  auto issue = [&](int64_t k0, int stage) {
    constexpr int kChunks = D / kPerChunk, kPerThread = kDecodeKeys * kChunks / kDecodeThreads;
    #pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int e = tid + i * kDecodeThreads, j = e / kChunks, c = e % kChunks;
      const int64_t key = k0 + j;
      const bool valid = key >= key_begin && key < key_end;
      const int64_t at = valid ? key * a.Hkv * D + c * kPerChunk : 0;
      cp_async16(Ks + (stage * kDecodeKeys + j) * KS + c * kPerChunk, kb + at, valid);
      cp_async16(Vs + (stage * kDecodeKeys + j) * D + c * kPerChunk, vb + at, valid);
    }
  };
  const int64_t first = key_begin < key_end ? (key_begin / kDecodeKeys) * kDecodeKeys : key_end;
  if (first < key_end) issue(first, 0);
  asm volatile("cp.async.commit_group;\n");

  for (int e = tid; e < RMAX * D; e += kDecodeThreads) {
    const int r = e / D, d = e % D;
    Qs[e] = r < R ? a.q[((b * a.Tq + r % a.Tq) * a.Hq + hk * group + r / a.Tq) * D + d] * a.scale2 : 0.0f;
  }
  if (tid < RMAX) row_m[tid] = -INFINITY, row_l[tid] = 0.0f, row_alpha[tid] = 1.0f;

  const int key_slot = tid % kDecodeKeys, parity = tid / kDecodeKeys;
  const int col = tid % D, col_group = tid / D;
  float o[RMAX];
  #pragma unroll
  for (int r = 0; r < RMAX; ++r) o[r] = 0.0f;

  int stage = 0;
  for (int64_t k0 = first; k0 < key_end; k0 += kDecodeKeys, stage ^= 1) {
    if (k0 + kDecodeKeys < key_end) issue(k0 + kDecodeKeys, stage ^ 1);
    asm volatile("cp.async.commit_group;\n");
    asm volatile("cp.async.wait_group 1;\n");
    __syncthreads();

    float s[RMAX / 2];
    #pragma unroll
    for (int i = 0; i < RMAX / 2; ++i) s[i] = 0.0f;
    const T* krow = Ks + (stage * kDecodeKeys + key_slot) * KS;
    #pragma unroll 4
    for (int d4 = 0; d4 < D / 4; ++d4) {
      const float4 kv = widen4(krow + 4 * d4);
      #pragma unroll
      for (int i = 0; i < RMAX / 2; ++i) {
        const float4 qv = reinterpret_cast<const float4*>(Qs + (parity + 2 * i) * D)[d4];
        s[i] = fmaf(qv.x, kv.x, fmaf(qv.y, kv.y, fmaf(qv.z, kv.z, fmaf(qv.w, kv.w, s[i]))));
      }
    }
    const int64_t key = k0 + key_slot;
    const bool key_ok = key >= key_begin && key < key_end;
    #pragma unroll
    for (int i = 0; i < RMAX / 2; ++i) {
      const int r = parity + 2 * i;
      const bool visible = key_ok && r < R && (!a.causal || key <= a.Tk - a.Tq + r % a.Tq);
      s[i] = visible ? s[i] : -INFINITY;
      const float tile_max = warp_reduce(s[i], Max{});
      if (lane == 0) part_max[pair * RMAX + r] = tile_max;
    }
    __syncthreads();
    if (tid < R) {
      const float m_new = fmaxf(row_m[tid], fmaxf(part_max[tid], part_max[RMAX + tid]));
      // A row that has seen no visible key yet keeps m = -inf, l = 0 and a zero output.
      row_alpha[tid] = m_new == -INFINITY ? 1.0f : exp2f(row_m[tid] - m_new);
      row_m[tid] = m_new;
    }
    __syncthreads();
    #pragma unroll
    for (int i = 0; i < RMAX / 2; ++i) {
      const int r = parity + 2 * i;
      const float p = row_m[r] == -INFINITY ? 0.0f : exp2f(s[i] - row_m[r]);
      Ps[r * kDecodeKeys + key_slot] = p;
      const float tile_sum = warp_reduce(p, Add{});
      if (lane == 0) part_sum[pair * RMAX + r] = tile_sum;
    }
    __syncthreads();
    if (tid < R) row_l[tid] = row_l[tid] * row_alpha[tid] + part_sum[tid] + part_sum[RMAX + tid];

    const T* vcol = Vs + stage * kDecodeKeys * D + col;
    #pragma unroll
    for (int r = 0; r < RMAX; ++r) o[r] *= row_alpha[r];
    #pragma unroll 2
    for (int j = col_group * kKeysPerGroup; j < (col_group + 1) * kKeysPerGroup; j += 4) {
      const float v0 = widen(vcol[j * D]), v1 = widen(vcol[(j + 1) * D]), v2 = widen(vcol[(j + 2) * D]), v3 = widen(vcol[(j + 3) * D]);
      #pragma unroll
      for (int r = 0; r < RMAX; ++r) {
        const float4 p = *reinterpret_cast<const float4*>(Ps + r * kDecodeKeys + j);
        o[r] = fmaf(p.w, v3, fmaf(p.z, v2, fmaf(p.y, v1, fmaf(p.x, v0, o[r]))));
      }
    }
    __syncthreads();  // this stage and Ps are rewritten by the next iteration
  }
  asm volatile("cp.async.wait_group 0;\n");

  if (kColGroups > 1) {  // sum the column groups' shares through shared memory (the K tiles are free now)
    float* Os = reinterpret_cast<float*>(Ks);
    if (col_group > 0) {
      #pragma unroll
      for (int r = 0; r < RMAX; ++r) Os[((col_group - 1) * RMAX + r) * D + col] = o[r];
    }
    __syncthreads();
    if (col_group == 0) {
      #pragma unroll
      for (int r = 0; r < RMAX; ++r) {
        for (int g2 = 0; g2 < kColGroups - 1; ++g2) o[r] += Os[(g2 * RMAX + r) * D + col];
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < RMAX; ++r) {
    if (r >= R || col_group > 0) break;
    const int64_t h = hk * group + r / a.Tq, qi = r % a.Tq;
    if (a.splits > 1) {
      float* part = a.partial + (((split * a.B + b) * a.Hq + h) * a.Tq + qi) * (2 + D);
      part[2 + col] = o[r];
      if (col == 0) part[0] = row_m[r] * kLn2, part[1] = row_l[r];
    } else {
      const float l = row_l[r];
      const float value = l > 0.0f ? o[r] / l : 0.0f;
      const int64_t at = ((b * a.Tq + qi) * a.Hq + h) * D + col;
      if (a.out16) a.out16[at] = __float2bfloat16_rn(value);
      else a.out[at] = value;
      if (a.lse && col == 0) a.lse[(b * a.Hq + h) * a.Tq + qi] = l > 0.0f ? (row_m[r] + log2f(l)) * kLn2 : -INFINITY;
    }
  }
  if (a.splits == 1 || !a.counters) return;
  // The last split of this (b, kv head) to finish merges the splits' rows, as attention_combine_kernel does (in
  // split order: the result does not depend on which block is last), saving the decode step a kernel per layer.
  __shared__ bool last_split;
  __threadfence();
  __syncthreads();
  unsigned* counter = a.counters + b * a.Hkv + hk;
  if (tid == 0) last_split = atomicAdd(counter, 1u) == unsigned(a.splits - 1);
  __syncthreads();
  if (!last_split) return;
  __threadfence();
  const int64_t split_stride = a.B * a.Hq * a.Tq * (2 + D);
  for (int r = 0; r < R; ++r) {
    const int64_t h = hk * group + r / a.Tq, qi = r % a.Tq;
    const float* p = a.partial + ((b * a.Hq + h) * a.Tq + qi) * (2 + D);
    float M = -INFINITY;
    for (int s = 0; s < a.splits; ++s) M = fmaxf(M, __ldcg(p + s * split_stride));
    float L = 0.0f, acc = 0.0f;
    for (int s = 0; s < a.splits; ++s) {
      const float m = __ldcg(p + s * split_stride);
      const float w = m == -INFINITY ? 0.0f : expf(m - M);  // a split that saw no key adds nothing
      L = fmaf(w, __ldcg(p + s * split_stride + 1), L);
      if (tid < D) acc = fmaf(w, __ldcg(p + s * split_stride + 2 + tid), acc);
    }
    if (tid < D) {
      const float value = L > 0.0f ? acc / L : 0.0f;
      const int64_t at = ((b * a.Tq + qi) * a.Hq + h) * D + tid;
      if (a.out16) a.out16[at] = __float2bfloat16_rn(value);
      else a.out[at] = value;
    }
  }
  if (tid == 0) *counter = 0;  // ready for the next call (every split has arrived)
}

// ---- backward ----

// delta[b, h, i] = dO . O over Dv (FlashAttention-2's D_i), one warp per row.
__global__ void attention_delta_kernel(Input out, Input dout, float* delta, int64_t rows, int64_t Hq, int64_t Tq,
                                       int64_t Dv) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;  // r = (b * Tq + i) * Hq + h
  if (r >= rows) return;
  const int lane = threadIdx.x & 31;
  float acc = 0.0f;
  for (int64_t e = lane; e < Dv; e += 32) acc += read(out, r * Dv + e) * read(dout, r * Dv + e);
  acc = warp_reduce(acc, Add{});
  if (lane == 0) {
    int64_t h = r % Hq, bi = r / Hq, i = bi % Tq, b = bi / Tq;
    delta[(b * Hq + h) * Tq + i] = acc;
  }
}

struct BackwardArgs {
  const float *q, *k, *v, *lse, *dout, *delta;
  float *dq, *dk, *dv;
  const int32_t* kv_start;
  int64_t B, Tq, Tk, Hq, Hkv, D, Dv;
  float scale;
  int causal;
};

template <int DMAX>
__global__ void __launch_bounds__(kThreadsAttn) attention_backward_kernel(BackwardArgs a) {
  extern __shared__ float4 shared4[];
  float* shared = reinterpret_cast<float*>(shared4);
  const int64_t Dp = round4(a.D), Dvp = round4(a.Dv);
  const int64_t ds_ = Dp + 4, dvs = Dvp + 4;
  float* Ks = shared;                        // [kBwdKeys][ds_]
  float* Vs = Ks + kBwdKeys * ds_;           // [kBwdKeys][dvs]
  float* Qs = Vs + kBwdKeys * dvs;           // [kRows][ds_]
  float* dOs = Qs + kRows * ds_;             // [kRows][dvs]
  float* Ps = dOs + kRows * dvs;             // [kBwdKeys][kRows + 1]
  float* dSs = Ps + kBwdKeys * (kRows + 1);  // [kBwdKeys][kRows + 1]
  float* lses = dSs + kBwdKeys * (kRows + 1);  // [kRows]
  float* deltas = lses + kRows;                // [kRows]

  const int tid = threadIdx.x, kr = tid >> 2, quarter = tid & 3;
  const int64_t b = blockIdx.z, hk = blockIdx.y, k0 = int64_t(blockIdx.x) * kBwdKeys;
  const int64_t group = a.Hq / a.Hkv;
  const int64_t key = k0 + kr;
  const int64_t key_lo = a.kv_start ? max(int64_t(0), int64_t(a.kv_start[b])) : 0;

  for (int64_t e = tid; e < kBwdKeys * Dp; e += kThreadsAttn) {
    int j = static_cast<int>(e / Dp);
    int64_t d = e - j * Dp, kj = k0 + j;
    Ks[j * ds_ + d] = d < a.D && kj < a.Tk ? a.k[((b * a.Tk + kj) * a.Hkv + hk) * a.D + d] : 0.0f;
  }
  for (int64_t e = tid; e < kBwdKeys * Dvp; e += kThreadsAttn) {
    int j = static_cast<int>(e / Dvp);
    int64_t d = e - j * Dvp, kj = k0 + j;
    Vs[j * dvs + d] = d < a.Dv && kj < a.Tk ? a.v[((b * a.Tk + kj) * a.Hkv + hk) * a.Dv + d] : 0.0f;
  }

  constexpr int kCols = DMAX / 16;
  float4 dk_acc[kCols], dv_acc[kCols];
  for (int c = 0; c < kCols; ++c) dk_acc[c] = dv_acc[c] = make_float4(0.f, 0.f, 0.f, 0.f);

  // Queries that can see some key of this block: causal query i sees key j when j <= Tk - Tq + i.
  const int64_t block_key_last = min(a.Tk - 1, k0 + kBwdKeys - 1);
  const bool block_visible = block_key_last >= key_lo;
  const int64_t first_q = a.causal ? max(int64_t(0), k0 - (a.Tk - a.Tq)) : 0;
  for (int64_t hg = 0; hg < group && block_visible; ++hg) {
    const int64_t h = hk * group + hg;
    for (int64_t q0 = (first_q / kRows) * kRows; q0 < a.Tq; q0 += kRows) {
      __syncthreads();  // previous tile's Q, dO, P, dS are no longer read
      for (int64_t e = tid; e < kRows * Dp; e += kThreadsAttn) {
        int r = static_cast<int>(e / Dp);
        int64_t d = e - r * Dp, qi = q0 + r;
        Qs[r * ds_ + d] = d < a.D && qi < a.Tq ? a.q[((b * a.Tq + qi) * a.Hq + h) * a.D + d] : 0.0f;
      }
      for (int64_t e = tid; e < kRows * Dvp; e += kThreadsAttn) {
        int r = static_cast<int>(e / Dvp);
        int64_t d = e - r * Dvp, qi = q0 + r;
        dOs[r * dvs + d] = d < a.Dv && qi < a.Tq ? a.dout[((b * a.Tq + qi) * a.Hq + h) * a.Dv + d] : 0.0f;
      }
      if (tid < kRows) {
        int64_t qi = q0 + tid;
        lses[tid] = qi < a.Tq ? a.lse[(b * a.Hq + h) * a.Tq + qi] : -INFINITY;
        deltas[tid] = qi < a.Tq ? a.delta[(b * a.Hq + h) * a.Tq + qi] : 0.0f;
      }
      __syncthreads();

      // This thread: key kr against queries quarter + 4 t.
      float s[kRows / 4], dp[kRows / 4];
      for (int t = 0; t < kRows / 4; ++t) s[t] = dp[t] = 0.0f;
      const float4* k4 = reinterpret_cast<const float4*>(Ks + kr * ds_);
      for (int64_t d4 = 0; d4 < Dp / 4; ++d4) {
        float4 kv = k4[d4];
        #pragma unroll
        for (int t = 0; t < kRows / 4; ++t) {
          float4 qv = reinterpret_cast<const float4*>(Qs + (quarter + 4 * t) * ds_)[d4];
          s[t] = fmaf(kv.x, qv.x, fmaf(kv.y, qv.y, fmaf(kv.z, qv.z, fmaf(kv.w, qv.w, s[t]))));
        }
      }
      const float4* v4 = reinterpret_cast<const float4*>(Vs + kr * dvs);
      for (int64_t d4 = 0; d4 < Dvp / 4; ++d4) {
        float4 vv = v4[d4];
        #pragma unroll
        for (int t = 0; t < kRows / 4; ++t) {
          float4 ov = reinterpret_cast<const float4*>(dOs + (quarter + 4 * t) * dvs)[d4];
          dp[t] = fmaf(vv.x, ov.x, fmaf(vv.y, ov.y, fmaf(vv.z, ov.z, fmaf(vv.w, ov.w, dp[t]))));
        }
      }
      #pragma unroll
      for (int t = 0; t < kRows / 4; ++t) {
        const int r = quarter + 4 * t;
        const int64_t qi = q0 + r;
        const bool visible = qi < a.Tq && key < a.Tk && key >= key_lo &&
                             (!a.causal || key <= a.Tk - a.Tq + qi) && lses[r] != -INFINITY;
        const float p = visible ? expf(a.scale * s[t] - lses[r]) : 0.0f;
        Ps[kr * (kRows + 1) + r] = p;
        dSs[kr * (kRows + 1) + r] = p * (dp[t] - deltas[r]);
      }
      __syncthreads();

      // dV[kr] += sum_r P[kr][r] dO[r];  dK[kr] += scale sum_r dS[kr][r] Q[r]
      for (int r = 0; r < kRows; ++r) {
        const float p = Ps[kr * (kRows + 1) + r], dsv = dSs[kr * (kRows + 1) + r] * a.scale;
        const float4* o4 = reinterpret_cast<const float4*>(dOs + r * dvs);
        const float4* q4 = reinterpret_cast<const float4*>(Qs + r * ds_);
        #pragma unroll
        for (int c = 0; c < kCols; ++c) {
          int64_t chunk = quarter + 4 * c;
          if (chunk < Dvp / 4) {
            float4 ov = o4[chunk];
            dv_acc[c].x = fmaf(p, ov.x, dv_acc[c].x);
            dv_acc[c].y = fmaf(p, ov.y, dv_acc[c].y);
            dv_acc[c].z = fmaf(p, ov.z, dv_acc[c].z);
            dv_acc[c].w = fmaf(p, ov.w, dv_acc[c].w);
          }
          if (chunk < Dp / 4) {
            float4 qv = q4[chunk];
            dk_acc[c].x = fmaf(dsv, qv.x, dk_acc[c].x);
            dk_acc[c].y = fmaf(dsv, qv.y, dk_acc[c].y);
            dk_acc[c].z = fmaf(dsv, qv.z, dk_acc[c].z);
            dk_acc[c].w = fmaf(dsv, qv.w, dk_acc[c].w);
          }
        }
      }
      // dQ[r] += scale sum_kr dS[kr][r] K[kr]: thread (r = tid / 4) sums over this block's keys for its columns.
      {
        const int r = tid >> 2;
        const int64_t qi = q0 + r;
        if (qi < a.Tq) {
          float* dqr = a.dq + ((b * a.Tq + qi) * a.Hq + h) * a.D;
          for (int c = 0; c < kCols; ++c) {
            int64_t chunk = quarter + 4 * c;
            if (chunk >= Dp / 4) break;
            float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
            for (int j = 0; j < kBwdKeys; ++j) {
              const float dsv = dSs[j * (kRows + 1) + r];
              float4 kv = reinterpret_cast<const float4*>(Ks + j * ds_)[chunk];
              sum.x = fmaf(dsv, kv.x, sum.x);
              sum.y = fmaf(dsv, kv.y, sum.y);
              sum.z = fmaf(dsv, kv.z, sum.z);
              sum.w = fmaf(dsv, kv.w, sum.w);
            }
            const float vals[4] = {sum.x, sum.y, sum.z, sum.w};
            for (int i = 0; i < 4; ++i) {
              int64_t col = chunk * 4 + i;
              if (col < a.D && vals[i] != 0.0f) atomicAdd(dqr + col, a.scale * vals[i]);
            }
          }
        }
      }
    }
  }

  if (key >= a.Tk) return;
  float* dkr = a.dk + ((b * a.Tk + key) * a.Hkv + hk) * a.D;
  float* dvr = a.dv + ((b * a.Tk + key) * a.Hkv + hk) * a.Dv;
  for (int c = 0; c < kCols; ++c) {
    int64_t col = (quarter + 4 * c) * 4;
    const float kv[4] = {dk_acc[c].x, dk_acc[c].y, dk_acc[c].z, dk_acc[c].w};
    const float vv[4] = {dv_acc[c].x, dv_acc[c].y, dv_acc[c].z, dv_acc[c].w};
    for (int i = 0; i < 4; ++i) {
      if (col + i < a.D) dkr[col + i] = kv[i];
      if (col + i < a.Dv) dvr[col + i] = vv[i];
    }
  }
}

int head_template(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : d <= 256 ? 256 : 0; }

int sm_count() {
  static int count = 0;
  if (!count) {
    int device = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
    if (count <= 0) count = 100;
  }
  return count;
}

// Kernels above 48 KiB of dynamic shared memory must opt in.
template <class Kernel>
bool allow_shared(Kernel kernel, size_t shared_bytes, const char* name) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes));
  if (err != cudaSuccess) {
    record_error(name, err);
    return false;
  }
  return true;
}

// k and v hold T (float, or __nv_bfloat16 for a bf16 cache); strides count elements of T.
template <typename T>
void decode_attention(const float* q, const T* k, const T* v, float* out, float* lse, const int32_t* kv_start,
                      const int32_t* kv_end, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t kv_batch_stride,
                      int64_t v_batch_stride, float scale, int causal, __nv_bfloat16* out16 = nullptr) {
  const int64_t rows = Hq / Hkv * Tq;
  const int rmax = rows <= 8 ? 8 : 32;
  const size_t shared_bytes = decode_shared_bytes<T>(rmax, D);
  // Split the keys so that about one round of blocks fills every SM: more splits only make blocks of fewer
  // tiles, whose fixed costs (Q, the first tile's latency, the partial row) are no longer hidden.
  int per_sm = 0;
  auto run = [&](auto kernel) {
    if (!allow_shared(kernel, shared_bytes, "r1_attention (decoding)")) return;
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kDecodeThreads, shared_bytes);
    const int64_t blocks = B * Hkv, tiles = (std::max<int64_t>(Tk, 1) + kDecodeKeys - 1) / kDecodeKeys;
    int64_t splits = std::min<int64_t>({tiles, int64_t(kMaxSplits), std::max<int64_t>(1, (std::max(per_sm, 1) * sm_count() + blocks - 1) / blocks)});
    const int64_t keys_per_split = ((tiles + splits - 1) / splits) * kDecodeKeys;
    splits = std::max<int64_t>(1, (Tk + keys_per_split - 1) / keys_per_split);
    float* partial = nullptr;
    unsigned* counters = nullptr;
    bool zeroed_now = false;
    if (splits > 1) {
      partial = static_cast<float*>(scratch(kScratchAttention, splits * B * Hq * Tq * (2 + D) * sizeof(float)));
      if (!partial) return;
      // Without lse to write (a decode step), the last split merges the rows; otherwise the combine kernel.
      if (!lse && !(counters = arrival_counters(B * Hkv, &zeroed_now))) return;
    }
    DecodeArgs a{q, k, v, out, lse, partial, kv_start, kv_end, B, Tq, Tk, Hq, Hkv, kv_batch_stride, v_batch_stride,
                 keys_per_split, scale * 1.4426950408889634f, causal, static_cast<int>(splits), out16, counters};
    const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(Hkv), static_cast<unsigned>(B));
    if (zeroed_now) kernel<<<grid, kDecodeThreads, shared_bytes, stream()>>>(a);  // after a memset: nothing to overlap
    else launch_kernel(kernel, grid, kDecodeThreads, shared_bytes, a);
    if (splits > 1 && !counters) {
      launch_kernel(attention_combine_kernel, static_cast<unsigned>(B * Hq * Tq), 64, 0, partial, out, lse, static_cast<int>(splits), B, Hq, Tq, D, out16);
    }
  };
  if (D == 64) rmax == 8 ? run(decode_attention_kernel<64, 8, T>) : run(decode_attention_kernel<64, 32, T>);
  else rmax == 8 ? run(decode_attention_kernel<128, 8, T>) : run(decode_attention_kernel<128, 32, T>);
  check_launch("r1_attention (decoding)");
}

}  // namespace

extern "C" {

R1_API void r1_attention(const float* q, const float* k, const float* v, float* out, float* lse,
                         const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv,
                         int64_t D, int64_t Dv, int64_t kv_batch_stride, int64_t v_batch_stride, float scale,
                         int causal) {
  if (B <= 0 || Tq <= 0 || Hq <= 0) return;
  const int dmax = head_template(std::max(D, Dv));
  if (!dmax || Hkv <= 0 || Hq % Hkv) {
    record_message("r1_attention", "head sizes above 256, or Hq not a multiple of Hkv, are not supported");
    return;
  }
  cudaStream_t s = stream();
  const bool vectorized = D % 4 == 0 && Dv % 4 == 0 && kv_batch_stride % 4 == 0 && v_batch_stride % 4 == 0 &&
                          (reinterpret_cast<uintptr_t>(k) | reinterpret_cast<uintptr_t>(v)) % 16 == 0;
  ForwardArgs a{q, k, v, out, lse, kv_start, B, Tq, Tk, Hq, Hkv, D, Dv, kv_batch_stride, v_batch_stride, scale, causal,
                0, vectorized ? 1 : 0, 1, 0, nullptr};
  const int64_t group = Hq / Hkv;
  const bool decoding = group * Tq <= kRows;
  if (!decoding && attention_forward_bf16(q, k, v, out, lse, kv_start, B, Tq, Tk, Hq, Hkv, D, Dv, kv_batch_stride,
                                          v_batch_stride, scale, causal)) {
    return;
  }
  // The float32 kernels read floats (v may be a bf16-only GEMM output) and write out's floats (which ends a
  // bf16-only promise made for the tensor-core kernel's copy).
  widen_pending(k, ((B - 1) * kv_batch_stride + Tk * Hkv * D) * static_cast<int64_t>(sizeof(float)));
  widen_pending(v, ((B - 1) * v_batch_stride + Tk * Hkv * Dv) * static_cast<int64_t>(sizeof(float)));
  weights_written(out, B * Tq * Hq * Dv * static_cast<int64_t>(sizeof(float)));
  if (decoding && vectorized && D == Dv && (D == 64 || D == 128)) {
    decode_attention(q, k, v, out, lse, kv_start, nullptr, B, Tq, Tk, Hq, Hkv, D, kv_batch_stride, v_batch_stride, scale, causal);
    return;
  }
  dim3 grid;
  if (decoding) {
    a.grouped = 1;
    // Split the keys so that about two blocks per SM run, each over at least one tile.
    const int64_t blocks = B * Hkv, tiles = (Tk + kKeys - 1) / kKeys;
    int64_t splits = std::min<int64_t>(tiles, std::max<int64_t>(1, (2 * sm_count() + blocks - 1) / blocks));
    splits = std::min<int64_t>(splits, 64);
    if (splits > 1) {
      a.keys_per_split = ((tiles + splits - 1) / splits) * kKeys;
      splits = (Tk + a.keys_per_split - 1) / a.keys_per_split;
    }
    a.splits = static_cast<int>(std::max<int64_t>(splits, 1));
    if (a.splits > 1) {
      a.partial = static_cast<float*>(scratch(kScratchAttention, a.splits * B * Hq * Tq * (2 + Dv) * sizeof(float)));
      if (!a.partial) return;
    }
    grid = dim3(static_cast<unsigned>(a.splits), static_cast<unsigned>(Hkv), static_cast<unsigned>(B));
  } else {
    grid = dim3(static_cast<unsigned>((Tq + kRows - 1) / kRows), static_cast<unsigned>(Hq), static_cast<unsigned>(B));
  }
  const int64_t Dp = round4(D), Dvp = round4(Dv);
  const size_t shared_bytes = sizeof(float) * (kRows * (Dp + 4) + kKeys * (Dp + 4) + kKeys * (Dvp + 4) + kRows * (kKeys + 1));
  auto run = [&](auto kernel) {
    if (!allow_shared(kernel, shared_bytes, "r1_attention")) return;
    kernel<<<grid, kThreadsAttn, shared_bytes, s>>>(a);
  };
  if (dmax == 64) run(attention_forward_kernel<64>);
  else if (dmax == 128) run(attention_forward_kernel<128>);
  else run(attention_forward_kernel<256>);
  if (a.splits > 1) {
    attention_combine_kernel<<<static_cast<unsigned>(B * Hq * Tq), 64, 0, s>>>(a.partial, out, lse, a.splits, B, Hq, Tq, Dv, nullptr);
  }
  check_launch("r1_attention");
}

R1_API void r1_attention_backward(const float* q, const float* k, const float* v, const float* out,
                                  const float* lse, const float* dout, float* dq, float* dk, float* dv,
                                  const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq,
                                  int64_t Hkv, int64_t D, int64_t Dv, float scale, int causal) {
  if (B <= 0 || Hq <= 0) return;
  const int dmax = head_template(std::max(D, Dv));
  if (!dmax || Hkv <= 0 || Hq % Hkv) {
    record_message("r1_attention_backward", "head sizes above 256, or Hq not a multiple of Hkv, are not supported");
    return;
  }
  cudaStream_t s = stream();
  if (Tq > 0) cudaMemsetAsync(dq, 0, sizeof(float) * B * Tq * Hq * D, s);
  if (Tk <= 0) return;
  if (Tq <= 0) {
    cudaMemsetAsync(dk, 0, sizeof(float) * B * Tk * Hkv * D, s);
    cudaMemsetAsync(dv, 0, sizeof(float) * B * Tk * Hkv * Dv, s);
    return;
  }
  auto* delta = static_cast<float*>(scratch(kScratchAttention, sizeof(float) * B * Hq * Tq));
  if (!delta) return;
  const int64_t rows = B * Tq * Hq;
  // out (the forward's) and dout (o_proj's backward GEMM's) may be bf16-only: the delta kernel and the
  // tensor-core kernel read their copies; the float32 kernel below has their floats written back first.
  attention_delta_kernel<<<static_cast<unsigned>((rows + 7) / 8), 256, 0, s>>>(
      input_of(out, rows * Dv), input_of(dout, rows * Dv), delta, rows, Hq, Tq, Dv);
  if (attention_backward_bf16(q, k, v, lse, dout, delta, dq, dk, dv, kv_start, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal)) {
    return;
  }
  for (auto [x, count] : {std::pair{q, rows * D}, std::pair{k, B * Tk * Hkv * D}, std::pair{v, B * Tk * Hkv * Dv},
                          std::pair{dout, rows * Dv}}) {
    widen_pending(x, count * static_cast<int64_t>(sizeof(float)));
  }
  BackwardArgs a{q, k, v, lse, dout, delta, dq, dk, dv, kv_start, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal};
  dim3 grid(static_cast<unsigned>((Tk + kBwdKeys - 1) / kBwdKeys), static_cast<unsigned>(Hkv), static_cast<unsigned>(B));
  const int64_t Dp = round4(D), Dvp = round4(Dv);
  const size_t shared_bytes = sizeof(float) * (kBwdKeys * (Dp + 4) + kBwdKeys * (Dvp + 4) + kRows * (Dp + 4) +
                                               kRows * (Dvp + 4) + 2 * kBwdKeys * (kRows + 1) + 2 * kRows);
  auto run = [&](auto kernel) {
    if (!allow_shared(kernel, shared_bytes, "r1_attention_backward")) return;
    kernel<<<grid, kThreadsAttn, shared_bytes, s>>>(a);
  };
  if (dmax == 64) run(attention_backward_kernel<64>);
  else if (dmax == 128) run(attention_backward_kernel<128>);
  else run(attention_backward_kernel<256>);
  check_launch("r1_attention_backward");
}

}  // extern "C"

extern "C" {

// One query per row against a whole KV cache of `capacity` columns, the visible keys of row b being
// [kv_start[b], kv_end[b]) read from device memory: the decode step's attention with no host-side length, so a
// CUDA graph of the step replays at any column (r1_cuda.h).
R1_API void r1_cuda_decode_attention(const float* q, const void* k, const void* v, float* out, const int32_t* kv_start,
                                     const int32_t* kv_end, int64_t B, int64_t Hq, int64_t Hkv, int64_t D,
                                     int64_t capacity, int64_t kv_batch_stride, int64_t v_batch_stride, float scale,
                                     int bf16, int out_bf16) {
  auto* out16 = out_bf16 ? reinterpret_cast<__nv_bfloat16*>(out) : nullptr;
  if (B <= 0 || capacity <= 0) return;
  const int64_t per_chunk = bf16 ? 8 : 4;  // elements per 16-byte copy
  const bool aligned = kv_batch_stride % per_chunk == 0 && v_batch_stride % per_chunk == 0 &&
                       (reinterpret_cast<uintptr_t>(k) | reinterpret_cast<uintptr_t>(v)) % 16 == 0;
  if (!(D == 64 || D == 128) || Hkv <= 0 || Hq % Hkv != 0 || Hq / Hkv > kRows || !aligned) {
    record_message("r1_cuda_decode_attention", "needs head size 64 or 128, Hq a multiple of Hkv with at most 32 query heads per kv head, and 16-byte aligned K and V");
    return;
  }
  if (bf16) {
    decode_attention(q, static_cast<const __nv_bfloat16*>(k), static_cast<const __nv_bfloat16*>(v), out, nullptr, kv_start,
                     kv_end, B, 1, capacity, Hq, Hkv, D, kv_batch_stride, v_batch_stride, scale, 0, out16);
  } else {
    decode_attention(q, static_cast<const float*>(k), static_cast<const float*>(v), out, nullptr, kv_start, kv_end, B, 1,
                     capacity, Hq, Hkv, D, kv_batch_stride, v_batch_stride, scale, 0, out16);
  }
}

}  // extern "C"
