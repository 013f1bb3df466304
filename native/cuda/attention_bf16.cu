// Fused attention on tensor cores, used by r1_attention and r1_attention_backward (attention.cu) when the matmul
// precision is bf16 (r1_cuda_set_matmul_precision(2)) and D == Dv is 64 or 128: the same contract as the float32
// kernels (GQA, causal offset Tk - Tq, kv_start masking, KV cache strides, lse), with Q, K, V, dO rounded to
// bfloat16 and every product on mma.sync m16n8k16 (bf16 operands, fp32 accumulation). Softmax statistics, lse,
// the output and every gradient stay float32; P and dS are rounded to bf16 only as operands of the second product
// of each pair, as FlashAttention-2 does.
//
// The operands that a kernel reads many times (K and V in the forward, which every query tile of a group reads;
// all four in the backward) are rounded to packed bf16 scratch copies by one pass first: that halves the bytes
// each tile brings from L2 and lets tiles arrive by cp.async, two stages deep, while the previous tile computes.
//
// Forward (FlashAttention-2, Dao 2023, Algorithm 1): a block of 8 warps holds 128 queries of one head, 16 per
// warp, with Q's fragments in registers, and walks the visible keys in tiles of 64. S = Q K^T lands in the
// accumulator layout of m16n8k16, which is also the A-operand layout of P V, so P never touches shared memory.
// Scores are kept in base 2 (scaled by scale * log2 e) so that exp2f is one instruction.
//
// Backward (FlashAttention-2, Algorithm 2): a block owns 128 keys of one kv head, 16 per warp, and walks every
// query tile of every query head of its group that can see them. Per tile it forms S^T = K Q^T and dP^T = V dO^T,
// P^T = exp2(S^T - lse), dS^T = P^T (dP^T - D_i), accumulates dV += P^T dO and dK += dS^T Q in registers, and
// writes dS^T to shared memory so that the block computes dQ = dS K for the tile and adds it to dq with atomics.
// When that grid is too small to fill the GPU evenly (few kv heads, short sequences), each query head of a group
// gets blocks of its own instead, and one pass adds their dK and dV slices (attention_backward_bf16).
#include <cuda_bf16.h>

#include "common.cuh"

namespace {

constexpr int kFwdThreads = 256;  // 8 warps
constexpr int kFwdQueries = 128;  // queries per forward block, 16 per warp
constexpr int kTile = 64;         // keys per forward tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 2^x by the special-function unit alone (flush-to-zero; ~2^-22 relative): the softmax's exponentials are
// rounded to bf16 before they are used, or summed in float32 over a row.
__device__ inline float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ inline uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // lo in the low half: the lower k index of a fragment pair
  return *reinterpret_cast<uint32_t*>(&v);
}

// d += a b for one m16n8k16 tile (a: 4 registers of bf16 pairs, row-major 16 x 16; b: 2 registers, 16 x 8).
__device__ inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8 x 8 bf16 matrices from shared memory (a byte address in the shared window), lane l giving the address
// of row l % 8 of matrix l / 8.
__device__ inline uint32_t shared_address(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
__device__ inline void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}
__device__ inline void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

// 16 bytes from global to shared memory without passing through registers; zero-filled when !valid.
__device__ inline void cp_async16(void* shared, const void* global, bool valid) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(valid ? 16 : 0));
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int Pending>
__device__ inline void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending)); }

// Where the lane's ldmatrix row starts, in elements from a fragment's top-left corner, inside a row-major bf16
// tile with row stride `ld`. Kernels add these to their tiles' shared addresses once, so that each ldmatrix in
// the unrolled loops is a base plus a constant.
// A operand (16 x 16): matrices (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15).
__device__ inline int a_lane(int ld, int lane) { return (lane & 15) * ld + (lane >> 4) * 8; }
// B operand of two n-tiles from a [n][k] tile (B = tile^T): matrices (n 0-7, k 0-7), (n 0-7, k 8-15),
// (n 8-15, k 0-7), (n 8-15, k 8-15): registers 0, 1 are the first n-tile's b0, b1; 2, 3 the second's.
__device__ inline int bt_lane(int ld, int lane) { return ((lane >> 4) * 8 + (lane & 7)) * ld + ((lane >> 3) & 1) * 8; }
// B operand of two n-tiles from a [k][n] tile, read with .trans: matrices (k 0-7, n 0-7), (k 8-15, n 0-7),
// (k 0-7, n 8-15), (k 8-15, n 8-15). With .trans, the A operand of a [k][m] tile uses the same addresses
// with m for n: (m 0-7, k 0-7) is matrix (k 0-7, m 0-7) transposed, and so on, in the order a0, a2, a1, a3.
__device__ inline int b_lane(int ld, int lane) { return (((lane >> 3) & 1) * 8 + (lane & 7)) * ld + (lane >> 4) * 8; }

