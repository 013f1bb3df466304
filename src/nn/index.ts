export { Module } from './module.ts';
export { Linear } from './linear.ts';
export { Embedding } from './embedding.ts';
export { RMSNorm } from './rmsnorm.ts';
export { SwiGluMlp } from './mlp.ts';
export { GroupedQueryAttention, emptyLayerKvCache, type LayerKvCache, type AttentionConfig } from './attention.ts';
export { inverseFrequencies, ropeAttentionFactor, ropeTables, yarnMscale, type RopeScaling, type YarnScaling } from './rope.ts';
