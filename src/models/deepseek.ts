// DeepSeek-V3 in miniature, read top to bottom: config, blocks, multi-token prediction, forward, loss
// (SPEC.md 6; DeepSeek-V3 technical report §2). Multi-head latent attention (src/nn/mla.ts) in every layer;
// the first `firstKDenseReplace` layers have a dense SwiGLU FFN, the others DeepSeekMoE (src/nn/moe.ts).
// Tensor names are transformers' DeepseekV3ForCausalLM names; MTP modules sit at layer indices numLayers,
// numLayers + 1, ... as in the released checkpoints (transformers builds no MTP and ignores them).
import type { DeviceDecodeStep, LayerKvCache } from '../nn/attention.ts';
import { Embedding } from '../nn/embedding.ts';
import { Linear } from '../nn/linear.ts';
import { emptyLatentKvCache, MultiHeadLatentAttention, type MlaConfig } from '../nn/mla.ts';
import { SwiGluMlp } from '../nn/mlp.ts';
import { DeepSeekMoE, type MoeBalance, type MoeConfig, type MoeLoadStats } from '../nn/moe.ts';
import { Module, type WeightInit } from '../nn/module.ts';
import { RMSNorm } from '../nn/rmsnorm.ts';
import { ropeTables, yarnMscale, type RopeScaling } from '../nn/rope.ts';
import { add, concat, crossEntropy, isGradEnabled, linear, mul, reshape, slice, tensor, type CacheFormat, type RopeTables, Rng, type Tensor } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';
import { lastPositionLogits, positionsFrom, type ForwardOptions } from './dense.ts';

/** DeepSeekMoE's fields (MoeConfig, MoeBalance: src/nn/moe.ts) are this config's MoE part. */
export interface DeepSeekConfig extends MoeConfig, MoeBalance, Omit<MlaConfig, 'softmaxScale'> {
  family: 'deepseek';
  vocabSize: number;
  hiddenSize: number;
  /** Width of the dense FFN of the first firstKDenseReplace layers. */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  // Multi-head latent attention: the MlaConfig fields (src/nn/mla.ts), its softmax scale derived (softmaxScale)
  // DeepSeekMoE (the MoeConfig and MoeBalance fields), in every layer from firstKDenseReplace on
  firstKDenseReplace: number;
  // Multi-token prediction (V3 §2.2)
  /** D, the number of MTP modules (num_nextn_predict_layers); 0 = off. */
  mtpDepth: number;
  /** lambda of L_MTP = lambda / D * sum_k L_MTP^k (V3: 0.3, then 0.1). */
  mtpLossWeight: number;
  // Positions, norms, head, special tokens
  maxPositionEmbeddings: number;
  ropeTheta: number;
  /** Rotary scaling: null, or YaRN as V3 and R1 ship it (which also scales the softmax, see softmaxScale). */
  ropeScaling: RopeScaling | null;
  /** Rotary pairs (2i, 2i+1) as in the released V3 weights (rope_interleave, default true). */
  ropeInterleave: boolean;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
}

/**
 * Checks that the dimensions fit together. `where` names the source (a file or a set of flags) and `name` how
 * a field is called there (config.json's names differ), so that every message names the field at fault.
 */
