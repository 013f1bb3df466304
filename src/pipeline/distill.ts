// Distillation (R1 sec. 2.4; SPEC.md 4): a teacher's reasoning traces, rejection-sampled on a prompt set (only
// correct, readable ones kept: src/pipeline/rejection-sample.ts), and a smaller student fine-tuned on them with SFT
// only, no RL: 2-3 epochs with a learning rate decayed to a tenth (R1's distilled Qwen and Llama students).
//
// The recipe composes the two library calls, each in its own folder: OUT/traces (sft.jsonl, summary.json with
// what each filter removed) and OUT/student (metrics.jsonl, checkpoints, final/). Both are resumable, so
// `--resume` after a kill continues whichever stage was running, and a stage can be rerun alone with
// `r1 rejection-sample` or `r1 sft` on the same folder.
import { join } from 'node:path';
import { defaultRejectionSampleConfig, rejectionSample, type RejectionSampleConfig, type RejectionSampleResult } from './rejection-sample.ts';
import type { Device, Precision } from '../tensor/index.ts';
import { defaultSftConfig, sft, type SftConfig, type SftHooks, type SftResult } from '../train/sft.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { pickFields } from '../util/pick-fields.ts';

/** The recipe as one flat object; each field is a flag of `r1 distill` and goes to the stage it names. */
export interface DistillConfig extends Pick<RejectionSampleConfig, 'task' | 'level' | 'prompts' | 'template' | 'samplesPerPrompt' | 'keepPerPrompt' | 'maxNewTokens' | 'temperature' | 'topP' | 'formatRule' | 'judge'>,
  Pick<SftConfig, 'epochs' | 'batchSize' | 'microBatchSize' | 'maxLength' | 'packing' | 'lr' | 'minLrRatio' | 'warmup' | 'validationFraction'> {
  /** The model folder that writes the traces. */
  teacher: string;
  /** The (smaller) model folder fine-tuned on them. */
  student: string;
  /** Seed of the teacher's samples and of the student's example order. */
  seed: number;
  /** Run folder: traces/ and student/. */
  out: string;
  resume: boolean;
  device: Device;
  precision: Precision;
}

/**
 * R1's distillation at small scale: the student's settings are r1 sft's defaults (2 epochs, the rate decayed to a
 * tenth); the teacher is sampled through its chat template, a few completions per prompt at temperature 0.7.
 */
export const defaultDistillConfig: DistillConfig = {
  ...pickFields(defaultRejectionSampleConfig, ['task', 'level', 'prompts', 'keepPerPrompt', 'formatRule', 'judge', 'seed', 'device']),
  ...pickFields(defaultSftConfig, ['epochs', 'batchSize', 'microBatchSize', 'maxLength', 'packing', 'lr', 'minLrRatio', 'warmup', 'validationFraction', 'precision']),
  teacher: '',
  student: '',
  template: 'chat',
  samplesPerPrompt: 4,
  maxNewTokens: 256,
  temperature: 0.7,
  topP: 0.95,
  out: 'runs/distill',
  resume: false,
};

export const TRACES_DIR = 'traces';
export const STUDENT_DIR = 'student';

export interface DistillResult {
  traces: RejectionSampleResult;
  student: SftResult;
  /** The distilled student's model folder. */
  finalDir: string;
}

/** The student's SFT hooks (onStep after each of its updates), but for data-parallel ranks. */
export type DistillHooks = Omit<SftHooks, 'communicator'>;

/** The teacher's kept traces, then the student fine-tuned on them (see the file comment). */
export async function distill(config: DistillConfig, hooks: DistillHooks = {}): Promise<DistillResult> {
  const log = hooks.log ?? logToStderr;
  if (config.teacher === '') throw new UserError('no teacher: give --teacher, the model folder that writes the traces');
  if (config.student === '') throw new UserError('no student: give --student, the model folder to fine-tune');
  if (config.task === '') throw new UserError('no prompts: give --task (e.g. jsonl:problems.jsonl)');
  const { teacher, student, out, seed, resume, device, precision, epochs, batchSize, microBatchSize, maxLength, packing, lr, minLrRatio, warmup, validationFraction, ...sampling } = config;

  log(`distill: traces of ${teacher}`);
  const traces = await rejectionSample({ ...defaultRejectionSampleConfig, ...sampling, model: teacher, seed, out: join(out, TRACES_DIR), resume, device },
    { log, progress: hooks.progress });
  log(`distill: ${traces.counts.kept} traces kept of ${traces.counts.sampled} sampled for ${traces.counts.prompts} prompts; fine-tuning ${student}`);
  const result = await sft({
    ...defaultSftConfig, model: student, data: traces.file, epochs, batchSize, microBatchSize, maxLength, packing, lr, minLrRatio, warmup,
    validationFraction, seed, out: join(out, STUDENT_DIR), resume, device, precision,
  }, { log, progress: hooks.progress, onStep: hooks.onStep });
  return { traces, student: result, finalDir: result.finalDir };
}
