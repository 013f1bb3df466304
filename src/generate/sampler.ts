// Choosing the next token from one row of logits: greedy, or a draw from the temperature-scaled distribution
// restricted by top-k, then top-p, then min-p (the order of Hugging Face's logits warpers). Plain TypeScript over
// one row: the definition of sampling. sampleToken starts from logits (float64 softmax); the engine on the CPU
// computes the softmax of a whole batch with tensor kernels and calls sampleFromWeights per row, and on CUDA the
// fused kernel r1_cuda_sample (native/cuda/sample.cu) does the same per row on the device, both drawing with the
// uniform streamUniform(seed, step) of src/tensor/philox.ts.
import { philoxKey } from '../tensor/philox.ts';
import type { Rng } from '../tensor/random.ts';
import { cudaBackend, empty, slice, tensor, type Tensor } from '../tensor/index.ts';

export interface SamplingParams {
  /** 0 picks the most likely token (greedy); otherwise logits are divided by it before softmax. */
  temperature: number;
  /** Keep only the k most likely tokens; 0 keeps all. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability sums to at least p (nucleus, Holtzman et al. 2020); 1 keeps all. */
  topP: number;
  /** Keep the tokens whose probability is at least minP times the most likely one's (Nguyen et al. 2024); 0 keeps all. */
  minP: number;
}

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

/** Weights exp((l - max) / T) of a logits row in float64: softmax(logits / T) up to a constant factor. */
export function temperatureWeights(logits: ArrayLike<number>, temperature: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const weights = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) weights[i] = Math.exp((logits[i] - max) / temperature);
  return weights;
}

/**
 * The distribution a token is drawn from: softmax(logits / temperature), then zero outside the top-k, then
 * zero outside the nucleus of mass topP, then zero below minP times the largest, renormalised. Ties in probability are broken toward the lower id so
 * that the kept set is deterministic. Greedy (temperature 0) is a one-hot at argmax.
 */
export function samplingDistribution(logits: ArrayLike<number>, params: SamplingParams): Float64Array {
  const probs = new Float64Array(logits.length);
  if (params.temperature === 0) {
    probs[argmax(logits)] = 1;
    return probs;
  }
  const weights = temperatureWeights(logits, params.temperature);
  const ids = keptTokens(weights, params);
  let total = 0;
  for (const i of ids) total += weights[i];
  for (const i of ids) probs[i] = weights[i] / total;
  return probs;
}

/** Samples one token from a logits row; `rng` is consumed (one uniform draw) only when temperature > 0. */
export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, rng: Rng): SampledToken {
  const id = params.temperature === 0 ? argmax(logits) : sampleFromWeights(temperatureWeights(logits, params.temperature), params, rng.uniform());
  return { id, logprob: tokenLogprob(logits, id) };
}

/**
 * Draws a token given its weights at the sampling temperature (softmax(logits / T), or any positive multiple
 * of it: the engine computes them for a whole batch in one softmax kernel), after top-k, top-p and min-p: the
 * uniform u in [0, 1) is mapped through the cumulative weights of the kept tokens in id order.
 */
export function sampleFromWeights(weights: ArrayLike<number>, params: SamplingParams, u: number): number {
  const ids = keptTokens(weights, params);
  let total = 0;
  for (const i of ids) total += weights[i];
  const target = u * total;
  let acc = 0;
  for (const i of ids) {
    acc += weights[i];
    if (target < acc) return i;
  }
  return ids[ids.length - 1];
}

/** The ids (in increasing order) that survive top-k, then top-p, then min-p. */
function keptTokens(weights: ArrayLike<number>, params: SamplingParams): Int32Array {
  const n = weights.length;
  const { topK, topP, minP } = params;
  let ids: Int32Array = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  if (topK > 0 && topK < n) ids = heaviest(ids, weights, (count) => count >= topK);
  if (topP < 1) {
    // The nucleus is taken within what top-k left, renormalised (HF applies top-p to the logits top-k kept).
    let mass = 0;
    for (const i of ids) mass += weights[i];
    const target = topP * mass;
    ids = heaviest(ids, weights, (_, m) => m >= target);
  }
  if (minP > 0) {
    // The largest weight survives top-k and top-p, so the bound is relative to the row's largest.
    let largest = 0;
    for (const i of ids) largest = Math.max(largest, weights[i]);
    ids = ids.filter((i) => weights[i] >= minP * largest);
  }
  return ids;
}

