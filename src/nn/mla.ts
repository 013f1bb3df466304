// Multi-head latent attention (DeepSeek-V2 §2.1, DeepSeek-V3 §2.1.1 eq. 1-11; SPEC.md 6).
//
// Keys and values of all heads are up-projected from one small latent per token, c_kv = RMSNorm(W_DKV h)
// (kv_lora_rank numbers), and rotary position information rides in a separate key k_r = RoPE(W_KR h) of
// qk_rope_head_dim numbers that every head shares. Head i attends with q_i = [q_c,i ; q_r,i] against
// k_i = [W_UK,i c_kv ; k_r] and reads values W_UV,i c_kv.
//
// Two ways to compute the same thing:
// - naive (training, and a prefill against the cache, whose latents are decompressed): materialise k and v for every
//   head and run ordinary multi-head attention;
// - absorbed (decoding against the latent cache): q_c,i . (W_UK,i c) = (W_UK,i^T q_c,i) . c, so W_UK folds
//   into the query and every head attends directly over the cached [c_kv ; k_r] rows, which serve as the keys
//   of an MQA (one kv head, D = kv_lora_rank + rope) whose values are the c_kv part of the same rows
//   (Dv = kv_lora_rank); W_UV is applied to each head's output afterwards. The cache holds
//   kv_lora_rank + qk_rope_head_dim numbers per token per layer (576 for V3), not 2 * heads * head_dim.
//
// Hugging Face names (transformers' DeepseekV3Attention): q_a_proj, q_a_layernorm, q_b_proj (or q_proj when
// q_lora_rank is null, as DeepSeek-V2-Lite), kv_a_proj_with_mqa (rows [c_kv ; k_r]), kv_a_layernorm,
// kv_b_proj (per head rows [k_nope ; v]), o_proj; per head, query rows are [q_nope ; q_rope].
import {
  attention, concat, copyInto, expand, matmul, mlaDecodeAttention, permute, reshape, rope, slice, split, transpose, writeColumns, zeros,
  defaultDevice, type CacheFormat, type Device, type RopeTables, type Tensor,
} from '../tensor/index.ts';
import type { DeviceDecodeStep, LayerKvCache } from './attention.ts';
import { Linear } from './linear.ts';
import { Module, type WeightInit } from './module.ts';
import { RMSNorm } from './rmsnorm.ts';

export interface MlaConfig {
  hiddenSize: number;
  numHeads: number;
  /** Rank of the query compression (1536 in V3); null: a plain q_proj (V2-Lite). */
  qLoraRank: number | null;
  /** d_c, the latent's width (512 in V3). */
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  rmsNormEps: number;
  /** Softmax scale: 1 / sqrt(qkNopeHeadDim + qkRopeHeadDim). */
  softmaxScale: number;
}

/**
 * The latent KV cache of one layer, in the shape the engine already handles (LayerKvCache): `k` is the only
 * buffer, [B, capacity, 1, kvLoraRank + qkRopeHeadDim], each row [c_kv (after its norm) ; k_r (rotated)], and
 * `v` is a view of its first kvLoraRank columns: the absorbed attention's values are the latents themselves.
 * A 'bf16' cache (CUDA decode steps only, as LayerKvCache.format says) packs two numbers to a float32 word.
 */
export function emptyLatentKvCache(batch: number, capacity: number, kvLoraRank: number, ropeDim: number, device: Device = defaultDevice(),
  format: CacheFormat = 'f32'): LayerKvCache {
  const perWord = format === 'bf16' ? 2 : 1;
  if (kvLoraRank % perWord !== 0 || ropeDim % perWord !== 0) throw new Error(`a ${format} latent cache needs an even kv_lora_rank, got ${kvLoraRank}`);
  const k = zeros([batch, capacity, 1, (kvLoraRank + ropeDim) / perWord], 'f32', device);
  return { k, v: slice(k, 3, 0, kvLoraRank / perWord), length: 0, buffers: [k], format };
}

