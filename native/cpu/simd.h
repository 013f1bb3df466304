// Portable 8-wide float vectors (GCC/Clang vector extensions: AVX2 registers on x86, two NEON registers on
// arm64) and the few vector helpers the kernels share: a vectorised exp, and reductions.
// Why not plain loops: without -ffast-math the compiler never vectorises a float reduction (it may not
// reassociate the sum) nor a call to std::exp, and those two dominate softmax, SiLU and attention.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace r1 {

typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef float f32x4 __attribute__((vector_size(16)));
typedef double f64x4 __attribute__((vector_size(32)));

constexpr float kInf = std::numeric_limits<float>::infinity();

inline f32x8 splat(float x) { return f32x8{x, x, x, x, x, x, x, x}; }
inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }
// Lanes [0, n) from p, the others 0 (for the tail of a row).
inline f32x8 load_partial(const float* p, int64_t n) {
  f32x8 v = splat(0.0f);
  for (int64_t i = 0; i < n; ++i) v[i] = p[i];
  return v;
}
inline void store_partial(float* p, f32x8 v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = v[i];
}
inline f32x8 select(i32x8 mask, f32x8 a, f32x8 b) { return (f32x8)((mask & (i32x8)a) | (~mask & (i32x8)b)); }
inline f32x8 vmax(f32x8 a, f32x8 b) { return select(a > b, a, b); }
inline f32x8 vmin(f32x8 a, f32x8 b) { return select(a < b, a, b); }

