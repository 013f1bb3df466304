// `r1 sft`: flags (and an optional JSON config file) -> SftConfig -> sft(), through the settings table below
// (src/cli/settings.ts validates and names what is wrong).
import type { Command } from 'commander';
import { z } from 'zod';
import { defaultSftConfig, sft, type SftConfig } from '../train/sft.ts';
import { nonNegativeInt, positiveInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

export const FIELDS: Fields<SftConfig> = {
  data: { schema: z.string().min(1, 'name a JSONL file of conversations'), flag: '--data <file.jsonl>', help: 'training conversations, one JSON object a line: {"messages": [...]} or {"prompt", "completion"} (strings or message lists)' },
  validationData: { schema: z.string().min(1).nullable(), flag: '--validation-data <file.jsonl>', help: 'validation conversations in the same formats; default: hold out --validation-fraction of --data' },
  validationFraction: { schema: z.number().min(0).lt(1), flag: '--validation-fraction <f>', help: 'share of --data held out for the validation loss when --validation-data is not given' },
  model: { schema: z.string().min(1, 'name a model folder'), flag: '--model <dir>', help: 'Hugging Face model folder to fine-tune (Llama, Qwen2 or DeepSeek-V3 family, with its tokenizer)' },
  out: { ...SHARED_FIELDS.out, help: 'run folder: metrics.jsonl, checkpoints/, final/ (the fine-tuned model)' },
  chatTemplate: { schema: z.string().min(1).nullable(), flag: '--chat-template <file.jinja>', help: "a Jinja chat template to use instead of the model's own (default: the model's, or r1ts's default when it has none)" },
  epochs: { schema: positiveInt, flag: '--epochs <n>', help: 'passes over the training data (R1 distillation: 2-3)' },
  batchSize: SHARED_FIELDS.batchSize,
  microBatchSize: SHARED_FIELDS.microBatchSize,
  maxLength: { schema: positiveInt, flag: '--max-length <tokens>', help: 'tokens per sequence: longer ones are cut (and counted); with --packing, the length of every row' },
  packing: { schema: z.boolean(), flag: '--packing', help: 'concatenate the sequences into rows of --max-length tokens (no padding; attention crosses sequences)' },
  lr: { ...SHARED_FIELDS.lr, help: 'peak learning rate (R1 distillation: 1e-4 for a 1.5B student)' },
  minLrRatio: { ...SHARED_FIELDS.minLrRatio, help: 'final learning rate as a fraction of the peak (R1 distillation: a tenth)' },
  warmup: SHARED_FIELDS.warmup,
  schedule: SHARED_FIELDS.schedule,
  weightDecay: { ...SHARED_FIELDS.weightDecay, help: 'AdamW decoupled weight decay (linear weights only)' },
  gradClip: { ...SHARED_FIELDS.gradClip, help: 'clip the global gradient norm to this (0: off)' },
  evalEvery: SHARED_FIELDS.evalEvery,
  checkpointEvery: { ...SHARED_FIELDS.checkpointEvery, help: 'updates between checkpoints' },
  keepCheckpoints: SHARED_FIELDS.keepCheckpoints,
  resume: SHARED_FIELDS.resume,
  seed: { schema: nonNegativeInt, flag: '--seed <n>', help: 'seed of the example order and of the held-out split' },
  timeLimitMinutes: SHARED_FIELDS.timeLimitMinutes,
  device: SHARED_FIELDS.device,
  precision: SHARED_FIELDS.precision,
};

const settings = new Settings('sft', FIELDS, defaultSftConfig, {
  required: { data: 'name a JSONL file of conversations', model: 'name the model folder to fine-tune' },
});

/** Flags (commander's parsed values) and an optional config file -> a validated SftConfig. */
export function sftConfigFromFlags(flags: Record<string, unknown>): SftConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  settings.register(program, {
    summary: 'supervised fine-tuning of a model folder on JSONL conversations (loss on assistant tokens only)',
    description:
      "Fine-tunes a Hugging Face model folder on conversations rendered with the model's chat template (a default R1-style " +
        'ChatML template when it has none), with the loss on assistant tokens only: R1\'s cold start, its rejection-sampling SFT ' +
        'and distillation. AdamW, warmup + decay over the epochs, validation loss, gradient clipping. Writes OUT/metrics.jsonl, ' +
        'checkpoints in OUT/checkpoints (resumable with --resume) and the model in OUT/final (its tokenizer_config.json keeps the template).',
  }, async (config) => {
    const result = await sft(config);
    const last = result.records.at(-1);
    console.log(`\n${result.steps} steps${last ? `: train loss ${last.loss.toFixed(4)}` : ''}${result.validationLoss === null ? '' : `, validation loss ${result.validationLoss.toFixed(4)}`}; model in ${result.finalDir}`);
  });
}
