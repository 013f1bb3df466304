// The R1-Zero recipe (R1 sec. 2.2; SPEC.md 1-3, 5): reinforcement learning straight on a base model, with no
// supervised fine-tuning, using rule rewards (accuracy + format) on the R1-Zero template, then the paper's
// evaluation before and after. The training and evaluation are the general GRPO runner's (src/pipeline/rl.ts)
// with a preset of one source; what is R1-Zero's own is the preset and the base model.
//
// On a laptop the base model is made here: a small dense model pretrained by r1ts on text the task generates
// (R1-Zero-format completions, a set fraction with an arithmetic slip and a set fraction in a broken format),
// cached under cacheDir/base-<hash of its settings> so that later runs reuse it. GRPO then raises what the
// base model does only some of the time: right answers in the right format.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { evaluateModel, type EvalOptions, type EvalReport } from '../eval/evaluate.ts';
import { loadModel } from '../models/pretrained.ts';
import type { DenseConfig, DenseSize } from '../models/dense.ts';
import type { CodeScoring } from '../rewards/code.ts';
import type { FormatRule } from '../rewards/format.ts';
import { CHECKPOINTS_DIR, FINAL_DIR } from '../io/checkpoint.ts';
import type { WeightedReward } from '../rewards/reward.ts';
import type { Language, SandboxLimits } from '../rewards/sandbox.ts';
import { R1_ZERO_TEMPLATE } from '../rewards/template.ts';
import { defaultGrpoConfig, type GrpoConfig, type GrpoStepRecord } from '../rl/trainer.ts';
import { ARITHMETIC_LEVELS, drawArithmeticProblem, pretrainingText, workedSteps } from '../tasks/arithmetic.ts';
import { codeDrill, codePretrainingText } from '../tasks/code.ts';
import { styledPretrainingText, type ReasoningStyles } from '../tasks/reasoning-styles.ts';
import { isCodeTaskName, isGeneratedTaskName, taskByName, type TaskOptions } from '../tasks/registry.ts';
import type { Task } from '../tasks/task.ts';
import { useDevice, type Device, type Precision } from '../tensor/index.ts';
import { Rng } from '../tensor/random.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { defaultPretrainConfig, pretrain, type PretrainConfig } from '../train/pretrain.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { pickFields } from '../util/pick-fields.ts';
import { buildRewards, checkResumedRun, percent, resumedRunStart, runRl, sourceEvalOptions, sourceOverTask, type EvalSettings, type RewardSpec, type RlConfig, type RlHooks, type RlSourceConfig } from './rl.ts';

/** Everything `r1 zero` does, as one flat object (each field is a flag of the CLI). */
export interface ZeroConfig extends GrpoConfig, EvalSettings {
  /** Task name (taskByName: arithmetic, countdown, jsonl:PATH, code, code:PATH). */
  task: string;
  /** Level of a generated task; null takes the task's default. */
  level: number | null;
  /** A Hugging Face model folder to start from; null makes (or reuses) a base model pretrained here. */
  model: string | null;
  /**
   * Run folder: metrics.jsonl, checkpoints/, final/, before.json, after.json, report.html. null: a new
   * runs/zero-<date>-<time> folder, so that running the demo again never meets an earlier run's checkpoints.
   */
  out: string | null;
  /** Where made base models are kept, one folder per settings hash. */
  cacheDir: string;
  resume: boolean;

  // Rewards (SPEC.md 3): weighted accuracy and format, plus optional partial credit for the tags.
  accuracyWeight: number;
  formatWeight: number;
  formatRule: FormatRule;
  /** Weight of open-r1's tag-count partial credit (0: off, as in R1-Zero). */
  tagCountWeight: number;

  // Code tasks (code, code:PATH): their programs' language, how a verdict becomes the accuracy reward, the sandbox.
  codeLanguage: Language;
  codeScoring: CodeScoring;
  /** Programs run at once; null: the number of CPUs. */
  sandboxWorkers: number | null;
  /** Limits of one program run that differ from defaultSandboxLimits (time, memory, processes, output; rewards/sandbox.ts). */
  sandboxLimits: Partial<SandboxLimits>;

