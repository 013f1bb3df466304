// The softmax family over the last axis of [rows, cols] and cross-entropy over large vocabularies: one block per
// row, an online max/sum (each element is read once for the statistics, one exp per element), and no float
// copy of the logits besides the caller's (cross-entropy's backward recomputes softmax from the saved lse).
#include "common.cuh"

using namespace r1cuda;

namespace {

// A row of floats, or of an Input (floats or bf16): row_max_sum reads either.
__device__ inline bool aligned_row(const float* row) { return (reinterpret_cast<uintptr_t>(row) & 15) == 0; }
__device__ inline bool aligned_row(Input row) {
  return row.h ? (reinterpret_cast<uintptr_t>(row.h) & 7) == 0 : (reinterpret_cast<uintptr_t>(row.f) & 15) == 0;
}
__device__ inline float row_read(const float* row, int64_t j) { return row[j]; }
__device__ inline float row_read(Input row, int64_t j) { return read(row, j); }
__device__ inline float4 row_read4(const float* row, int64_t j4) { return reinterpret_cast<const float4*>(row)[j4]; }
__device__ inline float4 row_read4(Input row, int64_t j4) { return read4(row, j4); }
__device__ inline Input offset(Input x, int64_t at) { return Input{x.f + at, x.h ? x.h + at : nullptr}; }

// Per-thread online softmax statistics of row[0, cols), strided over the block (Row: const float* or Input).
template <class Row>
__device__ inline MaxSum row_max_sum(Row row, int64_t cols) {
  float m = -INFINITY, s = 0.0f;
  auto add = [&](float x) {
    if (x > m) {
      s = s * expf(m - x) + 1.0f;  // m = -inf on the first element: exp(-inf) = 0
      m = x;
    } else {
      s += expf(x - m);
    }
  };
  if (aligned_row(row) && (cols & 3) == 0) {
    for (int64_t j = threadIdx.x; j < cols / 4; j += blockDim.x) {
      float4 v = row_read4(row, j);
      add(v.x), add(v.y), add(v.z), add(v.w);
    }
  } else {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) add(row_read(row, j));
  }
  if (m == -INFINITY) s = 0.0f;
  return block_max_sum({m, s});
}

__global__ void softmax_kernel(const float* x, float* y, int64_t cols, int log) {
  const float* row = x + blockIdx.x * cols;
  float* out = y + blockIdx.x * cols;
  MaxSum ms = row_max_sum(row, cols);
  float log_sum = logf(ms.sum);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float z = row[j] - ms.max - log_sum;
    out[j] = log ? z : expf(z);
  }
}

// softmax: dx = y (dy - sum dy y); log_softmax: dx = dy - exp(y) sum dy.
__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t cols, int log) {
  const float* yr = y + blockIdx.x * cols;
  const float* dyr = dy + blockIdx.x * cols;
  float* dxr = dx + blockIdx.x * cols;
  float acc = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) acc += log ? dyr[j] : dyr[j] * yr[j];
  acc = block_reduce(acc, Add{}, 0.0f);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    dxr[j] = log ? dyr[j] - expf(yr[j]) * acc : yr[j] * (dyr[j] - acc);
  }
}

// Cross-entropy reads its logits as floats or, where they are a bf16-only GEMM output (the LM head's), as bf16.
__global__ void cross_entropy_kernel(Input logits, const int32_t* targets, float* loss, float* lse, int64_t vocab,
                                     int32_t ignore_index) {
  const Input row = offset(logits, blockIdx.x * vocab);
  MaxSum ms = row_max_sum(row, vocab);
  if (threadIdx.x == 0) {
    float row_lse = ms.max + logf(ms.sum);
    lse[blockIdx.x] = row_lse;
    int32_t target = targets[blockIdx.x];
    loss[blockIdx.x] = target == ignore_index ? 0.0f : row_lse - read(row, target);
  }
}