export class MultiHeadLatentAttention extends Module {
  readonly qAProj: Linear | null;
  readonly qALayernorm: RMSNorm | null;
  readonly qBProj: Linear | null;
  readonly qProj: Linear | null;
  readonly kvAProjWithMqa: Linear;
  readonly kvALayernorm: RMSNorm;
  readonly kvBProj: Linear;
  readonly oProj: Linear;

  constructor(readonly config: MlaConfig, rng: WeightInit) {
    super();
    const c = config;
    const qkHeadDim = c.qkNopeHeadDim + c.qkRopeHeadDim;
    if (c.qLoraRank === null) {
      this.qProj = this.module('q_proj', new Linear(c.hiddenSize, c.numHeads * qkHeadDim, rng));
      this.qAProj = this.qALayernorm = this.qBProj = null;
    } else {
      this.qAProj = this.module('q_a_proj', new Linear(c.hiddenSize, c.qLoraRank, rng));
      this.qALayernorm = this.module('q_a_layernorm', new RMSNorm(c.qLoraRank, c.rmsNormEps));
      this.qBProj = this.module('q_b_proj', new Linear(c.qLoraRank, c.numHeads * qkHeadDim, rng));
      this.qProj = null;
    }
    this.kvAProjWithMqa = this.module('kv_a_proj_with_mqa', new Linear(c.hiddenSize, c.kvLoraRank + c.qkRopeHeadDim, rng));
    this.kvALayernorm = this.module('kv_a_layernorm', new RMSNorm(c.kvLoraRank, c.rmsNormEps));
    this.kvBProj = this.module('kv_b_proj', new Linear(c.kvLoraRank, c.numHeads * (c.qkNopeHeadDim + c.vHeadDim), rng));
    this.oProj = this.module('o_proj', new Linear(c.numHeads * c.vHeadDim, c.hiddenSize, rng));
  }

  /**
   * x [B, T, C] at int32 positions [B, T]; `tables` rotate qkRopeHeadDim dims. Without a cache: the naive path
   * (training, full sequences). With one: this step's latents are appended at cache.length and attention runs
   * over everything cached so far, absorbed for one query per row (decoding), naive over the decompressed latents
   * for several (prefill); with a CUDA device step as well, they go to its columns and the absorbed attention
   * reads its ends (mlaDecodeAttention), so that a CUDA graph of the step replays at any column.
   */
  forward(x: Tensor, positions: Tensor, tables: RopeTables, cache?: LayerKvCache, kvStart?: Tensor | null, step?: DeviceDecodeStep | null): Tensor {
    const [B, T] = x.shape;
    const { numHeads: H, qkNopeHeadDim: dn, qkRopeHeadDim: dr, kvLoraRank: dc } = this.config;
    const qFlat = this.qProj ? this.qProj.forward(x) : this.qBProj!.forward(this.qALayernorm!.forward(this.qAProj!.forward(x)));
    const [qNope, qRope] = split(reshape(qFlat, [B, T, H, dn + dr]), [dn, dr], 3);
    const qPe = rope(qRope, positions, tables);
    const [latentRaw, kRope] = split(this.kvAProjWithMqa.forward(x), [dc, dr], 2);
    const latent = this.kvALayernorm.forward(latentRaw); // [B, T, dc]
    const kPe = rope(reshape(kRope, [B, T, 1, dr]), positions, tables); // one rotary key for all heads

    if (!cache) return this.naive(qNope, qPe, latent, kPe, kvStart ?? null);
    const rows = concat([reshape(latent, [B, T, 1, dc]), kPe], 3); // [B, T, 1, dc + dr]: what the cache holds
    if (step) {
      if (!kvStart || T !== 1) throw new Error('a device decode step feeds one token per row and needs kvStart');
      writeColumns(cache.k, rows, step.column, cache.format);
      return this.absorbed(qNope, qPe, cache.k, kvStart, { ...step, format: cache.format ?? 'f32' });
    }
    if ((cache.format ?? 'f32') !== 'f32') throw new Error(`a ${cache.format} latent cache is read only by CUDA decode steps (DeviceDecodeStep)`);
    const end = cache.length + T;
    if (end > cache.k.shape[1]) throw new Error(`latent KV cache of ${cache.k.shape[1]} positions is full (needs ${end})`);
    copyInto(rows, slice(cache.k, 1, cache.length, end));
    cache.length = end;
    const keys = slice(cache.k, 1, 0, end); // [B, Tk, 1, dc + dr]
    // A prefill (several queries) decompresses the cached latents per head: the same attention, as an MHA of head
    // size dn + dr instead of an MQA of dc + dr (576 for V3, beyond the attention kernels' 256); one query per row
    // takes the absorbed form, which reads only the latents.
    if (T > 1) return this.naive(qNope, qPe, slice(keys, 3, 0, dc), slice(keys, 3, dc, dc + dr), kvStart ?? null);
    return this.absorbed(qNope, qPe, keys, kvStart ?? null, null);
  }