  // The base model made when `model` is null.
  baseDocuments: number;
  /** Fraction of pretraining completions with the right answer. */
  baseCorrectRate: number;
  /** Fraction of pretraining completions in the exact R1-Zero format. */
  baseFormatRate: number;
  /**
   * Fraction of pretraining documents that keep the whole R1-Zero template; the others keep only its tail
   * ("User: question. Assistant: ..."), which packs more problems into the same tokens.
   */
  baseTemplateRate: number;
  /**
   * Documents of correct worked arithmetic ("12 + 5 = 17. 9 - 4 = 5. ...", DRILL_EQUATIONS problems each, over
   * the level's whole number range) mixed into the pretraining text: the base model's general knowledge,
   * which the R1-format documents then apply correctly only `baseCorrectRate` of the time. The test
   * questions themselves (their wording and their R1-format solutions) are never in the pretraining text.
   */
  baseDrillDocuments: number;
  /**
   * Answering styles of the R1-format documents (tasks/reasoning-styles.ts; arithmetic only): short guesses,
   * worked chains and chains that check their steps, each right at its own rate, so that longer checked reasoning
   * is within the base model's reach but not its habit (the long-chain preset). null: bare worked equations,
   * right `baseCorrectRate` of the time (the laptop demo); with styles, `baseCorrectRate` is not used.
   */
  baseStyles: ReasoningStyles | null;
  baseVocabSize: number;
  baseSize: DenseSize;
  baseModelOverrides: Partial<DenseConfig>;
  baseSteps: number;
  baseBatchSize: number;
  baseSeqLen: number;
  baseLr: number;
  /**
   * Stop pretraining the base model after this many minutes (it keeps the steps done); null: all baseSteps.
   * A preset with a wall-clock goal (configs/zero-gpu.json) bounds its first phase so that GRPO keeps its time.
   */
  baseTimeLimitMinutes: number | null;
  baseSeed: number;
  /**
   * Least pass@1 of a usable made base model, on training problems (evalLimit of them, at the evaluation's
   * settings), and the pretraining runs allowed to reach it. A pretraining run can miss a skill the text teaches:
   * the R1 pipeline's seed-2 teacher (1000 steps) did not learn to start its chain from the question's number
   * (6.5% of its chains against seed 1's 100%; 500 more steps did not teach it), so its pass@1 was 9% and R1-Zero
   * had nothing to reinforce. Such a base is pretrained again from another initialization (and batch order), on
   * the same text, up to baseAttempts runs in all; the best one is used. Not used with `model`.
   */
  baseMinPassAt1: number;
  baseAttempts: number;
  /** Where everything computes (pretraining the base model, sampling, GRPO, evaluation): 'cpu' or 'cuda'. */
  device: Device;
  /** GEMM precision of training: 'f32', or 'bf16' on cuda. */
  precision: Precision;
}

/**
 * The laptop demo's settings (`npm start`), tuned on the 2-core CPU so that pretraining plus RL fit in 10
 * minutes and GRPO measurably raises pass@1 (docs/BENCHMARKS.md, "R1-Zero learning"). Paper values where they
 * apply: temperature 1.0 for sampling, eps 0.2, beta 0.001, mu 1, evaluation at temperature 0.6 / top-p 0.95.
 * The learning rate is that of a tiny from-scratch model, not the 3e-6 of a 600B one.
 */
export const defaultZeroConfig: ZeroConfig = {
  ...defaultGrpoConfig,
  task: 'arithmetic',
  level: 1,
  model: null,
  out: null,
  cacheDir: '.cache/r1ts',
  resume: false,
  steps: 100,
  promptsPerStep: 8,
  groupSize: 8,
  maxNewTokens: 48,
  lr: 2e-4,
  warmup: 5,
  schedule: 'constant',
  beta: 0.001,
  checkpointEvery: 25,
  timeLimitMinutes: null,
  accuracyWeight: 1,
  formatWeight: 0.5,
  formatRule: 'strict',
  tagCountWeight: 0,
  codeLanguage: 'python',
  codeScoring: 'fraction',
  sandboxWorkers: null,
  sandboxLimits: {},
  evalK: 4,
  evalTemperature: 0.6,
  evalTopP: 0.95,
  evalLimit: 100,
  baseDocuments: 30000,
  baseCorrectRate: 0.25,
  baseFormatRate: 0.5,
  baseTemplateRate: 0.2,
  baseDrillDocuments: 5000,
  baseStyles: null,
  baseVocabSize: 768,
  // A narrower, shallower '1m' (362k parameters): on 2 cores it sees more tokens in the same minutes, and it
  // learned to copy the numbers out of the question and to add them where the full 1m preset had not yet.
  baseSize: '1m',
  baseModelOverrides: { hiddenSize: 96, intermediateSize: 256, numLayers: 3, numHeads: 3, numKvHeads: 1, headDim: 32 },
  // 1500, not 1000: at 1000 steps whether the model learns to start from the question's numbers is a coin flip
  // (seed 1 held-out pass@1 21.5% or 15.3% depending on the last bit of a gradient sum, seed 2 9.0%, after which
  // GRPO gained +48.5, +25.5 and -2.7 points); at 1500 both seeds start at 22-23% and GRPO takes them to 96-100%
  // (docs/BENCHMARKS.md, "R1-Zero learning").
  baseSteps: 1500,
  baseBatchSize: 16,
  baseSeqLen: 128,
  baseLr: 3e-3,
  baseTimeLimitMinutes: null,
  baseSeed: 1,
  baseMinPassAt1: 0.15,
  baseAttempts: 3,
  device: 'cpu',
  precision: 'f32',
};

