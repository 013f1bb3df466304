// r1_matmul (native/r1.h): batched single-precision GEMM, C_b = op(A_b) op(B_b) + beta C_b.
//
// The layout follows Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication" (TOMS 2008) as
// BLIS refines it (Van Zee & van de Geijn, TOMS 2015): five loops around a register-blocked micro-kernel.
//   jc: NC columns of B      -> the packed KC x NC block of B lives in L2/L3
//   pc: KC of the k dimension -> one rank-KC update; KC sized so a KC x NR micro-panel of B sits in L1
//   ic: MC rows of A          -> the packed MC x KC block of A lives in L2
//   jr, ir: NR x MR tiles     -> the micro-kernel keeps an MR x NR tile of C in registers for all KC steps
// Packing copies each block once into the exact order the micro-kernel reads it (unit stride, zero-padded to
// MR / NR), which also turns the four transpose combinations into one kernel: only the packing routines see
// strides. Edge tiles run the same kernel into a scratch tile and copy the valid part out.
//
// Threads: the output of every batch item is split into a grid of rectangular parts, and each part is an
// independent serial GEMM with thread-local pack buffers (no barriers, no shared buffers). The grid's shape
// keeps the duplicated packing (each part packs its rows of A and its columns of B whole) small: a split of the
// longer side on 2 threads, squarer parts on many. Sharing one packed copy of B among the threads instead (packed
// once, each part packing only its rows of A), which does fewer copies, measured 0.79x this on 16 Xeon cores (a 5m
// training step's products 55 -> 70 ms; its dW = dY^T X products 0.61-0.68x) and no gain on 2: each thread then
// reads B's panels from other cores' caches across the mesh, where its own copy sits in its L2.
//
// Matrix-vector shapes (m == 1: decoding one token; n == 1) skip packing: they are bound by reading the matrix
// once, so they stream it with a dedicated loop instead. A few rows against a Linear weight (X W^T with m up to
// two token tiles: decoding a batch) skip packing W (few_rows_tile).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define R1_GEMM_AVX2 1
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#define R1_GEMM_NEON 1
#endif

