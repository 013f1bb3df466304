// Fused attention, forward and backward, for grouped-query heads.
//
// Forward (FlashAttention, Dao et al. 2022, Algorithm 1, with FlashAttention-2's loop order): one task per
// (batch row, kv head, block of queries). The tile's rows are every (query, query head) pair that reads that
// kv head, so a key/value block loaded once serves the whole group (GQA), and decoding (Tq = 1) becomes a small
// matrix product over the cache instead of Hq separate matrix-vector products. Keys stream through in blocks of
// kKeyBlock with the online softmax: per row a running max m, a running sum l and an unnormalised output acc,
// rescaled by exp(m_old - m_new) when the max grows. Nothing [Tq, Tk]-sized is ever allocated.
//
// Backward (FlashAttention-2, Dao 2023, Algorithm 2): P is recomputed from the saved lse as exp(S - lse);
// with D_i = dO_i . O_i, dS = P * (dO V^T - D_i), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO. One task per
// (batch row, kv head): it owns dK and dV of that head and dQ of the query heads of its group, so no two threads
// write one gradient and sums run in a fixed order (results do not depend on the thread count).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

using namespace r1;

namespace {

constexpr int64_t kKeyBlock = 64;      // keys per block: a [rows, 64] score tile is 8 vectors per row
constexpr int64_t kTileRows = 64;      // (query, head) rows per tile
constexpr double kSerialFlops = 2e5;   // below this a call runs on the calling thread
constexpr int64_t kDirectRows = 4;     // tiles of at most this many rows score keys without transposing them

struct Geometry {
  int64_t B, Tq, Tk, Hq, Hkv, D, Dv, group;
  int64_t k_batch_stride, v_batch_stride;
  float scale;
  bool causal;
  const int32_t* kv_start;
  int64_t queries_per_tile;

  // Keys visible to query i of batch row b are [first_key(b), end_key(i)).
  int64_t first_key(int64_t b) const { return kv_start ? std::max<int64_t>(0, kv_start[b]) : 0; }
  int64_t end_key(int64_t i) const { return causal ? std::min(Tk, Tk - Tq + i + 1) : Tk; }
  int64_t query_blocks() const { return (Tq + queries_per_tile - 1) / queries_per_tile; }
  const float* k_row(const float* k, int64_t b, int64_t j, int64_t g) const {
    return k + b * k_batch_stride + (j * Hkv + g) * D;
  }
  const float* v_row(const float* v, int64_t b, int64_t j, int64_t g) const {
    return v + b * v_batch_stride + (j * Hkv + g) * Dv;
  }
};

Geometry make_geometry(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv,
                       int64_t k_stride, int64_t v_stride, float scale, int causal, const int32_t* kv_start) {
  Geometry g{B, Tq, Tk, Hq, Hkv, D, Dv, Hq / Hkv, k_stride, v_stride, scale, causal != 0, kv_start, 1};
  g.queries_per_tile = std::max<int64_t>(1, std::min<int64_t>(Tq, kTileRows / g.group));
  return g;
}

// dst[d][jj] = rows[jj][d] for jj < n, zero for n <= jj < kKeyBlock: a key (or value) block transposed so that a
// score row is 8 contiguous vectors. rows[jj] = base + jj * stride. Whole groups of 8 keys and 8 columns go through
// 8 x 8 register transposes (the scalar loop was 7% of the forward pass on one Zen3 core).
void transpose_block(const float* base, int64_t stride, int64_t n, int64_t width, float* dst) {
  int64_t keys = 0;
#if defined(__AVX__)
  if (width % 8 == 0)
    for (; keys + 8 <= n; keys += 8)
      for (int64_t d = 0; d < width; d += 8) {
        __m256 r[8];
        for (int u = 0; u < 8; ++u) r[u] = _mm256_loadu_ps(base + (keys + u) * stride + d);
        transpose_8x8(r);
        for (int u = 0; u < 8; ++u) _mm256_storeu_ps(dst + (d + u) * kKeyBlock + keys, r[u]);
      }
#endif
  for (int64_t d = 0; d < width; ++d) {
    float* out = dst + d * kKeyBlock;
    for (int64_t jj = keys; jj < n; ++jj) out[jj] = base[jj * stride + d];
    for (int64_t jj = n; jj < kKeyBlock; ++jj) out[jj] = 0.0f;
  }
}

// C[m x n] (+)= A[m x k] B[k x n] for the small products of one tile: A's element (i, p) at a[i * rsa + p * csa]
// (so a transposed A is only other strides), B's row p at b + p * ldb (n contiguous floats), C's row i at
// c + i * ldc. Blocks of 6 rows x 2 vectors keep 12 accumulators, 2 vectors of B and a broadcast of A in 15
// registers (the GEMM micro-kernel's shape): each k step makes 8 loads for 12 FMAs, where one row at a time made
// 9 for 8. A block of 16 accumulators spilled two of them on AVX2's 16 registers, and the store-to-load round trip
// of a spilled accumulator on every k step then set the pace. Vec is 8 floats (AVX2), or 16 where the compiler
// targets AVX-512: a block then spans 32 columns, a whole head of 32 (or half of 64) per row, in half the
// instructions.
template <class Vec>
inline Vec vec_load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class Vec, int R, int U>
inline void tile_block(int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate) {
  constexpr int W = sizeof(Vec) / sizeof(float);
  Vec acc[R][U];
  for (int i = 0; i < R; ++i)
    for (int u = 0; u < U; ++u) acc[i][u] = accumulate ? vec_load<Vec>(c + i * ldc + W * u) : Vec{};
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    Vec bv[U];
    for (int u = 0; u < U; ++u) bv[u] = vec_load<Vec>(bp + W * u);
    for (int i = 0; i < R; ++i) {
      const float av = a[i * rsa + p * csa];
      for (int u = 0; u < U; ++u) acc[i][u] += bv[u] * av;
    }
  }
  for (int i = 0; i < R; ++i)
    for (int u = 0; u < U; ++u) std::memcpy(c + i * ldc + W * u, &acc[i][u], sizeof(Vec));
}

