// `r1 eval`: a model folder and a task -> pass@1 (mean over k samples), pass@k, cons@k, format rate and mean
// length on the task's held-out questions (R1 sec. 3), printed and optionally written as JSON.
import type { Command } from 'commander';
import { z } from 'zod';
import { defaultEvalOptions, evaluateModel, writeEvalReport, type EvalReport } from '../eval/evaluate.ts';
import { DenseModel } from '../models/dense.ts';
import { loadModel } from '../models/pretrained.ts';
import { taskByName } from '../tasks/registry.ts';
import type { Device } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';
import { DEVICE_HELP, selectDevice } from './device.ts';

const flagsSchema = z.object({
  model: z.string({ error: '--model <dir> is required' }).min(1),
  task: z.string().min(1),
  level: z.coerce.number().int().positive().optional(),
  k: z.coerce.number().int().positive(),
  temperature: z.coerce.number().nonnegative(),
  topP: z.coerce.number().gt(0).max(1),
  maxNewTokens: z.coerce.number().int().positive(),
  limit: z.coerce.number().int().positive().optional(),
  seed: z.coerce.number().int().nonnegative(),
  out: z.string().min(1).optional(),
  device: z.enum(['cpu', 'cuda']).default('cpu'),
});

const FLAG_NAMES: Record<string, string> = {
  model: '--model', task: '--task', level: '--level', k: '--k', temperature: '--temperature', topP: '--top-p',
  maxNewTokens: '--max-new-tokens', limit: '--limit', seed: '--seed', out: '--out', device: '--device',
};

export interface EvalCommandOptions {
  model: string;
  task: string;
  level?: number;
  k: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  limit?: number;
  seed: number;
  out?: string;
  /** Where the model computes (default cpu). */
  device?: Device;
}

/** Validates commander's values; errors name the flag. */
export function evalOptionsFromFlags(flags: Record<string, unknown>): EvalCommandOptions {
  const parsed = flagsSchema.safeParse(flags);
  if (!parsed.success) {
    throw new UserError(parsed.error.issues.map((issue) => {
      const key = String(issue.path[0]);
      return `${FLAG_NAMES[key] ?? key} ${JSON.stringify(flags[key])}: ${issue.message}`;
    }).join('; '));
  }
  return parsed.data;
}

/** Loads the model, evaluates it and writes the JSON report when asked. */
export async function runEval(options: EvalCommandOptions): Promise<EvalReport> {
  const task = taskByName(options.task, options.level === undefined ? {} : { level: options.level });
  selectDevice(options.device ?? 'cpu');
  const { model, tokenizer } = await loadModel(options.model);
  if (!(model instanceof DenseModel)) throw new UserError(`${options.model}: r1 eval samples dense (Llama/Qwen2) models; this one is ${model.config.family}`);
  const report = evaluateModel(model, tokenizer, task, {
    k: options.k, temperature: options.temperature, topP: options.topP, maxNewTokens: options.maxNewTokens, limit: options.limit ?? null, seed: options.seed,
  });
  if (options.out) await writeEvalReport(options.out, report);
  return report;
}

export function formatEvalReport(report: EvalReport): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return [
    `${report.task}: ${report.questions} questions x ${report.k} samples (temperature ${report.temperature}, top-p ${report.topP})`,
    `pass@1   ${pct(report.passAt1)}`,
    `pass@${report.k}   ${pct(report.passAtK)}`,
    `cons@${report.k}   ${pct(report.consAtK)}`,
    `format   ${pct(report.formatRate)}`,
    `length   ${report.meanLength.toFixed(1)} tokens`,
  ].join('\n');
}

export function register(program: Command): void {
  program
    .command('eval')
    .summary('pass@1 over k samples, pass@k, cons@k, format rate and length of a model on a task\'s held-out questions')
    .description('Samples k responses per held-out question with the R1-Zero template and scores them with the task\'s verifier, ' +
      'as R1 reports them (sec. 3): pass@1 is the mean correctness of the k samples, pass@k the unbiased estimate (Chen et al. 2021), ' +
      'cons@k the correctness of the majority answer.')
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json, *.safetensors, tokenizer.json)')
    .option('--task <name>', 'task: arithmetic, countdown, jsonl:PATH, code or code:PATH', 'arithmetic')
    .option('--level <n>', 'difficulty level of a generated task')
    .option('--k <n>', 'samples per question', String(defaultEvalOptions.k))
    .option('--temperature <t>', 'sampling temperature (paper: 0.6)', String(defaultEvalOptions.temperature))
    .option('--top-p <p>', 'nucleus mass (paper: 0.95)', String(defaultEvalOptions.topP))
    .option('--max-new-tokens <n>', 'response length limit in tokens', String(defaultEvalOptions.maxNewTokens))
    .option('--limit <n>', 'evaluate only the first N test questions')
    .option('--seed <n>', 'sampling seed', String(defaultEvalOptions.seed))
    .option('--out <file.json>', 'write the figures and every response as JSON')
    .option('--device <device>', DEVICE_HELP, 'cpu')
    .action(async (flags: Record<string, unknown>) => {
      const report = await runEval(evalOptionsFromFlags(flags));
      console.log(formatEvalReport(report));
      if (typeof flags.out === 'string') console.log(`wrote ${flags.out}`);
    });
}