namespace {

// ---- micro-kernels -------------------------------------------------------------------------------------
// kernel(kc, a, b, c, ldc, accumulate): C[MR x NR] (row stride ldc) = (accumulate ? C : 0) + A B, where a is
// an MR-row micro-panel packed k-major (a[p * MR + i]) and b an NR-column micro-panel (b[p * NR + j]).
// With accumulate false C is only written, never read (it may hold NaN garbage, r1.h's beta = 0).

#if R1_GEMM_AVX2
// One kernel over a vector type Vec of VW floats: an MR x NR tile with NR = 2 VW, so each k step loads two B
// vectors, broadcasts MR values of A and issues 2 MR FMAs into 2 MR accumulators.
// - AVX2 (Zen3/Haswell-class cores): Vec = ymm, 6 x 16: 12 accumulators + 2 B vectors + 1 broadcast = 15 of 16
//   registers; the 12 FMAs per step take 6 cycles on two FMA pipes against 2 loads and 6 broadcasts, so the FMA
//   units are the limit, and 12 independent chains cover the 4-cycle FMA latency (BLIS's haswell and zen sgemm
//   kernels use the same shape). On one Zen3 core it ties 4 x 24 and 5 x 16 and beats 12 x 8 and 8 x 8
//   (docs/BENCHMARKS.md, CPU GEMM).
// - AVX-512 (Xeon since Skylake-SP): Vec = zmm, 12 x 32: 24 accumulators + 2 B vectors + 1 broadcast = 27 of 32
//   registers, twice the work per instruction (BLIS's skx sgemm kernel is the same tile seen from C's other
//   side, 32 x 12).
// - R1_GEMM_WIDE on an AVX2 machine: the AVX-512 tile and blocking with each 16-float vector held as two ymm
//   halves. Slow (it spills), but it runs the AVX-512 build's packing and edge paths where there is no AVX-512,
//   so the tests check them (scripts/build-native.mjs builds it on request).
#if defined(__AVX512F__)
typedef __m512 Vec;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vload_aligned(const float* p) { return _mm512_load_ps(p); }
inline Vec vloadu(const float* p) { return _mm512_loadu_ps(p); }
inline void vstoreu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
constexpr int64_t MR = 12, NR = 32;
#elif defined(R1_GEMM_WIDE)
struct Vec {
  __m256 lo, hi;
};
inline Vec vzero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline Vec vload_aligned(const float* p) { return {_mm256_load_ps(p), _mm256_load_ps(p + 8)}; }
inline Vec vloadu(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline void vstoreu(float* p, Vec v) { _mm256_storeu_ps(p, v.lo), _mm256_storeu_ps(p + 8, v.hi); }
inline Vec vbroadcast(const float* p) { return {_mm256_broadcast_ss(p), _mm256_broadcast_ss(p)}; }
inline Vec vfma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
inline Vec vadd(Vec a, Vec b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
constexpr int64_t MR = 12, NR = 32;
#else
typedef __m256 Vec;
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vload_aligned(const float* p) { return _mm256_load_ps(p); }
inline Vec vloadu(const float* p) { return _mm256_loadu_ps(p); }
inline void vstoreu(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
constexpr int64_t MR = 6, NR = 16;
#endif
constexpr int64_t VW = NR / 2;

inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c,
                         int64_t ldc, bool accumulate) {
  Vec acc[MR][2];
#pragma GCC unroll 16
  for (int64_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vzero();
  // C's tile is read (accumulate) or written only after all kc steps: fetch its lines now, both ends of each row
  // (a row of 16 or 32 floats spans two or three cache lines), so that the end does not wait on memory.
  for (int64_t i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    if (NR > 16) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const Vec b0 = vload_aligned(b), b1 = vload_aligned(b + VW);
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i) {
      const Vec ai = vbroadcast(a + i);
      acc[i][0] = vfma(ai, b0, acc[i][0]);
      acc[i][1] = vfma(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 16
  for (int64_t i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    Vec lo = acc[i][0], hi = acc[i][1];
    if (accumulate) lo = vadd(lo, vloadu(ci)), hi = vadd(hi, vloadu(ci + VW));
    vstoreu(ci, lo);
    vstoreu(ci + VW, hi);
  }
}

#elif R1_GEMM_NEON
// 8 x 12 on 128-bit NEON (32 vector registers): 24 accumulators + 2 A vectors + 3 B vectors; each k step is
// 24 FMAs by lane against 5 loads (the shape of OpenBLAS's and BLIS's armv8 sgemm kernels).
constexpr int64_t MR = 8, NR = 12;

inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c,
                         int64_t ldc, bool accumulate) {
  float32x4_t acc[MR][3];
  for (int64_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0.0f);
  for (int64_t p = 0; p < kc; ++p) {
    const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
#define R1_NEON_ROW(i, av, lane)                           \
  acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane); \
  acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane); \
  acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, lane);
    R1_NEON_ROW(0, a0, 0) R1_NEON_ROW(1, a0, 1) R1_NEON_ROW(2, a0, 2) R1_NEON_ROW(3, a0, 3)
    R1_NEON_ROW(4, a1, 0) R1_NEON_ROW(5, a1, 1) R1_NEON_ROW(6, a1, 2) R1_NEON_ROW(7, a1, 3)
#undef R1_NEON_ROW
    a += MR;
    b += NR;
  }
  for (int64_t i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    for (int64_t v = 0; v < 3; ++v) {
      float32x4_t r = acc[i][v];
      if (accumulate) r = vaddq_f32(r, vld1q_f32(ci + 4 * v));
      vst1q_f32(ci + 4 * v, r);
    }
  }
}

#else
// Portable fallback: the same blocking with a plain-loop 4 x 8 tile the compiler may vectorise.
constexpr int64_t MR = 4, NR = 8;

inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c,
                         int64_t ldc, bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    a += MR;
    b += NR;
  }
  for (int64_t i = 0; i < MR; ++i)
    for (int64_t j = 0; j < NR; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.0f) + acc[i][j];
}
#endif