/**
 * Tasks that can write a base model's pretraining text: R1-Zero-format documents of their problems, and
 * "drills", the bare worked steps of problems across the task's whole number range (the general arithmetic a
 * base model knows from pretraining before it ever sees the R1-Zero template).
 */
interface BaseText {
  documents: (rng: Rng, count: number, options: { correctRate: number; formatRate: number; level?: number; styles?: ReasoningStyles }) => string[];
  drill: (rng: Rng, level: number | null) => string;
}

const BASE_TEXT: Record<string, BaseText> = {
  arithmetic: {
    documents: (rng, count, options) => (options.styles ? styledPretrainingText(rng, count, { ...options, styles: options.styles }) : pretrainingText(rng, count, options)),
    drill: (rng, level) => workedSteps(drawArithmeticProblem(rng, ARITHMETIC_LEVELS[level ?? 1]).steps),
  },
  // Python programs that print a formula of two integers: the generated code task (tasks/code.ts).
  code: { documents: codePretrainingText, drill: codeDrill },
};

export type ZeroHooks = RlHooks;

export interface ZeroResult {
  /** The run folder. */
  out: string;
  before: EvalReport;
  after: EvalReport;
  records: GrpoStepRecord[];
  baseModelDir: string;
  finalDir: string;
  reportFile: string;
  seconds: { base: number; evalBefore: number; train: number; evalAfter: number };
}

/** The name of R1-Zero's one prompt source (its eval files are before.reasoning.json and after.reasoning.json). */
export const ZERO_SOURCE = 'reasoning';

/** Runs the recipe: base model, then the general GRPO runner (src/pipeline/rl.ts) with the R1-Zero preset. */
export async function runZero(given: ZeroConfig, hooks: ZeroHooks = {}): Promise<ZeroResult> {
  const log = hooks.log ?? logToStderr;
  if (given.out === null && given.resume) throw new UserError('--resume needs the --out folder of the run to continue');
  // The default level (1) is a generated task's: a file task (jsonl:PATH, code:PATH) goes without it, as `r1 zero
  // --task jsonl:PATH` asks; another level given with one still fails in taskByName, naming the task.
  const level = isGeneratedTaskName(given.task) || given.level !== defaultZeroConfig.level ? given.level : null;
  const out = given.out ?? join('runs', `zero-${new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}`);
  // A resume without --model goes on from the model its run started from (its reference for the KL term), rather
  // than making a base model that may not be that one; a task other than the run's fails before any work.
  const started = given.resume ? resumedRunStart(out) : null;
  const config = { ...given, level, out, model: given.model ?? started?.model ?? null };
  if (started) checkResumedRun(out, { model: config.model, sources: [zeroSource(config, codeTaskOptions(config))] });
  // The task first: a bad task file fails before a base model is made.
  const task = taskByName(config.task, { ...(config.level === null ? {} : { level: config.level }), ...codeTaskOptions(config) });
  // The process's default device from here on: the base model, the rollouts and the evaluations go there.
  useDevice(config.device, config.precision);
  const start = performance.now();
  const baseModelDir = config.model ?? (await usableBaseModel(config, {
    what: 'base model',
    trainingProblems: trainingProblems(task, config.seed, config.evalLimit ?? task.testSet().length),
    evalOptions: (tokenizer) => sourceEvalOptions(config, sourceOverTask(zeroSource(config, codeTaskOptions(config)), task, tokenizer)),
    make: (attempt) => ensureBaseModel(config, log, attempt),
  }, log)).folder;
  const base = (performance.now() - start) / 1000;
  const loaded = await loadModel(baseModelDir);
  const result = await runRl(zeroRlConfig(config, baseModelDir), { ...hooks, log }, { loaded, title: `R1-Zero on ${config.device === 'cuda' ? 'a GPU' : 'the CPU'}`, earlierSeconds: { base }, summaryExtras: { baseModelDir } });
  const [evaluation] = result.evaluations;
  return {
    out: result.out, before: evaluation.before, after: evaluation.after, records: result.records, baseModelDir,
    finalDir: result.finalDir, reportFile: result.reportFile, seconds: { base, ...result.seconds },
  };
}