  /** Multi-head attention with each head's keys and values up-projected from the latents [B, Tk, (1,) dc]. */
  private naive(qNope: Tensor, qPe: Tensor, latent: Tensor, kPe: Tensor, kvStart: Tensor | null): Tensor {
    const [B, T, H, dn] = qNope.shape;
    const { qkRopeHeadDim: dr, vHeadDim: dv, softmaxScale } = this.config;
    const Tk = latent.shape[1];
    const kv = reshape(this.kvBProj.forward(latent), [B, Tk, H, dn + dv]);
    const [kNope, v] = split(kv, [dn, dv], 3);
    const k = concat([kNope, expand(reshape(kPe, [B, Tk, 1, dr]), [B, Tk, H, dr])], 3);
    const out = attention(concat([qNope, qPe], 3), k, v, { causal: true, kvStart, scale: softmaxScale });
    return this.oProj.forward(reshape(out, [B, T, H * dv]));
  }

  /**
   * One query per row over the latent cache's rows `keys` [B, Tk, 1, dc + dr] (or, with a device step, the whole
   * cache read up to step.kvEnd), with W_UK folded into the query and W_UV applied after (SPEC.md 6).
   */
  private absorbed(qNope: Tensor, qPe: Tensor, keys: Tensor, kvStart: Tensor | null, step: (DeviceDecodeStep & { format: CacheFormat }) | null): Tensor {
    const [B, T, H, dn] = qNope.shape;
    const { kvLoraRank: dc, vHeadDim: dv, softmaxScale } = this.config;
    // kv_b_proj.weight [H * (dn + dv), dc] holds, per head, W_UK (dn rows) then W_UV (dv rows).
    const wkvB = reshape(this.kvBProj.weight, [H, dn + dv, dc]);
    const wUK = slice(wkvB, 1, 0, dn); // [H, dn, dc]
    const wUV = slice(wkvB, 1, dn, dn + dv); // [H, dv, dc]
    const byHead = (t: Tensor, d: number) => permute(reshape(t, [B * T, H, d]), [1, 0, 2]); // [H, B*T, d]
    const fromHeads = (t: Tensor, d: number) => reshape(permute(t, [1, 0, 2]), [B, T, H, d]);
    const qLatent = concat([fromHeads(matmul(byHead(qNope, dn), wUK), dc), qPe], 3); // [W_UK,i^T q_c,i ; q_r,i] per head
    const o = step
      ? mlaDecodeAttention(qLatent, keys, kvStart!, step.kvEnd, dc, softmaxScale, step.format)
      : attention(qLatent, keys, slice(keys, 3, 0, dc), { causal: true, kvStart, scale: softmaxScale }); // values: the latents
    const perHead = matmul(byHead(o, dc), transpose(wUV, 1, 2)); // [H, B*T, dv]
    return this.oProj.forward(reshape(fromHeads(perHead, dv), [B, T, H * dv]));
  }
}
