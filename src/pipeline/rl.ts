// GRPO on a mix of prompt sources, each with its own rewards (R1 sec. 2.3.2 and 2.3.4; SPEC.md 3-4): the
// reasoning-oriented RL of R1's second stage (rule rewards plus the language-consistency reward) and its RL for
// all scenarios (rule rewards on reasoning prompts, reward models on general ones: helpfulness on the final
// summary only, harmlessness on the whole response) are both one config of this runner, and so is R1-Zero
// (src/pipeline/zero.ts: one source, accuracy + format rewards on the R1-Zero template).
//
// A run: load the model, build each source (its task, prompt template and rewards, reward models loaded once),
// evaluate the sources before, train with GRPO (src/rl/trainer.ts: resumable exactly), save the model, evaluate
// after, and write the report and summary. Reward kinds are a table of small builders (REWARD_KINDS); a
// config names them with their weights, so that a new kind is one entry, not a branch.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { evaluateModel, summary, writeEvalReport, type EvalOptions, type EvalReport } from '../eval/evaluate.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { FINAL_DIR, readJsonl, readRunConfig, SAMPLES_FILE } from '../io/checkpoint.ts';
import { readJsonFile } from '../io/json-file.ts';
import { loadModel, saveModel, type LoadedModel } from '../models/pretrained.ts';
import { loadRewardModel, type LoadedRewardModel } from '../models/reward-model.ts';
import { taskAccuracyReward } from '../rewards/accuracy.ts';
import { completionWithPrefill, FORMAT_RULES, formatReward, isReadableFormat, tagCountReward, type FormatRule } from '../rewards/format.ts';
import { languageReward, type LanguageTarget } from '../rewards/language.ts';
import { rewardModelReward, type RewardModelInput, type RewardModelPart } from '../rewards/reward-model.ts';
import type { RewardFn, WeightedReward } from '../rewards/reward.ts';
import { PROMPT_TEMPLATES, type PromptTemplate } from '../rewards/template.ts';
import type { RolloutTask } from '../rl/rollout.ts';
import { defaultGrpoConfig, trainGrpo, type GrpoConfig, type GrpoHooks, type GrpoStepRecord } from '../rl/trainer.ts';
import { taskByName, type TaskOptions } from '../tasks/registry.ts';
import type { Task } from '../tasks/task.ts';
import { useDevice, type Device, type Precision } from '../tensor/index.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { renderReport, type SourceEvaluation, type StepSamples } from './report.ts';

// ---------------------------------------------------------------------------------------------------------
// Rewards by kind

/** A reward of a source, as a config names it. */
export type RewardSpec =
  | { kind: 'accuracy'; weight: number }
  | { kind: 'format'; weight: number; rule: FormatRule | 'readable' }
  | { kind: 'tag-count'; weight: number }
  | { kind: 'language'; weight: number; target: LanguageTarget }
  | { kind: 'reward-model'; weight: number; model: string; on: RewardModelPart; input: RewardModelInput };

export type RewardKind = RewardSpec['kind'];

/** What a reward builder may need: the source's task and the loaded reward models by folder. */
export interface RewardContext {
  task: Task;
  rewardModels: ReadonlyMap<string, LoadedRewardModel>;
}

/** Each kind's builder: a spec -> the reward function (SPEC.md 3). */
export const REWARD_KINDS: { [K in RewardKind]: (spec: Extract<RewardSpec, { kind: K }>, context: RewardContext) => RewardFn } = {
  /** The task's verifier: 1 when the final answer is right (R1-Zero's accuracy reward; a code task's share of tests passed). */
  accuracy: (_spec, { task }) => taskAccuracyReward(task),
  /** 1 when the completion has the shape (an R1-Zero rule, or R1's readable <think>...</think> summary). */
  format: (spec) => (spec.rule === 'readable' ? (input) => (isReadableFormat(completionWithPrefill(input)) ? 1 : 0) : formatReward(spec.rule)),
  /** open-r1's partial credit per well-used tag. */
  'tag-count': () => tagCountReward(),
  /** R1's language-consistency reward: the share of the chain of thought's words in the target language. */
  language: (spec) => languageReward(spec.target),
  /** A reward model's score of the summary (helpfulness) or of the whole response (harmlessness). */
  'reward-model': (spec, { rewardModels }) => {
    const loaded = rewardModels.get(spec.model);
    if (loaded === undefined) throw new Error(`reward model ${spec.model} is not among the loaded ones (buildSources loads them)`);
    return rewardModelReward(loaded.model, loaded.tokenizer, spec.on, spec.input);
  },
};