/** R1-Zero as a config of the general runner: one source on the R1-Zero template with its rule rewards. */
export function zeroRlConfig(config: ZeroConfig & { out: string }, model: string): RlConfig {
  const grpo: GrpoConfig = pickFields(config, Object.keys(defaultGrpoConfig) as Array<keyof GrpoConfig>);
  return {
    ...grpo, model, out: config.out, resume: config.resume, sources: [zeroSource(config, codeTaskOptions(config))],
    evalK: config.evalK, evalTemperature: config.evalTemperature, evalTopP: config.evalTopP, evalLimit: config.evalLimit, device: config.device, precision: config.precision,
  };
}

/** R1-Zero's prompt source: the task on the R1-Zero template, accuracy + format (+ optional tag-count) rewards. */
export function zeroSource(config: Pick<ZeroConfig, 'task' | 'level' | 'accuracyWeight' | 'formatWeight' | 'formatRule' | 'tagCountWeight'>, taskOptions: TaskOptions = {}): RlSourceConfig {
  return { name: ZERO_SOURCE, task: config.task, level: config.level, taskOptions, template: 'r1-zero', weight: 1, fromStep: 1, evaluate: true, rewards: zeroRewardSpecs(config) };
}

/** The code settings of the config, for a code task (other tasks take none). */
function codeTaskOptions(config: ZeroConfig): TaskOptions {
  if (!isCodeTaskName(config.task)) return {};
  return { language: config.codeLanguage, scoring: config.codeScoring, sandbox: { limits: config.sandboxLimits, ...(config.sandboxWorkers === null ? {} : { workers: config.sandboxWorkers }) } };
}

/** The weighted rule rewards of R1-Zero (SPEC.md 3): the task's verifier for accuracy, plus the format rule. */
export function zeroRewardSpecs(config: Pick<ZeroConfig, 'accuracyWeight' | 'formatWeight' | 'formatRule' | 'tagCountWeight'>): RewardSpec[] {
  const specs: RewardSpec[] = [{ kind: 'accuracy', weight: config.accuracyWeight }, { kind: 'format', weight: config.formatWeight, rule: config.formatRule }];
  if (config.tagCountWeight > 0) specs.push({ kind: 'tag-count', weight: config.tagCountWeight });
  return specs;
}

/** R1-Zero's rewards built for a task. */
export function zeroRewards(task: Task, config: Pick<ZeroConfig, 'accuracyWeight' | 'formatWeight' | 'formatRule' | 'tagCountWeight'>): WeightedReward[] {
  return buildRewards(zeroRewardSpecs(config), { task, rewardModels: new Map() });
}

// ---------------------------------------------------------------------------------------------------------
// The base model

/** The fields that decide the base model; their hash names its cache folder. */
export function baseModelKey(config: ZeroConfig): Record<string, unknown> {
  return {
    task: config.task, level: config.level, documents: config.baseDocuments, correctRate: config.baseCorrectRate, formatRate: config.baseFormatRate,
    templateRate: config.baseTemplateRate, drillDocuments: config.baseDrillDocuments,
    // Only when set, so that the base models cached before styles existed keep their folders.
    ...(config.baseStyles === null ? {} : { styles: config.baseStyles }),
    ...(config.baseTimeLimitMinutes === null ? {} : { timeLimitMinutes: config.baseTimeLimitMinutes }),
    vocabSize: config.baseVocabSize, size: config.baseSize, overrides: config.baseModelOverrides, steps: config.baseSteps,
    batchSize: config.baseBatchSize, seqLen: config.baseSeqLen, lr: config.baseLr, seed: config.baseSeed,
  };
}

