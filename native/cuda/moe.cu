// DeepSeekMoE on the device (src/tensor/moe.ts, src/nn/moe.ts): the routing choice, the dispatch of (token, slot)
// pairs into expert order, the per-expert load counts and the expert GEMMs over row ranges that live in device
// memory. Nothing here waits for the host, so a MoE layer can be recorded in a CUDA graph and no [tokens, experts]
// scores cross to the host (they did: selectExperts ran in JavaScript).
//
// The routing is selectExperts' (src/nn/moe.ts, transformers 5.17's DeepseekV3TopkRouter) in the same float32
// arithmetic: choice = s + b rounded to float, a group's score the float sum of its two best choices, the kept
// groups and then the K experts by repeated arg-max with ties to the lower index, the K ids in increasing order.
#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr int kMaxGroups = 64;
constexpr int kMaxTopK = 32;

// One thread per token: choice scores are recomputed from scores + bias where needed (E reads each pass) rather
// than held in a per-thread array of E floats, which would live in local memory anyway.
__global__ void moe_route_kernel(const float* scores, const float* bias, int32_t* experts, int64_t n, int E, int K, int groups,
                                 int topk_group) {
  const int group_size = E / groups;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
    const float* s = scores + t * E;
    auto choice = [&](int e) { return __fadd_rn(s[e], bias[e]); };
    uint64_t kept = ~uint64_t(0);  // bit g: group g may be chosen
    if (topk_group < groups) {
      float group_score[kMaxGroups];
      for (int g = 0; g < groups; ++g) {
        float best = -INFINITY, second = -INFINITY;
        for (int e = g * group_size; e < (g + 1) * group_size; ++e) {
          const float c = choice(e);
          if (c > best) second = best, best = c;
          else if (c > second) second = c;
        }
        group_score[g] = __fadd_rn(best, second);
      }
      kept = 0;
      for (int j = 0; j < topk_group; ++j) {
        int pick = -1;
        for (int g = 0; g < groups; ++g) {
          if ((kept >> g) & 1) continue;
          if (pick < 0 || group_score[g] > group_score[pick]) pick = g;
        }
        kept |= uint64_t(1) << pick;
      }
    }
    int picked[kMaxTopK];
    for (int j = 0; j < K; ++j) {
      int pick = -1;
      float best = -INFINITY;
      for (int e = 0; e < E; ++e) {
        bool taken = false;
        for (int i = 0; i < j; ++i) taken |= picked[i] == e;
        if (taken) continue;
        // Experts of dropped groups score -inf, as selectExperts masks them; they lose every comparison but the
        // first (pick < 0), as in its topIndices.
        const float c = ((kept >> (e / group_size)) & 1) ? choice(e) : -INFINITY;
        if (pick < 0 || c > best) pick = e, best = c;
      }
      picked[j] = pick;
    }
    for (int j = 1; j < K; ++j) {  // increasing ids
      const int v = picked[j];
      int i = j - 1;
      while (i >= 0 && picked[i] > v) picked[i + 1] = picked[i], --i;
      picked[i + 1] = v;
    }
    for (int j = 0; j < K; ++j) experts[t * K + j] = picked[j];
  }
}

// counts[(t / tokens_per_segment) * E + e] += 1 for every chosen expert e of token t. Float counts are exact
// (below 2^24), so the atomic order does not matter.
__global__ void expert_counts_kernel(const int32_t* experts, float* counts, int64_t n, int K, int E, int64_t tokens_per_segment) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * K; i += int64_t(gridDim.x) * blockDim.x) {
    atomicAdd(counts + (i / K / tokens_per_segment) * E + experts[i], 1.0f);
  }
}

constexpr int kDispatchThreads = 1024;
constexpr int kDispatchWarps = kDispatchThreads / 32;

