// r1_sample (native/r1.h): a decode step's draw on the CPU, every row of logits in one call. It is
// src/generate/sampler.ts's procedure (the definition) step for step: the weights are the float32 softmax of
// logits x float32(1 / T) that the r1_binary mul and r1_softmax kernels give, the log-probability is r1_log_softmax's
// entry, and the kept set and the draw are the same float64 sums in the same order (top-k, then top-p, then
// min-p; the cut weight from a histogram of float32 exponent buckets and a sort of the closing bucket alone), so
// a row draws exactly the token the TypeScript sampler draws from the same logits and uniform. In TypeScript the
// per-row selection was ~15% of a 1M model's batch-32 decode step (typed-array passes and per-row allocations)
// and the three batch-wide kernels in front of it left [rows, vocab] arrays for the collector each step.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

using namespace r1;

namespace {

// One bucket per value of a float32's top 12 bits (sign, exponent, 3 mantissa bits): for weights >= 0 the
// buckets are in the weights' order, each spanning a factor of 2^(1/8) (sampler.ts closingWeight).
constexpr int kBuckets = 2048;

inline int bucket_of(double w) {
  const float f = static_cast<float>(w);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return static_cast<int>(bits >> 20);
}

struct RowScratch {
  std::vector<float> scaled, weights;
  std::vector<double> values;
  std::vector<int32_t> ids, kept;
  int32_t count[kBuckets] = {};
  double mass[kBuckets] = {};
};
RowScratch& row_scratch() {
  thread_local RowScratch s;
  return s;
}

// A monotone rule on (count, mass) of a heaviest-first prefix: top-k's count >= k or top-p's mass >= target.
struct Reached {
  bool by_mass;
  double target;
  bool operator()(int64_t count, double mass) const { return by_mass ? mass >= target : static_cast<double>(count) >= target; }
};

// The weight at which the heaviest-first prefix of `values` first satisfies `reached` (sampler.ts closingWeight);
// `values` is reordered.
double closing_weight(RowScratch& S, double* values, int64_t n, Reached reached) {
  int lowest = kBuckets, highest = -1;
  double smallest = INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    const int b = bucket_of(v);
    S.count[b]++;
    S.mass[b] += v;
    if (b < lowest) lowest = b;
    if (b > highest) highest = b;
    if (v < smallest) smallest = v;
  }
  int64_t count_above = 0;
  double mass_above = 0;
  int closing = -1;
  for (int b = highest; b >= lowest; --b) {
    if (S.count[b] == 0) continue;
    if (reached(count_above + S.count[b], mass_above + S.mass[b])) {
      closing = b;
      break;
    }
    count_above += S.count[b];
    mass_above += S.mass[b];
  }
  if (highest >= 0) {
    std::fill(S.count + lowest, S.count + highest + 1, 0);
    std::fill(S.mass + lowest, S.mass + highest + 1, 0.0);
  }
  if (closing < 0) return smallest;
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i)
    if (bucket_of(values[i]) == closing) values[m++] = values[i];
  std::sort(values, values + m);
  for (int64_t i = m - 1; i >= 0;) {
    const double v = values[i];
    int64_t count = 0;
    double mass = 0;
    for (; i >= 0 && values[i] == v; --i) count++, mass += v;
    if (reached(count_above + count, mass_above + mass)) return v;
    count_above += count;
    mass_above += mass;
  }
  return smallest;
}

// The smallest set of the heaviest of ids[0, n) for which `reached` holds, ties going to the lower id, in
// increasing id order (sampler.ts heaviest): written over ids, returning its size.
int64_t heaviest(RowScratch& S, int32_t* ids, int64_t n, const float* w, Reached reached) {
  S.values.resize(n);
  for (int64_t j = 0; j < n; ++j) S.values[j] = w[ids[j]];
  const double threshold = closing_weight(S, S.values.data(), n, reached);
  int64_t count = 0;
  double mass = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double v = w[ids[j]];
    if (v > threshold) count++, mass += v;
  }
  int64_t kept = 0;
  bool ties = !reached(count, mass);
  for (int64_t j = 0; j < n; ++j) {
    const int32_t i = ids[j];
    const double v = w[i];
    if (v > threshold) {
      ids[kept++] = i;
    } else if (v == threshold && ties) {
      ids[kept++] = i;
      count++;
      mass += v;
      ties = !reached(count, mass);
    }
  }
  return kept;
}

