// Reward-model training (R1 sec. 3.4: the helpful reward model was trained on preference pairs, batch 256, lr 6e-6,
// one epoch; SPEC.md 3): a scalar head on a causal LM (src/models/reward-model.ts) fitted to chosen/rejected pairs
// with the Bradley-Terry loss
//   L = -log sigmoid(r(chosen) - r(rejected)),
// averaged over the pairs of a batch. Data is TRL's preference format, one JSON object per line:
//   {"chosen": "...", "rejected": "..."}                                  implicit prompt (whole texts)
//   {"prompt": "...", "chosen": "...", "rejected": "..."}                 explicit prompt, texts concatenated
//   {"chosen": [{"role": ..., "content": ...}, ...], "rejected": [...]}   conversations (the prompt turns shared)
//   {"prompt": [messages], "chosen": [messages], "rejected": [messages]} prompt turns, then each answer's turns
// Conversations are laid out with the tokenizer's chat template (DEFAULT_CHAT_TEMPLATE when it has none). A fraction of the pairs,
// chosen by a hash of their content, is held out to report accuracy on pairs the model never trained on.
//
// Exact resume: a checkpoint holds the backbone and head, the AdamW moments and the step; the pair order of each
// epoch is a permutation drawn from seed + epoch, so a resumed run trains on the same batches in the same order.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FINAL_DIR, parameterArrays } from '../io/checkpoint.ts';
import { CLASSIFIER_SUFFIX, CONFIG_FILE } from '../io/hf.ts';
import { readJsonFile } from '../io/json-file.ts';
import { readJsonlObjects } from '../io/jsonl.ts';
import { loadModel } from '../models/pretrained.ts';
import { loadRewardModel, padRight, RewardModel, rewardModelFromTensors, saveRewardModel, SCORE_WEIGHT } from '../models/reward-model.ts';
import { isHeldOut } from '../tasks/split.ts';
import { abs, add, exp, log, mean, mul, neg, noGrad, relu, scope, slice, sub, useDevice, type Device, type Precision, type Tensor } from '../tensor/index.ts';
import { renderConversation, type ChatMessage } from '../tokenizer/chat.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { epochBatch } from './data.ts';
import { finishUpdate, openRun, restoreAdamW, runSteps, saveTrainingCheckpoint, type TrainingHooks } from './loop.ts';
import { AdamW } from './optimizer.ts';
import type { DecayShape } from './schedule.ts';

// ---------------------------------------------------------------------------------------------------------
// The loss

/** -log sigmoid(x) = softplus(-x), computed as max(-x, 0) + log(1 + exp(-|x|)) so that no exp overflows. */
export function negLogSigmoid(x: Tensor): Tensor {
  return add(relu(neg(x)), log(add(exp(neg(abs(x))), 1)));
}

/** Bradley-Terry loss of reward pairs [N]: mean_i -log sigmoid(chosen_i - rejected_i). */
export function bradleyTerryLoss(chosen: Tensor, rejected: Tensor): Tensor {
  return mean(negLogSigmoid(sub(chosen, rejected)));
}

// ---------------------------------------------------------------------------------------------------------
// Preference pairs

/** A text, or a conversation in the OpenAI/TRL message format. */
export type Turns = string | ChatMessage[];

/** A prompt with a chosen and a rejected answer, as read from a preference file. */
export interface Preference {
  /** `file:line`, for messages. */
  id: string;
  prompt: Turns | null;
  chosen: Turns;
  rejected: Turns;
}

/** Reads a TRL preference JSONL file (formats in the file comment); a bad line fails as `file:line: problem`. */
export function readPreferencePairs(path: string): Preference[] {
  const pairs = readJsonlObjects(path).map(({ line, record }) => {
    const where = `${path}:${line}`;
    const turns = (field: string): Turns | null => {
      const value = record[field];
      if (value === undefined || value === null) return null;
      if (typeof value === 'string') return value;
      if (!Array.isArray(value)) throw new UserError(`${where}: "${field}" must be a string or a list of messages, got ${typeof value}`);
      return value.map((m, i) => {
        if (typeof m !== 'object' || m === null || typeof (m as ChatMessage).role !== 'string' || typeof (m as ChatMessage).content !== 'string') {
          throw new UserError(`${where}: "${field}"[${i}] must be a message {"role": string, "content": string}`);
        }
        return m as ChatMessage;
      });
    };
    const chosen = turns('chosen');
    const rejected = turns('rejected');
    const prompt = turns('prompt');
    if (chosen === null || rejected === null) throw new UserError(`${where}: a preference pair needs "chosen" and "rejected" (TRL's format, with an optional "prompt")`);
    const kinds = new Set([chosen, rejected, ...(prompt === null ? [] : [prompt])].map((t) => typeof t));
    if (kinds.size > 1) throw new UserError(`${where}: "prompt", "chosen" and "rejected" must all be strings or all be message lists`);
    return { id: where, prompt, chosen, rejected };
  });
  if (pairs.length === 0) throw new UserError(`${path}: no preference pairs`);
  return pairs;
}