/** The weighted rewards of a source; each component is named by its kind (and what distinguishes it). */
export function buildRewards(specs: readonly RewardSpec[], context: RewardContext): WeightedReward[] {
  return specs.map((spec) => ({
    name: spec.kind === 'reward-model' ? `reward-model:${spec.on}` : spec.kind === 'language' ? `language:${spec.target}` : spec.kind,
    weight: spec.weight,
    fn: (REWARD_KINDS[spec.kind] as (spec: RewardSpec, context: RewardContext) => RewardFn)(spec, context),
  }));
}

// ---------------------------------------------------------------------------------------------------------
// Sources

/** One prompt source of a run. */
export interface RlSourceConfig {
  /** Name in metrics, reports and eval files (letters, digits, _ and -). */
  name: string;
  /** Task name (taskByName: arithmetic, countdown, instructions, jsonl:PATH, code, code:PATH; readable:NAME asks for R1's readable form). */
  task: string;
  /** Level of a generated task; null takes the task's default. */
  level: number | null;
  /** Further options of the task (taskByName's: a jsonl file's fields, a code task's language and sandbox). */
  taskOptions: TaskOptions;
  template: PromptTemplate;
  /** Relative share of each step's prompts. */
  weight: number;
  /** First step whose prompts may come from this source (R1 adds general prompts only in its last 400 steps). */
  fromStep: number;
  rewards: RewardSpec[];
  /** Evaluate this source's held-out questions before and after training. */
  evaluate: boolean;
}

/** A source's output-format check for the metrics: its format reward's rule, else the template's natural shape. */
function formatCheck(source: RlSourceConfig): (response: string) => boolean {
  const spec = source.rewards.find((r): r is Extract<RewardSpec, { kind: 'format' }> => r.kind === 'format');
  const rule = spec?.rule ?? (source.template === 'r1-zero' ? 'strict' : 'readable');
  return rule === 'readable' ? isReadableFormat : FORMAT_RULES[rule];
}

export interface BuiltSource {
  config: RlSourceConfig;
  rollout: RolloutTask;
  prompt: (question: string) => string;
  isFormatted: (response: string) => boolean;
}

/** Tasks, templates and rewards of every source, reward models loaded once each; errors name the source. */
export async function buildSources(configs: readonly RlSourceConfig[], tokenizer: Tokenizer): Promise<BuiltSource[]> {
  if (configs.length === 0) throw new UserError('sources: a run needs at least one prompt source');
  const names = new Set<string>();
  for (const source of configs) {
    if (!/^[A-Za-z0-9_-]+$/.test(source.name)) throw new UserError(`sources: name ${JSON.stringify(source.name)} must be letters, digits, _ or -`);
    if (names.has(source.name)) throw new UserError(`sources: two sources are named ${source.name}`);
    names.add(source.name);
    if (source.rewards.length === 0) throw new UserError(`source ${source.name}: no rewards`);
  }
  if (!configs.some((s) => s.fromStep <= 1)) throw new UserError('sources: every source starts after step 1 (fromStep), so the first steps would have no prompts');
  const rewardModels = new Map<string, LoadedRewardModel>();
  for (const spec of configs.flatMap((s) => s.rewards)) {
    if (spec.kind === 'reward-model' && !rewardModels.has(spec.model)) rewardModels.set(spec.model, await loadRewardModel(spec.model));
  }
  return configs.map((source) => {
    const task = taskByName(source.task, { ...source.taskOptions, ...(source.level === null ? {} : { level: source.level }) });
    return sourceOverTask(source, task, tokenizer, rewardModels);
  });
}

/** A source over a given task object (its `task` name aside): what buildSources makes of each config. */
export function sourceOverTask(source: RlSourceConfig, task: Task, tokenizer: Tokenizer, rewardModels: ReadonlyMap<string, LoadedRewardModel> = new Map()): BuiltSource {
  const prompt = (question: string) => PROMPT_TEMPLATES[source.template](question, tokenizer);
  const isFormatted = formatCheck(source);
  // Whether the template prefills `<think>` depends on the template, not on the question.
  const templateEnd = prompt('');
  const rollout: RolloutTask = {
    name: source.name, weight: source.weight, fromStep: source.fromStep, task, prompt,
    rewards: buildRewards(source.rewards, { task, rewardModels }),
    isFormatted: (completion) => isFormatted(completionWithPrefill({ prompt: templateEnd, completion })),
  };
  return { config: source, rollout, prompt, isFormatted };
}

