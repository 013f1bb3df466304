// RMSNorm forward and backward, one block per row. dw sums over every row, in two stages without atomics (so
// the result is the same on every run): per-column partial sums over slices of rows, then one pass adding the
// slices into dw (which accumulates, as r1.h says for _backward parameter gradients). The sums are in double, as
// the reference's: dw is a sum of many terms that cancel, where a float32 sum loses ~1e-5 of the result.
#include <initializer_list>

#include "common.cuh"

using namespace r1cuda;

namespace {

// y16 (nullable): y's bf16 copy, written in the same pass (output_copy in common.cuh); copy_only: y is a bf16-only
// output (only GEMMs read it), so its floats are not written.
__global__ void rmsnorm_kernel(const float* x, const float* w, float* y, __nv_bfloat16* y16, bool copy_only, float* rstd,
                               int64_t dim, float eps) {
  const float* xr = x + blockIdx.x * dim;
  float* yr = y + blockIdx.x * dim;
  float sum = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) sum += xr[d] * xr[d];
  sum = block_reduce(sum, Add{}, 0.0f);
  const float s = 1.0f / sqrtf(sum / static_cast<float>(dim) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = s;
  if (y16) {
    __nv_bfloat16* y16r = y16 + blockIdx.x * dim;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
      const float value = w[d] * xr[d] * s;
      if (!copy_only) yr[d] = value;
      y16r[d] = __float2bfloat16_rn(value);
    }
  } else {
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) yr[d] = w[d] * xr[d] * s;
  }
}

// dx_k = s (w_k dy_k - x_k s^2 / dim * sum_j w_j dy_j x_j)
__global__ void rmsnorm_dx_kernel(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                                  int64_t dim) {
  const float* xr = x + blockIdx.x * dim;
  const float* dyr = dy + blockIdx.x * dim;
  float* dxr = dx + blockIdx.x * dim;
  float dot = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dot += w[d] * dyr[d] * xr[d];
  dot = block_reduce(dot, Add{}, 0.0f);
  const float s = rstd[blockIdx.x];
  const float coefficient = s * s * dot / static_cast<float>(dim);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dxr[d] = s * (w[d] * dyr[d] - xr[d] * coefficient);
}

// The same two kernels with a warp per row and four floats per load, for many rows of a width divisible by 4
// (training's [tokens, hidden]): a block per row spent its time in the block reduction's barriers and 4-byte
// loads. The second pass reads the row again from L1. Block (32, kRowsPerBlock): threadIdx.y picks the row.
constexpr int kRowsPerBlock = 8;

__global__ void rmsnorm_rows_kernel(const float4* x, const float4* w, float4* y, uint2* y16, bool copy_only, float* rstd,
                                    int64_t rows, int64_t dim4, float eps) {
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.y;
  if (row >= rows) return;
  const float4* xr = x + row * dim4;
  float sum = 0.0f;
  for (int64_t d = threadIdx.x; d < dim4; d += 32) {
    const float4 v = xr[d];
    sum += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  sum = warp_reduce(sum, Add{});
  const float s = 1.0f / sqrtf(sum / static_cast<float>(4 * dim4) + eps);
  if (threadIdx.x == 0) rstd[row] = s;
  for (int64_t d = threadIdx.x; d < dim4; d += 32) {
    const float4 v = xr[d], g = w[d];
    const float4 out = make_float4(g.x * v.x * s, g.y * v.y * s, g.z * v.z * s, g.w * v.w * s);
    if (!copy_only) y[row * dim4 + d] = out;
    if (y16) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(out.x, out.y), hi = __floats2bfloat162_rn(out.z, out.w);
      y16[row * dim4 + d] = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
    }
  }
}

__global__ void rmsnorm_dx_rows_kernel(const float4* x, const float4* w, const float* rstd, const float4* dy, float4* dx,
                                       int64_t rows, int64_t dim4) {
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.y;
  if (row >= rows) return;
  const float4 *xr = x + row * dim4, *dyr = dy + row * dim4;
  float dot = 0.0f;
  for (int64_t d = threadIdx.x; d < dim4; d += 32) {
    const float4 a = xr[d], g = w[d], b = dyr[d];
    dot += g.x * b.x * a.x + g.y * b.y * a.y + g.z * b.z * a.z + g.w * b.w * a.w;
  }
  dot = warp_reduce(dot, Add{});
  const float s = rstd[row];
  const float coefficient = s * s * dot / static_cast<float>(4 * dim4);
  for (int64_t d = threadIdx.x; d < dim4; d += 32) {
    const float4 a = xr[d], g = w[d], b = dyr[d];
    dx[row * dim4 + d] = make_float4(s * (g.x * b.x - a.x * coefficient), s * (g.y * b.y - a.y * coefficient),
                                     s * (g.z * b.z - a.z * coefficient), s * (g.w * b.w - a.w * coefficient));
  }
}

