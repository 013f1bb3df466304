// `r1 distill`: flags (and an optional JSON config file) -> DistillConfig -> distill(). Each setting is the one of
// `r1 rejection-sample` or `r1 sft` it is passed to, with the same schema and help.
import type { Command } from 'commander';
import { z } from 'zod';
import { defaultDistillConfig, distill, STUDENT_DIR, TRACES_DIR, type DistillConfig } from '../pipeline/distill.ts';
import { FIELDS as SAMPLE_FIELDS } from './rejection-sample.ts';
import { Settings, type Fields } from './settings.ts';
import { FIELDS as SFT_FIELDS } from './sft.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

const FIELDS: Fields<DistillConfig> = {
  teacher: { schema: z.string(), flag: '--teacher <dir>', help: 'Hugging Face model folder that writes the reasoning traces' },
  student: { schema: z.string(), flag: '--student <dir>', help: 'Hugging Face model folder (usually smaller) fine-tuned on them, SFT only' },
  task: SAMPLE_FIELDS.task,
  level: SAMPLE_FIELDS.level,
  prompts: SAMPLE_FIELDS.prompts,
  template: { ...SAMPLE_FIELDS.template, help: `${SAMPLE_FIELDS.template.help} (for the teacher)` },
  samplesPerPrompt: SAMPLE_FIELDS.samplesPerPrompt,
  keepPerPrompt: SAMPLE_FIELDS.keepPerPrompt,
  maxNewTokens: SAMPLE_FIELDS.maxNewTokens,
  temperature: SAMPLE_FIELDS.temperature,
  topP: SAMPLE_FIELDS.topP,
  formatRule: SAMPLE_FIELDS.formatRule,
  judge: SAMPLE_FIELDS.judge,
  epochs: SFT_FIELDS.epochs,
  batchSize: SFT_FIELDS.batchSize,
  microBatchSize: SFT_FIELDS.microBatchSize,
  maxLength: SFT_FIELDS.maxLength,
  packing: SFT_FIELDS.packing,
  lr: SFT_FIELDS.lr,
  minLrRatio: SFT_FIELDS.minLrRatio,
  warmup: SFT_FIELDS.warmup,
  validationFraction: { ...SFT_FIELDS.validationFraction, help: "share of the kept traces held out for the student's validation loss" },
  seed: { ...SFT_FIELDS.seed, help: "seed of the teacher's samples and of the student's example order" },
  out: { ...SHARED_FIELDS.out, help: `run folder: ${TRACES_DIR}/ (the kept traces, what each filter removed) and ${STUDENT_DIR}/ (metrics, checkpoints, final/)` },
  resume: { ...SHARED_FIELDS.resume, help: 'continue the run in --out: the stage that was running, where it stopped' },
  device: SHARED_FIELDS.device,
  precision: SHARED_FIELDS.precision,
};

const settings = new Settings('distill', FIELDS, defaultDistillConfig, {
  required: { teacher: 'name the model folder that writes the traces', student: 'name the model folder to fine-tune', task: 'name the prompts (e.g. jsonl:problems.jsonl)' },
});

export function distillConfigFromFlags(flags: Record<string, unknown>): DistillConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  settings.register(program, {
    summary: "distil a teacher's rejection-sampled reasoning traces into a smaller student with SFT only (R1's distilled models)",
    description:
      'The teacher samples --samples-per-prompt completions for each prompt of --task; the correct, readable ones are kept ' +
        '(as `r1 rejection-sample` does, into OUT/traces), and the student is fine-tuned on them with the loss on the answers only ' +
        '(as `r1 sft` does, into OUT/student: 2 epochs by default, the rate decayed to a tenth, as R1 trained its Qwen and Llama students). ' +
        'No RL. Resumable with --resume; the student is in OUT/student/final.',
  }, async (config) => {
    const result = await distill(config);
    const last = result.student.records.at(-1);
    console.log(`\n${result.traces.counts.kept} traces kept of ${result.traces.counts.sampled}; student: ${result.student.steps} steps${last ? `, train loss ${last.loss.toFixed(4)}` : ''}; model in ${result.finalDir}`);
  });
}