// Rows [0, R) of a float32 matrix (row r at base + r * row_stride, D floats, 16-byte aligned) into a bf16 tile
// with row stride D + 8 (the 16 bytes of padding put the 8 rows of an ldmatrix in distinct banks). Rows at or
// beyond valid_rows are zero. Every load of the tile is issued before the first conversion.
template <int R, int D, int Threads>
__device__ inline void load_tile_f32(__nv_bfloat16* tile, const float* base, int64_t row_stride, int64_t valid_rows,
                                     int tid) {
  constexpr int kVectors = D / 4, kPerThread = R * kVectors / Threads;
  float4 v[kPerThread];
  #pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int e = tid + i * Threads, r = e / kVectors, c = e % kVectors;
    v[i] = r < valid_rows ? __ldg(reinterpret_cast<const float4*>(base + r * row_stride) + c) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  #pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int e = tid + i * Threads, r = e / kVectors, c = e % kVectors;
    *reinterpret_cast<uint2*>(tile + r * (D + 8) + c * 4) = make_uint2(pack_bf16(v[i].x, v[i].y), pack_bf16(v[i].z, v[i].w));
  }
}

// The same rows of a packed bf16 copy, queued with cp.async (the caller commits and waits).
template <int R, int D, int Threads>
__device__ inline void load_tile_async(__nv_bfloat16* tile, const __nv_bfloat16* base, int64_t row_stride,
                                       int64_t valid_rows, int tid) {
  constexpr int kChunks = D / 8, kPerThread = R * kChunks / Threads;
  #pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int e = tid + i * Threads, r = e / kChunks, c = e % kChunks;
    const bool valid = r < valid_rows;
    cp_async16(tile + r * (D + 8) + c * 8, valid ? base + r * row_stride + c * 8 : base, valid);
  }
}

struct FlashArgs {
  const float *q, *lse, *delta;          // float32: Q (forward), lse and D_i (backward)
  const __nv_bfloat16 *k, *v, *qb, *dob;  // packed bf16 copies: [B, Tk, Hkv, D] and [B, Tq, Hq, D]
  float *out, *lse_out, *dq, *dk, *dv;
  const int32_t* kv_start;
  int64_t Tq, Tk, Hq, Hkv;
  float scale;
  int causal;
  // Backward: the query heads of its group that one block walks (a divisor of Hq / Hkv), and the distance between
  // the dK / dV slices that the blocks of different parts of a group write (0 when a block walks the whole group).
  int64_t heads_per_block, part_stride;
  __nv_bfloat16* out16 = nullptr;  // forward: out's bf16 copy (output_copy), or nullptr
  bool out_copy_only = false;      // forward: out is bf16-only (o_proj's GEMMs and the backward read the copy)
};

