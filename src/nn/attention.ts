// Causal self-attention with grouped-query heads (MHA when kv heads = heads, MQA when 1), rotary positions and
// an optional KV cache for decoding.
import { attention, copyInto, decodeAttention, defaultDevice, full, reshape, rope, slice, writeColumns, type CacheFormat, type Device, type RopeTables, type Tensor } from '../tensor/index.ts';
import { Linear } from './linear.ts';
import { Module, type WeightInit } from './module.ts';

/**
 * One layer's keys and values for sequences decoded together: k [B, capacity, Hkv, D], v [B, capacity, Hkv, Dv]
 * and the number of columns filled (the same for every row). `kvStart` (int32 [B]) masks what lies before each
 * row's first token (left padding, or columns of an earlier sequence in that row).
 */
export interface LayerKvCache {
  k: Tensor;
  v: Tensor;
  length: number;
  /**
   * The tensors that own the cache's memory, each [B, capacity, ...]: what moving rows or columns copies (the
   * sampling engine's compaction and splicing) and what freeing the cache disposes. A latent cache's v is a view
   * of its k, so it has one buffer.
   */
  buffers: readonly Tensor[];
  /**
   * 'bf16': keys and values rounded to bf16, two to a float32 word (k [B, capacity, Hkv, D / 2]), half the bytes
   * a decode step streams; only CUDA decode steps (DeviceDecodeStep) read and write such a cache. Default 'f32'.
   */
  format?: CacheFormat;
}

export function emptyLayerKvCache(batch: number, capacity: number, kvHeads: number, keyDim: number, valueDim: number, device: Device = defaultDevice(),
  format: CacheFormat = 'f32'): LayerKvCache {
  const perWord = format === 'bf16' ? 2 : 1;
  if (keyDim % perWord !== 0 || valueDim % perWord !== 0) throw new Error(`a ${format} KV cache needs even head sizes, got ${keyDim} and ${valueDim}`);
  // Zero-filled from the allocator that reuses memory (full, not zeros): the sampling engine hands a finished
  // cache's memory on to the next cache and to its steps' ops.
  const k = full([batch, capacity, kvHeads, keyDim / perWord], 0, 'f32', device);
  const v = full([batch, capacity, kvHeads, valueDim / perWord], 0, 'f32', device);
  return { k, v, length: 0, buffers: [k, v], format };
}

/**
 * A CUDA decode step (T = 1) whose column lives in device memory, so that a recorded graph of the step replays
 * at any column: row b's new key and value go to column[b] and it attends to [kvStart[b], kvEnd[b]); the cache's
 * length is then the caller's to advance (the sampling engine's BatchDecoder).
 */
export interface DeviceDecodeStep {
  column: Tensor;
  kvEnd: Tensor;
}

export interface AttentionConfig {
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  bias: boolean;
}

export class GroupedQueryAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;

  constructor(readonly config: AttentionConfig, rng: WeightInit) {
    super();
    const { hiddenSize, numHeads, numKvHeads, headDim, bias } = config;
    this.qProj = this.module('q_proj', new Linear(hiddenSize, numHeads * headDim, rng, { bias }));
    this.kProj = this.module('k_proj', new Linear(hiddenSize, numKvHeads * headDim, rng, { bias }));
    this.vProj = this.module('v_proj', new Linear(hiddenSize, numKvHeads * headDim, rng, { bias }));
    this.oProj = this.module('o_proj', new Linear(numHeads * headDim, hiddenSize, rng));
  }

  /**
   * x [B, T, C] at int32 positions [B, T]. With a cache, the new keys and values are appended at
   * cache.length and attention runs over everything cached so far; with a device step as well, at its columns.
   */
  forward(x: Tensor, positions: Tensor, tables: RopeTables, cache?: LayerKvCache, kvStart?: Tensor | null, step?: DeviceDecodeStep | null): Tensor {
    const [B, T] = x.shape;
    const { numHeads, numKvHeads, headDim } = this.config;
    const q = rope(reshape(this.qProj.forward(x), [B, T, numHeads, headDim]), positions, tables);
    let k = rope(reshape(this.kProj.forward(x), [B, T, numKvHeads, headDim]), positions, tables);
    let v = reshape(this.vProj.forward(x), [B, T, numKvHeads, headDim]);
    if (cache && step) {
      if (!kvStart || T !== 1) throw new Error('a device decode step feeds one token per row and needs kvStart');
      writeColumns(cache.k, k, step.column, cache.format);
      writeColumns(cache.v, v, step.column, cache.format);
      const out = decodeAttention(q, cache.k, cache.v, kvStart, step.kvEnd, cache.format);
      return this.oProj.forward(reshape(out, [B, T, numHeads * headDim]));
    }
    if (cache) {
      if ((cache.format ?? 'f32') !== 'f32') throw new Error(`a ${cache.format} KV cache is read only by CUDA decode steps (DeviceDecodeStep)`);
      const end = cache.length + T;
      if (end > cache.k.shape[1]) throw new Error(`KV cache of ${cache.k.shape[1]} positions is full (needs ${end})`);
      copyInto(k, slice(cache.k, 1, cache.length, end));
      copyInto(v, slice(cache.v, 1, cache.length, end));
      cache.length = end;
      k = slice(cache.k, 1, 0, end);
      v = slice(cache.v, 1, 0, end);
    }
    const out = attention(q, k, v, { causal: true, kvStart });
    return this.oProj.forward(reshape(out, [B, T, numHeads * headDim]));
  }
}
