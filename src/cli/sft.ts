// `r1 sft`: flags (and an optional JSON config file) -> SftConfig -> sft(), through the settings table below
// (src/cli/settings.ts validates and names what is wrong).
import type { Command } from 'commander';
import { z } from 'zod';
import { decayShapes } from '../train/schedule.ts';
import { defaultSftConfig, sft, type SftConfig } from '../train/sft.ts';
import { UserError } from '../util/errors.ts';
import { DEVICE_HELP, PRECISION_HELP, selectDevice } from './device.ts';
import { Settings, type Fields } from './settings.ts';

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const nonNegative = z.number().nonnegative();

export const FIELDS: Fields<SftConfig> = {
  data: { schema: z.string().min(1, 'name a JSONL file of conversations'), flag: '--data <file.jsonl>', help: 'training conversations, one JSON object a line: {"messages": [...]} or {"prompt", "completion"} (strings or message lists)' },
  validationData: { schema: z.string().min(1).nullable(), flag: '--validation-data <file.jsonl>', help: 'validation conversations in the same formats; default: hold out --validation-fraction of --data' },
  validationFraction: { schema: z.number().min(0).lt(1), flag: '--validation-fraction <f>', help: 'share of --data held out for the validation loss when --validation-data is not given' },
  model: { schema: z.string().min(1, 'name a model folder'), flag: '--model <dir>', help: 'Hugging Face model folder to fine-tune (Llama, Qwen2 or DeepSeek-V3 family, with its tokenizer)' },
  out: { schema: z.string().min(1), flag: '--out <dir>', help: 'run folder: metrics.jsonl, checkpoints/, final/ (the fine-tuned model)' },
  chatTemplate: { schema: z.string().min(1).nullable(), flag: '--chat-template <file.jinja>', help: "a Jinja chat template to use instead of the model's own (default: the model's, or r1ts's default when it has none)" },
  epochs: { schema: positiveInt, flag: '--epochs <n>', help: 'passes over the training data (R1 distillation: 2-3)' },
  batchSize: { schema: positiveInt, flag: '--batch-size <n>', help: 'sequences per optimizer update' },
  microBatchSize: { schema: positiveInt, flag: '--micro-batch-size <n>', help: 'sequences per forward pass (gradient accumulation above it)' },
  maxLength: { schema: positiveInt, flag: '--max-length <tokens>', help: 'tokens per sequence: longer ones are cut (and counted); with --packing, the length of every row' },
  packing: { schema: z.boolean(), flag: '--packing', help: 'concatenate the sequences into rows of --max-length tokens (no padding; attention crosses sequences)' },
  lr: { schema: z.number().positive(), flag: '--lr <rate>', help: 'peak learning rate (R1 distillation: 1e-4 for a 1.5B student)' },
  minLrRatio: { schema: z.number().min(0).max(1), flag: '--min-lr-ratio <r>', help: 'final learning rate as a fraction of the peak (R1 distillation: a tenth)' },
  warmup: { schema: nonNegativeInt, flag: '--warmup <n>', help: 'updates of linear warmup' },
  schedule: { schema: z.enum(Object.keys(decayShapes) as [keyof typeof decayShapes]), flag: '--schedule <shape>', help: `decay after warmup: ${Object.keys(decayShapes).join(', ')}` },
  weightDecay: { schema: nonNegative, flag: '--weight-decay <wd>', help: 'AdamW decoupled weight decay (linear weights only)' },
  gradClip: { schema: nonNegative, flag: '--grad-clip <norm>', help: 'clip the global gradient norm to this (0: off)' },
  evalEvery: { schema: positiveInt, flag: '--eval-every <n>', help: 'updates between validation losses' },
  checkpointEvery: { schema: positiveInt, flag: '--checkpoint-every <n>', help: 'updates between checkpoints' },
  keepCheckpoints: { schema: positiveInt, flag: null, help: 'checkpoints kept (older ones are deleted)' },
  resume: { schema: z.boolean(), flag: '--resume', help: 'continue the run in --out from its latest checkpoint, exactly where it stopped' },
  seed: { schema: nonNegativeInt, flag: '--seed <n>', help: 'seed of the example order and of the held-out split' },
  timeLimitMinutes: { schema: z.number().positive().nullable(), flag: '--time-limit-minutes <m>', help: 'stop after this much training (saving a checkpoint and the model)' },
  device: { schema: z.enum(['cpu', 'cuda']), flag: '--device <device>', help: DEVICE_HELP },
  precision: { schema: z.enum(['f32', 'bf16']), flag: '--precision <p>', help: PRECISION_HELP },
};

const settings = new Settings('sft', FIELDS, defaultSftConfig);

/** Flags (commander's parsed values) and an optional config file -> a validated SftConfig. */
export function sftConfigFromFlags(flags: Record<string, unknown>): SftConfig {
  const config = settings.fromFlags(flags);
  if (config.data === '') throw new UserError('--data: name a JSONL file of conversations');
  if (config.model === '') throw new UserError('--model: name the model folder to fine-tune');
  return config;
}

export function register(program: Command): void {
  const command = program
    .command('sft')
    .summary('supervised fine-tuning of a model folder on JSONL conversations (loss on assistant tokens only)')
    .description(
      "Fine-tunes a Hugging Face model folder on conversations rendered with the model's chat template (a default R1-style " +
        'ChatML template when it has none), with the loss on assistant tokens only: R1\'s cold start, its rejection-sampling SFT ' +
        'and distillation. AdamW, warmup + decay over the epochs, validation loss, gradient clipping. Writes OUT/metrics.jsonl, ' +
        'checkpoints in OUT/checkpoints (resumable with --resume) and the model in OUT/final (its tokenizer_config.json keeps the template).',
    );
  settings.addOptions(command);
  command.action(async (flags: Record<string, unknown>) => {
    const config = sftConfigFromFlags(flags);
    selectDevice(config.device, config.precision);
    const result = await sft(config);
    const last = result.records.at(-1);
    console.log(`\n${result.steps} steps${last ? `: train loss ${last.loss.toFixed(4)}` : ''}${result.validationLoss === null ? '' : `, validation loss ${result.validationLoss.toFixed(4)}`}; model in ${result.finalDir}`);
  });
}
