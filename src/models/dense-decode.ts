// A dense model's decode step on CUDA in fused kernels: what the sampling engine records as a CUDA graph
// (src/generate/engine.ts). DenseModel.lastLogits launches ~28 kernels a layer for one token per row (the
// norms, three bf16 roundings and GEMMs and bias adds for q, k and v, two ropes, two column writes, attention, the
// output projection, residual adds, gate, up, SwiGLU, down); even replayed from a graph each costs ~3 us, which
// made a step of the 494M shape ~2.1 ms where its weights stream in 0.23 ms (docs/BENCHMARKS.md). Here a layer
// is 10: q, k and v come from one GEMM over their concatenated weights with the bias in its epilogue, and so do
// gate and up; RoPE writes the keys and values into the cache itself; a residual add, the next RMSNorm and the
// rounding of the next GEMM's operand are one kernel, as are SwiGLU and its rounding (in bf16, SwiGLU is the
// gate|up GEMM's own epilogue where the skinny GEMM runs it). In bf16 matmul precision
// the activations that GEMMs read are written as bf16 by the kernels before them (the attention too), so no GEMM
// rounds an operand.
//
// The values are those of lastLogits up to the order of float32 sums inside a GEMM (cuBLASLt picks its own
// algorithm for the wider concatenated shapes): every kernel computes each element with the unfused kernel's
// float32 expression.
import type { DeviceDecodeStep, LayerKvCache } from '../nn/attention.ts';
import { addRmsNorm, concat, decodeAttention, decodeLinear, decodeLinearRopeKv, decodeLinearSwiglu, dispose, groupGateUp, keep, matmulPrecision, packBf16, pairRopeRows, reshape, ropeWriteKv, scope, swigluRows, type CacheFormat, type Tensor } from '../tensor/index.ts';
import type { DenseModel } from './dense.ts';

/** The weights a fused decode step reads beside the model's own: per layer, projections concatenated by rows. */
export interface DenseDecodeWeights {
  /**
   * Per layer: q, k and v as one [(Hq + 2 Hkv) D, C] matrix and their biases as one vector (null without bias);
   * gate and up as one [2 I, C]: gate then up in float32, in groups of 8 rows of each in bf16 (groupGateUp: the
   * layout whose SwiGLU is the GEMM's epilogue, decodeLinearSwiglu).
   */
  layers: { qkv: Tensor; qkvBias: Tensor | null; gateUp: Tensor }[];
  /** 'bf16' in bf16 matmul precision: these weights and the activations GEMMs read are bf16, packed (ops.packBf16). */
  format: CacheFormat;
  /**
   * In bf16, when RoPE turns whole heads (rotDim = D, a multiple of 16): q|k|v's rows (and bias) in tiles of
   * rotation pairs (pairRopeRows), whose RoPE and cache writes are the GEMM's epilogue (decodeLinearRopeKv).
   */
  ropePaired: boolean;
}

/**
 * Concatenates a CUDA dense model's projections as of now (a copy: they do not follow later updates of the
 * model, so a decode graph builds them when it is recorded). Kept outside scopes; freed by disposeDecodeWeights.
 */
export function denseDecodeWeights(model: DenseModel): DenseDecodeWeights {
  const format: CacheFormat = matmulPrecision() === 'bf16' ? 'bf16' : 'f32';
  const D = model.config.headDim;
  const ropePaired = format === 'bf16' && model.rope.rotDim === D && D % 16 === 0;
  const pair = (t: Tensor) => (ropePaired ? pairRopeRows(t, D, model.rope.interleaved) : t);
  const join = (parts: Tensor[]) => keep(scope(() => (format === 'bf16' ? packBf16(concat(parts, 0)) : concat(parts, 0))));
  const layers = model.layers.map(({ selfAttn: { qProj, kProj, vProj }, mlp }) => ({
    qkv: join([pair(qProj.weight), pair(kProj.weight), pair(vProj.weight)]),
    qkvBias: qProj.bias && kProj.bias && vProj.bias ? keep(scope(() => concat([pair(qProj.bias!), pair(kProj.bias!), pair(vProj.bias!)], 0))) : null,
    gateUp: format === 'bf16' ? keep(scope(() => packBf16(groupGateUp(mlp.gateProj.weight, mlp.upProj.weight)))) : join([mlp.gateProj.weight, mlp.upProj.weight]),
  }));
  return { layers, format, ropePaired };
}

export function disposeDecodeWeights(weights: DenseDecodeWeights): void {
  for (const layer of weights.layers) [layer.qkv, layer.qkvBias, layer.gateUp].forEach((t) => t && dispose(t));
}

/**
 * Logits [B, V] of one decode step: ids and positions int32 [B, 1], each row's key and value written at
 * step.column and attending to [kvStart, step.kvEnd) of its cache (DeviceDecodeStep), as model.lastLogits
 * computes them with { positions, cache, kvStart, step }.
 */
export function denseDecodeLogits(model: DenseModel, weights: DenseDecodeWeights, ids: Tensor, positions: Tensor, cache: LayerKvCache[], kvStart: Tensor,
  step: DeviceDecodeStep): Tensor {
  const c = model.config;
  const B = ids.shape[0];
  const format = weights.format;
  const heads = { q: c.numHeads, kv: c.numKvHeads };
  let x = reshape(model.embedTokens.forward(ids), [B, c.hiddenSize]);
  let { normed } = addRmsNorm(x, null, model.layers[0].inputLayernorm.weight, model.layers[0].inputLayernorm.eps, format);
  model.layers.forEach((layer, l) => {
    const { qkv, qkvBias, gateUp } = weights.layers[l];
    const kv = cache[l];
    const cacheFormat = kv.format ?? 'f32';
    const q = weights.ropePaired
      ? decodeLinearRopeKv(normed, qkv, qkvBias, positions, model.rope, step.column, kv, heads, cacheFormat)
      : ropeWriteKv(decodeLinear(normed, qkv, qkvBias, { x: format, weight: format }), positions, model.rope, step.column, kv, heads, cacheFormat);
    const attended = reshape(decodeAttention(q, kv.k, kv.v, kvStart, step.kvEnd, cacheFormat, format), [B, c.numHeads * c.headDim / (format === 'bf16' ? 2 : 1)]);
    const h = addRmsNorm(x, decodeLinear(attended, layer.selfAttn.oProj.weight, layer.selfAttn.oProj.bias, { x: format }), layer.postAttentionLayernorm.weight,
      layer.postAttentionLayernorm.eps, format);
    const act = format === 'bf16' ? decodeLinearSwiglu(h.normed, gateUp) : swigluRows(decodeLinear(h.normed, gateUp, null), format);
    const down = decodeLinear(act, layer.mlp.downProj.weight, null, { x: format });
    const next = model.layers[l + 1]?.inputLayernorm ?? model.norm;
    ({ sum: x, normed } = addRmsNorm(h.sum, down, next.weight, next.eps, format));
  });
  return decodeLinear(normed, model.lmHead, null, { x: format });
}