template <int D>
__global__ void __launch_bounds__(kFwdThreads, D == 64 ? 2 : 1) flash_forward_kernel(FlashArgs a) {
  constexpr int S = D + 8;
  extern __shared__ uint4 shared_tc[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(shared_tc);
  __nv_bfloat16* Ks = Qs + kFwdQueries * S;  // [2 stages][kTile][S]
  __nv_bfloat16* Vs = Ks + 2 * kTile * S;    // [2 stages][kTile][S]
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  // The last query tiles see the most keys under a causal mask: start them first.
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kFwdQueries;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (a.Hq / a.Hkv);
  const float scale2 = a.scale * kLog2e;

  const int64_t offset = a.Tk - a.Tq;  // query i sits at absolute position offset + i
  const int64_t key_lo = a.kv_start ? max(int64_t(0), int64_t(a.kv_start[b])) : 0;
  const int64_t key_end = a.causal ? min(a.Tk, offset + min(a.Tq - 1, q0 + kFwdQueries - 1) + 1) : a.Tk;
  const int64_t key_first = (key_lo / kTile) * kTile;
  const __nv_bfloat16* kb = a.k + b * a.Tk * a.Hkv * D + hk * D;
  const __nv_bfloat16* vb = a.v + b * a.Tk * a.Hkv * D + hk * D;
  auto issue = [&](int64_t k0, int stage) {
    load_tile_async<kTile, D, kFwdThreads>(Ks + stage * kTile * S, kb + k0 * a.Hkv * D, a.Hkv * D, a.Tk - k0, tid);
    load_tile_async<kTile, D, kFwdThreads>(Vs + stage * kTile * S, vb + k0 * a.Hkv * D, a.Hkv * D, a.Tk - k0, tid);
  };
  if (key_first < key_end) issue(key_first, 0);
  cp_async_commit();

  load_tile_f32<kFwdQueries, D, kFwdThreads>(Qs, a.q + ((b * a.Tq + q0) * a.Hq + h) * D, a.Hq * D, a.Tq - q0, tid);
  __syncthreads();
  uint32_t qf[D / 16][4];
  #pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(qf[kk], shared_address(Qs) + 2 * (a_lane(S, lane) + warp * 16 * S + kk * 16));
  const uint32_t k_frag = shared_address(Ks) + 2 * bt_lane(S, lane), v_frag = shared_address(Vs) + 2 * b_lane(S, lane);

  const int64_t row_query[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  int64_t row_last[2];  // last visible key of each of this thread's rows (inclusive)
  #pragma unroll
  for (int r = 0; r < 2; ++r) row_last[r] = a.causal ? min(a.Tk - 1, offset + row_query[r]) : a.Tk - 1;

  float o[D / 8][4];
  #pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this thread's share of the row sum

  int stage = 0;
  for (int64_t k0 = key_first; k0 < key_end; k0 += kTile, stage ^= 1) {
    if (k0 + kTile < key_end) issue(k0 + kTile, stage ^ 1);
    cp_async_commit();
    cp_async_wait<1>();  // this tile has landed; the next one may still be in flight
    __syncthreads();
    const uint32_t stage_bytes = 2 * stage * kTile * S;

    float s[kTile / 8][4];
    #pragma unroll
    for (int j = 0; j < kTile / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      #pragma unroll
      for (int j = 0; j < kTile / 8; j += 2) {
        uint32_t kf[4];
        ldmatrix_x4(kf, k_frag + stage_bytes + 2 * (j * 8 * S + kk * 16));
        mma_bf16(s[j], qf[kk], kf[0], kf[1]);
        mma_bf16(s[j + 1], qf[kk], kf[2], kf[3]);
      }
    }

    // Online softmax over this tile; element e of s[j] is row e / 2, key k0 + 8 j + 2 c + e % 2. Scores stay
    // unscaled until the exponential, p = 2^(s scale2 - m), with m the running max of s scale2.
    const bool whole = k0 >= key_lo && k0 + kTile - 1 <= min(row_last[0], row_last[1]);
    if (!whole) {
      #pragma unroll
      for (int j = 0; j < kTile / 8; ++j) {
        #pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t key = k0 + j * 8 + 2 * c + (e & 1);
          if (key < key_lo || key > row_last[e >> 1]) s[j][e] = -INFINITY;
        }
      }
    }
    float tile_max[2] = {-INFINITY, -INFINITY};
    #pragma unroll
    for (int j = 0; j < kTile / 8; ++j) {
      tile_max[0] = fmaxf(tile_max[0], fmaxf(s[j][0], s[j][1]));
      tile_max[1] = fmaxf(tile_max[1], fmaxf(s[j][2], s[j][3]));
    }
    float alpha[2], neg_m[2];
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float m_new = fmaxf(m[r], tile_max[r] * scale2);
      // A row that has seen no visible key yet keeps m = -inf, l = 0 and a zero output: its scores are all
      // -inf, so 2^(s scale2 + 0) = 0.
      alpha[r] = m_new == -INFINITY ? 1.0f : exp2_approx(m[r] - m_new);
      neg_m[r] = m_new == -INFINITY ? 0.0f : -m_new;
      m[r] = m_new;
      l[r] *= alpha[r];
    }
    #pragma unroll
    for (int j = 0; j < kTile / 8; ++j) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = exp2_approx(fmaf(s[j][e], scale2, neg_m[e >> 1]));
        l[e >> 1] += s[j][e];
      }
    }
    #pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= alpha[0], o[n][1] *= alpha[0], o[n][2] *= alpha[1], o[n][3] *= alpha[1];
    }
    // O += P V: the accumulators of two adjacent key n-tiles are one A fragment over 16 keys.
    #pragma unroll
    for (int kk = 0; kk < kTile / 16; ++kk) {
      const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      #pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t vf[4];
        ldmatrix_x4_trans(vf, v_frag + stage_bytes + 2 * (kk * 16 * S + n * 8));
        mma_bf16(o[n], pa, vf[0], vf[1]);
        mma_bf16(o[n + 1], pa, vf[2], vf[3]);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's issue
  }

  #pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int64_t qi = row_query[r];
    if (qi >= a.Tq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    float* out = a.out + ((b * a.Tq + qi) * a.Hq + h) * D + 2 * c;
    if (!a.out_copy_only) {
      #pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        *reinterpret_cast<float2*>(out + n * 8) = make_float2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
      }
    }
    if (a.out16) {
      __nv_bfloat16* out16 = a.out16 + ((b * a.Tq + qi) * a.Hq + h) * D + 2 * c;
      #pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        *reinterpret_cast<__nv_bfloat162*>(out16 + n * 8) = __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
      }
    }
    if (a.lse_out && c == 0) a.lse_out[(b * a.Hq + h) * a.Tq + qi] = l[r] > 0.0f ? (m[r] + log2f(l[r])) * kLn2 : -INFINITY;
  }
}

