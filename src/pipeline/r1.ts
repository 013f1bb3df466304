// The DeepSeek-R1 recipe end to end (R1 sec. 2.3-2.4; SPEC.md 4; r1-spec-detail 3), in miniature:
//
//   base          a base model pretrained here on text whose chains of thought are in English and Chinese
//                 (and a smaller student base on the same text), cached as `npm start` caches its own
//   zero          R1-Zero: GRPO with rule rewards straight on the base (the reference row of every table)
//   zero-language the same RL with the language-consistency reward added: the ablation that prices that reward
//                 (R1v2 B.6), run where the chains mix languages (the cold-started stages write one language)
//   cold-start    SFT of the base on readable `<think>…</think> summary` data: the user's JSONL, or R1-Zero
//                 samples that were right, rewritten into one language with a summary (R1v2 B.3.2)
//   reasoning-rl  GRPO from the cold-start model with accuracy + readable format + language consistency
//   rejection-sft rejection sampling of the reasoning-RL model (right answers, R1's readability filters) plus
//                 non-reasoning data, and SFT of the *base* model on both (R1v1 2.3.3: "retrain V3-Base")
//   rl-all        a reward model on preference pairs, then GRPO mixing rule-rewarded reasoning prompts with
//                 reward-model-rewarded general prompts (R1 sec. 2.3.4)
//   distill       the final model writes rejection-sampled traces; the small student is fine-tuned on them
//                 with SFT only, 2-3 epochs, decaying learning rate (R1 sec. 2.4)
//   student-rl    the same student trained with R1-Zero's RL alone for the same wall time (R1 sec. 4.1's
//                 comparison: Qwen-32B with large-scale RL 47.0 against distilled 72.6 on AIME)
//   report        one HTML page comparing every model the way the paper's tables do
//
// Layout: each stage has its own folder under `out` (NN-name/) holding what it trained (final/), its metrics
// and its evaluation, and ends by writing stage.json atomically. The runner reads stage.json to skip a stage that
// finished; a stage killed midway finds its folder without stage.json and resumes (the trainers continue from
// their last checkpoint; the sampling steps, a few seconds each, run again with the same seeds and give the same
// data). `--stage NAME` reruns one stage alone from the outputs of the stages before it.
//
// The miniature is designed so that the paper's effects can appear, and is measured rather than assumed:
// the base text's chains are in English and Chinese, the Chinese ones right more often (ChainLanguageMix), so
// R1-Zero's chains mix languages and the language reward has something to correct and a price; readability is
// R1's format plus a one-language chain; general ability is pass@1 on instruction-following requests about
// dictionary words that no training request names (src/tasks/instructions.ts), answerable from the base text's
// word-book pages once SFT has taught the requests' form.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { evaluateModel, summary, writeEvalReport, type EvalOptions, type EvalReport } from '../eval/evaluate.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { CHECKPOINTS_DIR, FINAL_DIR, METRICS_FILE, readJsonl } from '../io/checkpoint.ts';
import { readJsonFile } from '../io/json-file.ts';
import { loadModel, saveModel } from '../models/pretrained.ts';
import { DenseModel, type DenseConfig } from '../models/dense.ts';
import { isReadableFormat, isStrictFormat } from '../rewards/format.ts';
import { chainOfThought, countedWords, languageConsistency, type LanguageTarget } from '../rewards/language.ts';
import { PROMPT_TEMPLATES } from '../rewards/template.ts';
import { defaultGrpoConfig, trainGrpo, type GrpoConfig, type GrpoStepRecord } from '../rl/trainer.ts';
import { ARITHMETIC_LEVELS, arithmeticTask, drawArithmeticProblem, pretrainingText, rewriteReadable, workedSteps, type ChainLanguage } from '../tasks/arithmetic.ts';
import { instructionResponse, instructionTask, trainingInstructions, instructionPreferencePairs } from '../tasks/instructions.ts';
import { readableTask } from '../tasks/readable.ts';
import type { Task } from '../tasks/task.ts';
import { useDevice } from '../tensor/index.ts';
import { Rng } from '../tensor/random.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { dictionaryDocument } from '../train/corpus.ts';
import { defaultRewardModelConfig, trainRewardModel } from '../train/reward-model.ts';
import { readSftExamples } from '../train/sft-data.ts';
import { defaultSftConfig, sft } from '../train/sft.ts';
import { average } from '../util/average.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { defaultRejectionSampleConfig, rejectionSample, type RejectionCounts, type RejectionSampleConfig, type RejectionSampleResult } from './rejection-sample.ts';
import { renderPipelineReport, type PipelineCurves, type PipelineReportInput, type PipelineRow } from './report.ts';
import { buildSources, percent, type RlSourceConfig } from './rl.ts';
import { ATTEMPT_SEED_STRIDE, defaultZeroConfig, drillDocument, ensurePretrainedModel, templateTail, trainingProblems, usableBaseModel, zeroSource, type ZeroConfig } from './zero.ts';

/** The base-model settings the pipeline shares with `r1 zero` (and their defaults: the demo's base model). */
const SHARED_BASE_SETTINGS = ['cacheDir', 'device', 'precision', 'baseDocuments', 'baseCorrectRate', 'baseFormatRate', 'baseTemplateRate', 'baseDrillDocuments',
  'baseVocabSize', 'baseSize', 'baseModelOverrides', 'baseSteps', 'baseBatchSize', 'baseSeqLen', 'baseLr', 'baseMinPassAt1', 'baseAttempts'] as const satisfies ReadonlyArray<keyof ZeroConfig>;
type SharedBaseSettings = Pick<ZeroConfig, (typeof SHARED_BASE_SETTINGS)[number]>;

/** Everything `r1 pipeline` does, as one flat object (each field is a flag of the CLI, or a --config field). */
export interface R1PipelineConfig extends SharedBaseSettings {
  /** Run folder: one folder per stage, report.html, summary.json. */
  out: string;
  /** Rerun this stage alone (its earlier stages must have finished); null runs every stage not yet finished. */
  stage: R1StageName | null;
  /**
   * Least examples kept by each rejection sampling (the cold-start data, stage 3's and distillation's): while
   * fewer are kept, it draws more prompts, up to maxPromptsFactor times its own number. A weaker model (another
   * seed's base) keeps fewer of its samples; this gives the next stage a set of a usable size where more prompts
   * can.
   */
  minKeptExamples: number;
  maxPromptsFactor: number;
  /** Arithmetic level of the reasoning prompts. */
  level: number;
  /** The language chains of thought should be in (the language reward's target), and the base text's other one. */
  targetLanguage: ChainLanguage;
  secondLanguage: ChainLanguage;
  seed: number;
  /** Steps between checkpoints of every trainer (GRPO, SFT, reward model): what a killed stage loses at most. */
  checkpointEvery: number;