/**
 * The base model's folder: cacheDir/base-<hash>/final, pretrained now unless a complete one is there (see
 * ensurePretrainedModel); `attempt` > 0 is a pretraining run from another initialization (see usableBaseModel).
 */
export async function ensureBaseModel(config: ZeroConfig, log: (line: string) => void, attempt = 0): Promise<string> {
  const text = BASE_TEXT[config.task];
  if (!text) throw new UserError(`task ${config.task}: r1ts cannot write pretraining text for it, so it cannot make a base model; give one with --model DIR`);
  if (config.task === 'code' && config.codeLanguage !== 'python') {
    throw new UserError(`task code: the base model r1ts makes writes Python; for --code-language ${config.codeLanguage} give a base model with --model DIR`);
  }
  if (config.baseStyles !== null && config.task !== 'arithmetic') throw new UserError(`task ${config.task}: baseStyles (guesses, worked and checked chains) exist for the arithmetic task only`);
  const styles = config.baseStyles;
  const correctness = styles === null ? `${percent(config.baseCorrectRate)} correct`
    : `${percent(styles.guessRate)} guesses${styles.guessRateBySteps === undefined ? '' : ` (by operations: ${Object.entries(styles.guessRateBySteps).map(([steps, rate]) => `${steps}: ${percent(rate)}`).join(', ')})`}, ${percent(styles.checkedRate)} of worked chains checked, slips ${percent(styles.slipRate)} a step`;
  return ensurePretrainedModel({
    cacheDir: config.cacheDir,
    // The attempt only when > 0: a first attempt keeps the folder cached before attempts existed.
    key: { ...baseModelKey(config), ...(attempt > 0 ? { attempt } : {}) },
    describe: `${config.baseDocuments} generated documents (${correctness}, ${percent(config.baseFormatRate)} in format), ${config.baseSteps} pretraining steps${attempt > 0 ? `, attempt ${attempt + 1}` : ''}`,
    documents: () => {
      const rng = new Rng(config.baseSeed);
      const documents = text.documents(rng, config.baseDocuments, {
        correctRate: config.baseCorrectRate, formatRate: config.baseFormatRate, ...(config.level === null ? {} : { level: config.level }), ...(styles === null ? {} : { styles }),
      })
        .map((doc) => (rng.uniform() < config.baseTemplateRate ? doc : templateTail(doc)));
      for (let d = 0; d < config.baseDrillDocuments; d++) documents.push(drillDocument(() => text.drill(rng, config.level)));
      rng.shuffle(documents);
      return documents;
    },
    pretrain: {
      size: config.baseSize, modelOverrides: config.baseModelOverrides, vocabSize: config.baseVocabSize, steps: config.baseSteps,
      batchSize: config.baseBatchSize, seqLen: config.baseSeqLen, lr: config.baseLr, seed: config.baseSeed + ATTEMPT_SEED_STRIDE * attempt, device: config.device,
      precision: config.precision, timeLimitMinutes: config.baseTimeLimitMinutes,
    },
  }, log);
}

/** Pretraining seeds of further attempts: far from the seeds of the first ones. */
export const ATTEMPT_SEED_STRIDE = 1000;

/** How a base model is measured and made, for usableBaseModel. */
export interface BaseModelAttempts {
  /** What is made, for the log ("teacher base"). */
  what: string;
  /** The task whose test set is the training problems the base is measured on (see trainingProblems). */
  trainingProblems: Task;
  evalOptions: (tokenizer: Tokenizer) => EvalOptions;
  /** The folder of pretraining run `attempt` (0 first), made or taken from the cache. */
  make: (attempt: number) => Promise<string>;
}

/**
 * The first pretraining run whose pass@1 on training problems reaches baseMinPassAt1, else the best of
 * baseAttempts runs (see ZeroConfig.baseMinPassAt1): the base models of `r1 zero` and of the R1 pipeline's teacher.
 * Returns its folder and every attempt's pass@1.
 */