// QT queries per backward tile: 64 for D = 64; 32 for D = 128, which keeps dK and dV (2 x 64 floats a thread)
// beside the tile's scores in registers. KT keys per block, 16 per warp (KT / 16 warps): a larger block reads
// each Q and dO tile for more keys and adds fewer partial dQ sums with atomics.
template <int D, int QT, int KT>
__global__ void __launch_bounds__(KT * 2) flash_backward_kernel(FlashArgs a) {
  constexpr int kThreadsB = KT * 2, kWarps = KT / 16;
  constexpr int S = D + 8, SD = QT + 8;
  extern __shared__ uint4 shared_tc[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(shared_tc);
  __nv_bfloat16* Vs = Ks + KT * S;
  __nv_bfloat16* Qs = Vs + KT * S;         // [2 stages][QT][S]
  __nv_bfloat16* dOs = Qs + 2 * QT * S;    // [2 stages][QT][S]
  __nv_bfloat16* dSs = dOs + 2 * QT * S;   // dS^T: [KT keys][QT queries]
  float* lses = reinterpret_cast<float*>(dSs + KT * SD);     // [2 stages][QT], lse * log2 e
  float* deltas = lses + 2 * QT;                              // [2 stages][QT]
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int64_t group = a.Hq / a.Hkv, parts = group / a.heads_per_block, offset = a.Tk - a.Tq;
  const int64_t b = blockIdx.z, hk = blockIdx.y / parts, part = blockIdx.y % parts, k0 = int64_t(blockIdx.x) * KT;
  const int64_t first_head = hk * group + part * a.heads_per_block;
  const int64_t key_lo = a.kv_start ? max(int64_t(0), int64_t(a.kv_start[b])) : 0;
  const float scale2 = a.scale * kLog2e;

  // The (query head, query tile) pairs that can see this block's keys, in order: query i sees key j when
  // j <= offset + i, so causal tiles start at the first query that sees the block's first key.
  const int64_t first_q = a.causal ? (max(int64_t(0), k0 - offset) / QT) * QT : 0;
  const int64_t q_tiles = first_q < a.Tq ? (a.Tq - first_q + QT - 1) / QT : 0;
  const bool block_visible = min(a.Tk - 1, k0 + KT - 1) >= key_lo;
  const int64_t tiles = block_visible ? a.heads_per_block * q_tiles : 0;
  auto issue = [&](int64_t t, int stage) {
    const int64_t h = first_head + t / q_tiles, q0 = first_q + (t % q_tiles) * QT;
    const int64_t at = (b * a.Tq + q0) * a.Hq + h;
    load_tile_async<QT, D, kThreadsB>(Qs + stage * QT * S, a.qb + at * D, a.Hq * D, a.Tq - q0, tid);
    load_tile_async<QT, D, kThreadsB>(dOs + stage * QT * S, a.dob + at * D, a.Hq * D, a.Tq - q0, tid);
    if (tid < QT) {
      const int64_t qi = q0 + tid;
      lses[stage * QT + tid] = qi < a.Tq ? a.lse[(b * a.Hq + h) * a.Tq + qi] * kLog2e : -INFINITY;
      deltas[stage * QT + tid] = qi < a.Tq ? a.delta[(b * a.Hq + h) * a.Tq + qi] : 0.0f;
    }
  };
  const int64_t kv_at = (b * a.Tk + k0) * a.Hkv + hk;
  load_tile_async<KT, D, kThreadsB>(Ks, a.k + kv_at * D, a.Hkv * D, a.Tk - k0, tid);
  load_tile_async<KT, D, kThreadsB>(Vs, a.v + kv_at * D, a.Hkv * D, a.Tk - k0, tid);
  if (tiles > 0) issue(0, 0);
  cp_async_commit();

  const int64_t row_key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  float dk[D / 8][4], dv[D / 8][4];
  #pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    #pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;
  }

  // dQ of a tile: warp w takes 16 queries (w % (QT / 16)) and D / (kWarps / (QT / 16)) columns (w / (QT / 16)).
  constexpr int kQGroups = QT / 16, kDCols = D / (kWarps / kQGroups);
  static_assert(kWarps % kQGroups == 0 && kDCols % 16 == 0, "the dQ tile must split evenly over the warps");
  const int dq_row0 = (warp % kQGroups) * 16, dq_col0 = (warp / kQGroups) * kDCols;

  const uint32_t k_a = shared_address(Ks) + 2 * (a_lane(S, lane) + warp * 16 * S);
  const uint32_t v_a = shared_address(Vs) + 2 * (a_lane(S, lane) + warp * 16 * S);
  const uint32_t q_bt = shared_address(Qs) + 2 * bt_lane(S, lane), do_bt = shared_address(dOs) + 2 * bt_lane(S, lane);
  const uint32_t q_b = shared_address(Qs) + 2 * b_lane(S, lane), do_b = shared_address(dOs) + 2 * b_lane(S, lane);
  const uint32_t ds_b = shared_address(dSs) + 2 * (b_lane(SD, lane) + dq_row0);
  const uint32_t k_b = shared_address(Ks) + 2 * (b_lane(S, lane) + dq_col0);

  int stage = 0;
  for (int64_t t = 0; t < tiles; ++t, stage ^= 1) {
    if (t + 1 < tiles) issue(t + 1, stage ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int64_t h = first_head + t / q_tiles, q0 = first_q + (t % q_tiles) * QT;
    const uint32_t stage_bytes = 2 * stage * QT * S;
    const float* lse_t = lses + stage * QT;
    const float* delta_t = deltas + stage * QT;

    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys: element e of [j] is key row e / 2,
    // query q0 + 8 j + 2 c + e % 2.
    float st[QT / 8][4], dpt[QT / 8][4];
    #pragma unroll
    for (int j = 0; j < QT / 8; ++j) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) st[j][e] = dpt[j][e] = 0.0f;
    }
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ka[4], va[4];
      ldmatrix_x4(ka, k_a + 2 * kk * 16);
      ldmatrix_x4(va, v_a + 2 * kk * 16);
      #pragma unroll
      for (int j = 0; j < QT / 8; j += 2) {
        uint32_t qb[4], ob[4];
        ldmatrix_x4(qb, q_bt + stage_bytes + 2 * (j * 8 * S + kk * 16));
        ldmatrix_x4(ob, do_bt + stage_bytes + 2 * (j * 8 * S + kk * 16));
        mma_bf16(st[j], ka, qb[0], qb[1]);
        mma_bf16(st[j + 1], ka, qb[2], qb[3]);
        mma_bf16(dpt[j], va, ob[0], ob[1]);
        mma_bf16(dpt[j + 1], va, ob[2], ob[3]);
      }
    }
    // P^T = exp2(S^T scale2 - lse2) where visible; dS^T = P^T (dP^T - D_i), written to shared memory too.
    // A tile of real queries that all see all of the block's real keys skips the masks.
    const bool whole = q0 + QT <= a.Tq && k0 + KT <= a.Tk && k0 >= key_lo && (!a.causal || k0 + KT - 1 <= offset + q0);
    #pragma unroll
    for (int j = 0; j < QT / 8; ++j) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = j * 8 + 2 * c + (e & 1);
        bool visible = true;
        if (!whole) {
          const int64_t qi = q0 + col, key = row_key[e >> 1];
          visible = qi < a.Tq && key < a.Tk && key >= key_lo && (!a.causal || key <= offset + qi) && lse_t[col] != -INFINITY;
        }
        const float p = visible ? exp2_approx(fmaf(st[j][e], scale2, -lse_t[col])) : 0.0f;
        st[j][e] = p;
        dpt[j][e] = p * (dpt[j][e] - delta_t[col]);
      }
      const int row = warp * 16 + g;
      *reinterpret_cast<uint32_t*>(dSs + row * SD + j * 8 + 2 * c) = pack_bf16(dpt[j][0], dpt[j][1]);
      *reinterpret_cast<uint32_t*>(dSs + (row + 8) * SD + j * 8 + 2 * c) = pack_bf16(dpt[j][2], dpt[j][3]);
    }
    // dV += P^T dO and dK += dS^T Q (scaled at the end), k running over the tile's queries.
    #pragma unroll
    for (int kq = 0; kq < QT / 16; ++kq) {
      const uint32_t pa[4] = {pack_bf16(st[2 * kq][0], st[2 * kq][1]), pack_bf16(st[2 * kq][2], st[2 * kq][3]),
                              pack_bf16(st[2 * kq + 1][0], st[2 * kq + 1][1]), pack_bf16(st[2 * kq + 1][2], st[2 * kq + 1][3])};
      const uint32_t da[4] = {pack_bf16(dpt[2 * kq][0], dpt[2 * kq][1]), pack_bf16(dpt[2 * kq][2], dpt[2 * kq][3]),
                              pack_bf16(dpt[2 * kq + 1][0], dpt[2 * kq + 1][1]), pack_bf16(dpt[2 * kq + 1][2], dpt[2 * kq + 1][3])};
      #pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t ob[4], qb[4];
        ldmatrix_x4_trans(ob, do_b + stage_bytes + 2 * (kq * 16 * S + n * 8));
        ldmatrix_x4_trans(qb, q_b + stage_bytes + 2 * (kq * 16 * S + n * 8));
        mma_bf16(dv[n], pa, ob[0], ob[1]);
        mma_bf16(dv[n + 1], pa, ob[2], ob[3]);
        mma_bf16(dk[n], da, qb[0], qb[1]);
        mma_bf16(dk[n + 1], da, qb[2], qb[3]);
      }
    }
    __syncthreads();  // dS^T complete

    // dQ = scale dS K over the block's KT keys: A = dS from the [key][query] tile read transposed.
    float dq[kDCols / 8][4];
    #pragma unroll
    for (int n = 0; n < kDCols / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    #pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) {
      uint32_t tr[4];
      ldmatrix_x4_trans(tr, ds_b + 2 * kk * 16 * SD);
      const uint32_t dsa[4] = {tr[0], tr[2], tr[1], tr[3]};
      #pragma unroll
      for (int n = 0; n < kDCols / 8; n += 2) {
        uint32_t kb[4];
        ldmatrix_x4_trans(kb, k_b + 2 * (kk * 16 * S + n * 8));
        mma_bf16(dq[n], dsa, kb[0], kb[1]);
        mma_bf16(dq[n + 1], dsa, kb[2], kb[3]);
      }
    }
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t qi = q0 + dq_row0 + g + 8 * r;
      if (qi >= a.Tq) continue;
      float* dqr = a.dq + ((b * a.Tq + qi) * a.Hq + h) * D + dq_col0 + 2 * c;
      #pragma unroll
      for (int n = 0; n < kDCols / 8; ++n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        // One 8-byte atomic for the lane's pair of columns (sm_90's vector atomics: half the atomic operations).
        atomicAdd(reinterpret_cast<float2*>(dqr + n * 8), make_float2(a.scale * dq[n][2 * r], a.scale * dq[n][2 * r + 1]));
#else
        // Before sm_90 there is no float2 atomicAdd: two 4-byte atomics.
        atomicAdd(dqr + n * 8, a.scale * dq[n][2 * r]);
        atomicAdd(dqr + n * 8 + 1, a.scale * dq[n][2 * r + 1]);
#endif
      }
    }
    __syncthreads();  // dS^T and this stage are rewritten by the next iteration
  }
  cp_async_wait<0>();  // no copy may still target shared memory when the block exits

  #pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t key = row_key[r];
    if (key >= a.Tk) continue;
    float* dkr = a.dk + part * a.part_stride + ((b * a.Tk + key) * a.Hkv + hk) * D + 2 * c;
    float* dvr = a.dv + part * a.part_stride + ((b * a.Tk + key) * a.Hkv + hk) * D + 2 * c;
    #pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<float2*>(dkr + n * 8) = make_float2(a.scale * dk[n][2 * r], a.scale * dk[n][2 * r + 1]);
      *reinterpret_cast<float2*>(dvr + n * 8) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
    }
  }
}