#if defined(__AVX512F__) || defined(R1_GEMM_WIDE)
typedef float f32x16 __attribute__((vector_size(64)));
#endif

template <int R>
inline void tile_rows(int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b, int64_t ldb,
                      float* c, int64_t ldc, bool accumulate) {
  int64_t j = 0;
#if defined(__AVX512F__) || defined(R1_GEMM_WIDE)
  for (; j + 32 <= n; j += 32) tile_block<f32x16, R, 2>(k, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
  if (j + 16 <= n) tile_block<f32x16, R, 1>(k, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate), j += 16;
#endif
  for (; j + 16 <= n; j += 16) tile_block<f32x8, R, 2>(k, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
  if (j + 8 <= n) tile_block<f32x8, R, 1>(k, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate), j += 8;
  for (; j < n; ++j)  // columns past the last whole vector (head sizes that are not a multiple of 8)
    for (int i = 0; i < R; ++i) {
      float sum = accumulate ? c[i * ldc + j] : 0.0f;
      for (int64_t p = 0; p < k; ++p) sum += a[i * rsa + p * csa] * b[p * ldb + j];
      c[i * ldc + j] = sum;
    }
}

void tile_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b, int64_t ldb,
               float* c, int64_t ldc, bool accumulate) {
  int64_t i = 0;
  for (; i + 6 <= m; i += 6) tile_rows<6>(n, k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc, accumulate);
  const float* ai = a + i * rsa;
  float* ci = c + i * ldc;
  switch (m - i) {
    case 5: tile_rows<5>(n, k, ai, rsa, csa, b, ldb, ci, ldc, accumulate); break;
    case 4: tile_rows<4>(n, k, ai, rsa, csa, b, ldb, ci, ldc, accumulate); break;
    case 3: tile_rows<3>(n, k, ai, rsa, csa, b, ldb, ci, ldc, accumulate); break;
    case 2: tile_rows<2>(n, k, ai, rsa, csa, b, ldb, ci, ldc, accumulate); break;
    case 1: tile_rows<1>(n, k, ai, rsa, csa, b, ldb, ci, ldc, accumulate); break;
  }
}

#if defined(__AVX__)
// [q . rows[0], ..., q . rows[7]] for rows u at base + u * stride, D a multiple of 8: eight accumulators, then
// one transposing reduction (6 horizontal adds, 2 lane permutes, 1 add) instead of eight horizontal sums.
inline f32x8 dots8(const float* q, const float* base, int64_t stride, int64_t D) {
  f32x8 acc[8];
#pragma GCC unroll 8
  for (int u = 0; u < 8; ++u) acc[u] = splat(0.0f);
  for (int64_t d = 0; d < D; d += 8) {
    const f32x8 qv = load8(q + d);
#pragma GCC unroll 8
    for (int u = 0; u < 8; ++u) acc[u] += qv * load8(base + u * stride + d);
  }
  const __m256 h01 = _mm256_hadd_ps((__m256)acc[0], (__m256)acc[1]), h23 = _mm256_hadd_ps((__m256)acc[2], (__m256)acc[3]);
  const __m256 h45 = _mm256_hadd_ps((__m256)acc[4], (__m256)acc[5]), h67 = _mm256_hadd_ps((__m256)acc[6], (__m256)acc[7]);
  const __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67);  // per 128-bit half: sums of 4 lanes
  return (f32x8)_mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}