/**
 * The smallest set of the heaviest tokens among `ids` for which `reached(count, mass)` holds (it must be
 * monotone), ties in weight going to the lower id; returned in increasing id order. The weight at which the
 * set closes is found from a histogram of the weights (closingWeight), so no sort of the vocabulary is needed.
 */
function heaviest(ids: Int32Array, weights: ArrayLike<number>, reached: (count: number, mass: number) => boolean): Int32Array {
  const values = new Float64Array(ids.length);
  for (let j = 0; j < ids.length; j++) values[j] = weights[ids[j]];
  const threshold = closingWeight(values, reached);
  let count = 0;
  let mass = 0;
  for (const i of ids) {
    if (weights[i] > threshold) {
      count++;
      mass += weights[i];
    }
  }
  const kept = new Int32Array(ids.length);
  let keptCount = 0;
  let ties = !reached(count, mass);
  for (const i of ids) {
    const w = weights[i];
    if (w > threshold) {
      kept[keptCount++] = i;
    } else if (w === threshold && ties) {
      kept[keptCount++] = i;
      count++;
      mass += w;
      ties = !reached(count, mass);
    }
  }
  return kept.subarray(0, keptCount);
}

// closingWeight's histogram: one bucket per value of a float32's top 12 bits (sign, exponent and 3 mantissa
// bits), so that for weights >= 0 the buckets are in the weights' order and each spans a factor of 2^(1/8).
const BUCKETS = 2048;
const bucketCount = new Int32Array(BUCKETS);
const bucketMass = new Float64Array(BUCKETS);
const float32 = new Float32Array(1);
const float32Bits = new Uint32Array(float32.buffer);
function bucketOf(weight: number): number {
  float32[0] = weight; // rounding to float32 never reorders two weights, at most puts them in one bucket
  return float32Bits[0] >>> 20;
}

/**
 * The weight w of the token at which the heaviest-first prefix first satisfies `reached`, over weights >= 0:
 * a histogram pass (count and mass per bucket), a walk down the buckets to the one where `reached` first holds,
 * and a sort of that bucket's weights alone: two passes over the vocabulary, where a quickselect's partitions
 * mispredict a branch per element on random weights (a top-p draw from a 2048-token row: 1.75x faster). If
 * rounding keeps `reached` from ever holding, the smallest weight (keep everything).
 */
function closingWeight(values: Float64Array, reached: (count: number, mass: number) => boolean): number {
  let lowest = BUCKETS, highest = -1, smallest = Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const b = bucketOf(v);
    bucketCount[b]++;
    bucketMass[b] += v;
    if (b < lowest) lowest = b;
    if (b > highest) highest = b;
    if (v < smallest) smallest = v;
  }
  let countAbove = 0, massAbove = 0, closing = -1;
  for (let b = highest; b >= lowest; b--) {
    if (bucketCount[b] === 0) continue;
    if (reached(countAbove + bucketCount[b], massAbove + bucketMass[b])) {
      closing = b;
      break;
    }
    countAbove += bucketCount[b];
    massAbove += bucketMass[b];
  }
  if (highest >= 0) {
    bucketCount.fill(0, lowest, highest + 1);
    bucketMass.fill(0, lowest, highest + 1);
  }
  if (closing < 0) return smallest;
  // Within the closing bucket, heaviest first; equal weights close together (heaviest() splits them by id).
  let n = 0;
  for (let i = 0; i < values.length; i++) if (bucketOf(values[i]) === closing) values[n++] = values[i];
  const inBucket = values.subarray(0, n).sort();
  for (let i = n - 1; i >= 0;) {
    const v = inBucket[i];
    let count = 0, mass = 0;
    for (; i >= 0 && inBucket[i] === v; i--) count++, mass += v;
    if (reached(countAbove + count, massAbove + mass)) return v;
    countAbove += count;
    massAbove += mass;
  }
  return smallest;
}

