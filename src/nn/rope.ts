// Rotary position embedding tables (Su et al. 2021), with the scalings Hugging Face configs name.
import { tensor, type RopeTables } from '../tensor/index.ts';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  | YarnScaling;

/**
 * YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension", §3.2-3.4), with the fields and defaults of
 * transformers' _compute_yarn_parameters (as DeepSeek-V3's and Qwen2.5's config.json set them).
 */
export interface YarnScaling {
  type: 'yarn';
  /** s, the context extension: max_position_embeddings / original_max_position_embeddings when absent. */
  factor: number;
  /** The context the model was pretrained on (L in the paper). */
  originalMaxPositionEmbeddings: number;
  /** alpha, beta of the ramp (paper §3.2): frequencies turning more than betaFast times over L are kept, fewer than betaSlow interpolated. */
  betaFast: number;
  betaSlow: number;
  /** DeepSeek's mscale and mscale_all_dim; 0 when absent (transformers treats 0 and absent alike). */
  mscale: number;
  mscaleAllDim: number;
  /** An explicit attention factor, or null for the paper's 0.1 ln(s) + 1 (§3.4) or DeepSeek's mscale ratio. */
  attentionFactor: number | null;
  /** Round the ramp's ends to whole dimensions (transformers' default, true). */
  truncate: boolean;
}

/** YaRN's temperature term sqrt(1/t) = 0.1 * m * ln(s) + 1 (paper eq. 22, with DeepSeek's multiplier m). */
export function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/**
 * What YaRN multiplies cos and sin by, so that q.k of the rotated dims grows by its square (paper §3.4):
 * transformers' attention_factor, for DeepSeek mscale(s, mscale) / mscale(s, mscale_all_dim), which is 1 in
 * V3's own config (the rest of its scaling goes into the softmax scale, see DeepSeek's softmaxScale).
 */
export function ropeAttentionFactor(scaling: RopeScaling | null): number {
  if (scaling?.type !== 'yarn') return 1;
  if (scaling.attentionFactor !== null) return scaling.attentionFactor;
  if (scaling.mscale && scaling.mscaleAllDim) return yarnMscale(scaling.factor, scaling.mscale) / yarnMscale(scaling.factor, scaling.mscaleAllDim);
  return yarnMscale(scaling.factor);
}

/** inv_freq_i = theta^(-2i / rotDim), then scaled as the config asks. */
export function inverseFrequencies(rotDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  const inv = new Float64Array(rotDim / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / rotDim);
  if (!scaling) return inv;
  if (scaling.type === 'linear') return inv.map((f) => f / scaling.factor);
  if (scaling.type === 'yarn') return yarnFrequencies(inv, rotDim, theta, scaling);
  // Llama 3.1's scaling (transformers' _compute_llama3_parameters): long wavelengths are slowed by `factor`,
  // short ones kept, and the band between interpolated smoothly.
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
  const lowWavelen = old / lowFreqFactor;
  const highWavelen = old / highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / factor;
    const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/**
 * YaRN's "NTK-by-parts" frequencies (paper §3.2): dimension pair i keeps its frequency when it turns more than
 * betaFast times over the original context, is divided by the factor when it turns fewer than betaSlow
 * times, and is blended linearly in between (the ramp runs over pair indices, as in transformers).
 */
function yarnFrequencies(inv: Float64Array, rotDim: number, theta: number, s: YarnScaling): Float64Array {
  // The pair index at which a frequency turns `rotations` times over the original context.
  const pairFor = (rotations: number) => (rotDim * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = pairFor(s.betaFast);
  let high = pairFor(s.betaSlow);
  if (s.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, rotDim - 1);
  if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
  return inv.map((f, i) => {
    const interpolated = Math.min(1, Math.max(0, (i - low) / (high - low)));
    return (f / s.factor) * interpolated + f * (1 - interpolated);
  });
}

/**
 * cos/sin of p * inv_freq_i for every position p < maxPositions, computed in float64 then stored as f32, times
 * YaRN's attention factor (1 for the other scalings), as transformers scales its cos and sin.
 */
export function ropeTables(options: { rotDim: number; theta: number; scaling: RopeScaling | null; maxPositions: number; interleaved?: boolean }): RopeTables {
  const { rotDim, maxPositions } = options;
  const inv = inverseFrequencies(rotDim, options.theta, options.scaling);
  const attentionFactor = ropeAttentionFactor(options.scaling);
  const half = rotDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i];
      cos[p * half + i] = attentionFactor * Math.cos(angle);
      sin[p * half + i] = attentionFactor * Math.sin(angle);
    }
  }
  return { cos: tensor(cos, [maxPositions, half]), sin: tensor(sin, [maxPositions, half]), rotDim, interleaved: options.interleaved ?? false };
}
