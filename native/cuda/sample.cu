// Token sampling on the device (r1_cuda_sample): one block per row of logits computes the full-softmax
// log-probability that training needs, then greedy's argmax or a draw after temperature, top-k, top-p and min-p,
// so that a decode step returns a few numbers per row instead of [rows, vocab] floats. It is the same
// procedure as src/generate/sampler.ts (the definition), with the same uniform (Philox at counter
// (step, 0, 0, 0) under the request's key, native/philox.h), so a request draws the same token on both
// wherever rounding does not put the uniform on the boundary between two tokens.
//
// The kept set is found without sorting the vocabulary: top-k's and top-p's cuts are weights w* found by a
// radix select over the bits of the weights (positive floats order like their bit patterns), four 8-bit digits,
// each one pass building a 256-bin histogram of counts and masses in shared memory; the set is then every token
// with w >= w*. Masses are summed in 2^-40 fixed point with integer atomics, so the cut does not depend on the
// order threads add in: the same row gives the same token on every run. The draw maps u * (kept mass) through
// the cumulative weights in id order: warps own contiguous chunks of ids, a block scan orders the chunks, and
// the chunk holding the target is walked with a warp scan.
//
// Differences from the CPU sampler, both at measure-zero boundaries: tokens tied at a cut weight are all kept
// (the CPU keeps the lower ids up to exactly k, or up to the mass), and weights are exp((l - max) / T) in float32
// where the CPU reads a float32 softmax, so a uniform within ~1e-7 of a cumulative boundary may land on the
// neighbouring token.
#include "common.cuh"
#include "philox.h"

using namespace r1cuda;

namespace {

constexpr int kSampleThreads = 1024;
constexpr int kWarps = kSampleThreads / 32;
constexpr double kMassScale = 1099511627776.0;  // 2^40: fixed-point unit of the histogram masses

struct Best {
  float value;
  int32_t index;
};
// The larger value; the lower index on a tie (torch.argmax and the CPU sampler's argmax).
__device__ inline Best better(Best a, Best b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}
__device__ inline Best block_argmax(Best v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    Best o{__shfl_xor_sync(0xffffffffu, v.value, offset), __shfl_xor_sync(0xffffffffu, v.index, offset)};
    v = better(v, o);
  }
  __shared__ Best partial[kWarps];
  __shared__ Best total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    Best w = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : Best{-INFINITY, INT32_MAX};
    for (int offset = 16; offset > 0; offset >>= 1) {
      Best o{__shfl_xor_sync(0xffffffffu, w.value, offset), __shfl_xor_sync(0xffffffffu, w.index, offset)};
      w = better(w, o);
    }
    if (lane == 0) total = w;
  }
  __syncthreads();
  return total;
}

struct RowParams {
  float temperature;  // 0: greedy
  float top_p;        // 1: off
  float min_p;        // 0: off
  int32_t top_k;      // 0: off
  uint32_t key0, key1;
  uint32_t step;      // the request's token index: the Philox counter of its uniform
  int32_t unused;
};

// The row's weight of token i: exp((l_i - max) / T), at most 1 (the most likely token's).
__device__ inline float weight_of(const float* row, int64_t i, float max_logit, float inv_temperature) {
  return expf((row[i] - max_logit) * inv_temperature);
}