/** Token ids of a prompt and one answer: texts concatenated, or conversations rendered (prompt turns first). */
export function encodeTurns(tokenizer: Tokenizer, prompt: Turns | null, answer: Turns): number[] {
  if (typeof answer === 'string') return tokenizer.encode(`${(prompt as string | null) ?? ''}${answer}`);
  const text = renderConversation(tokenizer, [...((prompt as ChatMessage[] | null) ?? []), ...answer]);
  return tokenizer.encode(text, { addSpecialTokens: false });
}

interface EncodedPair {
  chosen: number[];
  rejected: number[];
}

// ---------------------------------------------------------------------------------------------------------
// Training

/** Everything `r1 reward-model train` does, as one flat object (each field is a flag of the CLI). */
export interface RewardModelConfig {
  /** TRL preference pairs (JSONL). */
  data: string;
  /** A Hugging Face folder: a causal LM (a new head is put on it) or a reward model to train further. */
  model: string;
  /** Run folder: metrics.jsonl, checkpoints/, final/ (the reward model). */
  out: string;
  resume: boolean;
  epochs: number;
  /** Pairs per optimizer step. */
  batchSize: number;
  /** Pairs per forward pass (gradients accumulate over the batch). */
  microBatchSize: number;
  lr: number;
  warmup: number;
  schedule: DecayShape;
  minLrRatio: number;
  weightDecay: number;
  gradClip: number;
  /** Pairs whose chosen or rejected text is longer than this many tokens are left out (and counted). */
  maxLength: number;
  /** Fraction of pairs held out for the accuracy report (0: none). */
  validationFraction: number;
  seed: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  timeLimitMinutes: number | null;
  device: Device;
  precision: Precision;
}

/**
 * Settings for small models on a CPU; the paper's helpful reward model used lr 6e-6, batch 256, one epoch, at
 * 600B parameters.
 */
export const defaultRewardModelConfig: RewardModelConfig = {
  data: '',
  model: '',
  out: 'runs/reward-model',
  resume: false,
  epochs: 1,
  batchSize: 16,
  microBatchSize: 16,
  lr: 2e-5,
  warmup: 0,
  schedule: 'cosine',
  minLrRatio: 0.1,
  weightDecay: 0,
  gradClip: 1,
  maxLength: 1024,
  validationFraction: 0.1,
  seed: 1,
  checkpointEvery: 100,
  keepCheckpoints: 2,
  timeLimitMinutes: null,
  device: 'cpu',
  precision: 'f32',
};

/** Fields a resumed run takes from its checkpoint (what it computes); the others come from the given config. */
export const REWARD_MODEL_RUN_FIELDS = [
  'data', 'model', 'epochs', 'batchSize', 'microBatchSize', 'lr', 'warmup', 'schedule', 'minLrRatio', 'weightDecay', 'gradClip', 'maxLength',
  'validationFraction', 'seed',
] as const satisfies ReadonlyArray<keyof RewardModelConfig>;

/** One line of metrics.jsonl. */
export interface RewardModelStepRecord {
  step: number;
  epoch: number;
  loss: number;
  /** Fraction of the batch's pairs with r(chosen) > r(rejected). */
  accuracy: number;
  /** Mean r(chosen) - r(rejected). */
  margin: number;
  lr: number;
  gradNorm: number;
  /** Held-out loss and accuracy, on steps where they were measured. */
  validationLoss?: number;
  validationAccuracy?: number;
  elapsedSeconds: number;
}

/** A trainer's hooks, but for data-parallel ranks (reward-model training runs in one process). */
export type RewardModelHooks = Omit<TrainingHooks<RewardModelStepRecord>, 'communicator'>;

export interface PairAccuracy {
  pairs: number;
  loss: number;
  accuracy: number;
}

export interface RewardModelResult {
  steps: number;
  /** This process's records (metrics.jsonl holds the whole run's). */
  records: RewardModelStepRecord[];
  /** The trained reward model's folder. */
  finalDir: string;
  /** Pairs trained on, held out, and left out as longer than maxLength. */
  counts: { train: number; validation: number; tooLong: number };
  validation: PairAccuracy | null;
}

