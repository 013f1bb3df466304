// The settings that several commands take, each spelled once: its schema, its flag, and the help most commands
// show. A command whose help says more for its own case spreads the field and replaces only the help
// (`lr: { ...SHARED_FIELDS.lr, help: 'peak learning rate (R1 distillation: 1e-4)' }`), so that a flag is never
// spelled or validated two ways.
import { z } from 'zod';
import { decayShapes } from '../train/schedule.ts';
import { DEVICE_HELP, PRECISION_HELP } from './device.ts';
import { fraction, nonNegative, nonNegativeInt, positiveInt } from './settings.ts';

export const SHARED_FIELDS = {
  out: { schema: z.string().min(1), flag: '--out <dir>', help: 'run folder: metrics.jsonl, checkpoints/, final/' },
  resume: { schema: z.boolean(), flag: '--resume', help: 'continue the run in --out from its latest checkpoint, exactly where it stopped' },
  batchSize: { schema: positiveInt, flag: '--batch-size <n>', help: 'sequences per optimizer update' },
  microBatchSize: { schema: positiveInt, flag: '--micro-batch-size <n>', help: 'sequences per forward pass (gradient accumulation above it)' },
  lr: { schema: z.number().positive(), flag: '--lr <rate>', help: 'peak learning rate' },
  minLrRatio: { schema: fraction, flag: '--min-lr-ratio <r>', help: 'final learning rate as a fraction of the peak' },
  warmup: { schema: nonNegativeInt, flag: '--warmup <n>', help: 'updates of linear warmup' },
  schedule: { schema: z.enum(Object.keys(decayShapes) as [keyof typeof decayShapes]), flag: '--schedule <shape>', help: `decay after warmup: ${Object.keys(decayShapes).join(', ')}` },
  weightDecay: { schema: nonNegative, flag: '--weight-decay <wd>', help: 'AdamW decoupled weight decay' },
  gradClip: { schema: nonNegative, flag: '--grad-clip <norm>', help: 'clip the global gradient norm (0: off)' },
  evalEvery: { schema: positiveInt, flag: '--eval-every <n>', help: 'updates between validation losses' },
  checkpointEvery: { schema: positiveInt, flag: '--checkpoint-every <n>', help: 'steps between checkpoints' },
  keepCheckpoints: { schema: positiveInt, flag: null, help: 'checkpoints kept (older ones are deleted)' },
  timeLimitMinutes: { schema: z.number().positive().nullable(), flag: '--time-limit-minutes <m>', help: 'stop after this much training (saving a checkpoint and the model)' },
  device: { schema: z.enum(['cpu', 'cuda']), flag: '--device <device>', help: DEVICE_HELP },
  precision: { schema: z.enum(['f32', 'bf16']), flag: '--precision <p>', help: PRECISION_HELP },
} as const;