// ---- blocking -------------------------------------------------------------------------------------------
// Zen3 per core: 32 KiB L1d, 512 KiB L2. KC x NR x 4 B = 16 KiB of B in L1 next to the streaming A panel;
// MC x KC x 4 B = 144 KiB of A in L2. NC is large for tall problems (the B block is reused by many MC blocks
// and stays in L3); when the whole of A is one MC block, each B block is used once, so a smaller one that
// stays in L2 between packing and use is faster.
// The 12 x 32 tile (AVX-512 Xeons: 48 KiB L1d, 1-2 MiB L2): KC 256 as on AVX2, so that a hidden size of 256 is
// one rank-k update and C is read and written once, not twice (KC 192 made it two of 128, and C's tile is a
// load and store of 24 zmm rows per 128 k steps); its B micro-panel is 32 KiB of L1 beside the 12 KiB A panel
// that streams through. MC 240 puts 240 KiB of A in L2; NC spans the same number of micro-panels as above.
// R1_GEMM_KC overrides KC, for measuring the blocking on a new machine (bench/gemm_builds.cpp).
#if defined(R1_GEMM_KC)
constexpr int64_t KC = R1_GEMM_KC;
#else
constexpr int64_t KC = 256;
#endif
#if defined(__AVX512F__) || defined(R1_GEMM_WIDE)
constexpr int64_t MC = 20 * MR;
constexpr int64_t NC_TALL = 128 * NR;
constexpr int64_t NC_SHORT = 12 * NR;
#else
constexpr int64_t MC = 24 * MR;
constexpr int64_t NC_TALL = 256 * NR;
constexpr int64_t NC_SHORT = 24 * NR;
#endif
static_assert(MC % MR == 0 && NC_TALL % NR == 0 && NC_SHORT % NR == 0, "blocks are whole micro-tiles");

// Thread-local pack buffers, grown on demand and 64-byte aligned (one cache line, one full AVX-512 load).
struct PackBuffer {
  float* data = nullptr;
  int64_t capacity = 0;
  float* reserve(int64_t floats) {
    if (floats > capacity) {
      std::free(data);
      const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (data == nullptr) throw std::bad_alloc();
      capacity = floats;
    }
    return data;
  }
  ~PackBuffer() { std::free(data); }
};
thread_local PackBuffer a_buffer, b_buffer;

#if R1_GEMM_AVX2
// dst[p * NR + j] = src[j * ld + p] for j, p < 8.
inline void pack_b_block_8x8(const float* src, int64_t ld, float* dst) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  r1::transpose_8x8(r);
  for (int p = 0; p < 8; ++p) _mm256_store_ps(dst + p * NR, r[p]);
}

// dst[p * MR + i] = src[i * ld + p] for i < 6, p < 8: transposed with two zero rows, 6 of 8 lanes kept. An A
// micro-panel of MR rows is MR / 6 of these side by side.
static_assert(MR % 6 == 0, "pack_a_block_6x8 packs A panels of a multiple of 6 rows");
inline void pack_a_block_6x8(const float* src, int64_t ld, float* dst) {
  __m256 r[8];
  for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  r[6] = r[7] = _mm256_setzero_ps();
  r1::transpose_8x8(r);
  for (int p = 0; p < 8; ++p) {
    _mm_storeu_ps(dst + p * MR, _mm256_castps256_ps128(r[p]));
    _mm_storel_pi(reinterpret_cast<__m64*>(dst + p * MR + 4), _mm256_extractf128_ps(r[p], 1));
  }
}
#endif

// Packs rows [0, mc) x k-range [0, kc) of op(A) (element (i, p) at a[i * rs + p * cs]) into MR-row
// micro-panels, k-major inside each, rows past mc zero-filled.
void pack_a(const float* a, int64_t rs, int64_t cs, int64_t mc, int64_t kc, float* __restrict dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
    const int64_t rows = std::min(MR, mc - i0);
    const float* src = a + i0 * rs;
    if (rows == MR && rs == 1) {  // A stored transposed: the MR values of one k step are adjacent
      for (int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * MR, src + p * cs, MR * sizeof(float));
    } else if (rows == MR && cs == 1) {  // A row-major: MR rows read side by side
      int64_t p = 0;
#if R1_GEMM_AVX2
      for (; p + 8 <= kc; p += 8)
        for (int64_t q = 0; q < MR; q += 6) pack_a_block_6x8(src + q * rs + p, rs, dst + p * MR + q);
#endif
      for (; p < kc; ++p)
        for (int64_t i = 0; i < MR; ++i) dst[p * MR + i] = src[i * rs + p];
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        for (int64_t i = 0; i < rows; ++i) dst[p * MR + i] = src[i * rs + p * cs];
        for (int64_t i = rows; i < MR; ++i) dst[p * MR + i] = 0.0f;
      }
    }
  }
}