// The cut weight w* of a radix select: the weight of the token at which the heaviest-first prefix (of the tokens
// with weight bits >= floor_bits) first reaches `count_target` tokens (by_mass false) or `mass_target` in fixed
// point (by_mass true). Returns its bits; floor_bits when the target is never reached (rounding).
__device__ uint32_t radix_cut(const float* row, int64_t n, float max_logit, float inv_temperature, uint32_t floor_bits,
                              bool by_mass, uint64_t count_target, uint64_t mass_target) {
  __shared__ uint32_t counts[256];
  __shared__ unsigned long long masses[256];
  __shared__ uint32_t prefix_shared;
  __shared__ bool found_shared;
  uint32_t prefix = 0;
  uint64_t count_above = 0, mass_above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
      counts[b] = 0;
      masses[b] = 0;
    }
    __syncthreads();
    // Bits above this digit must equal the prefix chosen so far (all of them at the first digit).
    const uint32_t high_mask = shift == 24 ? 0u : ~((1u << (shift + 8)) - 1u);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float w = weight_of(row, i, max_logit, inv_temperature);
      const uint32_t bits = __float_as_uint(w);
      if (bits < floor_bits || (bits & high_mask) != prefix) continue;
      const uint32_t bin = (bits >> shift) & 255u;
      atomicAdd(&counts[bin], 1u);
      if (by_mass) atomicAdd(&masses[bin], static_cast<unsigned long long>(double(w) * kMassScale));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      // Heaviest bins first: the first bin at which the running count (or mass) reaches the target.
      bool found = false;
      for (int b = 255; b >= 0; --b) {
        const uint64_t c = count_above + counts[b], m = mass_above + masses[b];
        if (by_mass ? m >= mass_target : c >= count_target) {
          prefix |= uint32_t(b) << shift;
          found = true;
          break;
        }
        count_above = c;
        mass_above = m;
      }
      prefix_shared = prefix;
      found_shared = found;
    }
    __syncthreads();
    if (!found_shared) return floor_bits;
    prefix = prefix_shared;
    // Thread 0's running totals are the ones that matter; the others' are never read.
  }
  return prefix;
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const float* logits, int64_t vocab, int64_t sample_vocab,
                                                                 const RowParams* params, int32_t* out) {
  const int64_t r = blockIdx.x;
  const int64_t rows = gridDim.x;
  const float* row = logits + r * vocab;
  const RowParams p = params[r];

  // The full softmax at temperature 1 (what training's log-probabilities are) and the argmax among the ids the
  // tokenizer can decode.
  MaxSum ms{-INFINITY, 0.0f};
  Best best{-INFINITY, INT32_MAX};
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float l = row[i];
    ms = merge(ms, MaxSum{l, 1.0f});
    if (i < sample_vocab) best = better(best, Best{l, int32_t(i)});
  }
  ms = block_max_sum(ms);
  best = block_argmax(best);
  const float lse = ms.max + logf(ms.sum);

  __shared__ int32_t chosen;
  __shared__ float chosen_sample_logprob;
  if (p.temperature == 0.0f) {
    if (threadIdx.x == 0) {
      chosen = best.index;
      chosen_sample_logprob = 0.0f;
    }
  } else {
    const float max_logit = best.value;
    const float inv_t = 1.0f / p.temperature;
    uint32_t cut = 0;  // keep every token with weight bits >= cut
    if (p.top_k > 0 && p.top_k < sample_vocab) {
      cut = radix_cut(row, sample_vocab, max_logit, inv_t, 0, false, uint64_t(p.top_k), 0);
    }
    if (p.top_p < 1.0f) {
      // The nucleus within what top-k kept: its mass, then the cut at top_p of it.
      unsigned long long kept_mass = 0;
      for (int64_t i = threadIdx.x; i < sample_vocab; i += blockDim.x) {
        const float w = weight_of(row, i, max_logit, inv_t);
        if (__float_as_uint(w) >= cut) kept_mass += static_cast<unsigned long long>(double(w) * kMassScale);
      }
      kept_mass = block_reduce(kept_mass, Add{}, 0ull);
      const uint64_t target = static_cast<uint64_t>(double(p.top_p) * double(kept_mass));
      cut = radix_cut(row, sample_vocab, max_logit, inv_t, cut, true, 0, target);
    }
    // min-p: the largest weight is exactly 1 (the argmax's exp(0)).
    if (p.min_p > 0.0f) cut = max(cut, __float_as_uint(p.min_p));

    // The kept mass by warp chunks (contiguous ids, so the chunks' order is the ids' order).
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t chunk = ((sample_vocab + kWarps * 32 - 1) / (kWarps * 32)) * 32;
    const int64_t begin = warp * chunk, end = min(sample_vocab, begin + chunk);
    double lane_sum = 0.0;
    for (int64_t i = begin + lane; i < end; i += 32) {
      const float w = weight_of(row, i, max_logit, inv_t);
      if (__float_as_uint(w) >= cut) lane_sum += w;
    }
    const double warp_sum = warp_reduce(lane_sum, Add{});
    __shared__ double chunk_sums[kWarps];
    __shared__ int target_warp;
    __shared__ double target_in_warp;
    __shared__ double total_mass;
    if (lane == 0) chunk_sums[warp] = warp_sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      double total = 0.0;
      for (int w = 0; w < kWarps; ++w) total += chunk_sums[w];
      const r1philox::Words x = r1philox::philox4x32_10(p.step, 0, 0, 0, p.key0, p.key1);
      const double target = r1philox::uniform53(x.x0, x.x1) * total;
      // The first chunk whose cumulative mass passes the target; the last non-empty one if rounding leaves none.
      double before = 0.0;
      int found = -1, last = 0;
      for (int w = 0; w < kWarps; ++w) {
        if (chunk_sums[w] > 0.0) last = w;
        if (found < 0 && chunk_sums[w] > 0.0 && target < before + chunk_sums[w]) {
          found = w;
          break;
        }
        before += chunk_sums[w];
      }
      if (found < 0) {
        found = last;
        before = 0.0;
        for (int w = 0; w < last; ++w) before += chunk_sums[w];
      }
      target_warp = found;
      target_in_warp = target - before;
      total_mass = total;
    }
    __syncthreads();
    if (warp == target_warp) {
      // Walk the chunk 32 ids at a time with an inclusive warp scan: the first id whose running mass passes the
      // target. If rounding carries the target past the chunk's end, its last kept token (the CPU's fallback).
      double acc = 0.0;
      int32_t last_kept = -1, pick = -1;
      for (int64_t base = begin; base < end && pick < 0; base += 32) {
        const int64_t i = base + lane;
        float w = 0.0f;
        if (i < end) {
          w = weight_of(row, i, max_logit, inv_t);
          if (__float_as_uint(w) < cut) w = 0.0f;
        }
        double scan = w;
        for (int offset = 1; offset < 32; offset <<= 1) {
          const double up = __shfl_up_sync(0xffffffffu, scan, offset);
          if (lane >= offset) scan += up;
        }
        const unsigned passed = __ballot_sync(0xffffffffu, w > 0.0f && target_in_warp < acc + scan);
        if (passed) pick = int32_t(base) + __ffs(passed) - 1;
        const unsigned positive = __ballot_sync(0xffffffffu, w > 0.0f);
        if (positive) last_kept = int32_t(base) + 31 - __clz(positive);
        acc += __shfl_sync(0xffffffffu, scan, 31);
      }
      if (lane == 0) {
        chosen = pick >= 0 ? pick : last_kept;
        chosen_sample_logprob = float(log(double(weight_of(row, chosen, max_logit, inv_t)) / total_mass));
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    if (chosen < 0 || chosen >= sample_vocab) chosen = 0;  // a row of NaN logits has no argmax
    out[r] = chosen;
    reinterpret_cast<float*>(out)[rows + r] = row[chosen] - lse;
    reinterpret_cast<float*>(out)[2 * rows + r] = chosen_sample_logprob;
  }
}


