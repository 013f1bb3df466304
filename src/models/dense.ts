// A dense decoder of the Llama / Qwen2 family, read top to bottom: config, blocks, forward.
import { GroupedQueryAttention, emptyLayerKvCache, type DeviceDecodeStep, type LayerKvCache } from '../nn/attention.ts';
import { Embedding } from '../nn/embedding.ts';
import { SwiGluMlp } from '../nn/mlp.ts';
import { Module, type WeightInit } from '../nn/module.ts';
import { RMSNorm } from '../nn/rmsnorm.ts';
import { ropeTables, type RopeScaling } from '../nn/rope.ts';
import { add, crossEntropy, linear, reshape, slice, tensor, type CacheFormat, type RopeTables, Rng, type Tensor } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';

export type { RopeScaling };

export interface DenseConfig {
  /** 'llama' or 'qwen2': decides the Hugging Face architecture name written to config.json. */
  family: 'llama' | 'qwen2';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  /** Bias on the q, k and v projections (Qwen2 has it, Llama does not). */
  attentionBias: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
}

/** Checks the dimensions fit together; `where` names the source (a file or flag set) in the error. */
export function validateDenseConfig(c: DenseConfig, where: string): void {
  const positive: Array<keyof DenseConfig> = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'maxPositionEmbeddings'];
  for (const field of positive) {
    const v = c[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UserError(`${where}: ${field} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) throw new UserError(`${where}: numHeads (${c.numHeads}) must be a multiple of numKvHeads (${c.numKvHeads})`);
  if (c.headDim % 2 !== 0) throw new UserError(`${where}: headDim (${c.headDim}) must be even for rotary embeddings`);
  if (!(c.rmsNormEps > 0)) throw new UserError(`${where}: rmsNormEps must be positive, got ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 0)) throw new UserError(`${where}: ropeTheta must be positive, got ${c.ropeTheta}`);
}

/** Small from-scratch shapes for CPU training (parameter counts include the embedding). */
export const denseSizes = {
  '1m': { hiddenSize: 128, intermediateSize: 352, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 32 },
  '5m': { hiddenSize: 256, intermediateSize: 688, numLayers: 6, numHeads: 8, numKvHeads: 4, headDim: 32 },
  '20m': { hiddenSize: 512, intermediateSize: 1376, numLayers: 6, numHeads: 8, numKvHeads: 4, headDim: 64 },
} as const;
export type DenseSize = keyof typeof denseSizes;

export function denseConfig(size: DenseSize, vocabSize: number, overrides: Partial<DenseConfig> = {}): DenseConfig {
  return {
    family: 'qwen2',
    vocabSize,
    ...denseSizes[size],
    maxPositionEmbeddings: 1024,
    ropeTheta: 10000,
    ropeScaling: null,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    attentionBias: true,
    bosTokenId: null,
    eosTokenId: null,
    ...overrides,
  };
}

/** Pre-norm decoder block: x + attn(norm(x)), then h + mlp(norm(h)). */
class DecoderLayer extends Module {
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: GroupedQueryAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: SwiGluMlp;

  constructor(c: DenseConfig, rng: WeightInit) {
    super();
    this.inputLayernorm = this.module('input_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.selfAttn = this.module('self_attn', new GroupedQueryAttention({
      hiddenSize: c.hiddenSize, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, bias: c.attentionBias,
    }, rng));
    this.postAttentionLayernorm = this.module('post_attention_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.mlp = this.module('mlp', new SwiGluMlp(c.hiddenSize, c.intermediateSize, rng));
  }

  forward(x: Tensor, positions: Tensor, tables: RopeTables, cache?: LayerKvCache, kvStart?: Tensor | null, step?: DeviceDecodeStep | null): Tensor {
    const h = add(x, this.selfAttn.forward(this.inputLayernorm.forward(x), positions, tables, cache, kvStart, step));
    return add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h)));
  }
}

