// `r1 reward-model train`: flags (and an optional JSON config file) -> RewardModelConfig -> trainRewardModel().
// `r1 reward-model score`: a reward-model folder and preference pairs (or one text) -> rewards and accuracy.
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { loadRewardModel } from '../models/reward-model.ts';
import { defaultRewardModelConfig, readPreferencePairs, scorePreferencePairs, type RewardModelConfig } from '../train/reward-model.ts';
import { UserError } from '../util/errors.ts';
import { deviceOptions, selectDevice } from './device.ts';
import { positiveInt, nonNegativeInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

const FIELDS: Fields<RewardModelConfig> = {
  data: { schema: z.string().min(1, 'name a JSONL file of preference pairs'), flag: '--data <file.jsonl>', help: 'preference pairs in TRL\'s format: {"chosen", "rejected"} with an optional "prompt" (strings or message lists)' },
  model: { schema: z.string().min(1, 'name a model folder'), flag: '--model <dir>', help: 'Hugging Face folder: a causal LM (gets a new reward head) or a reward model to train further' },
  out: { ...SHARED_FIELDS.out, help: 'run folder: metrics.jsonl, checkpoints/, final/ (the reward model)' },
  resume: SHARED_FIELDS.resume,
  epochs: { schema: positiveInt, flag: '--epochs <n>', help: 'passes over the training pairs (paper: 1)' },
  batchSize: { ...SHARED_FIELDS.batchSize, help: 'pairs per optimizer step' },
  microBatchSize: { ...SHARED_FIELDS.microBatchSize, help: 'pairs per forward pass (gradient accumulation above it)' },
  lr: { ...SHARED_FIELDS.lr, help: 'peak learning rate (paper: 6e-6 at 600B parameters)' },
  warmup: { ...SHARED_FIELDS.warmup, help: 'steps of linear warmup' },
  schedule: SHARED_FIELDS.schedule,
  minLrRatio: SHARED_FIELDS.minLrRatio,
  weightDecay: SHARED_FIELDS.weightDecay,
  gradClip: SHARED_FIELDS.gradClip,
  maxLength: { schema: positiveInt, flag: '--max-length <tokens>', help: 'pairs with a longer chosen or rejected text are left out (and counted)' },
  validationFraction: { schema: z.number().min(0).lt(1), flag: '--validation-fraction <f>', help: 'fraction of pairs held out for the accuracy report' },
  seed: { schema: nonNegativeInt, flag: '--seed <n>', help: 'seed of the new head and of the pair order' },
  checkpointEvery: { ...SHARED_FIELDS.checkpointEvery, help: 'steps between checkpoints (and held-out evaluations)' },
  keepCheckpoints: SHARED_FIELDS.keepCheckpoints,
  timeLimitMinutes: { ...SHARED_FIELDS.timeLimitMinutes, help: 'stop after this long (saving a checkpoint)' },
  device: SHARED_FIELDS.device,
  precision: SHARED_FIELDS.precision,
};

const settings = new Settings('reward-model train', FIELDS, defaultRewardModelConfig, {
  required: { data: 'name a JSONL file of preference pairs', model: 'name the model folder to train' },
});

/** Flags (commander's parsed values) and an optional config file -> a validated RewardModelConfig. */
export function rewardModelConfigFromFlags(flags: Record<string, unknown>): RewardModelConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  const group = program
    .command('reward-model')
    .summary('train a scalar reward model on preference pairs (Bradley-Terry), or score with one')
    .description('A reward model is a causal LM with a scalar head (transformers\' XForSequenceClassification, num_labels 1), as R1\'s last RL stage uses for general prompts.');

  settings.register(group, {
    description:
      'Fits a reward head (and the whole backbone) to chosen/rejected pairs with the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected). ' +
        'OUT/metrics.jsonl has one record per step (loss, accuracy, margin, held-out accuracy); checkpoints in OUT/checkpoints resume exactly with --resume; ' +
        'OUT/final is the reward model, a folder that transformers opens with AutoModelForSequenceClassification.',
  }, async (config) => {
    const { trainRewardModel } = await import('../train/reward-model.ts');
    const result = await trainRewardModel(config);
    const held = result.validation === null ? 'no held-out pairs' : `held-out accuracy ${(100 * result.validation.accuracy).toFixed(1)}% on ${result.validation.pairs} pairs (loss ${result.validation.loss.toFixed(4)})`;
    console.log(`${result.steps} steps on ${result.counts.train} pairs; ${held}\nreward model: ${result.finalDir}`);
  });

  const score = group
    .command('score')
    .description('Scores each pair of a preference file (prints the accuracy, writes per-pair rewards with --out), or one --text.')
    .requiredOption('--model <dir>', 'reward-model folder (r1 reward-model train\'s final/, or a transformers sequence classifier with num_labels 1)')
    .option('--data <file.jsonl>', 'preference pairs to score (TRL format)')
    .option('--text <text>', 'one text to score')
    .option('--out <file.jsonl>', 'write {"id", "chosen", "rejected"} rewards, one line per pair')
    .option('--batch-size <n>', 'texts per forward pass', (v) => Number(v), 16);
  deviceOptions(score, { precision: false });
  score.action(async (opts: { model: string; data?: string; text?: string; out?: string; batchSize: number; device: 'cpu' | 'cuda' }) => {
    if ((opts.data === undefined) === (opts.text === undefined)) throw new UserError('give either --data FILE or --text TEXT');
    if (!(Number.isInteger(opts.batchSize) && opts.batchSize > 0)) throw new UserError(`--batch-size ${opts.batchSize}: must be a positive integer`);
    selectDevice(opts.device);
    const pairs = opts.data === undefined ? null : readPreferencePairs(opts.data);
    const { model, tokenizer } = await loadRewardModel(opts.model);
    if (pairs === null) {
      console.log(model.scoreIds([tokenizer.encode(opts.text!)])[0].toFixed(6));
      return;
    }
    const { scores, accuracy } = scorePreferencePairs(model, tokenizer, pairs, opts.batchSize);
    if (opts.out !== undefined) await writeFile(opts.out, scores.map((s) => `${JSON.stringify(s)}\n`).join(''));
    console.log(`${scores.length} pairs: accuracy ${(100 * accuracy).toFixed(1)}% (reward of chosen > reward of rejected)`);
  });
}
