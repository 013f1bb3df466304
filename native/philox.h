// Philox4x32-10 (Salmon et al., SC 2011), shared by the CPU core and the CUDA backend: the same function as
// src/tensor/philox.ts, which defines it for the reference backend and the CPU sampler. A counter-based
// generator is a pure function of (counter, key), so every thread computes its own elements with no shared
// state, and a draw does not depend on how the work was split.
#pragma once
#include <stdint.h>

#ifdef __CUDACC__
#define R1_HD __host__ __device__ __forceinline__
#else
#define R1_HD inline
#endif

namespace r1philox {

struct Words { uint32_t x0, x1, x2, x3; };

R1_HD Words philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Words{c0, c1, c2, c3};
}

// A uniform double in [0, 1) from two words: 27 bits of hi, 26 of lo.
R1_HD double uniform53(uint32_t hi, uint32_t lo) {
  return (double(hi >> 5) * 67108864.0 + double(lo >> 6)) * (1.0 / 9007199254740992.0);
}

}  // namespace r1philox
