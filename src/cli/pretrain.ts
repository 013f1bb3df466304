// `r1 pretrain`: flags (and an optional JSON config file) -> PretrainConfig -> pretrain(), through the settings
// table below (src/cli/settings.ts validates and names what is wrong).
import type { Command } from 'commander';
import { z } from 'zod';
import { denseSizes } from '../models/dense.ts';
import { defaultPretrainConfig, pretrain, type PretrainConfig } from '../train/pretrain.ts';
import { nonNegativeInt, positiveInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

/** Each config field: its schema, and its flag (null: settable in --config only) with help text. */
const FIELDS: Fields<PretrainConfig> = {
  corpus: { schema: z.string().min(1).nullable(), flag: '--corpus <file>', help: 'training text: .txt (one document) or .jsonl (a "text" string per line); default: a generated synthetic corpus' },
  syntheticDocuments: { schema: positiveInt, flag: '--synthetic-documents <n>', help: 'documents of the generated corpus' },
  out: SHARED_FIELDS.out,
  family: { schema: z.enum(['dense', 'deepseek']), flag: '--family <family>', help: 'family of a new model: dense (Llama/Qwen2 shapes, see --size) or deepseek (MLA + DeepSeekMoE + MTP, a small default shape)' },
  size: { schema: z.enum(Object.keys(denseSizes) as [keyof typeof denseSizes]), flag: '--size <size>', help: `shape of a new model: ${Object.keys(denseSizes).join(', ')} parameters` },
  modelOverrides: { schema: z.record(z.string(), z.unknown()) as unknown as z.ZodType<PretrainConfig['modelOverrides']>, flag: null, help: 'DenseConfig fields that change the preset (e.g. {"numLayers": 2})' },
  model: { schema: z.string().min(1).nullable(), flag: '--model <dir>', help: 'Hugging Face model directory to continue training (its tokenizer is used)' },
  tokenizer: { schema: z.string().min(1).nullable(), flag: '--tokenizer <path>', help: 'tokenizer.json (or its folder) for a new model; default: train a byte-level BPE on the corpus' },
  vocabSize: { schema: z.number().int().min(300), flag: '--vocab-size <n>', help: 'vocabulary of the trained BPE (it stops early when the corpus runs out of pairs)' },
  steps: { schema: positiveInt, flag: '--steps <n>', help: 'optimizer updates in the whole run' },
  batchSize: { schema: positiveInt, flag: '--batch-size <n>', help: 'sequences per micro-batch' },
  seqLen: { schema: positiveInt, flag: '--seq-len <n>', help: 'tokens per sequence' },
  gradAccumSteps: { schema: positiveInt, flag: '--grad-accum-steps <n>', help: 'micro-batches per update' },
  lr: SHARED_FIELDS.lr,
  minLrRatio: SHARED_FIELDS.minLrRatio,
  warmup: SHARED_FIELDS.warmup,
  schedule: SHARED_FIELDS.schedule,
  weightDecay: { ...SHARED_FIELDS.weightDecay, help: 'AdamW decoupled weight decay (linear weights only)' },
  beta1: { schema: z.number().min(0).lt(1), flag: null, help: 'AdamW beta1' },
  beta2: { schema: z.number().min(0).lt(1), flag: null, help: 'AdamW beta2' },
  eps: { schema: z.number().positive(), flag: null, help: 'AdamW epsilon' },
  gradClip: { ...SHARED_FIELDS.gradClip, help: 'clip the global gradient norm to this (0: off)' },
  validationFraction: { schema: z.number().gt(0).lt(1), flag: null, help: 'fraction of the tokens held out for validation' },
  evalEvery: SHARED_FIELDS.evalEvery,
  evalBatches: { schema: positiveInt, flag: null, help: 'batches per validation' },
  checkpointEvery: { ...SHARED_FIELDS.checkpointEvery, help: 'updates between checkpoints' },
  keepCheckpoints: SHARED_FIELDS.keepCheckpoints,
  resume: SHARED_FIELDS.resume,
  seed: { schema: nonNegativeInt, flag: '--seed <n>', help: 'seed of the corpus, the initial weights and the batches' },
  timeLimitMinutes: SHARED_FIELDS.timeLimitMinutes,
  samples: { schema: nonNegativeInt, flag: '--samples <n>', help: 'samples printed at the end' },
  sampleTokens: { schema: positiveInt, flag: null, help: 'tokens per sample' },
  device: SHARED_FIELDS.device,
  precision: SHARED_FIELDS.precision,
};

const settings = new Settings('pretrain', FIELDS, defaultPretrainConfig);

/** Reads and validates a --config JSON file (fields of PretrainConfig, all optional). */
export function readConfigFile(file: string): Partial<PretrainConfig> {
  return settings.readFile(file);
}

/** Flags (commander's parsed strings) and an optional config file -> a validated PretrainConfig. */
export function configFromFlags(flags: Record<string, unknown>): PretrainConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  settings.register(program, {
    summary: 'pretrain a dense (Llama/Qwen2) or DeepSeek model on a corpus (default: a 5M dense model on a generated corpus, a few minutes on a CPU)',
    description:
      'Next-token pretraining with AdamW, warmup + cosine decay, gradient clipping and periodic validation. ' +
        'Writes OUT/metrics.jsonl (one record per step), checkpoints in OUT/checkpoints (resumable with --resume), ' +
        'and the final Hugging Face model directory (weights + tokenizer) in OUT/final, then prints a few samples.',
  }, async (config) => {
    const result = await pretrain(config);
    console.log(`\n${result.steps} steps: train loss ${result.trainLoss.toFixed(3)}, validation loss ${result.validationLoss.toFixed(3)}, ${Math.round(result.tokensPerSecond)} tokens/s; model in ${result.finalDir}`);
    for (const [i, sample] of result.samples.entries()) console.log(`\n--- sample ${i + 1}\n${sample.prompt}${sample.text}`);
  });
}
