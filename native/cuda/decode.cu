// Fused kernels of a dense model's decode step (src/models/dense-decode.ts), each doing in one launch what the
// layer-by-layer forward does in two to four: a decode step of the 494M shape was ~680 small kernels, each
// costing ~3 us even replayed from a CUDA graph, while its weights stream in 0.23 ms (docs/BENCHMARKS.md).
// Every kernel computes its values with the same float32 expressions as the unfused kernels it replaces
// (norm.cu, rope.cu, elementwise.cu's swiglu, indexing.cu's column writes), so only where the output is bf16 does
// a value differ from theirs, by its rounding.
#include "common.cuh"

using namespace r1cuda;

namespace {

// One block per row: sum = x + residual (when given), then y = w * sum / sqrt(mean(sum^2) + eps), float or bf16.
template <typename T>
__global__ void add_rmsnorm_kernel(const float* x, const float* residual, const float* w, float* sum, T* y, int64_t dim,
                                   float eps) {
  wait_for_previous_grid();
  allow_next_grid();
  const int64_t row = blockIdx.x * dim;
  float squares = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float v = residual ? x[row + d] + residual[row + d] : x[row + d];
    if (sum) sum[row + d] = v;
    squares += v * v;
  }
  squares = block_reduce(squares, Add{}, 0.0f);
  const float s = 1.0f / sqrtf(squares / static_cast<float>(dim) + eps);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float v = residual ? x[row + d] + residual[row + d] : x[row + d];
    store_as(y + row + d, w[d] * v * s);
  }
}

int norm_threads(int64_t dim) { return dim >= 4096 ? 1024 : dim >= 1024 ? 512 : dim >= 256 ? 256 : 128; }

constexpr int kRowsPerBlock = 8;

// Where element d of a head is in src: d itself, or with `permuted` (RoPE over the whole head), its place in tiles
// of 8 rotation pairs (r1_cuda_linear_rope_kv's layout: tile u holds the first elements of pairs 8u..8u+7, then
// their second elements).
__device__ inline int source_index(int d, int half, int interleaved, bool permuted) {
  if (!permuted) return d;
  const int pair = interleaved ? d >> 1 : (d < half ? d : d - half);
  const int second = interleaved ? (d & 1) : (d >= half ? 1 : 0);
  return (pair >> 3) * 16 + second * 8 + (pair & 7);
}

// Rotates one head row src[0, head_dim) into dst (rope.cu's rotation), lanes of one warp over the pairs.
template <typename T>
__device__ inline void rotate_row(const float* src, T* dst, const float* cos_row, const float* sin_row, int half,
                                  int rot, int dim, int interleaved, bool permuted) {
  for (int i = threadIdx.x; i < half; i += 32) {
    const float c = cos_row[i], s = sin_row[i];
    const int i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
    const float a = src[source_index(i1, half, interleaved, permuted)], b = src[source_index(i2, half, interleaved, permuted)];
    store_as(dst + i1, a * c - b * s);
    store_as(dst + i2, b * c + a * s);
  }
  for (int d = rot + threadIdx.x; d < dim; d += 32) store_as(dst + d, src[d]);
}

// qkv [B, (Hq + 2 Hkv) * D] (the fused projection's output: q heads, k heads, v heads): q rotated into q
// [B, Hq, D]; k rotated and v copied into column column[b] of the caches [B, capacity, Hkv, D] (skipped when the
// column is out of range, as r1_cuda_write_columns skips it). One warp per head row.
template <typename T>
__global__ void rope_write_kv_kernel(const float* qkv, const int32_t* positions, const float* cos, const float* sin,
                                     const int32_t* column, float* q, T* k_cache, T* v_cache, int64_t B, int64_t Hq,
                                     int64_t Hkv, int64_t D, int64_t rot_dim, int interleaved, int64_t capacity,
                                     bool permuted) {
  wait_for_previous_grid();
  allow_next_grid();
  const int64_t heads = Hq + 2 * Hkv;
  const int half = static_cast<int>(rot_dim / 2), rot = static_cast<int>(rot_dim), dim = static_cast<int>(D);
  for (int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.y; row < B * heads; row += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t b = row / heads, h = row - b * heads;
    const float* src = qkv + row * D;
    const int64_t c = column[b];
    const bool in_cache = c >= 0 && c < capacity;
    const float* cos_row = cos + static_cast<int64_t>(positions[b]) * half;
    const float* sin_row = sin + static_cast<int64_t>(positions[b]) * half;
    if (h < Hq) {
      rotate_row(src, q + (b * Hq + h) * D, cos_row, sin_row, half, rot, dim, interleaved, permuted);
    } else if (h < Hq + Hkv) {
      if (in_cache) rotate_row(src, k_cache + ((b * capacity + c) * Hkv + (h - Hq)) * D, cos_row, sin_row, half, rot, dim, interleaved, permuted);
    } else if (in_cache) {
      T* dst = v_cache + ((b * capacity + c) * Hkv + (h - Hq - Hkv)) * D;
      for (int d = threadIdx.x; d < dim; d += 32) store_as(dst + d, src[source_index(d, half, interleaved, permuted)]);
    }
  }
}