  // The base models (teacher and student), pretrained on the same generated text (the fields shared with
  // ZeroConfig mean what they mean there; baseCorrectRate is that of chains that start in the target language).
  /** Fraction of right answers among chains that start in the second language (higher: see the file header). */
  baseSecondCorrectRate: number;
  /** Fraction of base-text chains that start in the second language. */
  baseSecondRate: number;
  /** Fraction of base-text chains that switch language midway. */
  baseSwitchRate: number;
  /** Pages of the English-Chinese dictionary (what the translation requests of the general task ask for). */
  baseDictionaryDocuments: number;
  /** The distillation student's shape (the base preset changed by these fields) and pretraining steps. */
  studentModelOverrides: Partial<DenseConfig>;
  studentSteps: number;

  // GRPO, shared by every RL stage (SPEC.md 1).
  promptsPerStep: number;
  groupSize: number;
  maxNewTokens: number;
  beta: number;
  epsLow: number;
  epsHigh: number;
  /** Learning rate of R1-Zero's RL (from the base) and of the RL-only student. */
  rlLr: number;
  /** Learning rate of the RL stages after a fine-tuning (reasoning RL, its ablation, RL for all scenarios). */
  tunedRlLr: number;
  /** GRPO steps of R1-Zero, of reasoning RL (and its ablation), and of RL for all scenarios. */
  zeroSteps: number;
  reasoningSteps: number;
  allSteps: number;
  /** Sampling temperature of reasoning RL (R1: 1.0) and of RL for all scenarios (R1: 0.7). */
  reasoningTemperature: number;
  allTemperature: number;
  /** Sampling temperature of rejection sampling for stage 3 and for distillation. */
  rejectionTemperature: number;
  /** Reward weights: the format reward and the language-consistency reward (R1: added with weight 1). */
  formatWeight: number;
  languageWeight: number;

  // Cold start (R1 sec. 2.3.1).
  /** The user's cold-start SFT JSONL (messages or prompt/completion); null makes it from R1-Zero samples. */
  coldStartData: string | null;
  /** Prompts sampled from R1-Zero, samples per prompt, and at most one kept per prompt. */
  coldStartPrompts: number;
  coldStartSamples: number;
  coldStartEpochs: number;
  coldStartLr: number;

  // Rejection sampling + SFT (R1 sec. 2.3.3).
  /** The user's stage-3 reasoning SFT JSONL; null rejection-samples it from the reasoning-RL model. */
  sftData: string | null;
  rejectionPrompts: number;
  rejectionSamples: number;
  /** Non-reasoning examples per reasoning example kept (R1: 200k against 600k; here more, since the general requests are new to the base model). */
  generalRatio: number;
  sftEpochs: number;
  sftLr: number;

  // RL for all scenarios (R1 sec. 2.3.4).
  /** Preference pairs of the helpfulness reward model, its epochs and learning rate. */
  rewardPairs: number;
  rewardEpochs: number;
  rewardLr: number;
  /** Fraction of each step's prompts that are general ones. */
  generalFraction: number;

  // Distillation (R1 sec. 2.4).
  /** The user's reasoning traces for the student (SFT JSONL); null rejection-samples them from the final model. */
  distillData: string | null;
  distillPrompts: number;
  distillSamples: number;
  distillEpochs: number;
  distillLr: number;

  // Evaluation (SPEC.md 5), of every model.
  evalK: number;
  evalLimit: number;
  generalEvalLimit: number;
  evalTemperature: number;
  evalTopP: number;
}

/**
 * Paper settings where they apply (R1: language reward weight 1, temperature 1.0 then 0.7, SFT 2 epochs,
 * distillation 3 epochs with a learning rate decaying to a tenth; evaluation at 0.6 / top-p 0.95), at sizes
 * that run every stage on 2 CPU cores in the goal's 30 minutes (docs/BENCHMARKS.md, "R1 pipeline").
 */
export const defaultR1PipelineConfig: R1PipelineConfig = {
  ...(Object.fromEntries(SHARED_BASE_SETTINGS.map((key) => [key, defaultZeroConfig[key]])) as SharedBaseSettings),
  // The teacher's pretraining as measured for this pipeline (its weak runs are retried: baseMinPassAt1), not
  // the 1500 steps of `r1 zero`'s single base.
  baseSteps: 1000,
  out: 'runs/r1',
  stage: null,
  minKeptExamples: 400,
  maxPromptsFactor: 4,
  level: 1,
  targetLanguage: 'en',
  secondLanguage: 'zh',
  seed: 1,
  checkpointEvery: 10,
  baseSecondCorrectRate: 0.5,
  baseSecondRate: 0.35,
  baseSwitchRate: 0.2,
  baseDictionaryDocuments: 2000,
  studentModelOverrides: { hiddenSize: 64, intermediateSize: 160, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 32 },
  studentSteps: 800,
  promptsPerStep: 8,
  groupSize: 8,
  maxNewTokens: 64,
  beta: 0.001,
  epsLow: 0.2,
  epsHigh: 0.2,
  rlLr: 2e-4,
  tunedRlLr: 5e-5,
  zeroSteps: 50,
  reasoningSteps: 40,
  allSteps: 40,
  reasoningTemperature: 1,
  allTemperature: 0.7,
  rejectionTemperature: 0.7,
  formatWeight: 0.5,
  languageWeight: 1,
  coldStartData: null,
  coldStartPrompts: 600,
  coldStartSamples: 4,
  coldStartEpochs: 2,
  coldStartLr: 1e-3,
  sftData: null,
  rejectionPrompts: 800,
  rejectionSamples: 4,
  generalRatio: 0.5,
  sftEpochs: 2,
  sftLr: 1e-3,
  rewardPairs: 800,
  rewardEpochs: 1,
  rewardLr: 1e-3,
  generalFraction: 0.25,
  distillData: null,
  distillPrompts: 800,
  distillSamples: 2,
  distillEpochs: 3,
  distillLr: 2e-3,
  evalK: 4,
  evalLimit: 100,
  generalEvalLimit: 100,
  evalTemperature: 0.6,
  evalTopP: 0.95,
};

// ---------------------------------------------------------------------------------------------------------
// Stages

/** How a model is prompted and read: R1-Zero's template and tags, or R1's chat turn and readable summary. */
export type OutputStyle = 'zero' | 'readable';

/** What a finished stage leaves for the report and for the stages after it (its stage.json). */
export interface StageRecord {
  stage: R1StageName;
  /** Wall time of the stage's last run (of a resumed stage: the time after the resume). */
  seconds: number;
  /** The model(s) it produced: HF folders. */
  models: Record<string, string>;
  /** Headline figures of its models, by model name. */
  scores: Record<string, ModelScores>;
  /** Data files it wrote, by name, and counts of what was kept or removed. */
  files: Record<string, string>;
  counts: Record<string, number>;
}

