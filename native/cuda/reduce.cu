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

// inner > 1 with too few columns (outer * inner) to fill the GPU one thread each, over a long axis (a bias
// gradient: [tokens, features] summed over tokens): the axis is cut into `slices` stretches, one thread per
// (column, stretch) sums its stretch into partial[slice * columns + column], then one thread per column combines
// the stretches in order. Both in double, like the kernels above.
__global__ void reduce_columns_partial_kernel(int op, const float* x, double* partial, int64_t len, int64_t inner,
                                              int64_t columns, int64_t stretch) {
  const int64_t column = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (column >= columns) return;
  const int64_t o = column / inner, i = column - o * inner;
  const float* p = x + o * len * inner + i;
  const int64_t begin = blockIdx.y * stretch, end = begin + stretch < len ? begin + stretch : len;
  double acc = reduce_start(op);
  for (int64_t l = begin; l < end; ++l) acc = reduce_step(op, acc, p[l * inner]);
  partial[blockIdx.y * columns + column] = acc;
}

__global__ void reduce_columns_merge_kernel(int op, const double* partial, float* out, int64_t columns, int64_t slices) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < columns; t += int64_t(gridDim.x) * blockDim.x) {
    double acc = reduce_start(op);
    for (int64_t s = 0; s < slices; ++s) acc = reduce_step(op, acc, partial[s * columns + t]);
    out[t] = static_cast<float>(acc);
  }
}

// Enough threads to fill an H100/H200 (132 SMs x 2048) for the split reduction above.
constexpr int64_t kFillThreads = 132 * 2048;

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

// acc[0] += the sum of partial[0, count), added in double and stored as float32.
__global__ void add_partials_kernel(const double* partial, int count, float* acc) {
  double sum = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partial[i];
  sum = block_reduce(sum, Add{}, 0.0);
  if (threadIdx.x == 0) acc[0] = static_cast<float>(static_cast<double>(acc[0]) + sum);
}

// The first pass of both sums of squares: per-block partial sums into the scratch slot; how many, or -1.
int sum_squares_partials(const float* x, int64_t n, double** partial) {
  *partial = static_cast<double*>(scratch(kScratchPartials, kSumSquaresBlocks * sizeof(double)));
  if (!*partial) return -1;
  int blocks = static_cast<int>(grid_for(n) < kSumSquaresBlocks ? grid_for(n) : kSumSquaresBlocks);
  sum_squares_partial_kernel<<<blocks, kThreads, 0, stream()>>>(x, n, *partial);
  return blocks;
}

}  // namespace

extern "C" {

R1_API void r1_cuda_sum_squares_add(const float* x, int64_t n, float* acc) {
  if (n <= 0) return;
  double* partial = nullptr;
  const int blocks = sum_squares_partials(x, n, &partial);
  if (blocks < 0) return;
  add_partials_kernel<<<1, 1024, 0, stream()>>>(partial, blocks, acc);
  check_launch("r1_cuda_sum_squares_add");
}

R1_API void r1_reduce(int op, const float* x, float* out, int64_t outer, int64_t len, int64_t inner) {
  if (outer <= 0 || inner <= 0) return;
  if (inner == 1 && outer <= 2147483647) {
    reduce_rows_kernel<<<static_cast<unsigned>(outer), kThreads, 0, stream()>>>(op, x, out, len);
    check_launch("r1_reduce");
    return;
  }
  const int64_t columns = outer * inner;
  // Stretches of at least 64 elements, as many as fill the GPU (at most 1024, and 65535 for the grid's y).
  int64_t slices = columns >= kFillThreads ? 1 : (kFillThreads + columns - 1) / columns;
  if (slices > len / 64) slices = len / 64;
  if (slices > 1024) slices = 1024;
  if (slices > 1) {
    auto* partial = static_cast<double*>(scratch(kScratchPartials, slices * columns * sizeof(double)));
    if (!partial) return;  // the failure is recorded
    const int64_t stretch = (len + slices - 1) / slices;
    slices = (len + stretch - 1) / stretch;
    const dim3 grid(static_cast<unsigned>((columns + kThreads - 1) / kThreads), static_cast<unsigned>(slices));
    reduce_columns_partial_kernel<<<grid, kThreads, 0, stream()>>>(op, x, partial, len, inner, columns, stretch);
    reduce_columns_merge_kernel<<<grid_for(columns), kThreads, 0, stream()>>>(op, partial, out, columns, slices);
  } else {
    reduce_columns_kernel<<<grid_for(columns), kThreads, 0, stream()>>>(op, x, out, outer, len, inner);
  }
  check_launch("r1_reduce");
}

R1_API double r1_sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  double* partial = nullptr;
  const int blocks = sum_squares_partials(x, n, &partial);
  if (blocks < 0) return NAN;
  sum_partials_kernel<<<1, 1024, 0, stream()>>>(partial, blocks);
  check_launch("r1_sum_squares");
  double result = NAN;
  cudaError_t err = cudaMemcpyAsync(&result, partial, sizeof result, cudaMemcpyDeviceToHost, stream());
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream());
  if (err != cudaSuccess) record_error("r1_sum_squares", err);
  return result;
}

}  // extern "C"