// A stable counting sort of the n*K (token, slot) pairs by expert in one block: pass 1 counts each expert's
// pairs and writes offsets; pass 2 walks the pairs in chunks of 1024, each pair's place within its chunk being
// the pairs of its expert in earlier warps (a per-warp count) and earlier lanes (__match_any_sync), so rows stay
// in increasing slot order within an expert, as the host's counting sort left them.
__global__ void __launch_bounds__(kDispatchThreads) moe_dispatch_kernel(const int32_t* experts, int64_t slots, int K, int E,
                                                                        int32_t* offsets, int32_t* token_of_row, int32_t* slot_of_row) {
  extern __shared__ int dispatch_shared[];
  int* running = dispatch_shared;         // [E]: next free row of each expert
  int* warp_count = running + E;          // [kDispatchWarps][E]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int e = tid; e < E; e += kDispatchThreads) running[e] = 0;
  __syncthreads();
  for (int64_t i = tid; i < slots; i += kDispatchThreads) atomicAdd(running + experts[i], 1);
  __syncthreads();
  if (tid == 0) {
    int start = 0;
    for (int e = 0; e < E; ++e) {
      const int count = running[e];
      offsets[e] = start;
      running[e] = start;
      start += count;
    }
    offsets[E] = start;
  }
  __syncthreads();
  for (int64_t base = 0; base < slots; base += kDispatchThreads) {
    for (int j = tid; j < kDispatchWarps * E; j += kDispatchThreads) warp_count[j] = 0;
    __syncthreads();
    const int64_t i = base + tid;
    const bool valid = i < slots;
    const int e = valid ? experts[i] : -1;
    const unsigned peers = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    if (valid && rank == 0) warp_count[warp * E + e] = __popc(peers);
    __syncthreads();
    if (valid) {
      int row = running[e] + rank;
      for (int w = 0; w < warp; ++w) row += warp_count[w * E + e];
      token_of_row[row] = static_cast<int32_t>(i / K);
      slot_of_row[row] = static_cast<int32_t>(i);
    }
    __syncthreads();
    for (int f = tid; f < E; f += kDispatchThreads) {
      int added = 0;
      for (int w = 0; w < kDispatchWarps; ++w) added += warp_count[w * E + f];
      running[f] += added;
    }
    __syncthreads();
  }
}

// ---- grouped GEMMs: one weight per expert, each over the rows [offsets[e], offsets[e + 1]) ----
// The weights' addresses travel by value in the kernel's parameters (a CUDA graph keeps them), up to
// kExpertsPerLaunch per launch.
constexpr int kExpertsPerLaunch = 256;
struct ExpertWeights {
  const float* w[kExpertsPerLaunch];
};
struct ExpertGrads {
  float* w[kExpertsPerLaunch];
};

constexpr int kTile = 64, kTileK = 16, kGemmThreads = 256;