// Packs k-range [0, kc) x columns [0, nc) of op(B) (element (p, j) at b[p * rs + j * cs]) into NR-column
// micro-panels, k-major inside each, columns past nc zero-filled.
void pack_b(const float* b, int64_t rs, int64_t cs, int64_t kc, int64_t nc, float* __restrict dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
    const int64_t cols = std::min(NR, nc - j0);
    const float* src = b + j0 * cs;
    if (cols == NR && cs == 1) {  // B row-major: one contiguous run of NR per k step
      for (int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * NR, src + p * rs, NR * sizeof(float));
      continue;
    }
    int64_t p = 0;
#if R1_GEMM_AVX2
    if (cols == NR && rs == 1)  // B stored n x k (trans_b, a Linear weight): transpose 8 x 8 blocks
      for (; p + 8 <= kc; p += 8)
        for (int64_t q = 0; q < NR; q += 8) pack_b_block_8x8(src + q * cs + p, cs, dst + p * NR + q);
#endif
    for (; p < kc; ++p) {
      for (int64_t j = 0; j < cols; ++j) dst[p * NR + j] = src[p * rs + j * cs];
      for (int64_t j = cols; j < NR; ++j) dst[p * NR + j] = 0.0f;
    }
  }
}

// C[mc x nc] (+)= packed A block x packed B block, tile by tile; B's micro-panel stays in L1 across the ir loop.
void macro_kernel(int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc,
                  bool accumulate) {
  alignas(64) float edge[MR * NR];
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t nr = std::min(NR, nc - jr);
    const float* bp = pb + jr * kc;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int64_t mr = std::min(MR, mc - ir);
      const float* ap = pa + ir * kc;
      float* ct = c + ir * ldc + jr;
      if (mr == MR && nr == NR) {
        micro_kernel(kc, ap, bp, ct, ldc, accumulate);
        continue;
      }
      micro_kernel(kc, ap, bp, edge, NR, false);
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t j = 0; j < nr; ++j) ct[i * ldc + j] = (accumulate ? ct[i * ldc + j] : 0.0f) + edge[i * NR + j];
    }
  }
}

// One thread's GEMM: C[m x n] (row stride ldc) = op(A) op(B) (+ C when accumulate), operands given by element
// strides (op(A)(i, p) = a[i * rsa + p * csa], op(B)(p, j) = b[p * rsb + j * csb]).
void gemm_serial(const float* a, int64_t rsa, int64_t csa, const float* b, int64_t rsb, int64_t csb, float* c,
                 int64_t ldc, int64_t m, int64_t n, int64_t k, bool accumulate) {
  // Even K blocks: k = 300 runs as 2 x 150 rather than 256 + 44, keeping every rank-KC update efficient.
  const int64_t k_blocks = (k + KC - 1) / KC;
  const int64_t kc_even = (k + k_blocks - 1) / k_blocks;
  const int64_t nc_max = m <= MC ? NC_SHORT : NC_TALL;
  const int64_t mc_max = std::min(MC, (m + MR - 1) / MR * MR);
  float* pa = a_buffer.reserve(mc_max * kc_even);
  float* pb = b_buffer.reserve(kc_even * std::min(nc_max, (n + NR - 1) / NR * NR));
  for (int64_t jc = 0; jc < n; jc += nc_max) {
    const int64_t nc = std::min(nc_max, n - jc);
    for (int64_t pc = 0; pc < k; pc += kc_even) {
      const int64_t kc = std::min(kc_even, k - pc);
      pack_b(b + pc * rsb + jc * csb, rsb, csb, kc, nc, pb);
      const bool acc = accumulate || pc > 0;
      for (int64_t ic = 0; ic < m; ic += MC) {
        const int64_t mc = std::min(MC, m - ic);
        pack_a(a + ic * rsa + pc * csa, rsa, csa, mc, kc, pa);
        macro_kernel(mc, nc, kc, pa, pb, c + ic * ldc + jc, ldc, acc);
      }
    }
  }
}