// dk[i] = sum over parts p of parts_dk[p][i] (and the same for dv), in part order: the gradients of one kv head
// that the blocks of the parts of its query-head group computed separately.
__global__ void sum_parts_kernel(const float4* parts_dk, const float4* parts_dv, float4* dk, float4* dv, int64_t parts,
                                 int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    float4 k = parts_dk[i], v = parts_dv[i];
    for (int64_t p = 1; p < parts; ++p) {
      const float4 kp = parts_dk[p * n4 + i], vp = parts_dv[p * n4 + i];
      k = make_float4(k.x + kp.x, k.y + kp.y, k.z + kp.z, k.w + kp.w);
      v = make_float4(v.x + vp.x, v.y + vp.y, v.z + vp.z, v.w + vp.w);
    }
    dk[i] = k;
    dv[i] = v;
  }
}

template <class Kernel>
void launch(Kernel kernel, dim3 grid, int threads, size_t shared_bytes, const FlashArgs& args, const char* name) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes));
  if (err != cudaSuccess) return r1cuda::record_error(name, err);
  kernel<<<grid, threads, shared_bytes, r1cuda::stream()>>>(args);
  r1cuda::check_launch(name);
}

int multiprocessors() {
  static int count = 0;
  if (count == 0) {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      (void)cudaGetLastError();
      count = 132;  // an H100 / H200: only the choice of grid depends on it
    }
  }
  return count;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The current bf16 copy of [x, x + count) that the kernels can load 16 bytes at a time, or nullptr.
