// y[m, n] = x[m, k] w[n, k]^T (+ bias[n]) for few rows (a decode step's projections: m is the batch), bf16
// operands and float32 accumulation on tensor cores (mma.sync m16n8k16). At 64 rows cuBLASLt's kernels for the
// 494M shape's small projections took 4-7 us for 1.6-8.7 MB of weights (0.4-2 us at the memory bandwidth):
// latency-bound, on few SMs (docs/BENCHMARKS.md). Here the weights are streamed once, split over the whole GPU:
// a block owns 16 output columns and a slice of k, its 4 warps interleave the slice's 32-wide steps (so together
// they read 256 contiguous bytes of each weight row), and a warp holds the products of its 16 columns with up to
// 64 rows of x in registers (x, re-read by every block, stays in L1/L2). When k is split over blocks, each block
// writes its partial products and the last block of a column tile to finish sums them in split order: the result
// does not depend on which block finishes first.
//
// The k order inside a step is permuted alike for both operands (each lane loads 8 consecutive k of a row with
// one 16-byte load and feeds them to two mma steps), which leaves the dot products' terms unchanged.
#include <algorithm>

#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kSkinnyWarps = 4;
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

// The block's slice of its 16 weight rows, fetched into L2 ahead of the loads (sm_90's bulk prefetch: one
// instruction a row). Issued before waiting for the previous kernel, whose tail it overlaps: L2 is coherent, so
// this cannot read a stale value even if that kernel were writing the weights.
__device__ inline void prefetch_rows_l2(const __nv_bfloat16* w, int64_t k, int n0, int first, int last) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (threadIdx.x < 16 && last > first) {
    const __nv_bfloat16* row = w + int64_t(n0 + threadIdx.x) * k + int64_t(first) * 32;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(row), "r"(uint32_t(last - first) * 64u) : "memory");
  }
#endif
}

// grid (n / 16, splits, ceil(m / 64)), 128 threads. kSwiglu: y is bf16 [m, n / 2], swiglu of the tiles' gate and
// up columns (r1_cuda_linear_swiglu).
template <bool kSwiglu>
__global__ void __launch_bounds__(kSkinnyWarps * 32) skinny_gemm_kernel(const __nv_bfloat16* __restrict__ x,
                                                                        const __nv_bfloat16* __restrict__ w,
                                                                        const float* __restrict__ bias, float* y,
                                                                        float* partials, unsigned* counters, int m, int n,
                                                                        int k) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int tile = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int n0 = tile * 16, m0 = blockIdx.z * kSkinnyRows;
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

  prefetch_rows_l2(w, k, n0, first, last);
  wait_for_previous_grid();
  allow_next_grid();
  // Each warp's steps are first + warp + 4 i; kSkinnyUnroll of them are loaded before any is used (a decode
  // shape's block has at most ~8 a warp: all in flight at once).
  uint4 a[kSkinnyUnroll], b[kSkinnyUnroll];
  for (int s0 = first + warp; s0 < last; s0 += kSkinnyWarps * kSkinnyUnroll) {
#pragma unroll
    for (int u = 0; u < kSkinnyUnroll; ++u) {
      const int s = s0 + kSkinnyWarps * u;
      if (s < last) {
        a[u] = load_streaming(w0 + 4 * s);
        b[u] = load_streaming(w8 + 4 * s);
      }
    }
#pragma unroll
    for (int u = 0; u < kSkinnyUnroll; ++u) {
      const int s = s0 + kSkinnyWarps * u;
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
  // The 4 warps' products summed in warp order through shared memory: [warp][16 columns][64 rows].
  __shared__ float part[kSkinnyWarps][16][kSkinnyRows + 1];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    part[warp][g][8 * j + 2 * t] = acc[j][0];
    part[warp][g][8 * j + 2 * t + 1] = acc[j][1];
    part[warp][g + 8][8 * j + 2 * t] = acc[j][2];
    part[warp][g + 8][8 * j + 2 * t + 1] = acc[j][3];
  }
  __syncthreads();
  // Each (column, row)'s sum into part[0]; with k split, into this split's partials, and the tile's last block to
  // finish sums the splits in split order into part[0].
  const int rows = min(kSkinnyRows, m - m0);
  for (int e = threadIdx.x; e < 16 * rows; e += blockDim.x) {
    const int col = e & 15, r = e >> 4;
    float v = part[0][col][r];
#pragma unroll
    for (int q = 1; q < kSkinnyWarps; ++q) v += part[q][col][r];
    if (splits == 1) part[0][col][r] = v;
    else partials[int64_t(split) * m * n + int64_t(m0 + r) * n + n0 + col] = v;
  }
  if (splits > 1) {
    __shared__ bool last_block;
    __threadfence();
    __syncthreads();
    unsigned* counter = counters + int64_t(blockIdx.z) * gridDim.x + tile;
    if (threadIdx.x == 0) last_block = atomicAdd(counter, 1u) == unsigned(splits - 1);
    __syncthreads();
    if (!last_block) return;
    __threadfence();
    for (int e = threadIdx.x; e < 16 * rows; e += blockDim.x) {
      const int col = e & 15, r = e >> 4;
      const int64_t at = int64_t(m0 + r) * n + n0 + col;
      float v = 0.0f;
      for (int q = 0; q < splits; ++q) v += __ldcg(partials + int64_t(q) * m * n + at);
      part[0][col][r] = v;
    }
    if (threadIdx.x == 0) *counter = 0;  // ready for the next call (every split has arrived)
  }
  __syncthreads();
  if (kSwiglu) {
    // The tile's columns are 8 gates then their 8 ups (r1_cuda_linear_swiglu's layout): y is bf16 [m, n / 2].
    auto* y16 = reinterpret_cast<__nv_bfloat16*>(y);
    for (int e = threadIdx.x; e < 8 * rows; e += blockDim.x) {
      const int i = e & 7, r = e >> 3;
      const float gate = bias ? part[0][i][r] + bias[n0 + i] : part[0][i][r];
      const float up = bias ? part[0][8 + i][r] + bias[n0 + 8 + i] : part[0][8 + i][r];
      y16[int64_t(m0 + r) * (n / 2) + tile * 8 + i] = __float2bfloat16_rn(gate * (1.0f / (1.0f + expf(-gate))) * up);
    }
  } else {
    for (int e = threadIdx.x; e < 16 * rows; e += blockDim.x) {
      const int col = e & 15, r = e >> 4;
      y[int64_t(m0 + r) * n + n0 + col] = bias ? part[0][col][r] + bias[n0 + col] : part[0][col][r];
    }
  }
}