// ---- a few rows against a Linear weight ------------------------------------------------------------------
// C[m x n] (+)= X W^T for a few rows X [m x k] and a weight W [n x k], both row-major: a decode step of a batch
// of sequences. The packed path copies all of W (transposed into NR-column panels) on every call for only m
// uses of each element, and pads m to whole MR tiles. Here the micro-kernel's tile is seen from C^T's side:
// MR features broadcast straight from their rows of W (MR streams, each element read once per NR tokens)
// against NR tokens of X^T, the only operand packed (m x k, small); the same 2 vector loads, MR broadcasts and
// 2 MR FMAs per k step as micro_kernel. Each tile of C^T is written back transposed, MR floats per row of C.
#if R1_GEMM_AVX2
constexpr int64_t FEW_ROWS_MAX = 2 * NR;  // two token tiles: 32 rows on AVX2, 64 with the 12 x 32 tile

// dst[(t0 / NR) * k * NR + p * NR + t % NR] = x[t * k + p], zero past row m: X^T in NR-token panels.
void pack_rows_transposed(const float* x, int64_t m, int64_t k, float* dst) {
  for (int64_t t0 = 0; t0 < m; t0 += NR, dst += k * NR) {
    const int64_t tokens = std::min(NR, m - t0);
    for (int64_t p = 0; p < k; ++p) {
      float* d = dst + p * NR;
      for (int64_t t = 0; t < tokens; ++t) d[t] = x[(t0 + t) * k + p];
      for (int64_t t = tokens; t < NR; ++t) d[t] = 0.0f;
    }
  }
}

// C[t][i] (+)= sum_p W[i][p] X^T[p][t] for i < features (<= MR), t < tokens (<= NR); xt is one packed panel.
void few_rows_tile(int64_t k, const float* __restrict w, int64_t ldw, int64_t features,
                   const float* __restrict xt, float* c, int64_t ldc, int64_t tokens, bool accumulate) {
  int64_t offset[MR];
  for (int64_t i = 0; i < MR; ++i) offset[i] = std::min(i, features - 1) * ldw;  // spare lanes repeat the last row
  Vec acc[MR][2];
#pragma GCC unroll 16
  for (int64_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vzero();
  for (int64_t p = 0; p < k; ++p) {
    const Vec b0 = vload_aligned(xt + p * NR), b1 = vload_aligned(xt + p * NR + VW);
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i) {
      const Vec ai = vbroadcast(w + offset[i] + p);
      acc[i][0] = vfma(ai, b0, acc[i][0]);
      acc[i][1] = vfma(ai, b1, acc[i][1]);
    }
  }
  alignas(64) float tile[MR * NR];
  // Unrolled like every loop over acc: one indexed by a run-time i keeps acc in memory, stored on every k step.
#pragma GCC unroll 16
  for (int64_t i = 0; i < MR; ++i) vstoreu(tile + i * NR, acc[i][0]), vstoreu(tile + i * NR + VW, acc[i][1]);
  for (int64_t t = 0; t < tokens; ++t) {
    float* ct = c + t * ldc;
    for (int64_t i = 0; i < features; ++i) ct[i] = (accumulate ? ct[i] : 0.0f) + tile[i * NR + t];
  }
}

// Features [j0, j1) of C [m x n] (j0 a multiple of MR), all m rows, from X^T packed by pack_rows_transposed.
void few_rows_part(const float* xt, const float* w, float* c, int64_t m, int64_t n, int64_t k, int64_t j0,
                   int64_t j1, bool accumulate) {
  for (int64_t j = j0; j < j1; j += MR)
    for (int64_t t0 = 0; t0 < m; t0 += NR)
      few_rows_tile(k, w + j * k, k, std::min(MR, j1 - j), xt + (t0 / NR) * k * NR, c + t0 * n + j, n,
                    std::min(NR, m - t0), accumulate);
}
#endif

