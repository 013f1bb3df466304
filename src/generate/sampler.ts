// Choosing the next token from one row of logits: greedy, or a draw from the temperature-scaled distribution
// restricted by top-k and then top-p (the order of Hugging Face's logits warpers: temperature, top-k, top-p).
// Everything here is plain TypeScript over one row; the engine calls it once per row per step. Probabilities
// are computed in float64 from the float32 logits, so that the sampled token and its log-probability do not
// depend on summation order across machines.
import type { Rng } from '../tensor/random.ts';

export interface SamplingParams {
  /** 0 picks the most likely token (greedy); otherwise logits are divided by it before softmax. */
  temperature: number;
  /** Keep only the k most likely tokens; 0 keeps all. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability sums to at least p (nucleus, Holtzman et al. 2020); 1 keeps all. */
  topP: number;
}

export const DEFAULT_SAMPLING: SamplingParams = { temperature: 1, topK: 0, topP: 1 };

export interface SampledToken {
  id: number;
  /** log p(id) under the model's own distribution: log_softmax(logits) at temperature 1, before top-k/top-p. */
  logprob: number;
}

/** log_softmax(logits)[id] in float64. */
export function tokenLogprob(logits: ArrayLike<number>, id: number): number {
  return logits[id] - logSumExp(logits);
}

export function logSumExp(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** Index of the largest logit; the lowest index wins a tie (as torch.argmax). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * The distribution a token is drawn from: softmax(logits / temperature), then zero outside the top-k, then
 * zero outside the nucleus of mass topP, renormalised. Ties in probability are ordered by token id so that
 * the kept set is deterministic. Greedy (temperature 0) is a one-hot at argmax.
 */
export function samplingDistribution(logits: ArrayLike<number>, params: SamplingParams): Float64Array {
  const probs = new Float64Array(logits.length);
  if (params.temperature === 0) {
    probs[argmax(logits)] = 1;
    return probs;
  }
  const kept = keptTokens(logits, params);
  let total = 0;
  for (const i of kept.ids) total += kept.weights[i];
  for (const i of kept.ids) probs[i] = kept.weights[i] / total;
  return probs;
}

/** Samples one token; `rng` is consumed (one uniform draw) only when temperature > 0. */
export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, rng: Rng): SampledToken {
  if (params.temperature === 0) {
    const id = argmax(logits);
    return { id, logprob: tokenLogprob(logits, id) };
  }
  const { ids, weights } = keptTokens(logits, params);
  let total = 0;
  for (const i of ids) total += weights[i];
  // Inverse CDF over the kept tokens in their fixed (probability, then id) order.
  const u = rng.uniform() * total;
  let id = ids[ids.length - 1];
  let acc = 0;
  for (const i of ids) {
    acc += weights[i];
    if (u < acc) {
      id = i;
      break;
    }
  }
  return { id, logprob: tokenLogprob(logits, id) };
}

/**
 * The tokens that survive top-k and top-p, most likely first, with unnormalised weights exp((l - max) / T)
 * (indexed by token id). With neither filter, every token in id order.
 */
function keptTokens(logits: ArrayLike<number>, params: SamplingParams): { ids: number[] | Int32Array; weights: Float64Array } {
  const n = logits.length;
  const { temperature, topK, topP } = params;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  const weights = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += weights[i] = Math.exp((logits[i] - max) / temperature);
  const k = topK > 0 && topK < n ? topK : n;
  if (k === n && topP >= 1) {
    const all = new Int32Array(n);
    for (let i = 0; i < n; i++) all[i] = i;
    return { ids: all, weights };
  }
  // Only the most likely tokens can survive either filter, so sort a candidate set rather than the whole
  // vocabulary: tokens with weight >= threshold, lowering the threshold until the set holds the top k (with
  // top-k) or carries mass topP (without it: the nucleus is then a prefix of the sorted candidates).
  const order = (a: number, b: number) => weights[b] - weights[a] || a - b;
  let threshold = 1 / n;
  let candidates: number[] = [];
  for (;;) {
    candidates = [];
    let mass = 0;
    for (let i = 0; i < n; i++) {
      if (weights[i] >= threshold) {
        candidates.push(i);
        mass += weights[i];
      }
    }
    const enough = k < n ? candidates.length >= k : mass >= topP * total;
    if (enough || threshold === 0) break;
    threshold = threshold < 1e-300 ? 0 : threshold / 64;
  }
  candidates.sort(order);
  if (candidates.length > k) candidates.length = k;
  if (topP < 1) {
    // The nucleus is taken within the top-k set, after renormalising it (HF applies top-p to the logits
    // that top-k left).
    let keptMass = 0;
    for (const i of candidates) keptMass += weights[i];
    let acc = 0;
    let cut = candidates.length;
    for (let j = 0; j < candidates.length; j++) {
      acc += weights[candidates[j]];
      if (acc >= topP * keptMass) {
        cut = j + 1;
        break;
      }
    }
    candidates.length = cut;
  }
  return { ids: candidates, weights };
}
