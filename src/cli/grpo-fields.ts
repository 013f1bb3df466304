// The settings `r1 zero` and `r1 rl` share: GRPO's (src/rl/trainer.ts) and the before/after evaluation's.
import { z } from 'zod';
import type { EvalSettings } from '../pipeline/rl.ts';
import { lossVariants } from '../rl/grpo.ts';
import type { GrpoConfig } from '../rl/trainer.ts';
import { UserError } from '../util/errors.ts';
import { nonNegative, nonNegativeInt, positiveInt, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

export const GRPO_FIELDS: Fields<GrpoConfig> = {
  steps: { schema: positiveInt, flag: '--steps <n>', help: 'GRPO steps (rollouts)' },
  promptsPerStep: { schema: positiveInt, flag: '--prompts-per-step <n>', help: 'questions per step (P)' },
  groupSize: { schema: z.number().int().min(2), flag: '--group-size <n>', help: 'completions per question (G)' },
  maxNewTokens: { schema: positiveInt, flag: '--max-new-tokens <n>', help: 'completion length limit in tokens (training and evaluation)' },
  temperature: { schema: z.number().positive(), flag: '--temperature <t>', help: 'sampling temperature of the rollouts (R1-Zero: 1.0)' },
  topP: { schema: z.number().gt(0).max(1), flag: '--top-p <p>', help: 'nucleus mass of the rollouts' },
  dynamicSampling: { schema: z.boolean(), flag: '--dynamic-sampling', help: 'DAPO dynamic sampling: drop groups whose rewards are all equal and sample more' },
  maxSamplingRounds: { schema: positiveInt, flag: '--max-sampling-rounds <n>', help: 'sampling rounds per step at most with dynamic sampling' },
  overlongCacheTokens: { schema: nonNegativeInt, flag: '--overlong-cache-tokens <n>', help: 'DAPO overlong reward shaping window L_cache (0: off)' },
  lossType: { schema: z.enum(Object.keys(lossVariants) as [keyof typeof lossVariants]), flag: '--loss-type <name>', help: `loss aggregation: ${Object.keys(lossVariants).join(', ')}` },
  epsLow: { schema: nonNegative, flag: '--eps-low <e>', help: 'clip range below 1' },
  epsHigh: { schema: nonNegative, flag: '--eps-high <e>', help: 'clip range above 1 (DAPO clip-higher: 0.28)' },
  beta: { schema: nonNegative, flag: '--beta <b>', help: 'k3 KL coefficient (0 skips the reference model)' },
  mu: { schema: positiveInt, flag: '--mu <n>', help: 'inner iterations over each rollout' },
  miniBatches: { schema: positiveInt, flag: '--mini-batches <n>', help: 'optimizer updates per inner iteration' },
  microBatchSize: SHARED_FIELDS.microBatchSize,
  overlongFiltering: { schema: z.boolean(), flag: '--overlong-filtering', help: 'DAPO overlong filtering: truncated completions are masked out of the loss' },
  referenceRefreshEvery: { schema: nonNegativeInt, flag: '--reference-refresh-every <n>', help: 'copy the policy into the reference every N steps (0: never)' },
  lr: SHARED_FIELDS.lr,
  warmup: { ...SHARED_FIELDS.warmup, help: 'steps of linear warmup' },
  schedule: SHARED_FIELDS.schedule,
  minLrRatio: { ...SHARED_FIELDS.minLrRatio, flag: null },
  weightDecay: SHARED_FIELDS.weightDecay,
  adamBeta1: { schema: z.number().min(0).lt(1), flag: null, help: 'AdamW beta1' },
  adamBeta2: { schema: z.number().min(0).lt(1), flag: null, help: 'AdamW beta2' },
  adamEps: { schema: z.number().positive(), flag: null, help: 'AdamW epsilon' },
  gradClip: SHARED_FIELDS.gradClip,
  seed: { schema: nonNegativeInt, flag: '--seed <n>', help: 'seed of the prompt draws and the sampling' },
  checkpointEvery: SHARED_FIELDS.checkpointEvery,
  keepCheckpoints: SHARED_FIELDS.keepCheckpoints,
  timeLimitMinutes: { ...SHARED_FIELDS.timeLimitMinutes, help: 'stop GRPO after this long (saving a checkpoint)' },
};

export const EVAL_FIELDS: Fields<EvalSettings> = {
  evalK: { schema: positiveInt, flag: '--eval-k <n>', help: 'samples per test question in the before/after evaluation' },
  evalTemperature: { schema: nonNegative, flag: '--eval-temperature <t>', help: 'evaluation temperature (paper: 0.6)' },
  evalTopP: { schema: z.number().gt(0).max(1), flag: '--eval-top-p <p>', help: 'evaluation nucleus mass (paper: 0.95)' },
  evalLimit: { schema: positiveInt.nullable(), flag: '--eval-limit <n>', help: 'test questions evaluated (per source)' },
};

/** What the table's schemas cannot say about GRPO settings. */
export function checkGrpoConfig(config: Pick<GrpoConfig, 'epsLow'>): void {
  if (config.epsLow >= 1) throw new UserError(`--eps-low ${config.epsLow}: must be below 1 (the ratio is clipped at 1 - epsLow)`);
}
