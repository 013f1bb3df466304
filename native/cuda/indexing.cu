// Embedding lookup, gather along the middle axis, and their adjoints. The adjoints accumulate with atomicAdd:
// repeated ids add up, in an order that varies from run to run (float sums may differ in the last bits).
#include <cuda_bf16.h>

#include "common.cuh"

using namespace r1cuda;

namespace {

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void embedding_kernel(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  GRID_STRIDE(e, n * dim) {
    int64_t i = e / dim, d = e - i * dim;
    out[e] = table[static_cast<int64_t>(ids[i]) * dim + d];
  }
}

__global__ void embedding_backward_kernel(const int32_t* ids, const float* dout, float* dtable, int64_t n, int64_t dim) {
  GRID_STRIDE(e, n * dim) {
    int64_t i = e / dim, d = e - i * dim;
    atomicAdd(dtable + static_cast<int64_t>(ids[i]) * dim + d, dout[e]);
  }
}

__global__ void gather_kernel(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t len, int64_t inner,
                              int64_t k) {
  GRID_STRIDE(at, outer * k * inner) {
    int64_t o = at / (k * inner), i = at % inner;
    out[at] = x[(o * len + idx[at]) * inner + i];
  }
}

__global__ void scatter_add_kernel(const int32_t* idx, const float* dout, float* dx, int64_t outer, int64_t len,
                                   int64_t inner, int64_t k) {
  GRID_STRIDE(at, outer * k * inner) {
    int64_t o = at / (k * inner), i = at % inner;
    atomicAdd(dx + (o * len + idx[at]) * inner + i, dout[at]);
  }
}

}  // namespace

// cache[b, column[b], :] = src[b, :]: a decode step's new key or value written at a column read from device
// memory (r1_cuda_write_columns); into a bf16 cache, rounded to nearest even.
template <typename T>
__global__ void write_columns_kernel(T* cache, const float* src, const int32_t* column, int64_t B, int64_t capacity,
                                     int64_t width) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < B * width; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / width, i = e % width;
    const int64_t c = column[b];
    if (c >= 0 && c < capacity) store_as(cache + (b * capacity + c) * width + i, src[e]);
  }
}

extern "C" {

R1_API void r1_embedding(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  if (n <= 0 || dim <= 0) return;
  embedding_kernel<<<grid_for(n * dim), kThreads, 0, stream()>>>(table, ids, out, n, dim);
  check_launch("r1_embedding");
}

R1_API void r1_embedding_backward(const int32_t* ids, const float* dout, float* dtable, int64_t n, int64_t dim) {
  if (n <= 0 || dim <= 0) return;
  embedding_backward_kernel<<<grid_for(n * dim), kThreads, 0, stream()>>>(ids, dout, dtable, n, dim);
  check_launch("r1_embedding_backward");
}

R1_API void r1_gather(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t len, int64_t inner,
                      int64_t k) {
  if (outer <= 0 || inner <= 0 || k <= 0) return;
  gather_kernel<<<grid_for(outer * k * inner), kThreads, 0, stream()>>>(x, idx, out, outer, len, inner, k);
  check_launch("r1_gather");
}

R1_API void r1_scatter_add(const int32_t* idx, const float* dout, float* dx, int64_t outer, int64_t len,
                           int64_t inner, int64_t k) {
  if (outer <= 0 || inner <= 0 || k <= 0) return;
  scatter_add_kernel<<<grid_for(outer * k * inner), kThreads, 0, stream()>>>(idx, dout, dx, outer, len, inner, k);
  check_launch("r1_scatter_add");
}

R1_API void r1_cuda_write_columns(void* cache, const float* src, const int32_t* column, int64_t B, int64_t capacity,
                                  int64_t width, int bf16) {
  if (B <= 0 || width <= 0) return;
  if (bf16) {
    write_columns_kernel<<<grid_for(B * width), kThreads, 0, stream()>>>(static_cast<__nv_bfloat16*>(cache), src, column, B,
                                                                         capacity, width);
  } else {
    write_columns_kernel<<<grid_for(B * width), kThreads, 0, stream()>>>(static_cast<float*>(cache), src, column, B, capacity,
                                                                         width);
  }
  check_launch("r1_cuda_write_columns");
}

R1_API void r1_cuda_to_bf16(const float* src, void* dst, int64_t n) {
  if (n <= 0) return;
  round_to_bf16(src, static_cast<__nv_bfloat16*>(dst), 1, n, 0);
  check_launch("r1_cuda_to_bf16");
}

}  // extern "C"