interface TrainerState {
  config: RewardModelConfig;
  optimizerStep: number;
  elapsedSeconds: number;
}

const HEAD_PREFIX = 'head/';

/** Trains (or resumes) a reward model; writes out/final as a reward-model folder. */
export async function trainRewardModel(given: RewardModelConfig, hooks: RewardModelHooks = {}): Promise<RewardModelResult> {
  const log = hooks.log ?? logToStderr;
  useDevice(given.device, given.precision);
  const { checkpoint, saved, config } = await openRun<RewardModelConfig, TrainerState>(given.out, given.resume, log, { kind: 'reward-model', config: given, runFields: REWARD_MODEL_RUN_FIELDS, pathFields: ['data', 'model'] });
  const pairs = readPreferencePairs(config.data);

  // A checkpoint's model folder holds the backbone; the head is among its other arrays.
  const { model, tokenizer } = checkpoint
    ? { model: rewardModelFromTensors(checkpoint.model.config, new Map([...checkpoint.model.tensors, ...[...checkpoint.optimizer.other].map(([name, array]) => [name.slice(HEAD_PREFIX.length), array] as const)]), checkpoint.dir), tokenizer: Tokenizer.fromFile(checkpoint.dir) }
    : await loadRewardModelOrBackbone(config.model, config.seed);

  // Encode every pair before training: a pair that cannot render fails now, naming its line.
  const train: EncodedPair[] = [];
  const validation: EncodedPair[] = [];
  let tooLong = 0;
  for (const pair of pairs) {
    const encoded = { chosen: encodeTurns(tokenizer, pair.prompt, pair.chosen), rejected: encodeTurns(tokenizer, pair.prompt, pair.rejected) };
    if (Math.max(encoded.chosen.length, encoded.rejected.length) > config.maxLength) {
      tooLong++;
      continue;
    }
    (isHeldOut(JSON.stringify([pair.prompt, pair.chosen, pair.rejected]), config.validationFraction) ? validation : train).push(encoded);
  }
  if (train.length === 0) {
    throw new UserError(`${config.data}: no pairs left to train on (${pairs.length} read, ${tooLong} longer than --max-length ${config.maxLength}, ${validation.length} held out)`);
  }
  const stepsPerEpoch = Math.ceil(train.length / config.batchSize);
  const totalSteps = stepsPerEpoch * config.epochs;
  log(`${config.data}: ${train.length} pairs to train on, ${validation.length} held out, ${tooLong} longer than ${config.maxLength} tokens left out; ${totalSteps} steps`);

  const named = model.namedParameters();
  const optimizer = new AdamW(named, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: config.weightDecay });
  if (checkpoint && saved) restoreAdamW(optimizer, checkpoint, saved.optimizerStep);

  const { step, records } = await runSteps<RewardModelStepRecord>({
    out: given.out,
    resumed: checkpoint,
    totalSteps,
    config,
    update: (index, lr) => {
      const batch = epochBatch(train, index, config.batchSize, config.seed);
      return scope(() => {
        let loss = 0;
        let wins = 0;
        let margin = 0;
        for (let start = 0; start < batch.length; start += config.microBatchSize) {
          const micro = batch.slice(start, start + config.microBatchSize);
          const { chosen, rejected } = pairRewards(model, micro);
          // The micro-batch's mean loss, weighted by its share of the batch: the sum over micro-batches is the batch mean.
          const microLoss = mean(negLogSigmoid(sub(chosen, rejected)));
          const weighted = micro.length === batch.length ? microLoss : mul(microLoss, micro.length / batch.length);
          loss += weighted.item();
          weighted.backward();
          const c = chosen.toArray();
          const r = rejected.toArray();
          for (let i = 0; i < micro.length; i++) {
            if (c[i] > r[i]) wins++;
            margin += c[i] - r[i];
          }
        }
        const { gradNorm } = finishUpdate(model, optimizer, loss, lr, config.gradClip, index + 1);
        return { epoch: Math.floor(index / stepsPerEpoch) + 1, loss, accuracy: wins / batch.length, margin: margin / batch.length, lr, gradNorm };
      });
    },
    validate: validation.length > 0 ? () => {
      const held = pairAccuracy(model, validation, config.microBatchSize);
      return { validationLoss: held.loss, validationAccuracy: held.accuracy };
    } : null,
    // The checkpoint's model folder holds the backbone; the head is among its other arrays.
    save: (at, elapsedSeconds) => saveTrainingCheckpoint(given.out, at, {
      model: model.backbone, optimizer, optimized: named, other: parameterArrays([[HEAD_PREFIX + SCORE_WEIGHT, model.score]]),
      tokenizer: tokenizer.files, keepLast: config.keepCheckpoints, trainerState: { config, optimizerStep: optimizer.step, elapsedSeconds } satisfies TrainerState,
    }),
    bar: {
      format: 'reward model {bar} step {value}/{total} | loss {loss} | acc {acc} | ETA {eta_formatted}',
      values: (r) => ({ loss: r ? r.loss.toFixed(4) : '-', acc: r ? r.accuracy.toFixed(2) : '-' }),
    },
    format: (r) => [`step ${r.step}/${totalSteps}`, `loss ${r.loss.toFixed(4)}`, `acc ${r.accuracy.toFixed(2)}`, `margin ${r.margin.toFixed(3)}`,
      r.validationAccuracy === undefined ? null : `held-out acc ${r.validationAccuracy.toFixed(3)}`, `${r.elapsedSeconds.toFixed(0)}s`].filter(Boolean).join(' | '),
    log,
    progress: hooks.progress,
    onStep: hooks.onStep,
  });
  const finalDir = join(given.out, FINAL_DIR);
  await saveRewardModel(model, tokenizer, finalDir);
  log(`saved the reward model to ${finalDir}`);
  return {
    steps: step, records, finalDir, counts: { train: train.length, validation: validation.length, tooLong },
    validation: validation.length > 0 ? pairAccuracy(model, validation, config.microBatchSize) : null,
  };
}

