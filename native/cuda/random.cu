// Normal draws for initialisation on the device: the same Box-Muller pairs of Philox4x32-10 words as
// native/cpu/random.cpp (native/philox.h), one pair per thread, so a model is initialised where it lives with
// no host loop and no upload.
#include "common.cuh"
#include "philox.h"

using namespace r1cuda;

namespace {

__global__ void random_normal_kernel(float* x, int64_t n, uint32_t key0, uint32_t key1, double std_dev) {
  const int64_t pairs = (n + 1) / 2;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < pairs; p += int64_t(gridDim.x) * blockDim.x) {
    const r1philox::Words w = r1philox::philox4x32_10(uint32_t(p), uint32_t(uint64_t(p) >> 32), 0, 0, key0, key1);
    const double u1 = r1philox::uniform53(w.x0, w.x1) + 1.0 / 9007199254740992.0;
    const double u2 = r1philox::uniform53(w.x2, w.x3);
    const double r = sqrt(-2.0 * log(u1));
    const double theta = 2.0 * M_PI * u2;
    x[2 * p] = static_cast<float>(r * cos(theta) * std_dev);
    if (2 * p + 1 < n) x[2 * p + 1] = static_cast<float>(r * sin(theta) * std_dev);
  }
}

}  // namespace

extern "C" {

R1_API void r1_random_normal(float* x, int64_t n, uint32_t key0, uint32_t key1, double std_dev) {
  if (n <= 0) return;
  random_normal_kernel<<<grid_for((n + 1) / 2), kThreads, 0, stream()>>>(x, n, key0, key1, std_dev);
  check_launch("r1_random_normal");
  weights_written(x, n * 4);
}

}  // extern "C"