/** One row of a device draw: its settings, and the request's seed and token index (the Philox stream). */
export interface DeviceSamplingRow extends SamplingParams {
  seed: number;
  step: number;
}

export interface DeviceDraw {
  ids: Int32Array;
  /** log_softmax(logits)[id] at temperature 1 over the whole vocabulary. */
  logprobs: Float32Array;
  /** log of id's probability in the distribution it was drawn from (0 for greedy rows). */
  sampleLogprobs: Float32Array;
}

/**
 * Draws a token for each row of CUDA logits [rows, vocab] among ids < sampleVocab with the fused kernel
 * (native/cuda/sample.cu): what sampleFromWeights and argmax do per row, with the uniform
 * streamUniform(seed, step). Only 32 bytes of settings go up and 12 bytes come back per row.
 */
export function sampleOnDevice(logits: Tensor, rows: readonly DeviceSamplingRow[], sampleVocab: number): DeviceDraw {
  return queueSampleOnDevice(logits, rows, sampleVocab).finish();
}

/** A device draw queued and not yet read: its tokens on the device, and the read. */
export interface QueuedDraw {
  /** The drawn ids, int32 [rows] on the device (valid once the work queued before now has run). */
  ids: Tensor;
  /** Waits for the draw, not for work queued after it (the next decode step), and reads it; once. */
  finish(): DeviceDraw;
}

/**
 * sampleOnDevice without waiting: the kernel and the download of its 12 bytes a row are queued, so the next decode
 * step can be queued, reading its tokens from `ids`, before this draw is read (the engine's pipelining). At most
 * two queued draws are unread at a time (r1_cuda_download_begin's staging slots): finish() every one.
 */
export function queueSampleOnDevice(logits: Tensor, rows: readonly DeviceSamplingRow[], sampleVocab: number): QueuedDraw {
  const [count, vocab] = logits.shape;
  if (logits.device !== 'cuda' || logits.ndim !== 2 || !logits.isContiguous || logits.dtype !== 'f32') throw new Error(`sampleOnDevice: expected contiguous float32 CUDA logits [rows, vocab], got ${logits}`);
  if (rows.length !== count) throw new Error(`sampleOnDevice: ${rows.length} rows of settings for ${count} rows of logits`);
  if (!Number.isInteger(sampleVocab) || sampleVocab < 1 || sampleVocab > vocab) throw new Error(`sampleOnDevice: sampleVocab ${sampleVocab} is not in [1, ${vocab}]`);
  const words = new Int32Array(8 * count);
  const floats = new Float32Array(words.buffer);
  rows.forEach((row, r) => {
    const [key0, key1] = philoxKey(row.seed);
    floats[8 * r] = row.temperature;
    floats[8 * r + 1] = row.topP;
    floats[8 * r + 2] = row.minP;
    words[8 * r + 3] = row.topK;
    words[8 * r + 4] = key0 | 0;
    words[8 * r + 5] = key1 | 0;
    words[8 * r + 6] = row.step | 0;
  });
  const params = tensor(words, [8 * count], 'i32', 'cuda');
  const out = empty([3 * count], 'i32', 'cuda');
  const backend = cudaBackend();
  // Rows without top-k or top-p need no selection over the vocabulary: the kernel then splits them over the GPU.
  const selects = rows.some((row) => row.temperature > 0 && ((row.topK > 0 && row.topK < sampleVocab) || row.topP < 1));
  backend.sample(logits.floatData() as number, count, vocab, sampleVocab, params.intData() as number, out.intData() as number, selects);
  const slot = backend.downloadBegin(out.intData() as number, 12 * count);
  let finished = false;
  return {
    ids: slice(out, 0, 0, count),
    finish() {
      if (finished) throw new Error('QueuedDraw.finish: the draw was read already');
      finished = true;
      const result = new Int32Array(3 * count);
      backend.downloadEnd(slot, result);
      const bits = new Float32Array(result.buffer);
      return { ids: result.slice(0, count), logprobs: bits.slice(count, 2 * count), sampleLogprobs: bits.slice(2 * count) };
    },
  };
}