// sampler.ts sampleFromWeights over w[0, n).
int32_t draw(RowScratch& S, const float* w, int64_t n, double top_p, double min_p, int64_t top_k, double u) {
  S.ids.resize(n);
  int32_t* ids = S.ids.data();
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(i);
  int64_t kept = n;
  if (top_k > 0 && top_k < n) kept = heaviest(S, ids, kept, w, Reached{false, static_cast<double>(top_k)});
  if (top_p < 1) {
    double mass = 0;
    for (int64_t j = 0; j < kept; ++j) mass += w[ids[j]];
    kept = heaviest(S, ids, kept, w, Reached{true, top_p * mass});
  }
  if (min_p > 0) {
    double largest = 0;
    for (int64_t j = 0; j < kept; ++j) largest = std::max(largest, static_cast<double>(w[ids[j]]));
    int64_t m = 0;
    for (int64_t j = 0; j < kept; ++j)
      if (w[ids[j]] >= min_p * largest) ids[m++] = ids[j];
    kept = m;
  }
  double total = 0;
  for (int64_t j = 0; j < kept; ++j) total += w[ids[j]];
  const double target = u * total;
  double acc = 0;
  for (int64_t j = 0; j < kept; ++j) {
    acc += w[ids[j]];
    if (target < acc) return ids[j];
  }
  return kept > 0 ? ids[kept - 1] : 0;  // kept is empty only if every weight underflowed to 0
}

}  // namespace

extern "C" R1_API void r1_sample(const float* logits, int64_t rows, int64_t vocab, int64_t sample_vocab,
                                 const double* params, int32_t* ids, float* logprobs) {
  if (rows <= 0 || vocab <= 0) return;
  parallel_for(rows, row_grain(4 * vocab), [&](int64_t begin, int64_t end) {
    RowScratch& S = row_scratch();
    S.scaled.resize(vocab);
    S.weights.resize(vocab);
    for (int64_t r = begin; r < end; ++r) {
      const float* x = logits + r * vocab;
      const double* p = params + r * 5;
      const double temperature = p[0];
      int32_t id = 0;
      if (temperature == 0) {
        for (int64_t i = 1; i < sample_vocab; ++i)
          if (x[i] > x[id]) id = static_cast<int32_t>(i);
      } else {
        // r1_binary's mul by the float32 inverse temperature, then r1_softmax's row, into scratch.
        const float inverse = static_cast<float>(1.0 / temperature);
        float* s = S.scaled.data();
        float* w = S.weights.data();
        for (int64_t i = 0; i < vocab; ++i) s[i] = x[i] * inverse;
        const float inv_sum = 1.0f / exp_shift_sum(s, w, vocab, row_max(s, vocab));
        const f32x8 iv = splat(inv_sum);
        int64_t i = 0;
        for (; i + 8 <= vocab; i += 8) store8(w + i, load8(w + i) * iv);
        for (; i < vocab; ++i) w[i] *= inv_sum;
        id = draw(S, w, sample_vocab, p[1], p[2], static_cast<int64_t>(p[3]), p[4]);
      }
      ids[r] = id;
      // r1_log_softmax's entry for the token: the logit less the row's log-sum-exp at temperature 1.
      const float m = row_max(x, vocab);
      const float lse = (m == -kInf || m == kInf) ? m : m + std::log(exp_shift_sum(x, vocab, m));
      logprobs[r] = x[id] - lse;
    }
  });
}
