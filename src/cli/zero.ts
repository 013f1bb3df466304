// `r1 zero`: flags (and an optional JSON config file) -> ZeroConfig -> runZero(), through the settings table
// below (src/cli/settings.ts validates and names what is wrong).
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { denseSizes } from '../models/dense.ts';
import { comparisonTable } from '../pipeline/report.ts';
import { defaultZeroConfig, runZero, type ZeroConfig } from '../pipeline/zero.ts';
import { CODE_SCORINGS } from '../rewards/code.ts';
import { FORMAT_RULES } from '../rewards/format.ts';
import { defaultSandboxLimits, LANGUAGES, type SandboxLimits } from '../rewards/sandbox.ts';
import { registerWithDashboard } from './dashboard.ts';
import { checkGrpoConfig, EVAL_FIELDS, GRPO_FIELDS } from './grpo-fields.ts';
import { fraction, nonNegative, nonNegativeInt, positiveInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

/** Where made base models are kept: `r1 zero` and `r1 pipeline` share the cache. */
export const CACHE_DIR_FIELD = { schema: z.string().min(1), flag: '--cache-dir <dir>', help: 'where made base models are kept' };

/** The base model's shape and pretraining, shared with `r1 pipeline`. */
export const BASE_MODEL_FIELDS = {
  baseVocabSize: { schema: z.number().int().min(300), flag: '--base-vocab-size <n>', help: 'BPE vocabulary of the base model' },
  baseSize: { schema: z.enum(Object.keys(denseSizes) as [keyof typeof denseSizes]), flag: '--base-size <size>', help: `base model shape: ${Object.keys(denseSizes).join(', ')}` },
  baseModelOverrides: { schema: z.record(z.string(), z.unknown()) as unknown as z.ZodType<ZeroConfig['baseModelOverrides']>, flag: null, help: 'DenseConfig fields that change the base preset (e.g. {"numLayers": 3})' },
  baseSteps: { schema: positiveInt, flag: '--base-steps <n>', help: 'pretraining steps of the base model' },
  baseBatchSize: { schema: positiveInt, flag: '--base-batch-size <n>', help: 'pretraining sequences per step' },
  baseSeqLen: { schema: positiveInt, flag: '--base-seq-len <n>', help: 'pretraining sequence length' },
  baseLr: { schema: z.number().positive(), flag: '--base-lr <rate>', help: 'pretraining peak learning rate' },
  baseMinPassAt1: { schema: fraction, flag: '--base-min-pass-at-1 <p>', help: 'least pass@1 on training problems of a usable base model made here; one below it is pretrained again from another initialization' },
  baseAttempts: { schema: positiveInt, flag: '--base-attempts <n>', help: 'pretraining runs of a made base model at most (the best is used when none is usable)' },
} satisfies Partial<Fields<ZeroConfig>>;

/** Each config field: its schema and its flag with help text. */
const FIELDS: Fields<ZeroConfig> = {
  task: { schema: z.string().min(1), flag: '--task <name>', help: 'task: arithmetic, countdown, jsonl:PATH (a GSM8K/MATH-style file), code (generated Python programs) or code:PATH (programming problems with tests)' },
  level: { schema: positiveInt.nullable(), flag: '--level <n>', help: 'difficulty level of a generated task' },
  model: { schema: z.string().min(1).nullable(), flag: '--model <dir>', help: 'Hugging Face model folder to train; default: make (or reuse) a base model pretrained here' },
  out: { schema: z.string().min(1).nullable(), flag: '--out <dir>', help: 'run folder: metrics.jsonl, checkpoints/, final/, before.reasoning.json, after.reasoning.json, report.html (default: a new runs/zero-<date>-<time>)' },
  cacheDir: CACHE_DIR_FIELD,
  resume: SHARED_FIELDS.resume,
  ...GRPO_FIELDS,
  // Rewards
  accuracyWeight: { schema: nonNegative, flag: '--accuracy-weight <w>', help: 'weight of the accuracy reward' },
  formatWeight: { schema: nonNegative, flag: '--format-weight <w>', help: 'weight of the format reward' },
  formatRule: { schema: z.enum(Object.keys(FORMAT_RULES) as [keyof typeof FORMAT_RULES]), flag: '--format-rule <rule>', help: `format rule: ${Object.keys(FORMAT_RULES).join(', ')}` },
  tagCountWeight: { schema: nonNegative, flag: '--tag-count-weight <w>', help: 'weight of partial credit per well-used tag (0: off, as in R1-Zero)' },
  // Code tasks
  codeLanguage: { schema: z.enum(LANGUAGES), flag: '--code-language <lang>', help: `language of a code task's programs: ${LANGUAGES.join(', ')}` },
  codeScoring: { schema: z.enum(CODE_SCORINGS), flag: '--code-scoring <s>', help: 'code accuracy reward: fraction (of tests passed) or all (1 only when every test passes)' },
  sandboxWorkers: { schema: positiveInt.nullable(), flag: '--sandbox-workers <n>', help: 'programs run at once by a code task (default: the number of CPUs)' },
  sandboxLimits: {
    schema: z.strictObject(Object.fromEntries(Object.keys(defaultSandboxLimits).map((key) => [key, positiveInt.optional()]))) as z.ZodType<Partial<SandboxLimits>>,
    flag: null,
    help: `limits of one program run, e.g. {"wallMs": 3000}: ${Object.entries(defaultSandboxLimits).map(([k, v]) => `${k} (${v})`).join(', ')}`,
  },
  ...EVAL_FIELDS,
  // Base model
  baseDocuments: { schema: positiveInt, flag: '--base-documents <n>', help: 'generated pretraining documents of the base model' },
  baseCorrectRate: { schema: fraction, flag: '--base-correct-rate <r>', help: 'fraction of pretraining completions with the right answer' },
  baseFormatRate: { schema: fraction, flag: '--base-format-rate <r>', help: 'fraction of pretraining completions in the R1-Zero format' },
  baseTemplateRate: { schema: fraction, flag: '--base-template-rate <r>', help: 'fraction of pretraining documents with the whole template' },
  baseDrillDocuments: { schema: nonNegativeInt, flag: '--base-drill-documents <n>', help: 'documents of correct worked arithmetic in the pretraining text' },
  baseStyles: {
    schema: z.strictObject({
      guessRate: fraction, guessRateBySteps: z.record(z.string().regex(/^[1-9]\d*$/), fraction).optional(), guessCorrectRate: fraction, checkedRate: fraction, slipRate: fraction,
    }).nullable(),
    flag: null,
    help: 'answering styles of the arithmetic pretraining text, e.g. {"guessRate": 0.5, "guessCorrectRate": 0.25, "checkedRate": 0.3, "slipRate": 0.2}: guesses, worked chains slipping slipRate a step, and chains that check their steps (null: bare equations right baseCorrectRate of the time); "guessRateBySteps": {"2": 0.3, "5": 0.95} sets the guess rate of problems of that many operations',
  },
  ...BASE_MODEL_FIELDS,
  baseTimeLimitMinutes: { schema: z.number().positive().nullable(), flag: '--base-time-limit-minutes <m>', help: 'stop pretraining the base model after this many minutes, keeping the steps done (default: all base steps)' },
  baseSeed: { schema: nonNegativeInt, flag: '--base-seed <n>', help: 'seed of the pretraining text and weights' },
  device: SHARED_FIELDS.device,
  precision: SHARED_FIELDS.precision,
};

const settings = new Settings('zero', FIELDS, defaultZeroConfig, { check: checkGrpoConfig });

/** Reads and validates a --config JSON file (fields of ZeroConfig, all optional). */
export function readZeroConfigFile(file: string): Partial<ZeroConfig> {
  return settings.readFile(file);
}

/** Flags (commander's parsed values) and an optional config file -> a validated ZeroConfig. */
export function zeroConfigFromFlags(flags: Record<string, unknown>): ZeroConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  // The dashboard shows the folder the run goes into (runs/ by default).
  registerWithDashboard(settings, program, {
    summary: 'R1-Zero: GRPO with rule rewards straight on a base model, evaluated before and after (default: a laptop demo in minutes)',
    description:
      'Makes (or reuses) a small base model pretrained on generated text, or takes --model, evaluates it, trains it with GRPO ' +
        '(accuracy + format rewards on the R1-Zero template), evaluates it again and writes OUT/report.html. ' +
        'OUT/metrics.jsonl has one record per step; checkpoints in OUT/checkpoints resume exactly with --resume.',
  }, (config) => dirname(config.out ?? join('runs', 'zero')), async (config) => {
    const result = await runZero(config);
    console.log(`\n${comparisonTable(result.before, result.after)}\n`);
    console.log(`held-out ${result.before.questions} questions x ${result.before.k} samples (temperature ${result.before.temperature}, top-p ${result.before.topP})`);
    console.log(`model: ${result.finalDir}\nreport: ${result.reportFile}`);
  });
}