// y[r, i] = silu(gate) * up (elementwise.cu's swiglu_value): gate and up from one GEMM, gate_up [rows, 2 inter]
// holding them as halves (gate_up[r, i] and gate_up[r, inter + i]), or with grouped, in groups of 16 columns: 8
// gates, then their 8 ups (r1_cuda_linear_swiglu's layout).
template <typename T>
__global__ void swiglu_rows_kernel(const float* gate_up, T* y, int64_t rows, int64_t inter, bool grouped) {
  wait_for_previous_grid();
  allow_next_grid();
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < rows * inter; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / inter, i = e - r * inter;
    const int64_t gate_at = grouped ? (i / 8) * 16 + (i % 8) : i, up_at = grouped ? gate_at + 8 : inter + i;
    const float g = gate_up[r * 2 * inter + gate_at], u = gate_up[r * 2 * inter + up_at];
    store_as(y + e, g * (1.0f / (1.0f + expf(-g))) * u);
  }
}

}  // namespace

namespace r1cuda {

void rope_write_kv_permuted(const float* qkv, const RopeKvArgs& r, int64_t B) {
  const int64_t rows = B * (r.Hq + 2 * r.Hkv);
  if (rows <= 0) return;
  const unsigned grid = grid_for(rows, kRowsPerBlock);
  const dim3 block(32, kRowsPerBlock);
  if (r.cache_bf16) {
    launch_kernel(rope_write_kv_kernel<__nv_bfloat16>, grid, block, 0, qkv, r.positions, r.cos, r.sin, r.column, r.q,
                  static_cast<__nv_bfloat16*>(r.k_cache), static_cast<__nv_bfloat16*>(r.v_cache), B, int64_t(r.Hq),
                  int64_t(r.Hkv), int64_t(r.D), int64_t(r.D), r.interleaved, r.capacity, true);
  } else {
    launch_kernel(rope_write_kv_kernel<float>, grid, block, 0, qkv, r.positions, r.cos, r.sin, r.column, r.q,
                  static_cast<float*>(r.k_cache), static_cast<float*>(r.v_cache), B, int64_t(r.Hq), int64_t(r.Hkv),
                  int64_t(r.D), int64_t(r.D), r.interleaved, r.capacity, true);
  }
  check_launch("r1_cuda_linear_rope_kv (rope)");
}

void swiglu_grouped_rows(const float* gate_up, __nv_bfloat16* y, int64_t rows, int64_t inter) {
  if (rows <= 0 || inter <= 0) return;
  launch_kernel(swiglu_rows_kernel<__nv_bfloat16>, grid_for(rows * inter), kThreads, 0, gate_up, y, rows, inter, true);
  check_launch("r1_cuda_linear_swiglu (swiglu)");
}

}  // namespace r1cuda

extern "C" {

R1_API void r1_cuda_add_rmsnorm(const float* x, const float* residual, const float* w, float* sum, void* y, int64_t rows,
                                int64_t dim, float eps, int bf16) {
  if (rows <= 0 || dim <= 0) return;
  if (bf16) {
    launch_kernel(add_rmsnorm_kernel<__nv_bfloat16>, static_cast<unsigned>(rows), norm_threads(dim), 0, x, residual, w, sum, static_cast<__nv_bfloat16*>(y), dim, eps);
  } else {
    launch_kernel(add_rmsnorm_kernel<float>, static_cast<unsigned>(rows), norm_threads(dim), 0, x, residual, w, sum, static_cast<float*>(y), dim, eps);
  }
  check_launch("r1_cuda_add_rmsnorm");
}

R1_API void r1_cuda_rope_write_kv(const float* qkv, const int32_t* positions, const float* cos, const float* sin,
                                  const int32_t* column, float* q, void* k_cache, void* v_cache, int64_t B, int64_t Hq,
                                  int64_t Hkv, int64_t D, int64_t rot_dim, int interleaved, int64_t capacity, int bf16) {
  const int64_t rows = B * (Hq + 2 * Hkv);
  if (rows <= 0 || D <= 0) return;
  const unsigned grid = grid_for(rows, kRowsPerBlock);
  const dim3 block(32, kRowsPerBlock);
  if (bf16) {
    launch_kernel(rope_write_kv_kernel<__nv_bfloat16>, grid, block, 0, qkv, positions, cos, sin, column, q, static_cast<__nv_bfloat16*>(k_cache),
                  static_cast<__nv_bfloat16*>(v_cache), B, Hq, Hkv, D, rot_dim, interleaved, capacity, false);
  } else {
    launch_kernel(rope_write_kv_kernel<float>, grid, block, 0, qkv, positions, cos, sin, column, q, static_cast<float*>(k_cache),
                  static_cast<float*>(v_cache), B, Hq, Hkv, D, rot_dim, interleaved, capacity, false);
  }
  check_launch("r1_cuda_rope_write_kv");
}

R1_API void r1_cuda_swiglu_rows(const float* gate_up, void* y, int64_t rows, int64_t inter, int bf16) {
  if (rows <= 0 || inter <= 0) return;
  if (bf16) {
    launch_kernel(swiglu_rows_kernel<__nv_bfloat16>, grid_for(rows * inter), kThreads, 0, gate_up, static_cast<__nv_bfloat16*>(y), rows, inter, false);
  } else {
    launch_kernel(swiglu_rows_kernel<float>, grid_for(rows * inter), kThreads, 0, gate_up, static_cast<float*>(y), rows, inter, false);
  }
  check_launch("r1_cuda_swiglu_rows");
}

}  // extern "C"