// Zeroed counters of at least `count` (grown geometrically, the old buffer retired like scratch()'s: a graph
// may still use it). The zeroing is queued on the stream, so while recording a graph it is recorded too, where
// it rewrites zeros the counters already hold.
unsigned* skinny_counters(int64_t count, bool* zeroed_now) {
  static unsigned* buffer = nullptr;
  static int64_t size = 0;
  *zeroed_now = false;
  if (count <= size) return buffer;
  const int64_t grown = count < 4096 ? 4096 : count + count / 2;
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, size_t(grown) * sizeof(unsigned));
  if (err == cudaSuccess) err = cudaMemsetAsync(ptr, 0, size_t(grown) * sizeof(unsigned), stream());
  if (err != cudaSuccess) {
    record_error("skinny GEMM counters", err);
    return nullptr;
  }
  buffer = static_cast<unsigned*>(ptr);
  size = grown;
  *zeroed_now = true;
  return buffer;
}

}  // namespace

namespace r1cuda {

// skinny_linear and skinny_linear_swiglu.
template <bool kSwiglu>
bool skinny_gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k) {
  if (m <= 0 || m > skinny_max_rows || n % 16 != 0 || k % 32 != 0 || n / 16 > 2147483647 || m * n > (int64_t(1) << 31)) return false;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w)) % 16 != 0) return false;
  const int64_t tiles = n / 16, row_blocks = (m + kSkinnyRows - 1) / kSkinnyRows, steps = k / 32;
  // Enough blocks to cover the GPU twice, each with at least 4 steps of k (one per warp).
  int64_t splits = (2 * 132 + tiles * row_blocks - 1) / (tiles * row_blocks);
  splits = std::max<int64_t>(1, std::min<int64_t>({splits, steps / 4, 64}));
  float* partials = nullptr;
  unsigned* counters = nullptr;
  bool zeroed_now = false;
  if (splits > 1) {
    partials = static_cast<float*>(scratch(kScratchSkinnyGemm, size_t(splits * m * n) * sizeof(float)));
    counters = skinny_counters(tiles * row_blocks, &zeroed_now);
    if (!partials || !counters) return true;  // recorded; nothing queued
  }
  const dim3 grid{static_cast<unsigned>(tiles), static_cast<unsigned>(splits), static_cast<unsigned>(row_blocks)};
  if (zeroed_now) {
    // Just after a memset: no kernel to overlap.
    skinny_gemm_kernel<kSwiglu><<<grid, kSkinnyWarps * 32, 0, stream()>>>(x, w, bias, y, partials, counters, int(m), int(n), int(k));
  } else {
    launch_kernel(skinny_gemm_kernel<kSwiglu>, grid, kSkinnyWarps * 32, 0, x, w, bias, y, partials, counters, int(m), int(n), int(k));
  }
  check_launch("r1_cuda_linear (skinny GEMM)");
  return true;
}

bool skinny_linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, float* y, int64_t m, int64_t n,
                   int64_t k) {
  return skinny_gemm<false>(x, w, bias, y, m, n, k);
}

bool skinny_linear_swiglu(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int64_t m, int64_t n, int64_t k) {
  return skinny_gemm<true>(x, w, nullptr, reinterpret_cast<float*>(y), m, n, k);
}

}  // namespace r1cuda

extern "C" {

R1_API int64_t r1_cuda_set_skinny_gemm_rows(int64_t rows) {
  const int64_t previous = skinny_max_rows;
  skinny_max_rows = int(std::max<int64_t>(0, std::min<int64_t>(rows, 1 << 20)));
  return previous;
}

}  // extern "C"