export function validateDeepSeekConfig(c: DeepSeekConfig, where: string, name: (field: keyof DeepSeekConfig) => string = (f) => f): void {
  const fail = (message: string): never => {
    throw new UserError(`${where}: ${message}`);
  };
  const positive: Array<keyof DeepSeekConfig> = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'kvLoraRank',
    'qkNopeHeadDim', 'qkRopeHeadDim', 'vHeadDim', 'numRoutedExperts', 'numExpertsPerToken', 'moeIntermediateSize', 'numGroups', 'topkGroup', 'maxPositionEmbeddings'];
  for (const field of positive) {
    const v = c[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`${name(field)} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  for (const field of ['numSharedExperts', 'firstKDenseReplace', 'mtpDepth'] as const) {
    if (!Number.isInteger(c[field]) || c[field] < 0) fail(`${name(field)} must be a non-negative integer, got ${JSON.stringify(c[field])}`);
  }
  if (c.qLoraRank !== null && !(Number.isInteger(c.qLoraRank) && c.qLoraRank > 0)) fail(`${name('qLoraRank')} must be a positive integer or null, got ${JSON.stringify(c.qLoraRank)}`);
  if (c.qkRopeHeadDim % 2 !== 0) fail(`${name('qkRopeHeadDim')} (${c.qkRopeHeadDim}) must be even for rotary embeddings`);
  // The latents must compress: a rank at or above the width they replace saves nothing (V3: 512 vs 32768).
  const kvWidth = c.numHeads * (c.qkNopeHeadDim + c.vHeadDim);
  if (c.kvLoraRank >= kvWidth) fail(`${name('kvLoraRank')} (${c.kvLoraRank}) must be smaller than num heads * (nope + value head dims) = ${kvWidth}`);
  const qWidth = c.numHeads * (c.qkNopeHeadDim + c.qkRopeHeadDim);
  if (c.qLoraRank !== null && c.qLoraRank >= qWidth) fail(`${name('qLoraRank')} (${c.qLoraRank}) must be smaller than num heads * (nope + rope head dims) = ${qWidth}`);
  if (c.numExpertsPerToken > c.numRoutedExperts) fail(`${name('numExpertsPerToken')} (${c.numExpertsPerToken}) is larger than ${name('numRoutedExperts')} (${c.numRoutedExperts})`);
  if (c.numRoutedExperts % c.numGroups !== 0) fail(`${name('numRoutedExperts')} (${c.numRoutedExperts}) is not divisible by ${name('numGroups')} (${c.numGroups})`);
  if (c.topkGroup > c.numGroups) fail(`${name('topkGroup')} (${c.topkGroup}) is larger than ${name('numGroups')} (${c.numGroups})`);
  const selectable = c.topkGroup * (c.numRoutedExperts / c.numGroups);
  if (c.numExpertsPerToken > selectable) fail(`${name('numExpertsPerToken')} (${c.numExpertsPerToken}) is more than the ${selectable} experts in the ${name('topkGroup')} groups kept per token`);
  if (c.firstKDenseReplace > c.numLayers) fail(`${name('firstKDenseReplace')} (${c.firstKDenseReplace}) is larger than ${name('numLayers')} (${c.numLayers})`);
  for (const field of ['routedScalingFactor', 'rmsNormEps', 'ropeTheta'] as const) {
    if (!(c[field] > 0)) fail(`${name(field)} must be positive, got ${c[field]}`);
  }
  for (const field of ['biasUpdateSpeed', 'seqBalanceWeight', 'mtpLossWeight'] as const) {
    if (!(c[field] >= 0)) fail(`${name(field)} must be >= 0, got ${c[field]}`);
  }
}

/**
 * A small default that trains on 2 CPU cores in minutes: V3's proportions scaled down (SPEC reference 6.3):
 * latent rank below heads * head dim, even rope dims, sigmoid routing over 8 experts (top-2) plus one shared
 * expert, the first layer dense, MTP D = 1 with lambda 0.3.
 */
export function deepseekConfig(vocabSize: number, overrides: Partial<DeepSeekConfig> = {}): DeepSeekConfig {
  return {
    family: 'deepseek',
    vocabSize,
    hiddenSize: 128,
    intermediateSize: 352,
    numLayers: 4,
    numHeads: 4,
    qLoraRank: 64,
    kvLoraRank: 32,
    qkNopeHeadDim: 32,
    qkRopeHeadDim: 16,
    vHeadDim: 32,
    numRoutedExperts: 8,
    numSharedExperts: 1,
    numExpertsPerToken: 2,
    moeIntermediateSize: 64,
    firstKDenseReplace: 1,
    routedScalingFactor: 2.5,
    numGroups: 1,
    topkGroup: 1,
    normTopkProb: true,
    biasUpdateSpeed: 0.001,
    seqBalanceWeight: 0.0001,
    mtpDepth: 1,
    mtpLossWeight: 0.3,
    maxPositionEmbeddings: 1024,
    ropeTheta: 10000,
    ropeScaling: null,
    ropeInterleave: true,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: false,
    bosTokenId: null,
    eosTokenId: null,
    ...overrides,
  };
}

/**
 * Softmax scale of MLA: 1 / sqrt(qk_nope_head_dim + qk_rope_head_dim), times mscale(s, mscale_all_dim)^2 under
 * YaRN (DeepSeek-V2 §2.1 / the released modeling code, as transformers' DeepseekV3Attention): YaRN's
 * temperature applies to the whole q.k, nope dims included, not only to the rotary part that cos/sin scale.
 */
export function softmaxScale(c: DeepSeekConfig): number {
  const base = 1 / Math.sqrt(c.qkNopeHeadDim + c.qkRopeHeadDim);
  if (c.ropeScaling?.type !== 'yarn' || !c.ropeScaling.mscaleAllDim) return base;
  const mscale = yarnMscale(c.ropeScaling.factor, c.ropeScaling.mscaleAllDim);
  return base * mscale * mscale;
}

/**
 * Whether a decode step of this model runs on the device with no host wait, so that the sampling engine records
 * it as a CUDA graph: the latent attention's values (kvLoraRank numbers) fit mlaDecodeAttention (at most 1024) and
 * the routed experts fit the device dispatch (at most 256).
 */
export function deepseekDecodesOnDevice(c: DeepSeekConfig): boolean {
  return c.kvLoraRank <= 1024 && c.numRoutedExperts <= 256;
}

/** Pre-norm block: x + attn(norm(x)), then h + ffn(norm(h)); the FFN is dense for the first layers, else MoE. */
class DecoderLayer extends Module {
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: MultiHeadLatentAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: SwiGluMlp | DeepSeekMoE;

  constructor(c: DeepSeekConfig, layerIndex: number, rng: WeightInit) {
    super();
    this.inputLayernorm = this.module('input_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.selfAttn = this.module('self_attn', new MultiHeadLatentAttention({
      hiddenSize: c.hiddenSize, numHeads: c.numHeads, qLoraRank: c.qLoraRank, kvLoraRank: c.kvLoraRank, qkNopeHeadDim: c.qkNopeHeadDim,
      qkRopeHeadDim: c.qkRopeHeadDim, vHeadDim: c.vHeadDim, rmsNormEps: c.rmsNormEps, softmaxScale: softmaxScale(c),
    }, rng));
    this.postAttentionLayernorm = this.module('post_attention_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.mlp = this.module('mlp', layerIndex < c.firstKDenseReplace
      ? new SwiGluMlp(c.hiddenSize, c.intermediateSize, rng)
      : new DeepSeekMoE(c, rng, { biasUpdateSpeed: c.biasUpdateSpeed, seqBalanceWeight: c.seqBalanceWeight }));
  }

  /** `balanceLosses` collects the MoE layer's sequence-wise balance loss when there is one. */
  forward(x: Tensor, positions: Tensor, tables: RopeTables, cache?: LayerKvCache, kvStart?: Tensor | null, balanceLosses?: Tensor[], step?: DeviceDecodeStep | null): Tensor {
    const h = add(x, this.selfAttn.forward(this.inputLayernorm.forward(x), positions, tables, cache, kvStart, step));
    const normed = this.postAttentionLayernorm.forward(h);
    if (this.mlp instanceof SwiGluMlp) return add(h, this.mlp.forward(normed));
    const { output, balanceLoss } = this.mlp.forward(normed);
    if (balanceLoss) balanceLosses?.push(balanceLoss);
    return add(h, output);
  }
}

/**
 * MTP module k (V3 §2.2 eq. 21-23): h'_i = M_k [RMSNorm(Emb(t_{i+k})) ; RMSNorm(h_i^{k-1})], then one
 * transformer block (this class's own DecoderLayer part, an MoE block like the main model's last layers),
 * then the shared output head after the module's own final norm. The concatenation puts the embedding first,
 * as the released weights and the inference engines that load them do (the paper writes the other order).
 * Names as in the released checkpoints, beside the block's own tensors: enorm, hnorm, eh_proj,
 * shared_head.norm (the embedding and shared_head.head are the main model's and are not stored twice).
 */
class MtpModule extends DecoderLayer {
  readonly enorm: RMSNorm;
  readonly hnorm: RMSNorm;
  readonly ehProj: Linear;
  readonly headNorm: RMSNorm;

  constructor(c: DeepSeekConfig, rng: WeightInit) {
    super(c, c.numLayers, rng);
    this.enorm = this.module('enorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.hnorm = this.module('hnorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.ehProj = this.module('eh_proj', new Linear(2 * c.hiddenSize, c.hiddenSize, rng));
    this.headNorm = this.module('shared_head.norm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
  }

  /** h^k [B, n, C] from h^{k-1} [B, n, C] and the embeddings of the tokens k places ahead [B, n, C]. */
  predict(previous: Tensor, aheadEmbeddings: Tensor, positions: Tensor, tables: RopeTables, balanceLosses: Tensor[]): Tensor {
    const merged = this.ehProj.forward(concat([this.enorm.forward(aheadEmbeddings), this.hnorm.forward(previous)], 2));
    return this.forward(merged, positions, tables, undefined, null, balanceLosses);
  }
}

export class DeepSeekModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: DecoderLayer[];
  readonly mtp: MtpModule[];
  readonly norm: RMSNorm;
  readonly lmHead: Tensor;
  readonly rope: RopeTables;

  constructor(readonly config: DeepSeekConfig, seed: number | null = 0) {
    super();
    const rng: WeightInit = seed === null ? null : new Rng(seed);
    const c = config;
    this.embedTokens = this.module('model.embed_tokens', new Embedding(c.vocabSize, c.hiddenSize, rng));
    this.layers = Array.from({ length: c.numLayers }, (_, i) => this.module(`model.layers.${i}`, new DecoderLayer(c, i, rng)));
    this.mtp = Array.from({ length: c.mtpDepth }, (_, k) => this.module(`model.layers.${c.numLayers + k}`, new MtpModule(c, rng)));
    this.norm = this.module('model.norm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.lmHead = c.tieWordEmbeddings ? this.embedTokens.weight : this.module('lm_head', new Embedding(c.vocabSize, c.hiddenSize, rng)).weight;
    this.rope = ropeTables({ rotDim: c.qkRopeHeadDim, theta: c.ropeTheta, scaling: c.ropeScaling, maxPositions: c.maxPositionEmbeddings, interleaved: c.ropeInterleave });
    this.buffer('rope.cos', this.rope.cos);
    this.buffer('rope.sin', this.rope.sin);
  }

  /** Final hidden states [B, T, C] for int32 ids [B, T] (after the final norm). */
  hidden(ids: Tensor, options: ForwardOptions = {}, balanceLosses?: Tensor[]): Tensor {
    const positions = options.positions ?? positionsFrom(ids, options.cache?.[0]?.length ?? 0);
    let x = this.embedTokens.forward(ids);
    this.layers.forEach((layer, i) => {
      x = layer.forward(x, positions, this.rope, options.cache?.[i], options.kvStart, balanceLosses, options.step);
    });
    return this.norm.forward(x);
  }

  /** Logits [B, T, V] of the next token (the MTP modules are training-only and not run). */
  forward(ids: Tensor, options: ForwardOptions = {}): Tensor {
    return linear(this.hidden(ids, options), this.lmHead);
  }

  /** Logits of the last position only [B, V]. */
  lastLogits(ids: Tensor, options: ForwardOptions = {}): Tensor {
    return lastPositionLogits(this.hidden(ids, options), this.lmHead);
  }

  /**
   * Training loss: next-token cross-entropy, plus lambda / D * sum_k L_MTP^k (V3 eq. 25) when MTP is on, plus
   * the sequence-wise balance losses of the MoE layers (V3 eq. 17) when alpha > 0. targets int32 [B, T] hold
   * the next tokens (-100 where no loss is taken); MTP module k's target at position i is targets[i + k].
   * Both extra terms are training objectives: under noGrad (validation) the loss is the next-token
   * cross-entropy alone, comparable with a dense model's.
   */
  loss(ids: Tensor, targets: Tensor): Tensor {
    const { vocabSize: V, mtpDepth: D, mtpLossWeight } = this.config;
    const balanceLosses: Tensor[] = [];
    const h = this.hidden(ids, {}, balanceLosses);
    let total = crossEntropy(reshape(linear(h, this.lmHead), [-1, V]), reshape(targets, [-1]));
    if (D > 0 && mtpLossWeight > 0 && isGradEnabled()) total = add(total, mul(this.mtpLoss(ids, targets, h, balanceLosses), mtpLossWeight / D));
    // Each MoE layer's balance loss is already weighted by alpha and averaged over the sequences.
    for (const balance of balanceLosses) total = add(total, balance);
    return total;
  }

  /**
   * After each optimizer step: the auxiliary-loss-free bias update of every MoE layer (V3 §2.1.2) from the
   * loads its training forwards counted since the last call; returns each MoE layer's load statistics.
   */
  afterStep(): MoeLoadStats[] {
    const stats: MoeLoadStats[] = [];
    for (const layer of [...this.layers, ...this.mtp]) {
      if (layer.mlp instanceof DeepSeekMoE) {
        const s = layer.mlp.updateBias();
        if (s) stats.push(s);
      }
    }
    return stats;
  }

  /** sum_k L_MTP^k: module k reads h^{k-1} at positions 0..T-k-1 and the embeddings of tokens k..T-1. */
  private mtpLoss(ids: Tensor, targets: Tensor, h: Tensor, balanceLosses: Tensor[]): Tensor {
    const T = ids.shape[1];
    let previous = h;
    let sum: Tensor | null = null;
    this.mtp.forEach((module, i) => {
      const k = i + 1;
      const n = T - k;
      if (n <= 0) return;
      const ahead = slice(ids, 1, k, T);
      const hk = module.predict(slice(previous, 1, 0, n), this.embedTokens.forward(ahead), positionsFrom(ahead, 0), this.rope, balanceLosses);
      const logits = linear(module.headNorm.forward(hk), this.lmHead);
      const lossK = crossEntropy(reshape(logits, [-1, this.config.vocabSize]), reshape(slice(targets, 1, k, T), [-1]));
      sum = sum ? add(sum, lossK) : lossK;
      previous = hk;
    });
    return sum ?? tensor([0], [], 'f32', ids.device);
  }

  /** One latent cache per layer: kvLoraRank + qkRopeHeadDim numbers per token (src/nn/mla.ts); 'bf16' for CUDA decode steps. */
  newCache(batch: number, capacity: number, format: CacheFormat = 'f32'): LayerKvCache[] {
    const c = this.config;
    return this.layers.map(() => emptyLatentKvCache(batch, capacity, c.kvLoraRank, c.qkRopeHeadDim, this.device, format));
  }
}