// The warp-per-row kernels' condition: enough rows to fill the GPU with warps (decoding's few rows keep a block
// each), a width divisible by 4 and 16-byte aligned buffers.
bool by_rows(int64_t rows, int64_t dim, std::initializer_list<const void*> buffers) {
  if (rows < 1024 || dim % 4 != 0) return false;
  for (const void* p : buffers) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

// Block (32, 8): 32 columns, 8 row lanes; blockIdx.y is the slice of rows.
__global__ void rmsnorm_dw_partial_kernel(const float* x, const float* rstd, const float* dy, double* partial,
                                          int64_t rows, int64_t dim) {
  __shared__ double sums[8][33];
  const int64_t d = blockIdx.x * 32 + threadIdx.x;
  double acc = 0.0;
  if (d < dim) {
    for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += int64_t(gridDim.y) * 8) {
      acc += static_cast<double>(dy[r * dim + d]) * x[r * dim + d] * rstd[r];
    }
  }
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && d < dim) {
    double total = 0.0;
    for (int j = 0; j < 8; ++j) total += sums[j][threadIdx.x];
    partial[blockIdx.y * dim + d] = total;
  }
}

__global__ void rmsnorm_dw_sum_kernel(const double* partial, float* dw, int64_t slices, int64_t dim) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < dim; d += int64_t(gridDim.x) * blockDim.x) {
    double total = 0.0;
    for (int64_t j = 0; j < slices; ++j) total += partial[j * dim + d];
    dw[d] = static_cast<float>(dw[d] + total);
  }
}

int threads_for(int64_t dim) { return dim >= 4096 ? 1024 : dim >= 1024 ? 512 : dim >= 256 ? 256 : 128; }

}  // namespace

extern "C" {

R1_API void r1_rmsnorm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t dim, float eps) {
  if (rows <= 0 || dim <= 0) return;
  bool copy_only = false;
  __nv_bfloat16* y16 = output_copy(y, rows * dim, &copy_only);
  if (by_rows(rows, dim, {x, w, y})) {
    rmsnorm_rows_kernel<<<static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock), dim3(32, kRowsPerBlock), 0, stream()>>>(
        reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(w), reinterpret_cast<float4*>(y),
        reinterpret_cast<uint2*>(y16), copy_only, rstd, rows, dim / 4, eps);
  } else {
    rmsnorm_kernel<<<static_cast<unsigned>(rows), threads_for(dim), 0, stream()>>>(x, w, y, y16, copy_only, rstd, dim, eps);
  }
  check_launch("r1_rmsnorm");
}

R1_API void r1_rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                                float* dw, int64_t rows, int64_t dim) {
  if (rows <= 0 || dim <= 0) return;
  cudaStream_t s = stream();
  if (by_rows(rows, dim, {x, w, dy, dx})) {
    rmsnorm_dx_rows_kernel<<<static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock), dim3(32, kRowsPerBlock), 0, s>>>(
        reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(w), rstd, reinterpret_cast<const float4*>(dy),
        reinterpret_cast<float4*>(dx), rows, dim / 4);
  } else {
    rmsnorm_dx_kernel<<<static_cast<unsigned>(rows), threads_for(dim), 0, s>>>(x, w, rstd, dy, dx, dim);
  }
  // About 64 rows per slice, at most 256 slices: enough blocks to fill the GPU for any width.
  int64_t slices = (rows + 63) / 64;
  if (slices > 256) slices = 256;
  auto* partial = static_cast<double*>(scratch(kScratchPartials, slices * dim * sizeof(double)));
  if (!partial) return;
  dim3 grid(static_cast<unsigned>((dim + 31) / 32), static_cast<unsigned>(slices));
  rmsnorm_dw_partial_kernel<<<grid, dim3(32, 8), 0, s>>>(x, rstd, dy, partial, rows, dim);
  rmsnorm_dw_sum_kernel<<<grid_for(dim), kThreads, 0, s>>>(partial, dw, slices, dim);
  check_launch("r1_rmsnorm_backward");
}

}  // extern "C"
