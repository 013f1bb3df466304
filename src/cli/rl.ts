// `r1 rl`: flags and a JSON config file (which holds the prompt sources) -> RlConfig -> runRl(). A source is
// {"name", "task", "level", "taskOptions", "template", "weight", "fromStep", "evaluate", "rewards": [{"kind", "weight", ...}]};
// reward kinds are REWARD_KINDS' (src/pipeline/rl.ts).
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { comparisonTable } from '../pipeline/report.ts';
import { defaultRlConfig, runRl, type RewardSpec, type RlConfig, type RlSourceConfig } from '../pipeline/rl.ts';
import { FORMAT_RULES } from '../rewards/format.ts';
import { LANGUAGE_SCRIPTS } from '../rewards/language.ts';
import { REWARD_MODEL_INPUTS, REWARD_MODEL_PARTS } from '../rewards/reward-model.ts';
import { PROMPT_TEMPLATES } from '../rewards/template.ts';
import { registerWithDashboard } from './dashboard.ts';
import { checkGrpoConfig, EVAL_FIELDS, GRPO_FIELDS } from './grpo-fields.ts';
import { nonNegative, positiveInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

const keysOf = <T extends object>(table: T) => Object.keys(table) as [keyof T & string, ...Array<keyof T & string>];

const rewardSchema: z.ZodType<RewardSpec> = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('accuracy'), weight: nonNegative }),
  z.strictObject({ kind: z.literal('format'), weight: nonNegative, rule: z.enum(['readable', ...keysOf(FORMAT_RULES)]) }),
  z.strictObject({ kind: z.literal('tag-count'), weight: nonNegative }),
  z.strictObject({ kind: z.literal('language'), weight: nonNegative, target: z.enum(keysOf(LANGUAGE_SCRIPTS)) }),
  z.strictObject({
    kind: z.literal('reward-model'), weight: nonNegative, model: z.string().min(1),
    on: z.enum(keysOf(REWARD_MODEL_PARTS)), input: z.enum(keysOf(REWARD_MODEL_INPUTS)).default('chat'),
  }),
]) as z.ZodType<RewardSpec>;

const sourceSchema: z.ZodType<RlSourceConfig> = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ or -'),
  task: z.string().min(1),
  level: positiveInt.nullable().default(null),
  taskOptions: z.record(z.string(), z.unknown()).default({}),
  template: z.enum(keysOf(PROMPT_TEMPLATES)).default('chat'),
  weight: z.number().positive().default(1),
  fromStep: positiveInt.default(1),
  evaluate: z.boolean().default(true),
  rewards: z.array(rewardSchema).min(1),
}) as z.ZodType<RlSourceConfig>;

const FIELDS: Fields<RlConfig> = {
  model: { schema: z.string(), flag: '--model <dir>', help: 'Hugging Face model folder to train (dense or DeepSeek)' },
  out: { ...SHARED_FIELDS.out, help: 'run folder: metrics.jsonl, checkpoints/, final/, before.<source>.json, after.<source>.json, report.html, summary.json' },
  resume: SHARED_FIELDS.resume,
  sources: { schema: z.array(sourceSchema).min(1), flag: null, help: 'prompt sources, each with its task, template, weight, first step and rewards' },
  ...GRPO_FIELDS,
  ...EVAL_FIELDS,
  device: SHARED_FIELDS.device,
  precision: SHARED_FIELDS.precision,
};

const settings = new Settings('rl', FIELDS, defaultRlConfig, { required: { model: 'name the model folder to train' }, check: checkGrpoConfig });

/** Reads and validates a --config JSON file (fields of RlConfig, all optional; sources' defaults filled in). */
export function readRlConfigFile(file: string): Partial<RlConfig> {
  return settings.readFile(file);
}

export function rlConfigFromFlags(flags: Record<string, unknown>): RlConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  registerWithDashboard(settings, program, {
    summary: 'GRPO on a mix of prompt sources, each with its own rewards (R1 stages 2 and 4); r1 zero is its R1-Zero preset',
    description:
      'Trains --model with GRPO on the prompt sources of --config (default: one arithmetic source on the chat template with accuracy, readable-format ' +
        'and English language-consistency rewards, as R1\'s reasoning RL). Reward kinds: accuracy, format (rule), tag-count, language (target), ' +
        'reward-model (model folder, on: summary | response, input: chat | text). Each source is evaluated before and after; OUT/metrics.jsonl ' +
        'has one record per step with per-source rewards; checkpoints in OUT/checkpoints resume exactly with --resume.',
  }, (config) => dirname(config.out), async (config) => {
    const result = await runRl(config);
    for (const { source, before, after } of result.evaluations) console.log(`\n${source}\n${comparisonTable(before, after)}`);
    console.log(`\nmodel: ${result.finalDir}\nreport: ${result.reportFile}`);
  });
}