const __nv_bfloat16* loadable_copy(const float* x, int64_t count) {
  const __nv_bfloat16* copy = r1cuda::current_copy(x, count);
  return copy && aligned16(copy) ? copy : nullptr;
}

}  // namespace

namespace r1cuda {

bool attention_forward_bf16(const float* q, const float* k, const float* v, float* out, float* lse,
                            const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv,
                            int64_t D, int64_t Dv, int64_t kv_batch_stride, int64_t v_batch_stride, float scale,
                            int causal) {
  if (matmul_precision() != 2 || D != Dv || (D != 64 && D != 128) || kv_batch_stride % 4 || v_batch_stride % 4 ||
      !aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out) || Tk <= 0) {
    return false;
  }
  const int64_t kv_count = Tk * Hkv * D;  // the visible rows of each batch entry, packed
  // K and V as packed bf16: the current copies their producers wrote (RoPE's k), or rounded here.
  const __nv_bfloat16* kb = B == 1 || kv_batch_stride == kv_count ? loadable_copy(k, B * kv_count) : nullptr;
  const __nv_bfloat16* vb = B == 1 || v_batch_stride == kv_count ? loadable_copy(v, B * kv_count) : nullptr;
  if (!kb || !vb) {
    auto* kv = static_cast<__nv_bfloat16*>(scratch(kScratchAttentionBf16, 2 * B * kv_count * sizeof(__nv_bfloat16)));
    if (!kv) return true;  // the failure is recorded
    auto round = [&](const float* x, __nv_bfloat16* slot, int64_t stride) {
      widen_pending(x, ((B - 1) * stride + kv_count) * static_cast<int64_t>(sizeof(float)));
      round_to_bf16(x, slot, B, kv_count, stride);
      return static_cast<const __nv_bfloat16*>(slot);
    };
    if (!kb) kb = round(k, kv, kv_batch_stride);
    if (!vb) vb = round(v, kv + B * kv_count, v_batch_stride);
  }
  FlashArgs a{q, nullptr, nullptr, kb, vb, nullptr, nullptr, out, lse, nullptr, nullptr, nullptr,
              kv_start, Tq, Tk, Hq, Hkv, scale, causal};
  a.out16 = output_copy(out, B * Tq * Hq * D, &a.out_copy_only);
  const dim3 grid(static_cast<unsigned>((Tq + kFwdQueries - 1) / kFwdQueries), static_cast<unsigned>(Hq), static_cast<unsigned>(B));
  const size_t shared_bytes = sizeof(__nv_bfloat16) * (kFwdQueries + 4 * kTile) * (D + 8);
  const char* name = "r1_attention (bf16 tensor cores)";
  if (D == 64) launch(flash_forward_kernel<64>, grid, kFwdThreads, shared_bytes, a, name);
  else launch(flash_forward_kernel<128>, grid, kFwdThreads, shared_bytes, a, name);
  return true;
}