/** Rewards of each pair's chosen and rejected texts, from one forward over both. */
function pairRewards(model: RewardModel, pairs: readonly EncodedPair[]): { chosen: Tensor; rejected: Tensor } {
  const { ids, lengths } = padRight([...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)]);
  const rewards = model.rewards(ids, lengths);
  return { chosen: slice(rewards, 0, 0, pairs.length), rejected: slice(rewards, 0, pairs.length, 2 * pairs.length) };
}

/** Mean Bradley-Terry loss and accuracy (r(chosen) > r(rejected)) over `pairs`, without gradients. */
export function pairAccuracy(model: RewardModel, pairs: readonly EncodedPair[], batchSize = 16): PairAccuracy {
  let loss = 0;
  let wins = 0;
  for (let start = 0; start < pairs.length; start += batchSize) {
    const batch = pairs.slice(start, start + batchSize);
    scope(() => noGrad(() => {
      const { chosen, rejected } = pairRewards(model, batch);
      loss += bradleyTerryLoss(chosen, rejected).item() * batch.length;
      const c = chosen.toArray();
      const r = rejected.toArray();
      for (let i = 0; i < batch.length; i++) if (c[i] > r[i]) wins++;
    }));
  }
  return { pairs: pairs.length, loss: loss / Math.max(pairs.length, 1), accuracy: wins / Math.max(pairs.length, 1) };
}

export interface PairScore {
  id: string;
  chosen: number;
  rejected: number;
}

/** Scores every pair of a preference file with a reward model: per-pair rewards and the overall accuracy. */
export function scorePreferencePairs(model: RewardModel, tokenizer: Tokenizer, pairs: readonly Preference[], batchSize = 16): { scores: PairScore[]; accuracy: number } {
  const chosen = model.scoreIds(pairs.map((p) => encodeTurns(tokenizer, p.prompt, p.chosen)), batchSize);
  const rejected = model.scoreIds(pairs.map((p) => encodeTurns(tokenizer, p.prompt, p.rejected)), batchSize);
  const scores = pairs.map((p, i) => ({ id: p.id, chosen: chosen[i], rejected: rejected[i] }));
  return { scores, accuracy: scores.filter((s) => s.chosen > s.rejected).length / Math.max(scores.length, 1) };
}

/**
 * A reward model from a folder: a reward-model folder as it is, or a causal LM with a freshly initialised head
 * (seeded), so that training can start from a pretrained or fine-tuned model.
 */
export async function loadRewardModelOrBackbone(dir: string, seed: number): Promise<{ model: RewardModel; tokenizer: Tokenizer }> {
  const configFile = join(dir, CONFIG_FILE);
  const raw = existsSync(configFile) ? readJsonFile(configFile) as { architectures?: unknown } : {};
  const names = Array.isArray(raw.architectures) ? raw.architectures as unknown[] : [];
  if (names.some((name) => typeof name === 'string' && name.endsWith(CLASSIFIER_SUFFIX))) return loadRewardModel(dir);
  const { model, tokenizer } = await loadModel(dir);
  return { model: new RewardModel(model, seed), tokenizer };
}
