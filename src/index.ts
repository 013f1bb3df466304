// The r1ts library: everything the `r1` command can do, a TypeScript user can do from here.
export * from './tensor/index.ts';
export * from './nn/index.ts';
export * from './models/dense.ts';
export * from './models/deepseek.ts';
export * from './models/pretrained.ts';
export * from './models/reward-model.ts';
export * from './io/safetensors.ts';
export * from './io/hf.ts';
export * from './io/checkpoint.ts';
export * from './tokenizer/index.ts';
export * from './generate/engine.ts';
export * from './generate/sampler.ts';
export * from './train/optimizer.ts';
export * from './train/schedule.ts';
export * from './train/pretrain.ts';
export * from './train/reward-model.ts';
export * from './rl/grpo.ts';
export * from './rl/trainer.ts';
export * from './rewards/reward.ts';
export * from './rewards/answer.ts';
export * from './rewards/template.ts';
export * from './tasks/index.ts';
export * from './eval/evaluate.ts';
export * from './eval/estimators.ts';
export * from './pipeline/zero.ts';
// Both training loops write metrics.jsonl; one name for it.
export { METRICS_FILE } from './train/pretrain.ts';
export { UserError } from './util/errors.ts';
