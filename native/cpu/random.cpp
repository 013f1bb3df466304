// Normal draws for initialisation: Box-Muller pairs of Philox4x32-10 words (native/philox.h), so each thread
// fills its own range and the values do not depend on the thread count. Same function as fillNormal in
// src/tensor/philox.ts (double arithmetic, rounded to float once).
#include <cmath>

#include "parallel.h"
#include "philox.h"
#include "r1.h"

using namespace r1;

extern "C" {

R1_API void r1_random_normal(float* x, int64_t n, uint32_t key0, uint32_t key1, double std_dev) {
  const int64_t pairs = (n + 1) / 2;
  parallel_for(pairs, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const r1philox::Words w = r1philox::philox4x32_10(uint32_t(p), uint32_t(uint64_t(p) >> 32), 0, 0, key0, key1);
      const double u1 = r1philox::uniform53(w.x0, w.x1) + 1.0 / 9007199254740992.0;
      const double u2 = r1philox::uniform53(w.x2, w.x3);
      const double r = std::sqrt(-2.0 * std::log(u1));
      const double theta = 2.0 * M_PI * u2;
      x[2 * p] = static_cast<float>(r * std::cos(theta) * std_dev);
      if (2 * p + 1 < n) x[2 * p + 1] = static_cast<float>(r * std::sin(theta) * std_dev);
    }
  });
}

}  // extern "C"
