// y[m, n] = x[m, k] w[n, k]^T (+ bias[n]) for few rows (a decode step's projections: m is the batch), bf16
// operands and float32 accumulation on tensor cores (mma.sync m16n8k16). At 64 rows cuBLASLt's kernels for the
// 494M shape's small projections took 4-7 us for 1.6-8.7 MB of weights (0.4-2 us at the memory bandwidth):
// latency-bound, on few SMs (docs/BENCHMARKS.md). Here the weights are streamed once, split over the whole GPU:
// each warp owns 16 output columns and holds their products with up to 64 rows of x in registers; a block's 8
// warps walk the same slice of k together, so the x they read comes from L1 once there. When k is split over
// blocks, each block writes its partial products and the last block of a column group to finish sums them in
// split order: the result does not depend on which block finishes first. Its epilogue can apply SwiGLU or RoPE
// with the cache writes (r1_cuda_linear_swiglu, r1_cuda_linear_rope_kv).
//
// Measured on the H200 it runs 3-10x slower than cuBLASLt on every decode shape, for a reason not yet found, so it
// is off unless r1_cuda_set_skinny_gemm_rows turns it on (docs/BENCHMARKS.md).
//
// The k order inside a step is permuted alike for both operands (each lane loads 8 consecutive k of a row with
// one 16-byte load and feeds them to two mma steps), which leaves the dot products' terms unchanged.
#include <algorithm>

#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kSkinnyWarps = 8;    // column tiles (of 16) a block
constexpr int kSkinnyRows = 64;    // rows of x per block (8 tiles of 8); more rows: more blocks along z
constexpr int kSkinnyUnroll = 8;   // 32-wide steps a warp has in flight
int skinny_max_rows = 0;           // r1_cuda_set_skinny_gemm_rows (off: slower than cuBLASLt as measured so far)