bool attention_backward_bf16(const float* q, const float* k, const float* v, const float* lse, const float* dout,
                             const float* delta, float* dq, float* dk, float* dv, const int32_t* kv_start, int64_t B,
                             int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, float scale,
                             int causal) {
  if (matmul_precision() != 2 || D != Dv || (D != 64 && D != 128) || !aligned16(q) || !aligned16(k) ||
      !aligned16(v) || !aligned16(dout) || !aligned16(dq) || !aligned16(dk) || !aligned16(dv)) {
    return false;
  }
  const int64_t kv_count = B * Tk * Hkv * D, q_count = B * Tq * Hq * D;
  auto* packed = static_cast<__nv_bfloat16*>(scratch(kScratchAttentionBf16, (2 * kv_count + 2 * q_count) * sizeof(__nv_bfloat16)));
  if (!packed) return true;  // the failure is recorded
  // Each operand as packed bf16: the current copy its producer wrote (RoPE's q and k), or rounded here.
  auto operand = [](const float* x, __nv_bfloat16* slot, int64_t count) {
    const __nv_bfloat16* copy = loadable_copy(x, count);
    if (copy) return copy;
    widen_pending(x, count * static_cast<int64_t>(sizeof(float)));
    round_to_bf16(x, slot, 1, count, 0);
    return static_cast<const __nv_bfloat16*>(slot);
  };
  const __nv_bfloat16* kb = operand(k, packed, kv_count);
  const __nv_bfloat16* vb = operand(v, packed + kv_count, kv_count);
  const __nv_bfloat16* qb = operand(q, packed + 2 * kv_count, q_count);
  const __nv_bfloat16* dob = operand(dout, packed + 2 * kv_count + q_count, q_count);
  // Grouped-query heads: a block per key tile and kv head walks every query head of the group, so a causal
  // block over the first keys does group x (Tq / QT) tiles while one over the last keys does group x 1, and with
  // few kv heads the grid is one uneven wave (Qwen2.5-0.5B: 2 kv heads of 7 query heads). Then each query head
  // gets blocks of its own, writing dK and dV slices that one pass adds up: more, shorter blocks in waves.
  // Keys per block: 128 (measured in training, docs/BENCHMARKS.md; 64 keys with the same 8-byte dQ atomics timed
  // 7% faster alone at the 494M shape, not yet checked on the device as the kernel the library runs).
  constexpr int keys_per_block = 128;
  const int64_t group = Hq / Hkv, key_tiles = (Tk + keys_per_block - 1) / keys_per_block;
  const bool split = group > 1 && key_tiles * Hkv * B < 8 * multiprocessors();
  float *parts_dk = nullptr, *parts_dv = nullptr;
  if (split) {
    parts_dk = static_cast<float*>(scratch(kScratchAttentionParts, 2 * group * kv_count * sizeof(float)));
    if (!parts_dk) return true;  // the failure is recorded
    parts_dv = parts_dk + group * kv_count;
  }
  FlashArgs a{nullptr, lse, delta, kb, vb, qb, dob, nullptr, nullptr, dq, split ? parts_dk : dk, split ? parts_dv : dv,
              kv_start, Tq, Tk, Hq, Hkv, scale, causal, split ? 1 : group, split ? kv_count : 0};
  const dim3 grid(static_cast<unsigned>(key_tiles), static_cast<unsigned>(split ? Hq : Hkv), static_cast<unsigned>(B));
  auto shared_bytes = [&](int qt) {
    return sizeof(__nv_bfloat16) * (2 * keys_per_block * (D + 8) + 4 * qt * (D + 8) + keys_per_block * (qt + 8)) +
           sizeof(float) * 4 * qt;
  };
  const char* name = "r1_attention_backward (bf16 tensor cores)";
  const int threads = keys_per_block * 2;
  if (D == 64) launch(flash_backward_kernel<64, 64, keys_per_block>, grid, threads, shared_bytes(64), a, name);
  else launch(flash_backward_kernel<128, 32, keys_per_block>, grid, threads, shared_bytes(32), a, name);
  if (split) {
    // kv_count = B Tk Hkv D is a multiple of 4 (D is 64 or 128); the buffers are 16-byte aligned (checked above).
    sum_parts_kernel<<<grid_for(kv_count / 4), kThreads, 0, stream()>>>(
        reinterpret_cast<const float4*>(parts_dk), reinterpret_cast<const float4*>(parts_dv), reinterpret_cast<float4*>(dk),
        reinterpret_cast<float4*>(dv), group, kv_count / 4);
    check_launch("r1_attention_backward (sum of the query-head parts)");
  }
  return true;
}

}  // namespace r1cuda