inline float hsum(f32x8 v) {
  f32x4 lo = {v[0], v[1], v[2], v[3]}, hi = {v[4], v[5], v[6], v[7]};
  f32x4 s = lo + hi;
  return (s[0] + s[2]) + (s[1] + s[3]);
}
inline float hmax(f32x8 v) {
  float m = v[0];
  for (int i = 1; i < 8; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// exp(x) for 8 lanes: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then Cephes' degree-6 polynomial
// for exp(r) (expf.c), scaled by 2^n through the exponent bits. Max error about 2 ulp over the float range;
// exp(-inf) = 0 and exp(x) = 0 below the smallest normal (denormals flush to 0), +inf above 88.72, NaN stays NaN.
inline f32x8 exp8(f32x8 x) {
  const f32x8 hi = splat(88.7228391f), lo = splat(-87.3365448f);
  i32x8 too_small = x < lo, too_big = x > hi;
  // Lanes out of range compute exp(0) and are replaced at the end. Clamped to lo instead, they made
  // 0.999997 x 2^-126, a denormal, and a denormal result costs a microcode assist (over a hundred cycles) on Intel
  // cores unless flush-to-zero is on: every masked score (-inf) of a causal attention block paid one.
  f32x8 xc = select(too_small | too_big, splat(0.0f), x);
  // Round x / ln2 to the nearest integer: adding 1.5 * 2^23 pushes the fraction bits out of the mantissa.
  const f32x8 magic = splat(12582912.0f);
  f32x8 n = (xc * splat(1.44269504088896341f) + magic) - magic;
  f32x8 r = xc - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  f32x8 p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * (r * r) + r + splat(1.0f);
  i32x8 ni = __builtin_convertvector(n, i32x8);
  // n ranges over [-126, 128] and 2^128 is not a float, so scale by 2^h * 2^(n-h) with h = n/2, both in range.
  i32x8 h = ni >> 1;
  f32x8 y = p * (f32x8)((h + 127) << 23) * (f32x8)((ni - h + 127) << 23);
  y = select(too_small, splat(0.0f), y);
  y = select(too_big, splat(kInf), y);
  return select(x != x, x, y);
}

// exp(x) for x <= 87 (or -inf), the same polynomial without the overflow branch and with a single exponent
// scale: about 30% fewer instructions than exp8. For softmax-style arguments x - max <= 0, which dominate
// attention at small head sizes. NaN still gives NaN (the clamp is written so that it passes NaN through).
inline f32x8 exp8_bounded(f32x8 x) {
  const f32x8 lo = splat(-87.3365448f);
  i32x8 too_small = x < lo;
  f32x8 xc = select(too_small, splat(0.0f), x);  // not lo: see exp8 (a denormal intermediate)
  const f32x8 magic = splat(12582912.0f);
  f32x8 n = (xc * splat(1.44269504088896341f) + magic) - magic;
  f32x8 r = xc - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  f32x8 p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * (r * r) + r + splat(1.0f);
  // n is in [-126, 127] here, so 2^n is one normal float.
  f32x8 y = p * (f32x8)((__builtin_convertvector(n, i32x8) + 127) << 23);
  return select(too_small, splat(0.0f), y);
}

inline float exp1(float x) { return exp8(splat(x))[0]; }

// 1 / (1 + exp(-x)), stable for both signs (exp(-x) overflows to inf for x < -88.7 and gives 0, as it should).
inline f32x8 sigmoid8(f32x8 x) { return splat(1.0f) / (splat(1.0f) + exp8(-x)); }

// Applies f (f32x8 -> f32x8) over n elements, 8 at a time, the tail through a padded vector. In place is fine:
// each block is read before it is written.
template <class F>
inline void map8(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(y + i, f(load8(x + i)));
  if (i < n) store_partial(y + i, f(load_partial(x + i, n - i)), n - i);
}

inline float dot(const float* a, const float* b, int64_t n) {
  f32x8 s0 = splat(0.0f), s1 = splat(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 += load8(a + i) * load8(b + i);
    s1 += load8(a + i + 8) * load8(b + i + 8);
  }
  for (; i + 8 <= n; i += 8) s0 += load8(a + i) * load8(b + i);
  float s = hsum(s0 + s1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline float row_max(const float* x, int64_t n) {
  float m = -kInf;
  int64_t i = 0;
  if (n >= 8) {
    f32x8 v = load8(x);
    for (i = 8; i + 8 <= n; i += 8) v = vmax(v, load8(x + i));
    m = hmax(v);
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

inline float row_sum(const float* x, int64_t n) {
  f32x8 s0 = splat(0.0f), s1 = splat(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 += load8(x + i);
    s1 += load8(x + i + 8);
  }
  for (; i + 8 <= n; i += 8) s0 += load8(x + i);
  float s = hsum(s0 + s1);
  for (; i < n; ++i) s += x[i];
  return s;
}

// y[i] = exp(x[i] - shift), returning the sum of y (the softmax numerator and denominator in one pass).
// shift is the row max (or more), so every argument is <= 0.
inline float exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
  f32x8 s = splat(0.0f), sh = splat(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    f32x8 e = exp8_bounded(load8(x + i) - sh);
    store8(y + i, e);
    s += e;
  }
  if (i < n) {
    f32x8 e = exp8_bounded(load_partial(x + i, n - i) - sh);
    store_partial(y + i, e, n - i);
    for (int64_t j = 0; j < n - i; ++j) s[j] += e[j];
  }
  return hsum(s);
}

// sum of exp(x[i] - shift) without storing (log-softmax, cross-entropy).
inline float exp_shift_sum(const float* x, int64_t n, float shift) {
  f32x8 s0 = splat(0.0f), s1 = splat(0.0f), sh = splat(shift);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 += exp8_bounded(load8(x + i) - sh);
    s1 += exp8_bounded(load8(x + i + 8) - sh);
  }
  for (; i + 8 <= n; i += 8) s0 += exp8_bounded(load8(x + i) - sh);
  if (i < n) {
    f32x8 e = exp8_bounded(load_partial(x + i, n - i) - sh);
    for (int64_t j = 0; j < n - i; ++j) s1[j] += e[j];
  }
  return hsum(s0 + s1);
}

#if defined(__AVX__)
// In-place 8 x 8 transpose of r[0..7] (r[i] holds row i) through unpack/shuffle/permute: 24 shuffles for 64
// elements instead of 64 scalar moves (GEMM packing, attention's key and value blocks).
inline void transpose_8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]),
               t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]),
               t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
               t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

#endif

// Elements per parallel_for chunk for cheap elementwise loops: below this, waking a thread (a few microseconds)
// costs more than it saves.
constexpr int64_t kElementwiseGrain = 1 << 15;

// A grain in rows for row-wise kernels, so that a chunk holds about kElementwiseGrain elements.
inline int64_t row_grain(int64_t cols) { return cols >= kElementwiseGrain ? 1 : kElementwiseGrain / (cols > 0 ? cols : 1); }

}  // namespace r1