// ---- the split path: rows drawn without top-k or top-p (temperature, min-p and greedy rows) ----
// One block per row reads 151,936 logits on one SM: at 64 rows the kernel above used half the GPU for ~0.1 ms
// where the logits stream in ~10 us. Rows whose kept set needs no selection (no top-k, no top-p; min-p's cut is
// a constant weight) are split into chunks of kSplitChunk ids, a block each, in two kernels: chunk_stats (each
// chunk's softmax state and argmax), then chunk_draw (each chunk's kept mass under the row's maximum, after which
// the row's last block to finish sums the masses in chunk order, finds the chunk holding u * total and walks it).
// The weights, the uniform and the fallbacks are the one-block kernel's, and every sum is taken in a fixed
// order, so the same row draws the same token on every run; the kept mass is summed in another order than the
// one-block kernel's (in double: ~1e-16 apart).
constexpr int kSplitThreads = 256;
struct MaxInt {
  __device__ int32_t operator()(int32_t a, int32_t b) const { return max(a, b); }
};
constexpr int64_t kSplitChunk = 4096;  // 16 ids a thread

struct ChunkPartial {
  float max;           // softmax state over the chunk's logits (the whole vocabulary: the log-probability's)
  float sum;
  float best_value;    // argmax among the chunk's ids < sample_vocab
  int32_t best_index;
  double mass;         // kept weight under the row's maximum (chunk_draw)
};

__global__ void __launch_bounds__(kSplitThreads) chunk_stats_kernel(const float* logits, int64_t vocab, int64_t sample_vocab,
                                                                     ChunkPartial* parts, unsigned* arrivals) {
  const int64_t chunks = gridDim.x, c = blockIdx.x, r = blockIdx.y;
  const float* row = logits + r * vocab;
  const int64_t end = min(vocab, (c + 1) * kSplitChunk);
  MaxSum ms{-INFINITY, 0.0f};
  Best best{-INFINITY, INT32_MAX};
  for (int64_t i = c * kSplitChunk + threadIdx.x; i < end; i += blockDim.x) {
    const float l = row[i];
    ms = merge(ms, MaxSum{l, 1.0f});
    if (i < sample_vocab) best = better(best, Best{l, int32_t(i)});
  }
  ms = block_max_sum(ms);
  best = block_argmax(best);
  if (threadIdx.x == 0) {
    parts[r * chunks + c] = ChunkPartial{ms.max, ms.sum, best.value, best.index, 0.0};
    if (c == 0) arrivals[r] = 0;  // chunk_draw counts its blocks from here
  }
}