/** One model's evaluation: the reasoning test set and the general one, with the language and readability measures. */
export interface ModelScores {
  style: OutputStyle;
  reasoning: Omit<EvalReport, 'details'>;
  /** Mean fraction of chain-of-thought words in the target language, over every reasoning response. */
  languageConsistency: number;
  /** Fraction of reasoning responses whose chain of thought is entirely in the target language. */
  consistentRate: number;
  /** Fraction of reasoning responses that are readable: R1's format and a chain entirely in the target language. */
  readableRate: number;
  general: Omit<EvalReport, 'details'>;
}

interface StageContext {
  name: R1StageName;
  config: R1PipelineConfig;
  /** This stage's folder. */
  dir: string;
  /** The records of finished stages. */
  done: Map<R1StageName, StageRecord>;
  log: (line: string) => void;
  progress: boolean;
  hooks: R1PipelineHooks;
}

interface Stage {
  name: R1StageName;
  title: string;
  /** Stages whose outputs this one reads. */
  needs: readonly R1StageName[];
  run: (ctx: StageContext) => Promise<Omit<StageRecord, 'stage' | 'seconds'>>;
}

export const R1_STAGE_NAMES = ['base', 'zero', 'zero-language', 'cold-start', 'reasoning-rl', 'rejection-sft', 'rl-all', 'distill', 'student-rl'] as const;
export type R1StageName = (typeof R1_STAGE_NAMES)[number];

export const STAGE_FILE = 'stage.json';

export function stageDir(out: string, name: R1StageName): string {
  return join(out, `${String(R1_STAGE_NAMES.indexOf(name) + 1).padStart(2, '0')}-${name}`);
}

export interface R1PipelineHooks {
  log?: (line: string) => void;
  progress?: boolean;
  /** Called after each GRPO step of an RL stage, before that step's checkpoint (tests kill a stage midway here). */
  onGrpoStep?: (stage: R1StageName, step: number) => void;
}

export interface R1PipelineResult {
  out: string;
  records: StageRecord[];
  reportFile: string;
}

/**
 * Runs every stage that has not finished (or only `config.stage`), then writes the report from every finished
 * stage's record.
 */
export async function runR1Pipeline(config: R1PipelineConfig, hooks: R1PipelineHooks = {}): Promise<R1PipelineResult> {
  const log = hooks.log ?? logToStderr;
  if (config.targetLanguage === config.secondLanguage) throw new UserError(`targetLanguage and secondLanguage are both ${config.targetLanguage}: the base text needs two languages`);
  useDevice(config.device, config.precision);
  await mkdir(config.out, { recursive: true });
  const done = new Map<R1StageName, StageRecord>();
  for (const name of R1_STAGE_NAMES) {
    const file = join(stageDir(config.out, name), STAGE_FILE);
    if (existsSync(file)) done.set(name, readJsonFile(file) as StageRecord);
  }
  const todo = config.stage === null ? STAGES.filter((s) => !done.has(s.name)) : STAGES.filter((s) => s.name === config.stage);
  for (const stage of todo) {
    const missing = stage.needs.filter((name) => !done.has(name));
    if (missing.length > 0) throw new UserError(`stage ${stage.name} needs the outputs of ${missing.join(', ')}: run the pipeline without --stage first (it skips finished stages)`);
    const dir = stageDir(config.out, stage.name);
    if (config.stage !== null) {
      // Rerun alone: from scratch, so that nothing of the earlier run of this stage is mixed in.
      await rm(dir, { recursive: true, force: true });
      done.delete(stage.name);
    }
    const resumed = existsSync(dir);
    await mkdir(dir, { recursive: true });
    log(`\n== stage ${stage.name}: ${stage.title}${resumed ? ' (resuming)' : ''}`);
    const started = performance.now();
    const result = await stage.run({ name: stage.name, config, dir, done, log, progress: hooks.progress ?? true, hooks });
    const record: StageRecord = { stage: stage.name, seconds: (performance.now() - started) / 1000, ...result };
    await writeFileAtomic(join(dir, STAGE_FILE), `${JSON.stringify(record, null, 2)}\n`);
    done.set(stage.name, record);
    for (const [model, scores] of Object.entries(record.scores)) log(`${stage.name}/${model}: ${scoreLine(scores)}`);
    if (config.stage !== null) {
      const later = R1_STAGE_NAMES.slice(R1_STAGE_NAMES.indexOf(stage.name) + 1).filter((name) => done.has(name) && STAGES.find((s) => s.name === name)!.needs.includes(stage.name));
      if (later.length > 0) log(`note: ${later.join(', ')} used this stage's earlier output; rerun them with --stage to bring them up to date`);
    }
  }
  const records = R1_STAGE_NAMES.filter((name) => done.has(name)).map((name) => done.get(name)!);
  const reportFile = join(config.out, 'report.html');
  const curves = await Promise.all(records.map(async (r) => ({ stage: r.stage, records: await stageCurves(config.out, r.stage) })));
  await writeFileAtomic(reportFile, renderPipelineReport(pipelineReportInput(config, records, curves)));
  await writeFileAtomic(join(config.out, 'summary.json'), `${JSON.stringify({ stages: records }, null, 2)}\n`);
  return { out: config.out, records, reportFile };
}

/** One line of a model's headline figures, for the log. */
export function scoreLine(s: ModelScores): string {
  return `pass@1 ${percent(s.reasoning.passAt1)}, format ${percent(s.reasoning.formatRate)}, readable ${percent(s.readableRate)}, ` +
    `language consistency ${percent(s.languageConsistency)}, general ${percent(s.general.passAt1)}, length ${s.reasoning.meanLength.toFixed(1)}`;
}

// ---------------------------------------------------------------------------------------------------------
// Prompts, rewards and evaluation of the two output styles

/** The prompt a model of the style is given: R1-Zero's template, or a user turn in the model's chat template. */
export function promptFor(style: OutputStyle, tokenizer: Tokenizer): (question: string) => string {
  const template = PROMPT_TEMPLATES[style === 'zero' ? 'r1-zero' : 'chat'];
  return (question) => template(question, tokenizer);
}

const FORMAT_OF_STYLE: Record<OutputStyle, (completion: string) => boolean> = { zero: isStrictFormat, readable: isReadableFormat };

/** The reasoning task as the style asks it (the same problems; the answer read from <answer> or from the summary). */
function reasoningTask(config: R1PipelineConfig, style: OutputStyle): Task {
  const task = arithmeticTask({ level: config.level });
  return style === 'zero' ? task : readableTask(task);
}