// ---- matrix-vector --------------------------------------------------------------------------------------
// y[j] (+)= sum_p x[p] W(p, j) for j in [j0, j1): W(p, j) = w[p * n + j] (W stored k x n) or, with w_nk,
// w[j * k + p] (stored n x k, a Linear weight). Both stream W once, which bounds their speed.
void gemv(const float* x, const float* w, float* y, int64_t k, int64_t n, bool w_nk, bool accumulate, int64_t j0,
          int64_t j1) {
  if (w_nk) {
    // One dot product per output, four outputs at a time so each load of x serves four rows of W.
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4) {
      const float* r0 = w + j * k;
      const float *r1 = r0 + k, *r2 = r1 + k, *r3 = r2 + k;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t p = 0;
#if R1_GEMM_AVX2
      __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps(), v2 = _mm256_setzero_ps(),
             v3 = _mm256_setzero_ps();
      for (; p + 8 <= k; p += 8) {
        const __m256 xv = _mm256_loadu_ps(x + p);
        v0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r0 + p), v0);
        v1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r1 + p), v1);
        v2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r2 + p), v2);
        v3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r3 + p), v3);
      }
      // Horizontal sums of the four accumulators at once: hadd pairs them, then add the two 128-bit halves.
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
      alignas(16) float sums[4];
      _mm_store_ps(sums, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
      s0 = sums[0], s1 = sums[1], s2 = sums[2], s3 = sums[3];
#endif
      for (; p < k; ++p) s0 += x[p] * r0[p], s1 += x[p] * r1[p], s2 += x[p] * r2[p], s3 += x[p] * r3[p];
      if (accumulate) s0 += y[j], s1 += y[j + 1], s2 += y[j + 2], s3 += y[j + 3];
      y[j] = s0, y[j + 1] = s1, y[j + 2] = s2, y[j + 3] = s3;
    }
    for (; j < j1; ++j) {
      const float* r = w + j * k;
      float s = 0;
      for (int64_t p = 0; p < k; ++p) s += x[p] * r[p];
      y[j] = accumulate ? y[j] + s : s;
    }
    return;
  }
  // W stored k x n: y += x[p] * row p.
  int64_t s0 = j0;
#if R1_GEMM_AVX2
  // Few outputs (attention's probabilities @ V at decode, n = head_dim): 64 of them live in 8 ymm accumulators
  // (8 independent FMA chains cover the FMA latency) while all k rows stream past, y touched once.
  if (j1 - j0 <= 256)
    for (; s0 + 64 <= j1; s0 += 64) {
      __m256 acc[8];
      for (int v = 0; v < 8; ++v) acc[v] = accumulate ? _mm256_loadu_ps(y + s0 + 8 * v) : _mm256_setzero_ps();
      const float* row = w + s0;
      for (int64_t p = 0; p < k; ++p, row += n) {
        const __m256 xp = _mm256_broadcast_ss(x + p);
        for (int v = 0; v < 8; ++v) acc[v] = _mm256_fmadd_ps(xp, _mm256_loadu_ps(row + 8 * v), acc[v]);
      }
      for (int v = 0; v < 8; ++v) _mm256_storeu_ps(y + s0 + 8 * v, acc[v]);
    }
#endif
  // Many outputs: strips of y that stay in L1 while all k rows stream past, four rows at a time so that each
  // load and store of the strip serves four rows of W. Rows are read in long contiguous runs (4 KiB per row
  // per strip), which keeps DRAM streaming when W is larger than L3 (a vocabulary projection); 256-byte runs
  // measured 40% slower there.
  constexpr int64_t STRIP = 1024;
  alignas(64) float strip[STRIP];
  for (; s0 < j1; s0 += STRIP) {
    const int64_t width = std::min(STRIP, j1 - s0);
    if (accumulate) std::memcpy(strip, y + s0, width * sizeof(float));
    else std::memset(strip, 0, width * sizeof(float));
    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const float x0 = x[p], x1 = x[p + 1], x2 = x[p + 2], x3 = x[p + 3];
      const float* r0 = w + p * n + s0;
      const float *r1 = r0 + n, *r2 = r1 + n, *r3 = r2 + n;
      int64_t j = 0;
#if R1_GEMM_AVX2
      const __m256 v0 = _mm256_set1_ps(x0), v1 = _mm256_set1_ps(x1), v2 = _mm256_set1_ps(x2), v3 = _mm256_set1_ps(x3);
      for (; j + 8 <= width; j += 8) {
        __m256 acc = _mm256_fmadd_ps(v0, _mm256_loadu_ps(r0 + j), _mm256_load_ps(strip + j));
        acc = _mm256_fmadd_ps(v1, _mm256_loadu_ps(r1 + j), acc);
        acc = _mm256_fmadd_ps(v2, _mm256_loadu_ps(r2 + j), acc);
        _mm256_store_ps(strip + j, _mm256_fmadd_ps(v3, _mm256_loadu_ps(r3 + j), acc));
      }
#endif
      for (; j < width; ++j) strip[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j];
    }
    for (; p < k; ++p) {
      const float xp = x[p];
      const float* row = w + p * n + s0;
      for (int64_t j = 0; j < width; ++j) strip[j] += xp * row[j];
    }
    std::memcpy(y + s0, strip, width * sizeof(float));
  }
}