// Inclusive prefix sum over the block (every thread gets its own and, in *total, the block's).
__device__ inline double block_inclusive_scan(double v, double* total) {
  __shared__ double warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const double up = __shfl_up_sync(0xffffffffu, v, offset);
    if (lane >= offset) v += up;
  }
  __syncthreads();
  if (lane == 31) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double w = lane < warps ? warp_sums[lane] : 0.0;
    for (int offset = 1; offset < 32; offset <<= 1) {
      const double up = __shfl_up_sync(0xffffffffu, w, offset);
      if (lane >= offset) w += up;
    }
    if (lane < warps) warp_sums[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  if (warp > 0) v += warp_sums[warp - 1];
  *total = warp_sums[warps - 1];
  return v;
}

__global__ void __launch_bounds__(kSplitThreads) chunk_draw_kernel(const float* logits, int64_t vocab, int64_t sample_vocab,
                                                                    const RowParams* params, ChunkPartial* parts,
                                                                    unsigned* arrivals, int32_t* out) {
  const int64_t chunks = gridDim.x, c = blockIdx.x, r = blockIdx.y, rows = gridDim.y;
  const float* row = logits + r * vocab;
  ChunkPartial* row_parts = parts + r * chunks;
  const RowParams p = params[r];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  // The row's argmax over its chunks (lowest id on ties) and its softmax state, merged in a fixed order.
  __shared__ Best row_best;
  __shared__ MaxSum row_state;
  if (warp == 0) {
    Best b{-INFINITY, INT32_MAX};
    MaxSum ms{-INFINITY, 0.0f};
    for (int64_t j = lane; j < chunks; j += 32) {
      const ChunkPartial q = row_parts[j];
      b = better(b, Best{q.best_value, q.best_index});
      ms = merge(ms, MaxSum{q.max, q.sum});
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      b = better(b, Best{__shfl_xor_sync(0xffffffffu, b.value, offset), __shfl_xor_sync(0xffffffffu, b.index, offset)});
      ms = merge(ms, MaxSum{__shfl_xor_sync(0xffffffffu, ms.max, offset), __shfl_xor_sync(0xffffffffu, ms.sum, offset)});
    }
    if (lane == 0) {
      row_best = b;
      row_state = ms;
    }
  }
  __syncthreads();
  const float max_logit = row_best.value;
  const bool greedy = p.temperature == 0.0f;
  const float inv_t = greedy ? 0.0f : 1.0f / p.temperature;
  const uint32_t cut = p.min_p > 0.0f ? __float_as_uint(p.min_p) : 0u;  // min-p: the largest weight is exactly 1
  const int64_t begin = c * kSplitChunk, end = min(sample_vocab, (c + 1) * kSplitChunk);

  if (!greedy) {
    double mass = 0.0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const float w = weight_of(row, i, max_logit, inv_t);
      if (__float_as_uint(w) >= cut) mass += w;
    }
    mass = block_reduce(mass, Add{}, 0.0);
    if (threadIdx.x == 0) row_parts[c].mass = mass;
  }
  // The row's last block to get here draws (its masses are all written: threadfence before the count).
  __shared__ bool last;
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(&arrivals[r], 1u) == unsigned(chunks - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();

  __shared__ int32_t chosen;
  __shared__ float chosen_sample_logprob;
  if (greedy) {
    if (threadIdx.x == 0) {
      chosen = row_best.index;
      chosen_sample_logprob = 0.0f;
    }
  } else {
    __shared__ int64_t target_chunk;
    __shared__ double target_in_chunk;
    __shared__ double total_mass;
    if (threadIdx.x == 0) {
      // As the one-block kernel: the first chunk whose cumulative mass passes the target, else the last non-empty.
      double total = 0.0;
      for (int64_t j = 0; j < chunks; ++j) total += __ldcg(&row_parts[j].mass);
      const r1philox::Words x = r1philox::philox4x32_10(p.step, 0, 0, 0, p.key0, p.key1);
      const double target = r1philox::uniform53(x.x0, x.x1) * total;
      double before = 0.0, before_last = 0.0;
      int64_t found = -1, last_chunk = 0;
      for (int64_t j = 0; j < chunks; ++j) {
        const double m = __ldcg(&row_parts[j].mass);
        if (m > 0.0) {
          last_chunk = j;
          before_last = before;
        }
        if (m > 0.0 && target < before + m) {
          found = j;
          break;
        }
        before += m;
      }
      if (found < 0) {
        found = last_chunk;
        before = before_last;
      }
      target_chunk = found;
      target_in_chunk = target - before;
      total_mass = total;
    }
    __syncthreads();
    // Each thread owns a run of consecutive ids of the chunk; a block scan orders the runs, and the thread whose
    // run holds the target walks it. If rounding carries the target past the chunk's end, its last kept token.
    const int64_t chunk_begin = target_chunk * kSplitChunk, chunk_end = min(sample_vocab, chunk_begin + kSplitChunk);
    const int64_t per = (kSplitChunk + blockDim.x - 1) / blockDim.x;
    const int64_t run_begin = min(chunk_end, chunk_begin + threadIdx.x * per), run_end = min(chunk_end, run_begin + per);
    double own = 0.0;
    int32_t last_kept = -1;
    for (int64_t i = run_begin; i < run_end; ++i) {
      const float w = weight_of(row, i, max_logit, inv_t);
      if (__float_as_uint(w) >= cut) {
        own += w;
        last_kept = int32_t(i);
      }
    }
    double block_total;
    const double inclusive = block_inclusive_scan(own, &block_total);
    const double exclusive = inclusive - own;
    const int32_t fallback = block_reduce(last_kept, MaxInt{}, int32_t(-1));
    if (threadIdx.x == 0) chosen = fallback;
    __syncthreads();
    const double t = target_in_chunk;
    if (own > 0.0 && t >= exclusive && t < inclusive) {
      double acc = exclusive;
      for (int64_t i = run_begin; i < run_end; ++i) {
        const float w = weight_of(row, i, max_logit, inv_t);
        if (__float_as_uint(w) < cut) continue;
        acc += w;
        if (t < acc) {
          chosen = int32_t(i);  // one thread's run holds t (the runs' spans are disjoint)
          break;
        }
      }
    }
    __syncthreads();
    if (threadIdx.x == 0 && chosen >= 0) chosen_sample_logprob = float(log(double(weight_of(row, chosen, max_logit, inv_t)) / total_mass));
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t id = chosen;
    if (id < 0 || id >= sample_vocab) id = 0;  // a row of NaN logits has no argmax
    const float lse = row_state.max + logf(row_state.sum);
    out[r] = id;
    reinterpret_cast<float*>(out)[rows + r] = row[id] - lse;
    reinterpret_cast<float*>(out)[2 * rows + r] = greedy || chosen < 0 ? 0.0f : chosen_sample_logprob;
  }
}

}  // namespace