__device__ inline void mma_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Weights are read once: no L1 allocation.
__device__ inline uint4 load_streaming(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// What the kernel does with its sums: store them (+ bias), SwiGLU of the tiles' gate and up columns into bf16
// y [m, n / 2] (r1_cuda_linear_swiglu), or RoPE and the cache writes of a decode step's q, k and v
// (r1_cuda_linear_rope_kv).
enum Epilogue { kStore, kSwiglu, kRopeKv };

// grid (ceil(n / 128), splits, ceil(m / 64)), 256 threads: warp w of block x owns the 16 columns of tile 8x + w.
template <int kEpilogue>
__global__ void __launch_bounds__(kSkinnyWarps * 32) skinny_gemm_kernel(const __nv_bfloat16* __restrict__ x,
                                                                        const __nv_bfloat16* __restrict__ w,
                                                                        const float* __restrict__ bias, float* y,
                                                                        float* partials, unsigned* counters, int m, int n,
                                                                        int k, RopeKvArgs rope) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int tile = blockIdx.x * kSkinnyWarps + warp, split = blockIdx.y, splits = gridDim.y;
  const bool tile_ok = tile < n / 16;
  const int n0 = (tile_ok ? tile : 0) * 16, m0 = blockIdx.z * kSkinnyRows;
  const int steps = k / 32;
  const int first = int(int64_t(split) * steps / splits), last = int(int64_t(split + 1) * steps / splits);
  const int k16 = k / 8;  // uint4 (8 bf16) per row
  const uint4* w0 = reinterpret_cast<const uint4*>(w) + int64_t(n0 + g) * k16 + t;
  const uint4* w8 = reinterpret_cast<const uint4*>(w) + int64_t(n0 + g + 8) * k16 + t;
  const uint4* xr[8];
  bool row_ok[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int row = m0 + 8 * j + g;
    row_ok[j] = row < m;
    xr[j] = reinterpret_cast<const uint4*>(x) + int64_t(row_ok[j] ? row : 0) * k16 + t;
  }
  float acc[8][4];
#pragma unroll
  for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
  const int tiles = min(8, (m - m0 + 7) / 8);  // row tiles of 8 holding rows of x

  wait_for_previous_grid();
  allow_next_grid();
  // The block's warps walk the same steps of k in step, so the x they read comes from L1 once it is there;
  // kSkinnyUnroll steps of weights are loaded before any is used.
  uint4 a[kSkinnyUnroll], b[kSkinnyUnroll];
  for (int s0 = first; s0 < last && tile_ok; s0 += kSkinnyUnroll) {
#pragma unroll
    for (int u = 0; u < kSkinnyUnroll; ++u) {
      if (s0 + u < last) {
        a[u] = load_streaming(w0 + 4 * (s0 + u));
        b[u] = load_streaming(w8 + 4 * (s0 + u));
      }
    }
#pragma unroll
    for (int u = 0; u < kSkinnyUnroll; ++u) {
      const int s = s0 + u;
      if (s >= last) break;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (j >= tiles) break;
        const uint4 xv = row_ok[j] ? xr[j][4 * s] : make_uint4(0, 0, 0, 0);
        mma_bf16(acc[j], a[u].x, b[u].x, a[u].y, b[u].y, xv.x, xv.y);
        mma_bf16(acc[j], a[u].z, b[u].z, a[u].w, b[u].w, xv.z, xv.w);
      }
    }
  }
  // Each warp's sums through shared memory, [16 columns][64 rows] a warp; with k split, into this split's
  // partials, and the block's last split to finish sums the splits in split order.
  __shared__ float parts[kSkinnyWarps][16][kSkinnyRows + 1];
  float (*part)[kSkinnyRows + 1] = parts[warp];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    part[g][8 * j + 2 * t] = acc[j][0];
    part[g][8 * j + 2 * t + 1] = acc[j][1];
    part[g + 8][8 * j + 2 * t] = acc[j][2];
    part[g + 8][8 * j + 2 * t + 1] = acc[j][3];
  }
  __syncwarp();
  const int rows = min(kSkinnyRows, m - m0);
  if (splits > 1) {
    if (tile_ok) {
      for (int e = lane; e < 16 * rows; e += 32) {
        const int col = e & 15, r = e >> 4;
        partials[int64_t(split) * m * n + int64_t(m0 + r) * n + n0 + col] = part[col][r];
      }
    }
    __shared__ bool last_block;
    __threadfence();
    __syncthreads();
    unsigned* counter = counters + int64_t(blockIdx.z) * gridDim.x + blockIdx.x;
    if (threadIdx.x == 0) last_block = atomicAdd(counter, 1u) == unsigned(splits - 1);
    __syncthreads();
    if (!last_block) return;
    __threadfence();
    if (tile_ok) {
      for (int e = lane; e < 16 * rows; e += 32) {
        const int col = e & 15, r = e >> 4;
        const int64_t at = int64_t(m0 + r) * n + n0 + col;
        float v = 0.0f;
        for (int q = 0; q < splits; ++q) v += __ldcg(partials + int64_t(q) * m * n + at);
        part[col][r] = v;
      }
    }
    if (threadIdx.x == 0) *counter = 0;  // ready for the next call (every split has arrived)
    __syncwarp();
  }
  if (!tile_ok) return;
  const auto value = [&](int j, int r) { return bias ? part[j][r] + bias[n0 + j] : part[j][r]; };
  if (kEpilogue == kRopeKv) {
    // A head's D columns come as D / 16 tiles of 8 rotation pairs (r1_cuda_linear_rope_kv's layout): tile u holds
    // the first elements of pairs 8u..8u+7, then their second elements.
    const int tiles_per_head = rope.D / 16, head = tile / tiles_per_head, u = tile % tiles_per_head, half = rope.D / 2;
    const auto natural = [&](int j) {
      const int pair = u * 8 + (j & 7);
      return rope.interleaved ? 2 * pair + (j >> 3) : pair + (j >> 3) * half;
    };
    if (head < rope.Hq + rope.Hkv) {
      for (int e = lane; e < 8 * rows; e += 32) {
        const int i = e & 7, r = e >> 3, row = m0 + r;
        const int64_t at_table = int64_t(rope.positions[row]) * half + u * 8 + i;
        const float c = rope.cos[at_table], s = rope.sin[at_table];
        const float a = value(i, r), b = value(8 + i, r);
        const float first = a * c - b * s, second = b * c + a * s;  // rope.cu's rotation
        if (head < rope.Hq) {
          float* q = rope.q + (int64_t(row) * rope.Hq + head) * rope.D;
          q[natural(i)] = first;
          q[natural(8 + i)] = second;
        } else {
          const int64_t col = rope.column[row];
          if (col < 0 || col >= rope.capacity) continue;
          const int64_t at = ((row * rope.capacity + col) * rope.Hkv + (head - rope.Hq)) * rope.D;
          if (rope.cache_bf16) {
            store_as(static_cast<__nv_bfloat16*>(rope.k_cache) + at + natural(i), first);
            store_as(static_cast<__nv_bfloat16*>(rope.k_cache) + at + natural(8 + i), second);
          } else {
            store_as(static_cast<float*>(rope.k_cache) + at + natural(i), first);
            store_as(static_cast<float*>(rope.k_cache) + at + natural(8 + i), second);
          }
        }
      }
    } else {
      for (int e = lane; e < 16 * rows; e += 32) {
        const int j = e & 15, r = e >> 4, row = m0 + r;
        const int64_t col = rope.column[row];
        if (col < 0 || col >= rope.capacity) continue;
        const int64_t at = ((row * rope.capacity + col) * rope.Hkv + (head - rope.Hq - rope.Hkv)) * rope.D + natural(j);
        if (rope.cache_bf16) store_as(static_cast<__nv_bfloat16*>(rope.v_cache) + at, value(j, r));
        else store_as(static_cast<float*>(rope.v_cache) + at, value(j, r));
      }
    }
  } else if (kEpilogue == kSwiglu) {
    // The tile's columns are 8 gates then their 8 ups (r1_cuda_linear_swiglu's layout): y is bf16 [m, n / 2].
    auto* y16 = reinterpret_cast<__nv_bfloat16*>(y);
    for (int e = lane; e < 8 * rows; e += 32) {
      const int i = e & 7, r = e >> 3;
      const float gate = value(i, r), up = value(8 + i, r);
      y16[int64_t(m0 + r) * (n / 2) + tile * 8 + i] = __float2bfloat16_rn(gate * (1.0f / (1.0f + expf(-gate))) * up);
    }
  } else {
    for (int e = lane; e < 16 * rows; e += 32) {
      const int col = e & 15, r = e >> 4;
      y[int64_t(m0 + r) * n + n0 + col] = value(col, r);
    }
  }
}

}  // namespace