// Below this many multiply-adds a call runs on the calling thread: waking the pool costs more than it saves.
constexpr int64_t PARALLEL_MIN_FMAS = int64_t{1} << 17;

// Tasks for `possible` equal pieces of work on `threads` threads: up to four per thread, taken dynamically, so that
// threads of unequal speed balance (a vCPU whose core is shared: the Xeon VM's pinned pair measured 168 and 113
// GFLOP/s of FMA peak, and with one piece per thread every call waits for the slower), in whole multiples of the
// thread count, so that equal threads still finish together (22 pieces on 16 threads would take two rounds).
inline int64_t balanced_tasks(int64_t possible, int64_t threads) {
  if (possible <= threads) return possible;
  return threads * std::min<int64_t>(4, possible / threads);
}

}  // namespace

extern "C" R1_API void r1_matmul(const float* a, const float* b, float* c, int64_t batch, int64_t m, int64_t n,
                                 int64_t k, int trans_a, int trans_b, int64_t stride_a, int64_t stride_b,
                                 int64_t stride_c, float beta) {
  if (batch <= 0 || m <= 0 || n <= 0) return;
  const bool accumulate = beta != 0.0f;
  if (k <= 0) {  // an empty sum: C = beta C
    if (!accumulate)
      for (int64_t bi = 0; bi < batch; ++bi) std::memset(c + bi * stride_c, 0, sizeof(float) * m * n);
    return;
  }
  // One weight shared by a batch of row-major inputs (x @ W over [batch, m, k]) is one GEMM with batch * m
  // rows, which reuses each packed block of W batch times more.
  if (batch > 1 && stride_b == 0 && !trans_a && stride_a == m * k && stride_c == m * n) {
    m *= batch;
    batch = 1;
  }
  r1::ThreadPool& pool = r1::ThreadPool::get();
  const int64_t threads = pool.size();
  const int64_t fmas = batch * m * n * k;

  if (m == 1 || n == 1) {
    // m == 1: c = a op(B), with a's k values contiguous either way. n == 1: c^T = b^T op(A)^T, likewise; the
    // matrix is then A, stored k x m when trans_a and m x k otherwise.
    const bool row = m == 1;
    const float* x = row ? a : b;
    const float* w = row ? b : a;
    const int64_t xs = row ? stride_a : stride_b, ws = row ? stride_b : stride_a;
    const int64_t len = row ? n : m;
    const bool w_nk = row ? trans_b != 0 : trans_a == 0;
    // Column chunks of at least 64 outputs and ~32k multiply-adds each, spread over batch items. Rows of a
    // Linear weight (w_nk) are one dot product per output, so finer chunks cost nothing and balance unequal
    // threads (balanced_tasks); the other layout reads W in runs of the chunk's width, which must stay long.
    const int64_t chunk = std::max<int64_t>(64, (int64_t{1} << 15) / k + 1);
    const int64_t possible = (len + chunk - 1) / chunk;
    const int64_t chunks = fmas < PARALLEL_MIN_FMAS ? 1 : w_nk ? balanced_tasks(possible, threads) : std::min(possible, threads);
    const int64_t step = (len + chunks - 1) / chunks;
    const auto task = [&](int64_t t) {
      const int64_t bi = t / chunks, j0 = (t % chunks) * step, j1 = std::min(len, j0 + step);
      if (j0 < j1) gemv(x + bi * xs, w + bi * ws, c + bi * stride_c, k, len, w_nk, accumulate, j0, j1);
    };
    if (batch * chunks == 1 || fmas < PARALLEL_MIN_FMAS) {
      for (int64_t t = 0; t < batch * chunks; ++t) task(t);
    } else {
      pool.run(batch * chunks, task);
    }
    return;
  }

#if R1_GEMM_AVX2
  if (batch == 1 && !trans_a && trans_b && m <= FEW_ROWS_MAX) {
    // A few rows against a Linear weight (see few_rows_tile): parts of whole MR-feature blocks, each reading
    // its rows of W once (so more parts than threads duplicate nothing; balanced_tasks).
    float* xt = a_buffer.reserve((m + NR - 1) / NR * NR * k);
    pack_rows_transposed(a, m, k, xt);
    const int64_t blocks = (n + MR - 1) / MR;
    const int64_t parts = fmas < PARALLEL_MIN_FMAS ? 1 : balanced_tasks(blocks, threads);
    const int64_t per_part = (blocks + parts - 1) / parts * MR;
    const auto task = [&](int64_t t) {
      const int64_t j0 = t * per_part, j1 = std::min(n, j0 + per_part);
      if (j0 < j1) few_rows_part(xt, b, c, m, n, k, j0, j1, accumulate);
    };
    if (parts == 1) task(0);
    else pool.run(parts, task);
    return;
  }
#endif
  const int64_t rsa = trans_a ? 1 : k, csa = trans_a ? m : 1;
  const int64_t rsb = trans_b ? 1 : n, csb = trans_b ? k : 1;
  // Parts per matrix: none when the batch alone balances the threads, else up to four per thread, so that the
  // pool's dynamic hand-out evens out threads of unequal speed: a thread that starts late or shares its core
  // with another process, and the vCPUs of a virtual machine, which are often not equal (the GPU machine's Xeon:
  // 2 pinned vCPUs measured 168 and 113 GFLOP/s of FMA peak, 7 of 16 at 86 against 112-175; with one part per
  // thread every call waits for the slowest, with four the fast ones take more). Parts keep at least 128 x 128
  // outputs, so that each still runs whole micro-tiles over long KC blocks. The parts form a grid of
  // row_parts x col_parts rectangles of whole micro-tiles.
  int64_t row_parts = 1, col_parts = 1;
  if (threads > 1 && fmas >= PARALLEL_MIN_FMAS && batch % threads != 0 && batch < 4 * threads) {
    const int64_t target = std::max(threads, std::min(4 * threads, m * n / (128 * 128)));
    // A part of mp x np packs mp x k of A and k x np of B for mp x np x k multiply-adds: the grid with the
    // smallest mp + np duplicates the least packing. With 2 threads and 4 parts that is a split of the longer side; with
    // 16, a 5M model's dW (768 x 256) is 8 x 2 parts of 96 x 128 instead of 16 strips that each pack all of B.
    int64_t best = INT64_MAX;
    for (int64_t pm = 1; pm <= target; ++pm) {
      const int64_t pn = (target + pm - 1) / pm;
      const int64_t mp = ((m + pm - 1) / pm + MR - 1) / MR * MR, np = ((n + pn - 1) / pn + NR - 1) / NR * NR;
      if (mp + np < best) best = mp + np, row_parts = pm, col_parts = pn;
    }
  }
  const int64_t rows_per_part = ((m + row_parts - 1) / row_parts + MR - 1) / MR * MR;
  const int64_t cols_per_part = ((n + col_parts - 1) / col_parts + NR - 1) / NR * NR;
  row_parts = (m + rows_per_part - 1) / rows_per_part;
  col_parts = (n + cols_per_part - 1) / cols_per_part;
  const int64_t parts = row_parts * col_parts;
  const auto task = [&](int64_t t) {
    const int64_t bi = t / parts, part = t % parts;
    const int64_t i0 = (part / col_parts) * rows_per_part, j0 = (part % col_parts) * cols_per_part;
    const int64_t mp = std::min(m, i0 + rows_per_part) - i0, np = std::min(n, j0 + cols_per_part) - j0;
    gemm_serial(a + bi * stride_a + i0 * rsa, rsa, csa, b + bi * stride_b + j0 * csb, rsb, csb,
                c + bi * stride_c + i0 * n + j0, n, mp, np, k, accumulate);
  };
  if (batch * parts == 1 || fmas < PARALLEL_MIN_FMAS) {
    for (int64_t t = 0; t < batch * parts; ++t) task(t);
  } else {
    pool.run(batch * parts, task);
  }
}