extern "C" {

R1_API void r1_cuda_sample(const float* logits, int64_t rows, int64_t vocab, int64_t sample_vocab, const void* params,
                           int32_t* out, int selects) {
  if (rows <= 0) return;
  if (sample_vocab <= 0 || sample_vocab > vocab || rows > 2147483647) {
    record_message("r1_cuda_sample", "sample_vocab must be in [1, vocab] and rows below 2^31");
    return;
  }
  if (!selects && rows <= 65535) {
    const int64_t chunks = (vocab + kSplitChunk - 1) / kSplitChunk;
    const size_t part_bytes = size_t(rows * chunks) * sizeof(ChunkPartial);
    auto* parts = static_cast<ChunkPartial*>(scratch(kScratchSample, part_bytes + size_t(rows) * sizeof(unsigned)));
    if (!parts) return;
    auto* arrivals = reinterpret_cast<unsigned*>(reinterpret_cast<char*>(parts) + part_bytes);
    const dim3 grid{static_cast<unsigned>(chunks), static_cast<unsigned>(rows)};
    chunk_stats_kernel<<<grid, kSplitThreads, 0, stream()>>>(logits, vocab, sample_vocab, parts, arrivals);
    chunk_draw_kernel<<<grid, kSplitThreads, 0, stream()>>>(logits, vocab, sample_vocab, static_cast<const RowParams*>(params),
                                                            parts, arrivals, out);
    check_launch("r1_cuda_sample");
    return;
  }
  sample_kernel<<<unsigned(rows), kSampleThreads, 0, stream()>>>(logits, vocab, sample_vocab,
                                                                 static_cast<const RowParams*>(params), out);
  check_launch("r1_cuda_sample");
}

}  // extern "C"