// out[r, j] = sum_k a[r, k] * W_e(j, k) for the rows r of expert e, W_e(j, k) = w[j * ldw + k] (transposed_w = 0:
// a row-major weight [J, Kd] read as y = a W^T) or w[k * ldw + j] (transposed_w = 1: weight [Kd, J] read as
// y = a W, the input gradient). Block (j tile, expert, split): the expert's row tiles split, split + splits, ...
// A tile is TM rows x TN columns, 16 x 16 threads each computing TM / 16 x TN / 16 of it; float32 sums in
// increasing k.
template <int TM, int TN>
__global__ void __launch_bounds__(kGemmThreads) grouped_gemm_kernel(const float* a, ExpertWeights weights, const int32_t* offsets,
                                                                     float* out, int64_t J, int64_t Kd, int transposed_w) {
  constexpr int RM = TM / 16, RN = TN / 16;
  __shared__ float As[kTileK][TM + 4];
  __shared__ float Ws[kTileK][TN + 4];
  const int e = blockIdx.y;
  const int64_t row_begin = offsets[e], row_end = offsets[e + 1];
  const float* w = weights.w[e];
  const int64_t j0 = int64_t(blockIdx.x) * TN;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int64_t r0 = row_begin + int64_t(blockIdx.z) * TM; r0 < row_end; r0 += int64_t(gridDim.z) * TM) {
    float acc[RM][RN] = {};
    for (int64_t k0 = 0; k0 < Kd; k0 += kTileK) {
      for (int i = threadIdx.x; i < TM * kTileK; i += kGemmThreads) {
        const int rr = i / kTileK, kk = i % kTileK;  // a: consecutive threads along k
        const int64_t r = r0 + rr, k = k0 + kk;
        As[kk][rr] = r < row_end && k < Kd ? a[r * Kd + k] : 0.0f;
      }
      for (int i = threadIdx.x; i < TN * kTileK; i += kGemmThreads) {
        int jj, kw;
        if (transposed_w) jj = i % TN, kw = i / TN;  // w[k, j]: consecutive threads along j
        else jj = i / kTileK, kw = i % kTileK;        // w[j, k]: consecutive threads along k
        const int64_t j = j0 + jj, kwg = k0 + kw;
        Ws[kw][jj] = j < J && kwg < Kd ? (transposed_w ? w[kwg * J + j] : w[j * Kd + kwg]) : 0.0f;
      }
      __syncthreads();
      #pragma unroll
      for (int kk = 0; kk < kTileK; ++kk) {
        float av[RM], wv[RN];
        #pragma unroll
        for (int i = 0; i < RM; ++i) av[i] = As[kk][ty + 16 * i];
        #pragma unroll
        for (int q = 0; q < RN; ++q) wv[q] = Ws[kk][tx + 16 * q];
        #pragma unroll
        for (int i = 0; i < RM; ++i)
          #pragma unroll
          for (int q = 0; q < RN; ++q) acc[i][q] = fmaf(av[i], wv[q], acc[i][q]);
      }
      __syncthreads();
    }
    #pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int64_t r = r0 + ty + 16 * i;
      if (r >= row_end) continue;
      #pragma unroll
      for (int q = 0; q < RN; ++q) {
        const int64_t j = j0 + tx + 16 * q;
        if (j < J) out[r * J + j] = acc[i][q];
      }
    }
  }
}

// dW_e[n, c] = sum over the rows r of expert e of dy[r, n] * x[r, c]: block (c tile, n tile, expert), the rows in
// increasing order. An expert without rows gets zeros.
__global__ void __launch_bounds__(kGemmThreads) grouped_weight_grad_kernel(const float* dy, const float* x, const int32_t* offsets,
                                                                            ExpertGrads grads, int64_t N, int64_t C) {
  __shared__ float Ds[kTileK][kTile + 4];
  __shared__ float Xs[kTileK][kTile + 4];
  const int e = blockIdx.z;
  const int64_t row_begin = offsets[e], row_end = offsets[e + 1];
  const int64_t c0 = int64_t(blockIdx.x) * kTile, n0 = int64_t(blockIdx.y) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kTileK) {
    for (int i = threadIdx.x; i < kTile * kTileK; i += kGemmThreads) {
      const int rr = i / kTile, cc = i % kTile;
      const int64_t r = r0 + rr;
      Ds[rr][cc] = r < row_end && n0 + cc < N ? dy[r * N + n0 + cc] : 0.0f;
      Xs[rr][cc] = r < row_end && c0 + cc < C ? x[r * C + c0 + cc] : 0.0f;
    }
    __syncthreads();
    #pragma unroll
    for (int rr = 0; rr < kTileK; ++rr) {
      float dv[4], xv[4];
      #pragma unroll
      for (int i = 0; i < 4; ++i) dv[i] = Ds[rr][ty + 16 * i], xv[i] = Xs[rr][tx + 16 * i];
      #pragma unroll
      for (int i = 0; i < 4; ++i)
        #pragma unroll
        for (int q = 0; q < 4; ++q) acc[i][q] = fmaf(dv[i], xv[q], acc[i][q]);
    }
    __syncthreads();
  }
  float* dw = grads.w[e];
  #pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t n = n0 + ty + 16 * i;
    if (n >= N) continue;
    #pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t c = c0 + tx + 16 * q;
      if (c < C) dw[n * C + c] = acc[i][q];
    }
  }
}

}  // namespace

