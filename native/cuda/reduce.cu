// Reductions over one axis of [outer, len, inner] and the sum of squares. Sums accumulate in double, as the
// reference does, so that long sums with cancellation stay within float32's rounding of the exact result.
#include "common.cuh"

using namespace r1cuda;

namespace {

__device__ inline double reduce_start(int op) { return op == R1_SUM ? 0.0 : op == R1_MAX_REDUCE ? -INFINITY : INFINITY; }

// max and min propagate NaN, like Math.max.
__device__ inline double reduce_step(int op, double acc, double x) {
  switch (op) {
    case R1_SUM: return acc + x;
    case R1_MAX_REDUCE: return (x > acc || x != x || acc != acc) ? (acc != acc ? acc : x) : acc;
    default: return (x < acc || x != x || acc != acc) ? (acc != acc ? acc : x) : acc;
  }
}

struct ReduceOp {
  int op;
  __device__ double operator()(double a, double b) const { return reduce_step(op, a, b); }
};

// inner == 1: one block per row of len contiguous elements.
__global__ void reduce_rows_kernel(int op, const float* x, float* out, int64_t len) {
  const float* row = x + blockIdx.x * len;
  double acc = reduce_start(op);
  for (int64_t l = threadIdx.x; l < len; l += blockDim.x) acc = reduce_step(op, acc, row[l]);
  acc = block_reduce(acc, ReduceOp{op}, reduce_start(op));
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<float>(acc);
}

// inner > 1: one thread per output element walks len; neighbouring threads read neighbouring addresses.
__global__ void reduce_columns_kernel(int op, const float* x, float* out, int64_t outer, int64_t len, int64_t inner) {
  int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    int64_t o = t / inner, i = t - o * inner;
    const float* p = x + o * len * inner + i;
    double acc = reduce_start(op);
    for (int64_t l = 0; l < len; ++l) acc = reduce_step(op, acc, p[l * inner]);
    out[t] = static_cast<float>(acc);
  }
}

constexpr int kSumSquaresBlocks = 1024;

__global__ void sum_squares_partial_kernel(const float* x, int64_t n, double* partial) {
  double acc = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v = x[i];
    acc += v * v;
  }
  acc = block_reduce(acc, Add{}, 0.0);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(double* partial, int count) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_reduce(acc, Add{}, 0.0);
  if (threadIdx.x == 0) partial[0] = acc;
}

}  // namespace

extern "C" {

R1_API void r1_reduce(int op, const float* x, float* out, int64_t outer, int64_t len, int64_t inner) {
  if (outer <= 0 || inner <= 0) return;
  if (inner == 1 && outer <= 2147483647) {
    reduce_rows_kernel<<<static_cast<unsigned>(outer), kThreads, 0, stream()>>>(op, x, out, len);
  } else {
    reduce_columns_kernel<<<grid_for(outer * inner), kThreads, 0, stream()>>>(op, x, out, outer, len, inner);
  }
  check_launch("r1_reduce");
}

R1_API double r1_sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  auto* partial = static_cast<double*>(scratch(kScratchPartials, kSumSquaresBlocks * sizeof(double)));
  if (!partial) return NAN;
  int blocks = static_cast<int>(grid_for(n) < kSumSquaresBlocks ? grid_for(n) : kSumSquaresBlocks);
  sum_squares_partial_kernel<<<blocks, kThreads, 0, stream()>>>(x, n, partial);
  sum_partials_kernel<<<1, 1024, 0, stream()>>>(partial, blocks);
  check_launch("r1_sum_squares");
  double result = NAN;
  cudaError_t err = cudaMemcpyAsync(&result, partial, sizeof result, cudaMemcpyDeviceToHost, stream());
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream());
  if (err != cudaSuccess) record_error("r1_sum_squares", err);
  return result;
}

}  // extern "C"