namespace r1cuda {

// skinny_linear and skinny_linear_swiglu.
template <int kEpilogue>
bool skinny_gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
                 const RopeKvArgs& rope = {}) {
  if (m <= 0 || m > skinny_max_rows || n % 16 != 0 || k % 32 != 0 || n / 16 > 2147483647 || m * n > (int64_t(1) << 31)) return false;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w)) % 16 != 0) return false;
  const int64_t tiles = n / 16, groups = (tiles + kSkinnyWarps - 1) / kSkinnyWarps, row_blocks = (m + kSkinnyRows - 1) / kSkinnyRows;
  const int64_t steps = k / 32;
  // k split until the blocks cover the GPU twice, each warp keeping at least 4 steps.
  int64_t splits = (2 * 132 + groups * row_blocks - 1) / (groups * row_blocks);
  splits = std::max<int64_t>(1, std::min<int64_t>({splits, steps / 4, 64}));
  float* partials = nullptr;
  unsigned* counters = nullptr;
  bool zeroed_now = false;
  if (splits > 1) {
    partials = static_cast<float*>(scratch(kScratchSkinnyGemm, size_t(splits * m * n) * sizeof(float)));
    counters = arrival_counters(groups * row_blocks, &zeroed_now);
    if (!partials || !counters) return true;  // recorded; nothing queued
  }
  const dim3 grid{static_cast<unsigned>(groups), static_cast<unsigned>(splits), static_cast<unsigned>(row_blocks)};
  if (zeroed_now) {
    // Just after a memset: no kernel to overlap.
    skinny_gemm_kernel<kEpilogue><<<grid, kSkinnyWarps * 32, 0, stream()>>>(x, w, bias, y, partials, counters, int(m), int(n), int(k), rope);
  } else {
    launch_kernel(skinny_gemm_kernel<kEpilogue>, grid, kSkinnyWarps * 32, 0, x, w, bias, y, partials, counters, int(m), int(n), int(k), rope);
  }
  check_launch("r1_cuda_linear (skinny GEMM)");
  return true;
}

bool skinny_linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, float* y, int64_t m, int64_t n,
                   int64_t k) {
  return skinny_gemm<kStore>(x, w, bias, y, m, n, k);
}

bool skinny_linear_swiglu(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int64_t m, int64_t n, int64_t k) {
  return skinny_gemm<kSwiglu>(x, w, nullptr, reinterpret_cast<float*>(y), m, n, k);
}

bool skinny_linear_rope_kv(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, int64_t m, int64_t n, int64_t k,
                           const RopeKvArgs& rope) {
  if (rope.D % 16 != 0) return false;
  return skinny_gemm<kRopeKv>(x, w, bias, nullptr, m, n, k, rope);
}

}  // namespace r1cuda

extern "C" {

R1_API int64_t r1_cuda_set_skinny_gemm_rows(int64_t rows) {
  const int64_t previous = skinny_max_rows;
  skinny_max_rows = int(std::max<int64_t>(0, std::min<int64_t>(rows, 1 << 20)));
  return previous;
}

}  // extern "C"