export async function usableBaseModel(settings: Pick<ZeroConfig, 'baseMinPassAt1' | 'baseAttempts'>, base: BaseModelAttempts, log: (line: string) => void): Promise<{ folder: string; passAt1: number[] }> {
  const attempts: Array<{ folder: string; passAt1: number }> = [];
  for (let attempt = 0; attempt < settings.baseAttempts; attempt++) {
    const folder = await base.make(attempt);
    const { model, tokenizer } = await loadModel(folder);
    const report = evaluateModel(model, tokenizer, base.trainingProblems, base.evalOptions(tokenizer));
    attempts.push({ folder, passAt1: report.passAt1 });
    const usable = report.passAt1 >= settings.baseMinPassAt1;
    log(`${base.what}, pretraining run ${attempt + 1}: pass@1 ${percent(report.passAt1)} on ${report.questions} training problems (${usable ? 'usable' : `below ${percent(settings.baseMinPassAt1)}`})`);
    if (usable) break;
  }
  const best = attempts.reduce((a, b) => (b.passAt1 > a.passAt1 ? b : a));
  if (best.passAt1 < settings.baseMinPassAt1) log(`no pretraining run reached ${percent(settings.baseMinPassAt1)}: using the best (${percent(best.passAt1)})`);
  return { folder: best.folder, passAt1: attempts.map((a) => a.passAt1) };
}

/** `task` with `count` problems drawn from its training distribution (seed + 40) as its test set: what a base model is measured on. */
export function trainingProblems(task: Task, seed: number, count: number): Task {
  return { ...task, testSet: () => task.sample(new Rng(seed + 40), count) };
}

/** A cached pretrained model: the settings that decide it, and how to write its corpus. */
export interface PretrainedModelRecipe {
  cacheDir: string;
  /** Every setting that decides the model (its hash names the cache folder). */
  key: Record<string, unknown>;
  /** What is being made, for the log. */
  describe: string;
  documents: () => string[];
  pretrain: Pick<PretrainConfig, 'size' | 'modelOverrides' | 'vocabSize' | 'steps' | 'batchSize' | 'seqLen' | 'lr' | 'seed' | 'device' | 'precision'> & Partial<Pick<PretrainConfig, 'timeLimitMinutes'>>;
}

/**
 * cacheDir/base-<hash of the key>/final, pretrained now unless a complete one is there. The model is trained in
 * base-<hash>.partial, renamed into place when done, so a killed run leaves no half model in the cache; the next
 * run resumes the partial one from its last checkpoint (the corpus is rewritten identically from the seed).
 */
export async function ensurePretrainedModel(recipe: PretrainedModelRecipe, log: (line: string) => void): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(recipe.key)).digest('hex').slice(0, 12);
  const dir = join(recipe.cacheDir, `base-${hash}`);
  const finalDir = join(dir, FINAL_DIR);
  if (existsSync(join(finalDir, 'config.json'))) {
    log(`using the cached base model ${finalDir}`);
    return finalDir;
  }
  const temporary = `${dir}.partial`;
  const resume = existsSync(join(temporary, CHECKPOINTS_DIR));
  await mkdir(temporary, { recursive: true });
  log(`${resume ? 'resuming' : 'making'} a base model in ${dir}: ${recipe.describe}`);
  const corpus = join(temporary, 'corpus.jsonl');
  await writeFile(corpus, recipe.documents().map((text) => `${JSON.stringify({ text })}\n`).join(''));
  await writeFile(join(temporary, 'settings.json'), `${JSON.stringify(recipe.key, null, 2)}\n`);
  const steps = recipe.pretrain.steps;
  await pretrain({
    ...defaultPretrainConfig,
    ...recipe.pretrain,
    corpus,
    out: temporary,
    warmup: Math.min(30, Math.floor(steps / 10)),
    evalEvery: steps,
    checkpointEvery: Math.min(steps, BASE_CHECKPOINT_EVERY),
    keepCheckpoints: 1,
    samples: 0,
    resume,
  }, { log });
  await rm(join(temporary, CHECKPOINTS_DIR), { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  await rename(temporary, dir);
  return finalDir;
}

/** Pretraining steps a killed base model loses at most. */
const BASE_CHECKPOINT_EVERY = 100;

/** A document of DRILL_EQUATIONS drill sentences. */
export function drillDocument(drill: () => string): string {
  return Array.from({ length: DRILL_EQUATIONS }, drill).join(' ');
}

const DRILL_EQUATIONS = 16;

/** A document without the template's instructions: from its last "User: " on (R1_ZERO_TEMPLATE ends "User: prompt. Assistant:"). */
export function templateTail(doc: string): string {
  const at = doc.indexOf(TEMPLATE_TAIL);
  return at < 0 ? doc : doc.slice(at);
}

const TEMPLATE_TAIL = R1_ZERO_TEMPLATE.slice(R1_ZERO_TEMPLATE.lastIndexOf('User: '), R1_ZERO_TEMPLATE.lastIndexOf('prompt'));
