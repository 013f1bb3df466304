// `r1 pretrain`: flags (and an optional JSON config file) -> PretrainConfig -> pretrain(), through the settings
// table below (src/cli/settings.ts validates and names what is wrong).
import type { Command } from 'commander';
import { z } from 'zod';
import { denseSizes } from '../models/dense.ts';
import { decayShapes } from '../train/schedule.ts';
import { defaultPretrainConfig, pretrain, type PretrainConfig } from '../train/pretrain.ts';
import { DEVICE_HELP, PRECISION_HELP, selectDevice } from './device.ts';
import { Settings, type Fields } from './settings.ts';

const positiveInt = z.number().int().positive();
const nonNegative = z.number().nonnegative();

/** Each config field: its schema, and its flag (null: settable in --config only) with help text. */
const FIELDS: Fields<PretrainConfig> = {
  corpus: { schema: z.string().min(1).nullable(), flag: '--corpus <file>', help: 'training text: .txt (one document) or .jsonl (a "text" string per line); default: a generated synthetic corpus' },
  syntheticDocuments: { schema: positiveInt, flag: '--synthetic-documents <n>', help: 'documents of the generated corpus' },
  out: { schema: z.string().min(1), flag: '--out <dir>', help: 'run folder: metrics.jsonl, checkpoints/, final/' },
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
  lr: { schema: z.number().positive(), flag: '--lr <rate>', help: 'peak learning rate' },
  minLrRatio: { schema: z.number().min(0).max(1), flag: '--min-lr-ratio <r>', help: 'final learning rate as a fraction of the peak' },
  warmup: { schema: z.number().int().nonnegative(), flag: '--warmup <n>', help: 'updates of linear warmup' },
  schedule: { schema: z.enum(Object.keys(decayShapes) as [keyof typeof decayShapes]), flag: '--schedule <shape>', help: `decay after warmup: ${Object.keys(decayShapes).join(', ')}` },
  weightDecay: { schema: nonNegative, flag: '--weight-decay <wd>', help: 'AdamW decoupled weight decay (linear weights only)' },
  beta1: { schema: z.number().min(0).lt(1), flag: null, help: 'AdamW beta1' },
  beta2: { schema: z.number().min(0).lt(1), flag: null, help: 'AdamW beta2' },
  eps: { schema: z.number().positive(), flag: null, help: 'AdamW epsilon' },
  gradClip: { schema: nonNegative, flag: '--grad-clip <norm>', help: 'clip the global gradient norm to this (0: off)' },
  validationFraction: { schema: z.number().gt(0).lt(1), flag: null, help: 'fraction of the tokens held out for validation' },
  evalEvery: { schema: positiveInt, flag: '--eval-every <n>', help: 'updates between validation losses' },
  evalBatches: { schema: positiveInt, flag: null, help: 'batches per validation' },
  checkpointEvery: { schema: positiveInt, flag: '--checkpoint-every <n>', help: 'updates between checkpoints' },
  keepCheckpoints: { schema: positiveInt, flag: null, help: 'checkpoints kept (older ones are deleted)' },
  resume: { schema: z.boolean(), flag: '--resume', help: 'continue the run in --out from its latest checkpoint, exactly where it stopped' },
  seed: { schema: z.number().int().nonnegative(), flag: '--seed <n>', help: 'seed of the corpus, the initial weights and the batches' },
  timeLimitMinutes: { schema: z.number().positive().nullable(), flag: '--time-limit-minutes <m>', help: 'stop after this much training (saving a checkpoint and the model)' },
  samples: { schema: z.number().int().nonnegative(), flag: '--samples <n>', help: 'samples printed at the end' },
  sampleTokens: { schema: positiveInt, flag: null, help: 'tokens per sample' },
  device: { schema: z.enum(['cpu', 'cuda']), flag: '--device <device>', help: DEVICE_HELP },
  precision: { schema: z.enum(['f32', 'bf16']), flag: '--precision <p>', help: PRECISION_HELP },
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
  const command = program
    .command('pretrain')
    .summary('pretrain a dense (Llama/Qwen2) or DeepSeek model on a corpus (default: a 5M dense model on a generated corpus, a few minutes on a CPU)')
    .description(
      'Next-token pretraining with AdamW, warmup + cosine decay, gradient clipping and periodic validation. ' +
        'Writes OUT/metrics.jsonl (one record per step), checkpoints in OUT/checkpoints (resumable with --resume), ' +
        'and the final Hugging Face model directory (weights + tokenizer) in OUT/final, then prints a few samples.',
    );
  settings.addOptions(command);
  command.action(async (flags: Record<string, unknown>) => {
    const config = configFromFlags(flags);
    selectDevice(config.device, config.precision);
    const result = await pretrain(config);
    console.log(`\n${result.steps} steps: train loss ${result.trainLoss.toFixed(3)}, validation loss ${result.validationLoss.toFixed(3)}, ${Math.round(result.tokensPerSecond)} tokens/s; model in ${result.finalDir}`);
    for (const [i, sample] of result.samples.entries()) console.log(`\n--- sample ${i + 1}\n${sample.prompt}${sample.text}`);
  });
}