/** How every model is evaluated (SPEC.md 5): k samples per question at the evaluation temperature, in the style's prompt and format. */
function evalOptions(config: R1PipelineConfig, style: OutputStyle, tokenizer: Tokenizer): EvalOptions {
  return {
    k: config.evalK, temperature: config.evalTemperature, topP: config.evalTopP, maxNewTokens: config.maxNewTokens, limit: config.evalLimit,
    seed: config.seed + 1_000_000, prompt: promptFor(style, tokenizer), isFormatted: FORMAT_OF_STYLE[style],
  };
}

/** Evaluates a model on the reasoning and the general test sets; writes both reports (with every response) to `dir`. */
export async function scoreModel(model: DenseModel, tokenizer: Tokenizer, style: OutputStyle, config: R1PipelineConfig, dir: string, name: string): Promise<ModelScores> {
  const options = evalOptions(config, style, tokenizer);
  const reasoning = evaluateModel(model, tokenizer, reasoningTask(config, style), options);
  const general = evaluateModel(model, tokenizer, instructionTask(), { ...options, limit: config.generalEvalLimit });
  await writeEvalReport(join(dir, `${name}-reasoning.json`), reasoning);
  await writeEvalReport(join(dir, `${name}-general.json`), general);
  const target = config.targetLanguage as LanguageTarget;
  const responses = reasoning.details.flatMap((q) => q.responses);
  const chains = responses.map((r) => chainOfThought(r.text));
  const consistency = chains.map((chain) => languageConsistency(chain, target));
  const monolingual = chains.map((chain, i) => countedWords(chain).length > 0 && consistency[i] === 1);
  return {
    style,
    reasoning: summary(reasoning),
    languageConsistency: average(consistency),
    consistentRate: average(monolingual.map(Number)),
    readableRate: average(responses.map((r, i) => (isReadableFormat(r.text) && monolingual[i] ? 1 : 0))),
    general: summary(general),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The base models

/** The base text (file header): R1-Zero-format problems with chains in two languages, drills and dictionary pages. */
export function baseDocuments(config: R1PipelineConfig): string[] {
  const rng = new Rng(config.seed);
  const mix = { second: config.secondLanguage, secondRate: config.baseSecondRate, switchRate: config.baseSwitchRate, secondCorrectRate: config.baseSecondCorrectRate };
  const documents = pretrainingText(rng, config.baseDocuments, { correctRate: config.baseCorrectRate, formatRate: config.baseFormatRate, level: config.level, languages: mix })
    .map((doc) => (rng.uniform() < config.baseTemplateRate ? doc : templateTail(doc)));
  const level = ARITHMETIC_LEVELS[config.level];
  for (let d = 0; d < config.baseDrillDocuments; d++) documents.push(drillDocument(() => workedSteps(drawArithmeticProblem(rng, level).steps)));
  for (let d = 0; d < config.baseDictionaryDocuments; d++) documents.push(dictionaryDocument(rng));
  rng.shuffle(documents);
  return documents;
}

/** A base model; `attempt` > 0 is a pretraining run from another initialization (see ZeroConfig.baseMinPassAt1). */
async function ensureR1BaseModel(config: R1PipelineConfig, role: 'teacher' | 'student', log: (line: string) => void, attempt = 0): Promise<string> {
  const overrides = role === 'teacher' ? config.baseModelOverrides : { ...config.baseModelOverrides, ...config.studentModelOverrides };
  const steps = role === 'teacher' ? config.baseSteps : config.studentSteps;
  const text = {
    recipe: 'r1-bilingual', level: config.level, documents: config.baseDocuments, correctRate: config.baseCorrectRate, secondCorrectRate: config.baseSecondCorrectRate,
    secondRate: config.baseSecondRate, switchRate: config.baseSwitchRate, second: config.secondLanguage, formatRate: config.baseFormatRate,
    templateRate: config.baseTemplateRate, drillDocuments: config.baseDrillDocuments, dictionaryDocuments: config.baseDictionaryDocuments, seed: config.seed,
  };
  const pretrain = {
    size: config.baseSize, modelOverrides: overrides, vocabSize: config.baseVocabSize, steps, batchSize: config.baseBatchSize,
    seqLen: config.baseSeqLen, lr: config.baseLr, seed: config.seed + ATTEMPT_SEED_STRIDE * attempt, device: config.device, precision: config.precision,
  };
  const { device: _device, precision: _precision, ...decides } = pretrain;
  return ensurePretrainedModel({
    cacheDir: config.cacheDir,
    // The attempt only when > 0: a first attempt keeps the folder cached before attempts existed.
    key: { ...text, ...decides, ...(attempt > 0 ? { attempt } : {}) },
    describe: `the ${role} base, ${config.baseDocuments} problems with chains in ${config.targetLanguage} and ${config.secondLanguage}, ${steps} pretraining steps${attempt > 0 ? `, attempt ${attempt + 1}` : ''}`,
    documents: () => baseDocuments(config),
    pretrain,
  }, log);
}

/** The teacher base: the first of its pretraining runs usable for R1-Zero (see ZeroConfig.baseMinPassAt1). */
function usableTeacherBase(config: R1PipelineConfig, log: (line: string) => void): Promise<{ folder: string; passAt1: number[] }> {
  return usableBaseModel(config, {
    what: 'teacher base',
    trainingProblems: trainingProblems(reasoningTask(config, 'zero'), config.seed, config.evalLimit),
    evalOptions: (tokenizer) => evalOptions(config, 'zero', tokenizer),
    make: (attempt) => ensureR1BaseModel(config, 'teacher', log, attempt),
  }, log);
}

async function loadDense(dir: string): Promise<{ model: DenseModel; tokenizer: Tokenizer }> {
  const loaded = await loadModel(dir);
  if (!(loaded.model instanceof DenseModel)) throw new UserError(`${dir}: the pipeline trains dense (Llama/Qwen2) models; this one is ${loaded.model.config.family}`);
  return { model: loaded.model, tokenizer: loaded.tokenizer };
}

// ---------------------------------------------------------------------------------------------------------
// GRPO stages

/** The GRPO settings every RL stage shares, with the stage's own steps, temperature and seed. */
function grpoSettings(config: R1PipelineConfig, steps: number, temperature: number, lr: number, seedOffset: number): GrpoConfig {
  return {
    ...defaultGrpoConfig,
    steps, temperature, lr, seed: config.seed + seedOffset,
    promptsPerStep: config.promptsPerStep, groupSize: config.groupSize, maxNewTokens: config.maxNewTokens,
    beta: config.beta, epsLow: config.epsLow, epsHigh: config.epsHigh, warmup: 5, checkpointEvery: config.checkpointEvery,
  };
}

/**
 * GRPO from the model in `from` on its prompt sources (r1 rl's source configs: task, template, rewards), in the
 * stage's folder (a killed stage resumes from its last checkpoint), then the trained model saved to final/ and
 * scored.
 */
async function grpoStage(ctx: StageContext, from: string, style: OutputStyle, sources: RlSourceConfig[], grpo: GrpoConfig): Promise<{ finalDir: string; scores: ModelScores; records: GrpoStepRecord[] }> {
  const { model, tokenizer } = await loadDense(from);
  const built = await buildSources(sources, tokenizer);
  const onStep = ctx.hooks.onGrpoStep && ((record: GrpoStepRecord) => ctx.hooks.onGrpoStep!(ctx.name, record.step));
  const { records } = await trainGrpo({ model, tokenizer, sources: built.map((b) => b.rollout), config: grpo, out: ctx.dir, resume: true }, { log: ctx.log, progress: ctx.progress, onStep });
  const finalDir = join(ctx.dir, FINAL_DIR);
  await saveModel(model, tokenizer, finalDir);
  return { finalDir, scores: await scoreModel(model, tokenizer, style, ctx.config, ctx.dir, 'final'), records };
}

/** Reads a stage's step records (metrics.jsonl) for the report's curves; none when it has no such file. */
async function stageCurves(out: string, stage: R1StageName): Promise<Array<Record<string, unknown>>> {
  return stageCurvesIn(stageDir(out, stage));
}

async function stageCurvesIn(dir: string): Promise<Array<Record<string, unknown>>> {
  const file = join(dir, METRICS_FILE);
  return existsSync(file) ? readJsonl<Record<string, unknown>>(file) : [];
}

function modelOf(ctx: StageContext, stage: R1StageName, name = 'final'): string {
  return ctx.done.get(stage)!.models[name];
}

/**
 * R1-Zero's prompt source (SPEC.md 2-3): the R1-Zero template, accuracy + strict format, and the language
 * consistency of the chain added with `languageWeight` (0 leaves it out of the reward, as R1-Zero does; it is
 * still logged, so the curves show the chains' language either way).
 */
function zeroReasoning(config: R1PipelineConfig, languageWeight = 0): RlSourceConfig {
  const source = zeroSource({ task: 'arithmetic', level: config.level, accuracyWeight: 1, formatWeight: config.formatWeight, formatRule: 'strict', tagCountWeight: 0 });
  return { ...source, rewards: [...source.rewards, { kind: 'language', weight: languageWeight, target: config.targetLanguage as LanguageTarget }] };
}

/**
 * Reasoning prompts in a chat turn, answered in the readable form, with the rule rewards of R1's reasoning RL
 * (SPEC.md 3; NAT eq. 7): accuracy, the readable format, and the language consistency of the chain of thought
 * added with `languageWeight` (0 leaves it out of the reward; it is still logged, so the ablation's curves show
 * what happens to it).
 */
function readableReasoning(config: R1PipelineConfig, languageWeight: number, weight = 1): RlSourceConfig {
  return {
    name: 'reasoning', task: 'readable:arithmetic', level: config.level, taskOptions: {}, template: 'chat', weight, fromStep: 1, evaluate: false,
    rewards: [
      { kind: 'accuracy', weight: 1 },
      { kind: 'format', weight: config.formatWeight, rule: 'readable' },
      { kind: 'language', weight: languageWeight, target: config.targetLanguage as LanguageTarget },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------
// The stages

const STAGES: readonly Stage[] = [
  {
    name: 'base',
    title: 'base models pretrained on text that reasons in two languages (cached)',
    needs: [],
    run: async ({ config, dir, log }) => {
      const { folder: teacher, passAt1 } = await usableTeacherBase(config, log);
      const student = await ensureR1BaseModel(config, 'student', log);
      const scores: Record<string, ModelScores> = {};
      for (const [name, folder] of [['final', teacher], ['student', student]] as const) {
        const { model, tokenizer } = await loadDense(folder);
        scores[name] = await scoreModel(model, tokenizer, 'zero', config, dir, name);
      }
      return { models: { final: teacher, student }, scores, files: {}, counts: { teacherAttempts: passAt1.length, ...Object.fromEntries(passAt1.map((p, i) => [`teacherTrainingPassAt1.${i + 1}`, p])) } };
    },
  },
  {
    name: 'zero',
    title: "R1-Zero: GRPO with rule rewards on the base model",
    needs: ['base'],
    run: async (ctx) => {
      const { finalDir, scores } = await grpoStage(ctx, modelOf(ctx, 'base'), 'zero', [zeroReasoning(ctx.config)], grpoSettings(ctx.config, ctx.config.zeroSteps, 1, ctx.config.rlLr, 0));
      return { models: { final: finalDir }, scores: { final: scores }, files: {}, counts: {} };
    },
  },
  {
    name: 'zero-language',
    title: 'ablation: R1-Zero with the language-consistency reward',
    needs: ['base'],
    run: async (ctx) => {
      // The same seeds, steps and prompts as R1-Zero: the language reward is the only difference.
      const { config } = ctx;
      const { finalDir, scores } = await grpoStage(ctx, modelOf(ctx, 'base'), 'zero', [zeroReasoning(config, config.languageWeight)], grpoSettings(config, config.zeroSteps, 1, config.rlLr, 0));
      return { models: { final: finalDir }, scores: { final: scores }, files: {}, counts: {} };
    },
  },
  {
    name: 'cold-start',
    title: 'cold start: SFT of the base model on readable chains of thought',
    needs: ['base', 'zero'],
    run: async (ctx) => {
      const { config, dir } = ctx;
      let data = config.coldStartData;
      let counts: Record<string, number> = {};
      if (data === null) {
        data = join(dir, 'cold-start.jsonl');
        counts = await writeColdStartData(ctx, data);
      }
      const { finalDir, scores } = await fineTune(ctx, modelOf(ctx, 'base'), data, config.coldStartEpochs, config.coldStartLr, 'readable');
      return { models: { final: finalDir }, scores: { final: scores }, files: { data }, counts };
    },
  },
  {
    name: 'reasoning-rl',
    title: 'reasoning RL with the language-consistency reward',
    needs: ['cold-start'],
    run: async (ctx) => {
      const { config } = ctx;
      const { finalDir, scores } = await grpoStage(ctx, modelOf(ctx, 'cold-start'), 'readable', [readableReasoning(config, config.languageWeight)], grpoSettings(config, config.reasoningSteps, config.reasoningTemperature, config.tunedRlLr, 1));
      return { models: { final: finalDir }, scores: { final: scores }, files: {}, counts: {} };
    },
  },
  {
    name: 'rejection-sft',
    title: 'rejection sampling of the reasoning-RL model plus non-reasoning data, SFT of the base model',
    needs: ['base', 'reasoning-rl'],
    run: async (ctx) => {
      const { config, dir } = ctx;
      const data = join(dir, 'sft.jsonl');
      const counts = await writeReasoningData(ctx, config.sftData, modelOf(ctx, 'reasoning-rl'), config.rejectionPrompts, config.rejectionSamples, config.rejectionTemperature, data, 2);
      const { finalDir, scores } = await fineTune(ctx, modelOf(ctx, 'base'), data, config.sftEpochs, config.sftLr, 'readable');
      return { models: { final: finalDir }, scores: { final: scores }, files: { data }, counts };
    },
  },
  {
    name: 'rl-all',
    title: 'RL for all scenarios: rule rewards for reasoning, a reward model for general prompts',
    needs: ['rejection-sft'],
    run: async (ctx) => runAllScenarios(ctx),
  },
  {
    name: 'distill',
    title: 'distillation: the small student fine-tuned on the final model\'s traces (SFT only)',
    needs: ['base', 'rl-all'],
    run: async (ctx) => {
      const { config, dir } = ctx;
      const data = join(dir, 'distill.jsonl');
      const counts = await writeReasoningData(ctx, config.distillData, modelOf(ctx, 'rl-all'), config.distillPrompts, config.distillSamples, config.rejectionTemperature, data, 3);
      const { finalDir, scores } = await fineTune(ctx, modelOf(ctx, 'base', 'student'), data, config.distillEpochs, config.distillLr, 'readable');
      return { models: { final: finalDir }, scores: { final: scores }, files: { data }, counts };
    },
  },
  {
    name: 'student-rl',
    title: "the student trained with R1-Zero's RL alone, for as long as the distillation took",
    needs: ['base', 'distill'],
    run: async (ctx) => {
      const { config } = ctx;
      // The distillation's whole time (sampling the teacher, then SFT), less what this stage already ran before
      // a kill, bounds this stage's RL: the same compute on the same machine.
      const budgetSeconds = ctx.done.get('distill')!.seconds;
      const spent = await elapsedBefore(ctx.dir);
      const grpo = { ...grpoSettings(config, 100_000, 1, config.rlLr, 4), timeLimitMinutes: Math.max(budgetSeconds - spent, 1) / 60 };
      const { finalDir, scores, records } = await grpoStage(ctx, modelOf(ctx, 'base', 'student'), 'zero', [zeroReasoning(config)], grpo);
      return { models: { final: finalDir }, scores: { final: scores }, files: {}, counts: { steps: records.length, budgetSeconds: Math.round(budgetSeconds) } };
    },
  },
];

/** Seconds of GRPO a killed stage already ran (its last metrics record), 0 for a fresh one. */
async function elapsedBefore(dir: string): Promise<number> {
  if (!existsSync(join(dir, CHECKPOINTS_DIR))) return 0;
  const records = await stageCurvesIn(dir);
  const last = records.at(-1);
  return typeof last?.elapsedSeconds === 'number' ? last.elapsedSeconds : 0;
}

// ---------------------------------------------------------------------------------------------------------
// SFT stages and RL for all scenarios

/** A conversation of the pipeline's data (a question, a chain of thought and a summary) fits well within this. */
const SFT_MAX_TOKENS = 256;

/**
 * SFT of the model in `from` on `data` in the stage's folder (a killed stage resumes from its last checkpoint),
 * the learning rate decaying to a tenth by a cosine (R1v2 B.4.2-B.4.3), then the model scored.
 */
async function fineTune(ctx: StageContext, from: string, data: string, epochs: number, lr: number, style: OutputStyle): Promise<{ finalDir: string; scores: ModelScores }> {
  const { config } = ctx;
  const result = await sft({
    ...defaultSftConfig,
    data, model: from, out: ctx.dir, epochs, lr, minLrRatio: 0.1, schedule: 'cosine', warmup: 5,
    batchSize: 16, microBatchSize: 16, maxLength: SFT_MAX_TOKENS, validationFraction: 0.05, evalEvery: 20, checkpointEvery: config.checkpointEvery,
    resume: existsSync(join(ctx.dir, CHECKPOINTS_DIR)), seed: config.seed, device: config.device, precision: config.precision,
  }, { log: ctx.log, progress: ctx.progress });
  const { model, tokenizer } = await loadDense(result.finalDir);
  return { finalDir: result.finalDir, scores: await scoreModel(model, tokenizer, style, config, ctx.dir, 'final') };
}

/**
 * R1's last stage (R1 sec. 2.3.4; NAT eq. 8-10): a helpfulness reward model trained on preference pairs (from the
 * stage-3 model, "R1 plus a scalar reward head"), then GRPO from the stage-3 model on two prompt sources: reasoning
 * prompts with the rule rewards, and general requests scored by the reward model on the summary only, both with
 * the format and language rewards. The general task's own rule checker never enters the reward: it only measures.
 */
async function runAllScenarios(ctx: StageContext): Promise<Omit<StageRecord, 'stage' | 'seconds'>> {
  const { config, dir } = ctx;
  const from = modelOf(ctx, 'rejection-sft');
  const pairsFile = join(dir, 'preference-pairs.jsonl');
  await writeFileAtomic(pairsFile, instructionPreferencePairs(new Rng(config.seed + 30), config.rewardPairs).map((pair) => `${JSON.stringify(pair)}\n`).join(''));
  const rewardDir = join(dir, 'reward-model');
  const trained = await trainRewardModel({
    ...defaultRewardModelConfig,
    data: pairsFile, model: from, out: rewardDir, epochs: config.rewardEpochs, lr: config.rewardLr, maxLength: SFT_MAX_TOKENS, checkpointEvery: config.checkpointEvery,
    resume: existsSync(join(rewardDir, CHECKPOINTS_DIR)), seed: config.seed, device: config.device, precision: config.precision,
  }, { log: ctx.log, progress: ctx.progress });
  const general: RlSourceConfig = {
    name: 'general', task: 'instructions', level: null, taskOptions: {}, template: 'chat', weight: config.generalFraction, fromStep: 1, evaluate: false,
    rewards: [
      { kind: 'reward-model', weight: 1, model: trained.finalDir, on: 'summary', input: 'chat' },
      { kind: 'format', weight: config.formatWeight, rule: 'readable' },
      { kind: 'language', weight: config.languageWeight, target: config.targetLanguage as LanguageTarget },
    ],
  };
  const sources = [readableReasoning(config, config.languageWeight, 1 - config.generalFraction), general];
  const { finalDir, scores } = await grpoStage(ctx, from, 'readable', sources, grpoSettings(config, config.allSteps, config.allTemperature, config.tunedRlLr, 3));
  const validation = trained.validation;
  return {
    models: { final: finalDir, 'reward-model': trained.finalDir }, scores: { final: scores }, files: { preferencePairs: pairsFile },
    counts: { rewardPairs: trained.counts.train, rewardValidationPairs: trained.counts.validation, ...(validation ? { rewardValidationAccuracy: validation.accuracy } : {}) },
  };
}

// ---------------------------------------------------------------------------------------------------------
// SFT data made by rejection sampling (src/pipeline/rejection-sample.ts)

/**
 * Rejection sampling of `model` into `dir`/rejection (resumable: a killed stage continues its chunks): `prompts`
 * training problems (more, up to maxPromptsFactor times, while fewer than minKeptExamples are kept), `samples`
 * each, the right ones kept, at most one per prompt, after the given filters.
 */
async function sampleKept(ctx: StageContext, settings: Partial<RejectionSampleConfig> & Pick<RejectionSampleConfig, 'model' | 'task' | 'template' | 'samplesPerPrompt' | 'temperature'> & { prompts: number }, seedOffset: number): Promise<RejectionSampleResult> {
  const { config } = ctx;
  return rejectionSample({
    ...defaultRejectionSampleConfig,
    level: config.level, keepPerPrompt: 1, maxNewTokens: config.maxNewTokens, language: config.targetLanguage as LanguageTarget,
    seed: config.seed + seedOffset, out: join(ctx.dir, 'rejection'), resume: true, device: config.device,
    minKept: config.minKeptExamples, maxPrompts: Math.round(settings.prompts * config.maxPromptsFactor),
    ...settings,
  }, { log: ctx.log, progress: ctx.progress });
}

/** The kept examples of a rejection-sampling run: [question, response] pairs. */
async function keptPairs(file: string): Promise<Array<{ question: string; answer: string }>> {
  return (await readJsonl<{ messages: Array<{ role: string; content: string }> }>(file)).map(({ messages }) => ({ question: messages[0].content, answer: messages[1].content }));
}

async function writeConversations(file: string, rows: ReadonlyArray<{ question: string; answer: string }>): Promise<void> {
  await writeFileAtomic(file, rows.map(({ question, answer }) => `${JSON.stringify({ messages: [{ role: 'user', content: question }, { role: 'assistant', content: answer }] })}\n`).join(''));
}

function flatCounts(counts: RejectionCounts): Record<string, number> {
  return { prompts: counts.prompts, sampled: counts.sampled, kept: counts.kept, ...Object.fromEntries(Object.entries(counts.removed).map(([name, n]) => [`removed.${name}`, n])) };
}

/**
 * Cold-start data made from R1-Zero (R1v2 B.3.2): R1-Zero samples at temperature 1.0 on training prompts, the
 * right ones in R1-Zero's format kept (no language filter: the rewrite puts them in one language), then rewritten
 * into the readable form in the target language (rewriteReadable). Returns the counts of what was removed and kept.
 */
async function writeColdStartData(ctx: StageContext, file: string): Promise<Record<string, number>> {
  const { config } = ctx;
  const sampled = await sampleKept(ctx, {
    model: modelOf(ctx, 'zero'), task: 'arithmetic', template: 'r1-zero', prompts: config.coldStartPrompts, samplesPerPrompt: config.coldStartSamples,
    temperature: 1, formatRule: 'strict', minLanguageConsistency: 0,
  }, 10);
  const rows: Array<{ question: string; answer: string }> = [];
  let notRewritable = 0;
  for (const { question, answer } of await keptPairs(sampled.file)) {
    const readable = rewriteReadable(answer, config.targetLanguage);
    if (readable === null) notRewritable++;
    else rows.push({ question, answer: readable });
  }
  if (rows.length === 0) throw new UserError(`cold start: none of R1-Zero's ${sampled.counts.kept} kept samples could be rewritten (no chain of equations ending at the answer); give --cold-start-data FILE`);
  await writeConversations(file, rows);
  ctx.log(`cold-start data: ${rows.length} examples from ${sampled.counts.sampled} R1-Zero samples (${sampled.counts.kept} right and in format, ${notRewritable} not rewritable)`);
  return { ...flatCounts(sampled.counts), notRewritable, examples: rows.length };
}

/**
 * The reasoning data of stage 3 or of distillation, plus `generalRatio` as many non-reasoning examples (the
 * instruction-following requests answered in the readable form; R1 adds 200k to its 600k), shuffled together
 * into `file`. The reasoning data are the user's file when given (checked first, so that a bad line names that
 * file), else rejection-sampled from `model` (R1 sec. 2.3.3: right answers only; no mixed languages, long
 * paragraphs or code blocks; R1's readable format; at most one per prompt).
 */
async function writeReasoningData(ctx: StageContext, given: string | null, model: string, prompts: number, samples: number, temperature: number, file: string, seedOffset: number): Promise<Record<string, number>> {
  const { config } = ctx;
  let reasoning: string[];
  let counts: Record<string, number> = {};
  if (given !== null) {
    readSftExamples(given);
    reasoning = (await readFile(given, 'utf8')).split('\n').filter((line) => line.trim() !== '');
  } else {
    const sampled = await sampleKept(ctx, {
      model, task: 'readable:arithmetic', template: 'chat', prompts, samplesPerPrompt: samples, temperature, formatRule: 'readable', minLanguageConsistency: 1,
    }, seedOffset);
    reasoning = (await readFile(sampled.file, 'utf8')).split('\n').filter((line) => line.length > 0);
    counts = flatCounts(sampled.counts);
  }
  const rng = new Rng(config.seed + seedOffset);
  const general = trainingInstructions(rng, Math.round(reasoning.length * config.generalRatio))
    .map((i) => JSON.stringify({ messages: [{ role: 'user', content: i.question }, { role: 'assistant', content: instructionResponse(i) }] }));
  const lines = [...reasoning, ...general];
  rng.shuffle(lines);
  await writeFileAtomic(file, lines.map((line) => `${line}\n`).join(''));
  ctx.log(`SFT data: ${reasoning.length} reasoning examples${given === null ? ` kept of ${counts.sampled} samples` : ` from ${given}`}, ${general.length} non-reasoning examples`);
  return { ...counts, reasoning: reasoning.length, general: general.length };
}

// ---------------------------------------------------------------------------------------------------------
// The report

/** What each stage's models are called in the tables, in the paper's terms. */
const MODEL_LABELS: Record<string, string> = {
  'base/final': 'base model',
  'base/student': 'student base model',
  'zero/final': 'R1-Zero',
  'cold-start/final': 'R1 stage 1: cold start',
  'reasoning-rl/final': 'R1 stage 2: reasoning RL',
  'zero-language/final': 'R1-Zero with the language reward',
  'rejection-sft/final': 'R1 stage 3: rejection sampling + SFT',
  'rl-all/final': 'R1 stage 4: RL for all scenarios (R1)',
  'distill/final': 'student distilled from R1',
  'student-rl/final': 'student with RL only (same time)',
};

export function pipelineRows(records: readonly StageRecord[]): PipelineRow[] {
  return records.flatMap((r) => Object.entries(r.scores).map(([model, s]): PipelineRow => ({
    label: MODEL_LABELS[`${r.stage}/${model}`] ?? `${r.stage}/${model}`, stage: r.stage, seconds: r.seconds,
    passAt1: s.reasoning.passAt1, consAtK: s.reasoning.consAtK, formatRate: s.reasoning.formatRate, readableRate: s.readableRate,
    languageConsistency: s.languageConsistency, consistentRate: s.consistentRate, generalScore: s.general.passAt1, meanLength: s.reasoning.meanLength,
  })));
}

/**
 * The findings the stages exist for (issue: language mixing and its price, readability, general ability,
 * distillation against RL), each with this run's numbers, whichever way they came out. A finding whose stages
 * have not run is left out.
 */
export function pipelineEffects(records: readonly StageRecord[]): Array<{ finding: string; measured: string }> {
  const scores = (stage: R1StageName, model = 'final') => records.find((r) => r.stage === stage)?.scores[model];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const pts = (a: number, b: number) => `${b >= a ? '+' : ''}${(100 * (b - a)).toFixed(1)} points`;
  const out: Array<{ finding: string; measured: string }> = [];
  const base = scores('base');
  const zero = scores('zero');
  if (base && zero) {
    out.push({ finding: 'R1-Zero mixes languages in its chains of thought.', measured: `Chains entirely in the target language: ${pct(base.consistentRate)} in the base model, ${pct(zero.consistentRate)} after R1-Zero's RL; words in the target language ${pct(base.languageConsistency)}, ${pct(zero.languageConsistency)} (pass@1 ${pct(base.reasoning.passAt1)} -> ${pct(zero.reasoning.passAt1)}).` });
  }
  const zeroLanguage = scores('zero-language');
  if (zero && zeroLanguage) {
    out.push({
      finding: 'The language-consistency reward keeps chains in one language, at a small accuracy cost (R1 sec. 2.3.2).',
      measured: `The same R1-Zero RL with and without it: chains entirely in the target language ${pct(zero.consistentRate)} without, ${pct(zeroLanguage.consistentRate)} with (${pts(zero.consistentRate, zeroLanguage.consistentRate)}); words in the target language ${pct(zero.languageConsistency)} without, ${pct(zeroLanguage.languageConsistency)} with; pass@1 ${pct(zero.reasoning.passAt1)} without, ${pct(zeroLanguage.reasoning.passAt1)} with (${pts(zero.reasoning.passAt1, zeroLanguage.reasoning.passAt1)}).`,
    });
  }
  const withLanguage = scores('reasoning-rl');
  const cold = scores('cold-start');
  if (zero && cold) {
    out.push({ finding: "Cold start gives R1's readable format; R1-Zero's outputs are not readable.", measured: `Readable responses: R1-Zero ${pct(zero.readableRate)}, cold start ${pct(cold.readableRate)}${withLanguage ? `, after reasoning RL ${pct(withLanguage.readableRate)}` : ''}.` });
  }
  const sft = scores('rejection-sft');
  const all = scores('rl-all');
  if (withLanguage && sft) {
    out.push({
      finding: "Stage 3's non-reasoning data and stage 4's reward model keep or raise general ability while reasoning holds.",
      measured: `General score: after reasoning RL ${pct(withLanguage.general.passAt1)}, after stage 3 ${pct(sft.general.passAt1)}${all ? `, after stage 4 ${pct(all.general.passAt1)}` : ''}; reasoning pass@1 ${pct(withLanguage.reasoning.passAt1)}, ${pct(sft.reasoning.passAt1)}${all ? `, ${pct(all.reasoning.passAt1)}` : ''}.`,
    });
  }
  const distilled = scores('distill');
  const rlOnly = scores('student-rl');
  const studentBase = scores('base', 'student');
  if (distilled && rlOnly) {
    const times = (stage: R1StageName) => records.find((r) => r.stage === stage)!.seconds.toFixed(0);
    out.push({
      finding: 'Distilling the large model beats RL on the small one for the same compute (R1: 72.6 against 47.0 for Qwen-32B on AIME).',
      measured: `Student pass@1${studentBase ? ` from ${pct(studentBase.reasoning.passAt1)}` : ''}: distilled ${pct(distilled.reasoning.passAt1)} (stage ${times('distill')} s), RL only ${pct(rlOnly.reasoning.passAt1)} (stage ${times('student-rl')} s, of which RL ran for the distillation's time).`,
    });
  }
  return out;
}

/** The curves of each stage from its metrics.jsonl: GRPO rewards and accuracy, SFT and reward-model losses. */
function stageCharts(stage: R1StageName, records: ReadonlyArray<Record<string, unknown>>): PipelineCurves[] {
  if (records.length === 0) return [];
  const steps = records.map((r, i) => (typeof r.step === 'number' ? r.step : i + 1));
  const series = (name: string, pick: (r: Record<string, unknown>) => unknown) => ({ name, values: records.map((r) => { const v = pick(r); return typeof v === 'number' ? v : Number.NaN; }) });
  const present = (s: { values: readonly number[] }) => s.values.some(Number.isFinite);
  if ('reward' in records[0]) {
    const parts = (r: Record<string, unknown>) => (r.rewardParts ?? {}) as Record<string, number>;
    return [
      { title: `${stage}: reward, accuracy, language part`, steps, series: [series('reward', (r) => r.reward), series('accuracy', (r) => r.accuracy), series('language', (r) => Object.entries(parts(r)).find(([name]) => name.startsWith('language'))?.[1])].filter(present) },
      { title: `${stage}: response length (tokens)`, steps, series: [series('length', (r) => r.responseLengthMean)] },
    ];
  }
  return [{ title: `${stage}: training loss`, steps, series: [series('loss', (r) => r.loss), series('validation loss', (r) => r.validationLoss)].filter(present) }];
}

export function pipelineReportInput(config: R1PipelineConfig, records: readonly StageRecord[], curves: ReadonlyArray<{ stage: R1StageName; records: ReadonlyArray<Record<string, unknown>> }>): PipelineReportInput {
  return {
    setup: `Reasoning: ${arithmeticTask({ level: config.level }).description}; ${config.evalLimit} held-out questions and ${config.generalEvalLimit} held-out instruction-following requests, k = ${config.evalK} samples each at temperature ${config.evalTemperature}, top-p ${config.evalTopP}, at most ${config.maxNewTokens} new tokens. Target language ${config.targetLanguage}; the base text also reasons in ${config.secondLanguage}.`,
    rows: pipelineRows(records),
    effects: pipelineEffects(records),
    curves: curves.flatMap((c) => stageCharts(c.stage, c.records)),
    config,
  };
}