/** Inputs of one forward pass beyond the token ids. */
export interface ForwardOptions {
  /** int32 [B, T]; default 0..T-1 (after the cache's length when decoding). */
  positions?: Tensor;
  /** One cache per layer, filled in place (see DenseModel.newCache). */
  cache?: LayerKvCache[];
  /** int32 [B]: first real (non-padding) position of each row. */
  kvStart?: Tensor | null;
  /**
   * A CUDA decode step whose columns are in device memory (DeviceDecodeStep; dense models with head size 64 or
   * 128): the cache's length is not advanced.
   */
  step?: DeviceDecodeStep | null;
}

/**
 * Positions start..start+T-1 on every row of ids [B, T] (int32 [B, T]): where a forward without explicit positions
 * puts its tokens (start: what the cache already holds).
 */
export function positionsFrom(ids: Tensor, start: number): Tensor {
  const [B, T] = ids.shape;
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) p[b * T + t] = start + t;
  return tensor(p, [B, T], 'i32', ids.device);
}

/** The output head over the last position of hidden states [B, T, C] only: logits [B, V] (every family's decoding). */
export function lastPositionLogits(h: Tensor, head: Tensor): Tensor {
  const [B, T, C] = h.shape;
  return linear(reshape(slice(h, 1, T - 1, T), [B, C]), head);
}

export class DenseModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: DecoderLayer[];
  readonly norm: RMSNorm;
  readonly lmHead: Tensor;
  readonly rope: RopeTables;

  constructor(readonly config: DenseConfig, seed: number | null = 0) {
    super();
    const rng: WeightInit = seed === null ? null : new Rng(seed);
    const c = config;
    this.embedTokens = this.module('model.embed_tokens', new Embedding(c.vocabSize, c.hiddenSize, rng));
    this.layers = Array.from({ length: c.numLayers }, (_, i) => this.module(`model.layers.${i}`, new DecoderLayer(c, rng)));
    this.norm = this.module('model.norm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.lmHead = c.tieWordEmbeddings ? this.embedTokens.weight : this.module('lm_head', new Embedding(c.vocabSize, c.hiddenSize, rng)).weight;
    this.rope = ropeTables({ rotDim: c.headDim, theta: c.ropeTheta, scaling: c.ropeScaling, maxPositions: c.maxPositionEmbeddings });
    this.buffer('rope.cos', this.rope.cos);
    this.buffer('rope.sin', this.rope.sin);
  }

  /** Final hidden states [B, T, C] for int32 ids [B, T]. */
  hidden(ids: Tensor, options: ForwardOptions = {}): Tensor {
    const positions = options.positions ?? positionsFrom(ids, options.cache?.[0]?.length ?? 0);
    let x = this.embedTokens.forward(ids);
    this.layers.forEach((layer, i) => {
      x = layer.forward(x, positions, this.rope, options.cache?.[i], options.kvStart, options.step);
    });
    return this.norm.forward(x);
  }

  /** Logits [B, T, V] (the output head is the embedding matrix when tied). */
  forward(ids: Tensor, options: ForwardOptions = {}): Tensor {
    return linear(this.hidden(ids, options), this.lmHead);
  }

  /** Logits of the last position only [B, V]: what decoding needs, without the head over every position. */
  lastLogits(ids: Tensor, options: ForwardOptions = {}): Tensor {
    return lastPositionLogits(this.hidden(ids, options), this.lmHead);
  }

  /** Mean next-token cross-entropy; targets int32 [B, T] with -100 where no loss is taken. */
  loss(ids: Tensor, targets: Tensor): Tensor {
    const logits = this.forward(ids);
    return crossEntropy(reshape(logits, [-1, this.config.vocabSize]), reshape(targets, [-1]));
  }

  newCache(batch: number, capacity: number, format: CacheFormat = 'f32'): LayerKvCache[] {
    const c = this.config;
    return this.layers.map(() => emptyLayerKvCache(batch, capacity, c.numKvHeads, c.headDim, c.headDim, this.device, format));
  }
}