extern "C" {

R1_API void r1_cuda_moe_route(const float* scores, const float* bias, int32_t* experts, int64_t n, int64_t E, int64_t K,
                              int64_t groups, int64_t topk_group) {
  if (n <= 0) return;
  if (groups > kMaxGroups || K > kMaxTopK || groups <= 0 || E % groups != 0) {
    record_message("r1_cuda_moe_route", "unsupported routing shape (at most 64 groups dividing the experts and 32 experts per token)");
    return;
  }
  moe_route_kernel<<<grid_for(n, 128), 128, 0, stream()>>>(scores, bias, experts, n, static_cast<int>(E), static_cast<int>(K),
                                                           static_cast<int>(groups), static_cast<int>(topk_group));
  check_launch("r1_cuda_moe_route");
}

R1_API void r1_cuda_expert_counts(const int32_t* experts, float* counts, int64_t n, int64_t K, int64_t E, int64_t tokens_per_segment) {
  if (n <= 0 || K <= 0) return;
  expert_counts_kernel<<<grid_for(n * K), kThreads, 0, stream()>>>(experts, counts, n, static_cast<int>(K), static_cast<int>(E),
                                                                   tokens_per_segment);
  check_launch("r1_cuda_expert_counts");
}

R1_API void r1_cuda_moe_dispatch(const int32_t* experts, int64_t n, int64_t K, int64_t E, int32_t* offsets, int32_t* token_of_row,
                                 int32_t* slot_of_row) {
  if (E > R1_MOE_MAX_EXPERTS || E <= 0) {
    record_message("r1_cuda_moe_dispatch", "at most R1_MOE_MAX_EXPERTS (256) routed experts");
    return;
  }
  const size_t shared = sizeof(int) * (1 + kDispatchWarps) * E;
  if (shared > 48 * 1024) cudaFuncSetAttribute(moe_dispatch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  moe_dispatch_kernel<<<1, kDispatchThreads, shared, stream()>>>(experts, n * K, static_cast<int>(K), static_cast<int>(E), offsets,
                                                                 token_of_row, slot_of_row);
  check_launch("r1_cuda_moe_dispatch");
}

R1_API void r1_cuda_grouped_linear(const float* a, const uint64_t* weights, const int32_t* offsets, float* out, int64_t rows,
                                   int64_t E, int64_t J, int64_t Kd, int transposed_w) {
  if (rows <= 0 || J <= 0) return;
  for (int64_t e0 = 0; e0 < E; e0 += kExpertsPerLaunch) {
    const int64_t count = std::min<int64_t>(kExpertsPerLaunch, E - e0);
    ExpertWeights w{};
    for (int64_t e = 0; e < count; ++e) w.w[e] = reinterpret_cast<const float*>(weights[e0 + e]);
    // Row tiles of one expert split so that a balanced routing keeps every block busy: rows / E / 64 tiles each.
    // (Smaller tiles for a decode step's few rows per expert, and a GEMV form, were both slower on the H200:
    // docs/BENCHMARKS.md.)
    const int64_t per_expert = (rows + E - 1) / E;
    const unsigned splits = static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(64, (per_expert + kTile - 1) / kTile)));
    const dim3 grid(static_cast<unsigned>((J + kTile - 1) / kTile), static_cast<unsigned>(count), splits);
    grouped_gemm_kernel<kTile, kTile><<<grid, kGemmThreads, 0, stream()>>>(a, w, offsets + e0, out, J, Kd, transposed_w);
  }
  check_launch("r1_cuda_grouped_linear");
}

R1_API void r1_cuda_grouped_weight_grad(const float* dy, const float* x, const int32_t* offsets, const uint64_t* grads, int64_t E,
                                        int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  for (int64_t e0 = 0; e0 < E; e0 += kExpertsPerLaunch) {
    const int64_t count = std::min<int64_t>(kExpertsPerLaunch, E - e0);
    ExpertGrads g{};
    for (int64_t e = 0; e < count; ++e) g.w[e] = reinterpret_cast<float*>(grads[e0 + e]);
    const dim3 grid(static_cast<unsigned>((C + kTile - 1) / kTile), static_cast<unsigned>((N + kTile - 1) / kTile), static_cast<unsigned>(count));
    grouped_weight_grad_kernel<<<grid, kGemmThreads, 0, stream()>>>(dy, x, offsets + e0, g, N, C);
  }
  check_launch("r1_cuda_grouped_weight_grad");
}

}  // extern "C"