// dlogits = dloss (exp(logit - lse) - onehot(target)); 0 for ignored rows. dlogits16 (nullable): its bf16 copy,
// written in the same pass (output_copy): the LM head's two backward GEMMs read it.
__global__ void cross_entropy_backward_kernel(Input logits, const int32_t* targets, const float* lse,
                                              const float* dloss, float* dlogits, __nv_bfloat16* dlogits16,
                                              bool copy_only, int64_t vocab, int32_t ignore_index) {
  const int64_t r = blockIdx.x;
  const Input row = offset(logits, r * vocab);
  float* out = dlogits + r * vocab;
  __nv_bfloat16* out16 = dlogits16 ? dlogits16 + r * vocab : nullptr;
  const int32_t target = targets[r];
  if (target == ignore_index) {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
      if (!copy_only) out[j] = 0.0f;
      if (out16) out16[j] = __float2bfloat16_rn(0.0f);
    }
    return;
  }
  const float d = dloss[r], row_lse = lse[r];
  // The bf16 row of a copy is 8-byte aligned when vocab is a multiple of 4 (the copy itself is 512-byte aligned).
  if (aligned_row(row) && (reinterpret_cast<uintptr_t>(out) & 15) == 0 && (vocab & 3) == 0) {
    float4* out4 = reinterpret_cast<float4*>(out);
    for (int64_t j = threadIdx.x; j < vocab / 4; j += blockDim.x) {
      float4 v = read4(row, j);
      const float4 g = make_float4(d * expf(v.x - row_lse), d * expf(v.y - row_lse), d * expf(v.z - row_lse), d * expf(v.w - row_lse));
      if (!copy_only) out4[j] = g;
      if (out16) {
        __nv_bfloat162 lo = __floats2bfloat162_rn(g.x, g.y), hi = __floats2bfloat162_rn(g.z, g.w);
        reinterpret_cast<uint2*>(out16)[j] = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const float g = d * (expf(read(row, target) - row_lse) - 1.0f);
      if (!copy_only) out[target] = g;
      if (out16) out16[target] = __float2bfloat16_rn(g);
    }
  } else {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
      float p = expf(read(row, j) - row_lse);
      const float g = d * (j == target ? p - 1.0f : p);
      if (!copy_only) out[j] = g;
      if (out16) out16[j] = __float2bfloat16_rn(g);
    }
  }
}

int threads_for(int64_t cols) { return cols >= 16384 ? 1024 : cols >= 2048 ? 512 : cols >= 256 ? 256 : 128; }

}  // namespace

extern "C" {

R1_API void r1_softmax(const float* x, float* y, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  softmax_kernel<<<static_cast<unsigned>(rows), threads_for(cols), 0, stream()>>>(x, y, cols, 0);
  check_launch("r1_softmax");
}

R1_API void r1_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  softmax_backward_kernel<<<static_cast<unsigned>(rows), threads_for(cols), 0, stream()>>>(y, dy, dx, cols, 0);
  check_launch("r1_softmax_backward");
}

R1_API void r1_log_softmax(const float* x, float* y, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  softmax_kernel<<<static_cast<unsigned>(rows), threads_for(cols), 0, stream()>>>(x, y, cols, 1);
  check_launch("r1_log_softmax");
}

R1_API void r1_log_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  softmax_backward_kernel<<<static_cast<unsigned>(rows), threads_for(cols), 0, stream()>>>(y, dy, dx, cols, 1);
  check_launch("r1_log_softmax_backward");
}

R1_API void r1_cross_entropy(const float* logits, const int32_t* targets, float* loss, float* lse, int64_t rows,
                             int64_t vocab, int32_t ignore_index) {
  if (rows <= 0) return;
  cross_entropy_kernel<<<static_cast<unsigned>(rows), threads_for(vocab), 0, stream()>>>(
      input_of(logits, rows * vocab), targets, loss, lse, vocab, ignore_index);
  check_launch("r1_cross_entropy");
}

R1_API void r1_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                                      const float* dloss, float* dlogits, int64_t rows, int64_t vocab,
                                      int32_t ignore_index) {
  if (rows <= 0) return;
  bool copy_only = false;
  __nv_bfloat16* dlogits16 = output_copy(dlogits, rows * vocab, &copy_only);
  cross_entropy_backward_kernel<<<static_cast<unsigned>(rows), threads_for(vocab), 0, stream()>>>(
      input_of(logits, rows * vocab), targets, lse, dloss, dlogits, dlogits16, copy_only, vocab, ignore_index);
  check_launch("r1_cross_entropy_backward");
}

}  // extern "C"