// ---------------------------------------------------------------------------------------------------------
// The run

/** The before/after evaluation of a run (SPEC.md 5), as `r1 rl` and `r1 zero` take it. */
export interface EvalSettings {
  evalK: number;
  evalTemperature: number;
  evalTopP: number;
  /** Test questions evaluated per source (the first ones of its test set); null for all. */
  evalLimit: number | null;
}

/** Everything `r1 rl` does, as one flat object: GRPO's settings, the model, the sources, the evaluation. */
export interface RlConfig extends GrpoConfig, EvalSettings {
  /** The Hugging Face model folder to train (either family). */
  model: string;
  /** Run folder: metrics.jsonl, checkpoints/, final/, before.<source>.json, after.<source>.json, report.html, summary.json. */
  out: string;
  resume: boolean;
  sources: RlSourceConfig[];
  device: Device;
  precision: Precision;
}

/**
 * R1's reasoning RL (stage 2) in miniature: one arithmetic source in the readable form with accuracy, format and
 * language-consistency rewards summed with equal weights (NAT eq. 7-10). Paper values where they apply:
 * temperature 1.0, beta 0.001, evaluation at 0.6 / 0.95.
 */
export const defaultRlConfig: RlConfig = {
  ...defaultGrpoConfig,
  model: '',
  out: 'runs/rl',
  resume: false,
  sources: [{
    name: 'reasoning', task: 'readable:arithmetic', level: 1, taskOptions: {}, template: 'chat', weight: 1, fromStep: 1, evaluate: true,
    rewards: [{ kind: 'accuracy', weight: 1 }, { kind: 'format', weight: 1, rule: 'readable' }, { kind: 'language', weight: 1, target: 'en' }],
  }],
  steps: 100,
  lr: 2e-5,
  evalK: 4,
  evalTemperature: 0.6,
  evalTopP: 0.95,
  evalLimit: 100,
  device: 'cpu',
  precision: 'f32',
};

export interface RlHooks extends Pick<GrpoHooks, 'onStep' | 'progress'> {
  log?: (line: string) => void;
}

/** What runRl can take from its caller instead of loading it (a preset that already holds the model). */
export interface RlRunOptions {
  loaded?: LoadedModel;
  /** Heading of the HTML report. */
  title?: string;
  /** Further fields of summary.json. */
  summaryExtras?: Record<string, unknown>;
  /** Time the caller spent before the run (e.g. making a base model), for the report and summary. */
  earlierSeconds?: Record<string, number>;
}

export interface RlResult {
  out: string;
  evaluations: SourceEvaluation[];
  records: GrpoStepRecord[];
  finalDir: string;
  reportFile: string;
  seconds: { evalBefore: number; train: number; evalAfter: number };
}

/**
 * What a resumed run in `out` started from, as its run.json recorded it: the model and the prompt sources. GRPO's
 * own settings come back from the checkpoint, but these come from the command, so a resume given others (or
 * none) would go on from the checkpoint with another reference model or task; null when `out` has no run yet.
 */
export function resumedRunStart(out: string): { model: string; sources: RlSourceConfig[] } | null {
  const config = readRunConfig(out) as { model?: string; sources?: RlSourceConfig[] } | null;
  return config?.model === undefined || config.sources === undefined ? null : { model: config.model, sources: config.sources };
}

/** Fails, naming what differs, when a resume is given another model or other sources than its run started with. */
export function checkResumedRun(out: string, given: { model: string | null; sources: readonly RlSourceConfig[] }): void {
  const started = resumedRunStart(out);
  if (started === null) return;
  if (given.model !== null && given.model !== started.model) {
    throw new UserError(`${out} is a run of --model ${started.model}, not ${given.model}: resume it with the flags it started with`);
  }
  // A code task's sandbox workers (how many programs run at once) are not what the run computes.
  const computed = (sources: readonly RlSourceConfig[]) => JSON.stringify(sources, (key, value) => (key === 'workers' ? undefined : value));
  if (computed(given.sources) !== computed(started.sources)) {
    const tasks = (sources: readonly RlSourceConfig[]) => sources.map((source) => source.task).join(', ');
    throw new UserError(`${out} started with other prompt sources (tasks ${tasks(started.sources)}; given ${tasks(given.sources)}): resume it with the task or --config it started with`);
  }
}

