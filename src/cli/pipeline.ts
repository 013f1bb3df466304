// `r1 pipeline`: flags (and an optional JSON config file) -> R1PipelineConfig -> runR1Pipeline(), through the
// settings table below (src/cli/settings.ts validates and names what is wrong).
import type { Command } from 'commander';
import { z } from 'zod';
import { defaultR1PipelineConfig, pipelineRows, R1_STAGE_NAMES, runR1Pipeline, type R1PipelineConfig } from '../pipeline/r1.ts';
import { pipelineTable } from '../pipeline/report.ts';
import { ARITHMETIC_LEVELS, CHAIN_LANGUAGES } from '../tasks/arithmetic.ts';
import { UserError } from '../util/errors.ts';
import { registerWithDashboard } from './dashboard.ts';
import { checkGrpoConfig, EVAL_FIELDS, GRPO_FIELDS } from './grpo-fields.ts';
import { fraction, nonNegative, nonNegativeInt, positiveInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';
import { BASE_MODEL_FIELDS, CACHE_DIR_FIELD } from './zero.ts';

const rate = z.number().positive();
const overrides = z.record(z.string(), z.unknown()) as unknown as z.ZodType<R1PipelineConfig['baseModelOverrides']>;
const language = z.enum(CHAIN_LANGUAGES);

/** Each config field: its schema and its flag with help text. */
const FIELDS: Fields<R1PipelineConfig> = {
  out: { schema: z.string().min(1), flag: '--out <dir>', help: 'run folder: one folder per stage, report.html, summary.json; an unfinished run there is continued' },
  cacheDir: { ...CACHE_DIR_FIELD, help: 'where made base models are kept (shared with r1 zero)' },
  stage: { schema: z.enum(R1_STAGE_NAMES).nullable(), flag: '--stage <name>', help: `rerun one stage alone, from the outputs of the stages before it: ${R1_STAGE_NAMES.join(', ')}` },
  level: { schema: z.number().int().refine((n) => ARITHMETIC_LEVELS[n] !== undefined, 'no such arithmetic level'), flag: '--level <n>', help: `arithmetic level of the reasoning prompts (${Object.keys(ARITHMETIC_LEVELS).join(', ')})` },
  targetLanguage: { schema: language, flag: '--target-language <lang>', help: `language the chains of thought should be in (the language reward's target): ${CHAIN_LANGUAGES.join(', ')}` },
  secondLanguage: { schema: language, flag: '--second-language <lang>', help: 'the other language of the base text' },
  seed: { schema: nonNegativeInt, flag: '--seed <n>', help: 'seed of the base text, the prompt draws and the sampling' },
  device: SHARED_FIELDS.device,
  precision: SHARED_FIELDS.precision,
  minKeptExamples: { schema: nonNegativeInt, flag: '--min-kept-examples <n>', help: 'least examples kept by each rejection sampling (cold start, stage 3, distillation): fewer draw more prompts' },
  maxPromptsFactor: { schema: z.number().min(1), flag: '--max-prompts-factor <f>', help: 'the most prompts a rejection sampling draws to reach --min-kept-examples, as a multiple of its own' },
  checkpointEvery: { ...SHARED_FIELDS.checkpointEvery, help: 'steps between checkpoints of every trainer (what a killed stage loses at most)' },
  // Base models
  baseDocuments: { schema: positiveInt, flag: '--base-documents <n>', help: 'generated problems with worked chains in the base text' },
  baseCorrectRate: { schema: fraction, flag: '--base-correct-rate <r>', help: 'fraction of right answers among chains that start in the target language' },
  baseSecondCorrectRate: { schema: fraction, flag: '--base-second-correct-rate <r>', help: 'fraction of right answers among chains that start in the second language' },
  baseSecondRate: { schema: fraction, flag: '--base-second-rate <r>', help: 'fraction of chains that start in the second language' },
  baseSwitchRate: { schema: fraction, flag: '--base-switch-rate <r>', help: 'fraction of chains that switch language midway' },
  baseFormatRate: { schema: fraction, flag: '--base-format-rate <r>', help: 'fraction of base-text completions in the R1-Zero format' },
  baseTemplateRate: { schema: fraction, flag: '--base-template-rate <r>', help: 'fraction of base-text documents with the whole R1-Zero template' },
  baseDrillDocuments: { schema: nonNegativeInt, flag: '--base-drill-documents <n>', help: 'documents of correct worked arithmetic' },
  baseDictionaryDocuments: { schema: nonNegativeInt, flag: '--base-dictionary-documents <n>', help: 'pages of the English-Chinese dictionary' },
  ...BASE_MODEL_FIELDS,
  studentModelOverrides: { schema: overrides, flag: null, help: 'DenseConfig fields that make the student from the teacher shape' },
  studentSteps: { schema: positiveInt, flag: '--student-steps <n>', help: 'pretraining steps of the student base' },
  // GRPO
  promptsPerStep: { ...GRPO_FIELDS.promptsPerStep, help: 'questions per GRPO step (P)' },
  groupSize: GRPO_FIELDS.groupSize,
  maxNewTokens: { ...GRPO_FIELDS.maxNewTokens, help: 'completion length limit in tokens (sampling and evaluation)' },
  beta: { ...GRPO_FIELDS.beta, help: 'k3 KL coefficient of every RL stage' },
  epsLow: GRPO_FIELDS.epsLow,
  epsHigh: { ...GRPO_FIELDS.epsHigh, help: 'clip range above 1' },
  rlLr: { schema: rate, flag: '--rl-lr <rate>', help: "learning rate of R1-Zero's RL and of the RL-only student" },
  tunedRlLr: { schema: rate, flag: '--tuned-rl-lr <rate>', help: 'learning rate of the RL stages after a fine-tuning (reasoning RL, its ablation, RL for all scenarios)' },
  zeroSteps: { schema: positiveInt, flag: '--zero-steps <n>', help: 'GRPO steps of R1-Zero and of its ablation with the language reward' },
  reasoningSteps: { schema: positiveInt, flag: '--reasoning-steps <n>', help: 'GRPO steps of reasoning RL (and of its ablation)' },
  allSteps: { schema: positiveInt, flag: '--all-steps <n>', help: 'GRPO steps of RL for all scenarios' },
  reasoningTemperature: { schema: rate, flag: '--reasoning-temperature <t>', help: 'sampling temperature of reasoning RL (R1: 1.0)' },
  allTemperature: { schema: rate, flag: '--all-temperature <t>', help: 'sampling temperature of RL for all scenarios (R1: 0.7)' },
  rejectionTemperature: { schema: rate, flag: '--rejection-temperature <t>', help: 'sampling temperature of rejection sampling (stage 3 and distillation)' },
  formatWeight: { schema: nonNegative, flag: '--format-weight <w>', help: 'weight of the format reward' },
  languageWeight: { schema: nonNegative, flag: '--language-weight <w>', help: 'weight of the language-consistency reward (R1: 1)' },
  // Cold start
  coldStartData: { schema: z.string().min(1).nullable(), flag: '--cold-start-data <file>', help: 'cold-start SFT JSONL (messages or prompt/completion); default: made from R1-Zero samples' },
  coldStartPrompts: { schema: positiveInt, flag: '--cold-start-prompts <n>', help: 'prompts sampled from R1-Zero for the cold-start data' },
  coldStartSamples: { schema: positiveInt, flag: '--cold-start-samples <n>', help: 'R1-Zero samples per prompt' },
  coldStartEpochs: { schema: positiveInt, flag: '--cold-start-epochs <n>', help: 'SFT epochs of the cold start' },
  coldStartLr: { schema: rate, flag: '--cold-start-lr <rate>', help: 'SFT learning rate of the cold start' },
  // Rejection sampling + SFT
  sftData: { schema: z.string().min(1).nullable(), flag: '--sft-data <file>', help: 'stage-3 reasoning SFT JSONL; default: rejection-sampled from the reasoning-RL model' },
  rejectionPrompts: { schema: positiveInt, flag: '--rejection-prompts <n>', help: 'prompts rejection-sampled from the reasoning-RL model' },
  rejectionSamples: { schema: positiveInt, flag: '--rejection-samples <n>', help: 'samples per prompt' },
  generalRatio: { schema: nonNegative, flag: '--general-ratio <r>', help: 'non-reasoning examples per kept reasoning example (R1: 200k/600k)' },
  sftEpochs: { schema: positiveInt, flag: '--sft-epochs <n>', help: 'epochs of the stage-3 SFT (R1: 2)' },
  sftLr: { schema: rate, flag: '--sft-lr <rate>', help: 'learning rate of the stage-3 SFT' },
  // RL for all scenarios
  rewardPairs: { schema: positiveInt, flag: '--reward-pairs <n>', help: 'preference pairs of the helpfulness reward model' },
  rewardEpochs: { schema: positiveInt, flag: '--reward-epochs <n>', help: 'reward-model epochs (R1: 1)' },
  rewardLr: { schema: rate, flag: '--reward-lr <rate>', help: 'reward-model learning rate' },
  generalFraction: { schema: fraction, flag: '--general-fraction <r>', help: 'fraction of each RL-for-all-scenarios step\'s prompts that are general' },
  // Distillation
  distillData: { schema: z.string().min(1).nullable(), flag: '--distill-data <file>', help: "the student's reasoning SFT JSONL; default: rejection-sampled from the final model" },
  distillPrompts: { schema: positiveInt, flag: '--distill-prompts <n>', help: 'prompts the final model writes traces for' },
  distillSamples: { schema: positiveInt, flag: '--distill-samples <n>', help: 'teacher samples per prompt' },
  distillEpochs: { schema: positiveInt, flag: '--distill-epochs <n>', help: 'student SFT epochs (R1: 2-3)' },
  distillLr: { schema: rate, flag: '--distill-lr <rate>', help: 'student peak learning rate (decays to a tenth)' },
  // Evaluation
  evalK: { ...EVAL_FIELDS.evalK, help: 'samples per test question' },
  evalLimit: { schema: positiveInt, flag: '--eval-limit <n>', help: 'held-out reasoning questions' },
  generalEvalLimit: { schema: positiveInt, flag: '--general-eval-limit <n>', help: 'held-out instruction-following requests' },
  evalTemperature: EVAL_FIELDS.evalTemperature,
  evalTopP: EVAL_FIELDS.evalTopP,
};

const settings = new Settings('pipeline', FIELDS, defaultR1PipelineConfig, {
  check: (config) => {
    checkGrpoConfig(config);
    if (config.targetLanguage === config.secondLanguage) throw new UserError(`--target-language and --second-language are both ${config.targetLanguage}: the base text needs two languages`);
  },
});

/** Flags (commander's parsed values) and an optional config file -> a validated R1PipelineConfig. */
export function pipelineConfigFromFlags(flags: Record<string, unknown>): R1PipelineConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  // The dashboard shows the pipeline's folder: every stage is a run below it.
  registerWithDashboard(settings, program, {
    summary: "DeepSeek-R1's whole recipe from a base model: cold start, reasoning RL, rejection sampling + SFT, RL for all scenarios, distillation",
    description:
      'Runs every stage that has not finished in --out (a killed stage resumes; --stage NAME reruns one alone): base models ' +
        'pretrained here (cached), R1-Zero (and R1-Zero with the language reward, as an ablation), cold-start SFT, reasoning RL with the language reward, ' +
        'rejection sampling + SFT from the base, RL for all scenarios with a reward model, distillation into a small student and ' +
        'the same student with RL alone for the same time. Each stage writes its folder OUT/NN-name; OUT/report.html compares every model.',
  }, (config) => config.out, async (config) => {
    const result = await runR1Pipeline(config);
    console.log(`\n${pipelineTable(pipelineRows(result.records))}\n`);
    console.log(`report: ${result.reportFile}`);
  });
}