#endif

// Asks for the cache lines of n floats at p (a key or value row read soon).
inline void prefetch_row(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

// Scratch buffers reused across calls on each thread (a decode step calls attention once per layer per token).
struct Scratch {
  std::vector<float> q, kt, vt, s, p, acc, dout, dq;
  std::vector<float> m, l, lse, delta;
  std::vector<int64_t> end;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Runs fn(task) for each task, spread over the pool (tasks are taken dynamically, so uneven causal tiles
// balance), or serially when the whole call is too small to be worth waking threads.
template <class F>
void run_tasks(int64_t tasks, double flops, F fn) {
  if (flops < kSerialFlops) {
    for (int64_t t = 0; t < tasks; ++t) fn(t);
    return;
  }
  std::function<void(int64_t)> job = fn;
  ThreadPool::get().run(tasks, job);
}

void forward_tile(const Geometry& G, const float* q, const float* k, const float* v, float* out, float* lse,
                  int64_t b, int64_t g, int64_t qb) {
  int64_t i0 = qb * G.queries_per_tile, i1 = std::min(G.Tq, i0 + G.queries_per_tile);
  int64_t rows = (i1 - i0) * G.group;
  int64_t D = G.D, Dv = G.Dv;
  Scratch& S = scratch();
  S.q.resize(rows * D);
  S.kt.resize(D * kKeyBlock);
  S.s.resize(rows * kKeyBlock);
  S.acc.assign(rows * Dv, 0.0f);
  S.m.assign(rows, -kInf);
  S.l.assign(rows, 0.0f);
  S.end.resize(rows);
  // Row r is query i0 + r / group of head g * group + r % group: the group's heads are adjacent in q, so
  // each query contributes group * D contiguous floats.
  for (int64_t i = i0; i < i1; ++i) {
    const float* src = q + ((b * G.Tq + i) * G.Hq + g * G.group) * D;
    float* dst = S.q.data() + (i - i0) * G.group * D;
    for (int64_t x = 0; x < G.group * D; ++x) dst[x] = src[x] * G.scale;
    for (int64_t h = 0; h < G.group; ++h) S.end[(i - i0) * G.group + h] = G.end_key(i);
  }
  int64_t lo = G.first_key(b), hi = G.end_key(i1 - 1);
  for (int64_t j0 = lo; j0 < hi; j0 += kKeyBlock) {
    int64_t nk = std::min(kKeyBlock, hi - j0);
    if (rows <= kDirectRows) {
      // Few rows (decoding: one query of a group of heads): dot products straight from the key rows, each read
      // once; transposing the block would cost more than the products it feeds. Columns past nk are masked below.
      int64_t jj = 0;
#if defined(__AVX__)
      // Eight keys at a time, their eight sums reduced together (dots8): one horizontal sum per key was half
      // of a decode step's attention. The cache is read once per step, mostly from DRAM or a shared L3 (a 1M
      // model's 32-row cache is 16 MB), and the loads of strided key rows waited on memory: the keys 16 ahead
      // and the value rows of these keys (read by P V below) are prefetched.
      if (D % 8 == 0)
        for (; jj + 8 <= nk; jj += 8) {
          for (int64_t u = 0; u < 8; ++u) {
            if (j0 + jj + 16 + u < hi) prefetch_row(G.k_row(k, b, j0 + jj + 16 + u, g), D);
            prefetch_row(G.v_row(v, b, j0 + jj + u, g), Dv);
          }
          for (int64_t r = 0; r < rows; ++r)
            store8(S.s.data() + r * kKeyBlock + jj, dots8(S.q.data() + r * D, G.k_row(k, b, j0 + jj, g), G.Hkv * D, D));
        }
#endif
      for (; jj < nk; ++jj) {
        const float* key = G.k_row(k, b, j0 + jj, g);
        for (int64_t r = 0; r < rows; ++r) S.s[r * kKeyBlock + jj] = dot(S.q.data() + r * D, key, D);
      }
    } else {
      transpose_block(G.k_row(k, b, j0, g), G.Hkv * D, nk, D, S.kt.data());
      tile_gemm(rows, kKeyBlock, D, S.q.data(), D, 1, S.kt.data(), kKeyBlock, S.s.data(), kKeyBlock, false);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = S.s.data() + r * kKeyBlock;
      int64_t visible = std::min(kKeyBlock, S.end[r] - j0);
      if (visible <= 0) {  // no key of this block is visible to the row: P = 0 here, the row's state stays
        std::fill(sr, sr + kKeyBlock, 0.0f);
        continue;
      }
      for (int64_t jj = visible; jj < kKeyBlock; ++jj) sr[jj] = -kInf;
      float m_new = std::max(S.m[r], row_max(sr, kKeyBlock));
      float alpha = exp1(S.m[r] - m_new);  // 0 on the first visible block (m = -inf)
      float sum = exp_shift_sum(sr, sr, kKeyBlock, m_new);
      S.l[r] = S.l[r] * alpha + sum;
      S.m[r] = m_new;
      float* ar = S.acc.data() + r * Dv;
      if (alpha != 1.0f)
        for (int64_t c = 0; c < Dv; ++c) ar[c] *= alpha;
    }
    // acc += P V over the block's keys: the value rows are read in place (Dv contiguous floats each).
    tile_gemm(rows, Dv, nk, S.s.data(), kKeyBlock, 1, G.v_row(v, b, j0, g), G.Hkv * Dv, S.acc.data(), Dv, true);
  }
  for (int64_t r = 0; r < rows; ++r) {
    int64_t i = i0 + r / G.group, h = g * G.group + r % G.group;
    float* dst = out + ((b * G.Tq + i) * G.Hq + h) * Dv;
    const float* ar = S.acc.data() + r * Dv;
    bool empty = S.l[r] == 0.0f;
    float inv = empty ? 0.0f : 1.0f / S.l[r];
    for (int64_t c = 0; c < Dv; ++c) dst[c] = ar[c] * inv;
    if (lse) lse[(b * G.Hq + h) * G.Tq + i] = empty ? -kInf : S.m[r] + std::log(S.l[r]);
  }
}

void backward_head(const Geometry& G, const float* q, const float* k, const float* v, const float* out,
                   const float* lse, const float* dout, float* dq, float* dk, float* dv, int64_t b, int64_t g) {
  int64_t D = G.D, Dv = G.Dv, kstride = G.Hkv * D, vstride = G.Hkv * Dv;
  for (int64_t j = 0; j < G.Tk; ++j) {
    std::memset(dk + b * G.k_batch_stride + j * kstride + g * D, 0, D * sizeof(float));
    std::memset(dv + b * G.v_batch_stride + j * vstride + g * Dv, 0, Dv * sizeof(float));
  }
  Scratch& S = scratch();
  int64_t max_rows = G.queries_per_tile * G.group;
  S.q.resize(max_rows * D);
  S.dout.resize(max_rows * Dv);
  S.dq.resize(max_rows * D);
  S.kt.resize(D * kKeyBlock);
  S.vt.resize(Dv * kKeyBlock);
  S.s.resize(max_rows * kKeyBlock);
  S.p.resize(max_rows * kKeyBlock);
  S.lse.resize(max_rows);
  S.delta.resize(max_rows);
  S.end.resize(max_rows);
  for (int64_t qb = 0; qb < G.query_blocks(); ++qb) {
    int64_t i0 = qb * G.queries_per_tile, i1 = std::min(G.Tq, i0 + G.queries_per_tile);
    int64_t rows = (i1 - i0) * G.group;
    for (int64_t i = i0; i < i1; ++i) {
      int64_t at = ((b * G.Tq + i) * G.Hq + g * G.group);
      std::memcpy(S.q.data() + (i - i0) * G.group * D, q + at * D, G.group * D * sizeof(float));
      std::memcpy(S.dout.data() + (i - i0) * G.group * Dv, dout + at * Dv, G.group * Dv * sizeof(float));
      for (int64_t h = 0; h < G.group; ++h) {
        int64_t r = (i - i0) * G.group + h;
        S.end[r] = G.end_key(i);
        S.lse[r] = lse[(b * G.Hq + g * G.group + h) * G.Tq + i];
        S.delta[r] = dot(dout + (at + h) * Dv, out + (at + h) * Dv, Dv);
      }
    }
    std::fill(S.dq.begin(), S.dq.begin() + rows * D, 0.0f);
    int64_t lo = G.first_key(b), hi = G.end_key(i1 - 1);
    for (int64_t j0 = lo; j0 < hi; j0 += kKeyBlock) {
      int64_t nk = std::min(kKeyBlock, hi - j0);
      const float* kbase = G.k_row(k, b, j0, g);
      const float* vbase = G.v_row(v, b, j0, g);
      transpose_block(kbase, kstride, nk, D, S.kt.data());
      transpose_block(vbase, vstride, nk, Dv, S.vt.data());
      tile_gemm(rows, kKeyBlock, D, S.q.data(), D, 1, S.kt.data(), kKeyBlock, S.s.data(), kKeyBlock, false);      // q . k
      tile_gemm(rows, kKeyBlock, Dv, S.dout.data(), Dv, 1, S.vt.data(), kKeyBlock, S.p.data(), kKeyBlock, false);  // dP = dO . v
      for (int64_t r = 0; r < rows; ++r) {
        float* sr = S.s.data() + r * kKeyBlock;  // becomes P
        float* dpr = S.p.data() + r * kKeyBlock;  // becomes scale * dS
        int64_t visible = std::max<int64_t>(0, std::min(kKeyBlock, S.end[r] - j0));
        float l = S.lse[r];
        if (l == -kInf) visible = 0;  // a query that saw no key has P = 0
        f32x8 sc = splat(G.scale), lv = splat(l), dl = splat(S.delta[r]);
        for (int64_t jj = 0; jj < kKeyBlock; jj += 8) {
          // s - lse <= 0 for visible keys (up to rounding); masked columns may be anything and are zeroed below.
          f32x8 p = exp8_bounded(vmin(load8(sr + jj) * sc - lv, splat(0.0f)));
          store8(sr + jj, p);
          store8(dpr + jj, p * (load8(dpr + jj) - dl) * sc);
        }
        for (int64_t jj = visible; jj < kKeyBlock; ++jj) sr[jj] = dpr[jj] = 0.0f;
      }
      // dQ += dS K, dV += P^T dO, dK += dS^T Q: the transposed operands are P and dS read with swapped strides,
      // and the key, value, dK and dV rows are used in place.
      tile_gemm(rows, D, nk, S.p.data(), kKeyBlock, 1, kbase, kstride, S.dq.data(), D, true);
      tile_gemm(nk, Dv, rows, S.s.data(), 1, kKeyBlock, S.dout.data(), Dv, dv + b * G.v_batch_stride + j0 * vstride + g * Dv, vstride, true);
      tile_gemm(nk, D, rows, S.p.data(), 1, kKeyBlock, S.q.data(), D, dk + b * G.k_batch_stride + j0 * kstride + g * D, kstride, true);
    }
    for (int64_t r = 0; r < rows; ++r) {
      int64_t i = i0 + r / G.group, h = g * G.group + r % G.group;
      std::memcpy(dq + ((b * G.Tq + i) * G.Hq + h) * D, S.dq.data() + r * D, D * sizeof(float));
    }
  }
}

}  // namespace

extern "C" {

R1_API void r1_attention(const float* q, const float* k, const float* v, float* out, float* lse,
                         const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv,
                         int64_t D, int64_t Dv, int64_t kv_batch_stride, int64_t v_batch_stride, float scale,
                         int causal) {
  if (B <= 0 || Tq <= 0 || Hq <= 0) return;
  Geometry G = make_geometry(B, Tq, Tk, Hq, Hkv, D, Dv, kv_batch_stride, v_batch_stride, scale, causal, kv_start);
  int64_t qblocks = G.query_blocks();
  double flops = 2.0 * B * Hq * Tq * std::max<int64_t>(Tk, 1) * (D + Dv);
  // Causal tiles late in the sequence see more keys: hand them out first so the short ones fill the gaps.
  run_tasks(B * Hkv * qblocks, flops, [&](int64_t t) {
    int64_t qb = qblocks - 1 - t / (B * Hkv), bg = t % (B * Hkv);
    forward_tile(G, q, k, v, out, lse, bg / Hkv, bg % Hkv, qb);
  });
}

R1_API void r1_attention_backward(const float* q, const float* k, const float* v, const float* out,
                                  const float* lse, const float* dout, float* dq, float* dk, float* dv,
                                  const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq,
                                  int64_t Hkv, int64_t D, int64_t Dv, float scale, int causal) {
  if (B <= 0 || Hkv <= 0) return;
  Geometry G = make_geometry(B, Tq, Tk, Hq, Hkv, D, Dv, Tk * Hkv * D, Tk * Hkv * Dv, scale, causal, kv_start);
  if (Tq <= 0) {  // no queries: zero gradients for k and v
    std::memset(dk, 0, B * Tk * Hkv * D * sizeof(float));
    std::memset(dv, 0, B * Tk * Hkv * Dv * sizeof(float));
    return;
  }
  double flops = 5.0 * B * Hq * Tq * std::max<int64_t>(Tk, 1) * (D + Dv);
  run_tasks(B * Hkv, flops, [&](int64_t t) { backward_head(G, q, k, v, out, lse, dout, dq, dk, dv, t / Hkv, t % Hkv); });
}

}  // extern "C"
