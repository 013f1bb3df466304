// Rotary position embedding tables (Su et al. 2021), with the scalings Hugging Face configs name.
import { tensor, type RopeTables } from '../tensor/index.ts';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/** inv_freq_i = theta^(-2i / rotDim), then scaled as the config asks. */
export function inverseFrequencies(rotDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  const inv = new Float64Array(rotDim / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / rotDim);
  if (!scaling) return inv;
  if (scaling.type === 'linear') return inv.map((f) => f / scaling.factor);
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

/** cos/sin of p * inv_freq_i for every position p < maxPositions, computed in float64 then stored as f32. */
export function ropeTables(options: { rotDim: number; theta: number; scaling: RopeScaling | null; maxPositions: number; interleaved?: boolean }): RopeTables {
  const { rotDim, maxPositions } = options;
  const inv = inverseFrequencies(rotDim, options.theta, options.scaling);
  const half = rotDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i];
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos: tensor(cos, [maxPositions, half]), sin: tensor(sin, [maxPositions, half]), rotDim, interleaved: options.interleaved ?? false };
}