/** Runs GRPO on the config's sources, evaluated before and after (see the file comment). */
export async function runRl(config: RlConfig, hooks: RlHooks = {}, options: RlRunOptions = {}): Promise<RlResult> {
  const log = hooks.log ?? logToStderr;
  if (config.resume) checkResumedRun(config.out, config);
  useDevice(config.device, config.precision);
  const { model, tokenizer } = options.loaded ?? await loadModel(config.model);
  const sources = await buildSources(config.sources, tokenizer);
  await mkdir(config.out, { recursive: true });
  let clock = performance.now();
  const lap = () => {
    const now = performance.now();
    const seconds = (now - clock) / 1000;
    clock = now;
    return seconds;
  };
  const evalOptions = (source: BuiltSource) => sourceEvalOptions(config, source);
  const evaluated = sources.filter((s) => s.config.evaluate);

  // The starting model's figures; a resumed run reuses them (that model has not changed).
  const before = new Map<string, EvalReport>();
  for (const source of evaluated) {
    const file = join(config.out, `before.${source.config.name}.json`);
    if (config.resume && existsSync(file)) {
      before.set(source.config.name, readJsonFile(file) as EvalReport);
      continue;
    }
    log(`evaluating the starting model on ${config.evalLimit ?? 'all'} ${source.rollout.task.name} test questions (${source.config.name}), k = ${config.evalK}`);
    const report = evaluateModel(model, tokenizer, source.rollout.task, evalOptions(source));
    await writeEvalReport(file, report);
    before.set(source.config.name, report);
  }
  for (const [name, report] of before) log(`${name}, before: pass@1 ${percent(report.passAt1)}, format ${percent(report.formatRate)}, length ${report.meanLength.toFixed(1)}`);
  const evalBefore = lap();

  const { records } = await trainGrpo({ model, tokenizer, sources: sources.map((s) => s.rollout), config, out: config.out, resume: config.resume }, { log, progress: hooks.progress, onStep: hooks.onStep });
  const train = lap();

  const finalDir = join(config.out, FINAL_DIR);
  await saveModel(model, tokenizer, finalDir);
  const evaluations: SourceEvaluation[] = [];
  for (const source of evaluated) {
    const after = evaluateModel(model, tokenizer, source.rollout.task, evalOptions(source));
    await writeEvalReport(join(config.out, `after.${source.config.name}.json`), after);
    evaluations.push({ source: source.config.name, task: source.rollout.task.description, before: before.get(source.config.name)!, after });
  }
  const evalAfter = lap();

  const seconds = { evalBefore, train, evalAfter };
  const allSeconds = { ...options.earlierSeconds, ...seconds };
  const reportFile = join(config.out, 'report.html');
  const samplesFile = join(config.out, SAMPLES_FILE);
  const kept = existsSync(samplesFile) ? await readJsonl<StepSamples>(samplesFile) : [];
  const stepSamples = kept.length > 1 ? [kept[0], kept[kept.length - 1]] : kept;
  await writeFileAtomic(reportFile, renderReport({ title: options.title ?? 'GRPO on a mix of prompt sources', config, evaluations, records, seconds: allSeconds, stepSamples }));
  const perSource = (pick: (e: SourceEvaluation) => EvalReport) => Object.fromEntries(evaluations.map((e) => [e.source, summary(pick(e))]));
  await writeFileAtomic(join(config.out, 'summary.json'), `${JSON.stringify({ before: perSource((e) => e.before), after: perSource((e) => e.after), steps: records.length, seconds: allSeconds, finalDir, ...options.summaryExtras }, null, 2)}\n`);
  return { out: config.out, evaluations, records, finalDir, reportFile, seconds };
}

/** How a run evaluates a source: the config's evaluation settings, the source's prompt and format check. */
export function sourceEvalOptions(config: EvalSettings & Pick<GrpoConfig, 'maxNewTokens' | 'seed'>, source: BuiltSource): EvalOptions {
  return {
    k: config.evalK, temperature: config.evalTemperature, topP: config.evalTopP, maxNewTokens: config.maxNewTokens, limit: config.evalLimit,
    seed: config.seed + 1_000_000, prompt: source.prompt, isFormatted: source.isFormatted,
  };
}

export function percent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
