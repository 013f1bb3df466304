// Supervised fine-tuning (R1's cold start and its rejection-sampling SFT, and distillation into a student; SPEC.md 4):
// a Hugging Face model folder trained on JSONL conversations (src/train/sft-data.ts) with the loss on assistant
// tokens only, for a number of epochs with a decaying learning rate (R1's distillation: 2-3 epochs, the rate
// decayed to a tenth), validation loss, resumable checkpoints, metrics.jsonl and the model written as a HF folder.
// The loop is the one pretraining runs (src/train/loop.ts); what is SFT's own is the data and its batches.
//
// Exact resume: every sequence is rebuilt from the files (their count and trained-token count are checked
// against the checkpoint's), the order of each epoch is a permutation drawn from seed + epoch, and the update
// count picks the batch, so a resumed run trains on the same batches as the uninterrupted one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FINAL_DIR } from '../io/checkpoint.ts';
import { loadModel, saveModel, type CausalLM } from '../models/pretrained.ts';
import { Rng, tensor, useDevice, type Device, type Precision } from '../tensor/index.ts';
import { DEFAULT_CHAT_TEMPLATE, type ChatMessage } from '../tokenizer/chat.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { epochBatch } from './data.ts';
import { heldOutLoss, openRun, optimizerUpdate, restoreAdamW, runSteps, saveTrainingCheckpoint, type HeldOutBatch, type MicroBatch, type TrainingHooks } from './loop.ts';
import { AdamW } from './optimizer.ts';
import type { DecayShape } from './schedule.ts';
import { encodeSftExample, packedRows, padRows, readSftExamples, sequenceRows, type SftExample, type SftRow, type SftSequence } from './sft-data.ts';

export interface SftConfig {
  /** Training conversations: a JSONL file (formats in src/train/sft-data.ts). */
  data: string;
  /** Validation conversations; null holds out validationFraction of `data` instead. */
  validationData: string | null;
  /** Share of `data`'s examples held out for the validation loss when validationData is null (0: none). */
  validationFraction: number;
  /** The Hugging Face model folder to fine-tune (dense or DeepSeek family, with its tokenizer). */
  model: string;
  /** Run folder: metrics.jsonl, checkpoints/, final/. */
  out: string;
  /** A Jinja chat template file to use instead of the model's own (null: the model's, or DEFAULT_CHAT_TEMPLATE when it has none). */
  chatTemplate: string | null;
  epochs: number;
  /** Sequences (rows) per optimizer update. */
  batchSize: number;
  /** Sequences per forward pass; an update accumulates gradients over batchSize / microBatchSize of them. */
  microBatchSize: number;
  /** Tokens per row: longer sequences are cut (without packing), packed rows have exactly this many. */
  maxLength: number;
  /** Concatenate the sequences and cut them into rows of maxLength tokens (no padding; attention crosses sequences). */
  packing: boolean;
  lr: number;
  minLrRatio: number;
  warmup: number;
  schedule: DecayShape;
  weightDecay: number;
  /** Global gradient-norm clip; 0 turns clipping off. */
  gradClip: number;
  evalEvery: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  /** Continue from the latest checkpoint in `out` (the run's saved settings are used, see SFT_RUN_FIELDS). */
  resume: boolean;
  seed: number;
  /** Stop (with a checkpoint and the final model) after this much training time; null for no limit. */
  timeLimitMinutes: number | null;
  device: Device;
  precision: Precision;
}

/** R1's distillation recipe at small scale (SPEC.md 6: 2-3 epochs, the rate decayed to a tenth). */
export const defaultSftConfig: SftConfig = {
  data: '',
  validationData: null,
  validationFraction: 0.05,
  model: '',
  out: 'runs/sft',
  chatTemplate: null,
  epochs: 2,
  batchSize: 16,
  microBatchSize: 8,
  maxLength: 512,
  packing: false,
  lr: 1e-4,
  minLrRatio: 0.1,
  warmup: 0,
  schedule: 'cosine',
  weightDecay: 0,
  gradClip: 1,
  evalEvery: 50,
  checkpointEvery: 50,
  keepCheckpoints: 2,
  resume: false,
  seed: 1,
  timeLimitMinutes: null,
  device: 'cpu',
  precision: 'f32',
};

/** Fields a resumed run takes from its checkpoint (what it computes); the others come from the given config. */
export const SFT_RUN_FIELDS = [
  'data', 'validationData', 'validationFraction', 'model', 'chatTemplate', 'epochs', 'batchSize', 'microBatchSize', 'maxLength', 'packing',
  'lr', 'minLrRatio', 'warmup', 'schedule', 'weightDecay', 'gradClip', 'seed',
] as const satisfies ReadonlyArray<keyof SftConfig>;

/** One line of metrics.jsonl. */
export interface SftStepRecord {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Assistant tokens the update's loss covered. */
  trainedTokens: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  validationLoss?: number;
}

export type SftHooks = TrainingHooks<SftStepRecord>;

export interface SftResult {
  steps: number;
  finalDir: string;
  /** This process's records. */
  records: SftStepRecord[];
  /** The validation loss after the last update (null when nothing is held out). */
  validationLoss: number | null;
  counts: { examples: number; validationExamples: number; sequences: number; rows: number; truncated: number; empty: number };
}

interface TrainerState {
  config: SftConfig;
  optimizerStep: number;
  rows: number;
  trainedTokens: number;
  elapsedSeconds: number;
}

/** The chat template an SFT run renders with, and where it came from (for the log). */
export function sftChatTemplate(tokenizer: Tokenizer, templateFile: string | null): { template: string; source: string } {
  if (templateFile !== null) {
    try {
      return { template: readFileSync(templateFile, 'utf8'), source: templateFile };
    } catch (err) {
      throw new UserError(`${templateFile}: cannot read the chat template (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  if (tokenizer.chatTemplate !== null) return { template: tokenizer.chatTemplate, source: tokenizer.sources.configFile ?? tokenizer.sources.tokenizerFile };
  return { template: DEFAULT_CHAT_TEMPLATE, source: 'the default template (the model has none)' };
}

/** Every example's sequences; a template that fails on an example names the example's file and line. */
export function encodeSftExamples(tokenizer: Tokenizer, template: string, examples: readonly SftExample[]): SftSequence[] {
  const render = (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => tokenizer.applyChatTemplate(messages, { addGenerationPrompt, template });
  return examples.flatMap((example) => {
    try {
      return encodeSftExample(tokenizer, render, example);
    } catch (err) {
      if (err instanceof UserError && !err.message.startsWith(example.id)) throw new UserError(`${example.id}: ${err.message}`);
      throw err;
    }
  });
}

/**
 * Runs (or resumes) supervised fine-tuning. It computes on config.device, made the process's default device, so
 * the model and batches are created there.
 */
export async function sft(given: SftConfig, hooks: SftHooks = {}): Promise<SftResult> {
  const log = hooks.log ?? logToStderr;
  if (given.data === '') throw new UserError('no training data: give --data, a JSONL file of conversations');
  if (given.model === '') throw new UserError('no model: give --model, a Hugging Face model folder');
  useDevice(given.device, given.precision);
  const { checkpoint, saved, config } = await openRun<SftConfig, TrainerState>(given.out, given.resume, log, { kind: 'sft', config: given, runFields: SFT_RUN_FIELDS, pathFields: ['data', 'validationData', 'model'] });

  // Every line is read and checked before the model is loaded: a bad file fails at once.
  const examples = readSftExamples(config.data);
  const heldOut = new Rng(config.seed + 0x5f7);
  const split = config.validationData === null
    ? examples.map(() => heldOut.uniform() < config.validationFraction)
    : examples.map(() => false);
  const trainExamples = examples.filter((_, i) => !split[i]);
  const validationExamples = config.validationData === null ? examples.filter((_, i) => split[i]) : readSftExamples(config.validationData);
  if (trainExamples.length === 0) throw new UserError(`${config.data}: no examples left to train on (${examples.length} read, all held out for validation)`);

  const { model, tokenizer } = await loadModel(checkpoint ? checkpoint.dir : config.model);
  const { template, source } = sftChatTemplate(tokenizer, config.chatTemplate);
  log(`chat template: ${source}`);

  const sequences = encodeSftExamples(tokenizer, template, trainExamples);
  const cut = sequenceRows(sequences, config.maxLength);
  const rows = config.packing ? packedRows(sequences, config.maxLength) : cut.rows;
  if (rows.length === 0) throw new UserError(`${config.data}: no assistant tokens left to train on (${sequences.length} sequences, ${cut.empty} with no trained token within --max-length ${config.maxLength})`);
  const validationRows = sequenceRows(encodeSftExamples(tokenizer, template, validationExamples), config.maxLength).rows;
  const trainedTokens = rows.reduce((n, r) => n + r.trainedTokens, 0);
  const stepsPerEpoch = Math.ceil(rows.length / config.batchSize);
  const totalSteps = stepsPerEpoch * config.epochs;
  log(`${config.data}: ${trainExamples.length} examples (${validationExamples.length} for validation), ${sequences.length} sequences, `
    + `${rows.length} rows${config.packing ? ` packed into ${config.maxLength} tokens` : ''}, ${trainedTokens} assistant tokens; `
    + `${cut.truncated} cut at ${config.maxLength} tokens; ${totalSteps} steps (${config.epochs} epoch${config.epochs === 1 ? '' : 's'} of ${stepsPerEpoch})`);
  if (model.config.maxPositionEmbeddings < config.maxLength) {
    throw new UserError(`--max-length ${config.maxLength} exceeds the model's max_position_embeddings (${model.config.maxPositionEmbeddings})`);
  }

  const optimizer = new AdamW(model.namedParameters(), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: config.weightDecay });
  if (checkpoint && saved) {
    if (saved.rows !== rows.length || saved.trainedTokens !== trainedTokens) {
      throw new UserError(`${config.data} now gives ${rows.length} rows and ${trainedTokens} assistant tokens, but the run in ${given.out} was trained on ${saved.rows} and ${saved.trainedTokens}; the data changed, so the run cannot resume exactly`);
    }
    restoreAdamW(optimizer, checkpoint, saved.optimizerStep);
  }

  // The model folder written keeps the template it was trained with, so that sampling renders prompts the same way.
  const tokenizerFiles = { json: tokenizer.files.json, config: { ...tokenizer.files.config, chat_template: template } };
  const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;

  const { step, records } = await runSteps<SftStepRecord>({
    out: config.out,
    resumed: checkpoint,
    totalSteps,
    config,
    update: (index, lr) => {
      const start = performance.now();
      const batch = epochBatch(rows, index, config.batchSize, config.seed);
      const tokens = batch.reduce((n, r) => n + r.trainedTokens, 0);
      // Each micro-batch's mean loss weighted by its share of the update's assistant tokens: the update's loss is
      // the mean over all of them, however the batch is split.
      function* microBatches(): Generator<MicroBatch> {
        for (let at = 0; at < batch.length; at += config.microBatchSize) {
          const micro = paddedBatch(batch.slice(at, at + config.microBatchSize), padId);
          yield { inputs: micro.inputs, targets: micro.targets, weight: micro.tokens / tokens };
        }
      }
      const { loss, gradNorm } = optimizerUpdate(model, optimizer, microBatches(), lr, config.gradClip, index + 1);
      const inputTokens = batch.reduce((n, r) => n + r.inputs.length, 0);
      return { epoch: Math.floor(index / stepsPerEpoch) + 1, loss, lr, gradNorm, trainedTokens: tokens, tokensPerSecond: inputTokens / ((performance.now() - start) / 1000) };
    },
    validate: validationRows.length > 0 ? () => ({ validationLoss: validationLoss(model, validationRows, config.microBatchSize, padId) }) : null,
    save: (at, elapsedSeconds) => saveTrainingCheckpoint(config.out, at, {
      model, optimizer, tokenizer: tokenizerFiles, keepLast: config.keepCheckpoints,
      trainerState: { config, optimizerStep: optimizer.step, rows: rows.length, trainedTokens, elapsedSeconds } satisfies TrainerState,
    }),
    bar: {
      format: 'sft {bar} step {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}',
      values: (r) => ({ loss: r ? r.loss.toFixed(4) : '-', tps: r ? Math.round(r.tokensPerSecond) : '-' }),
    },
    format: (r) => [
      `step ${r.step}/${totalSteps} (epoch ${r.epoch})`, `loss ${r.loss.toFixed(4)}`,
      ...(r.validationLoss !== undefined ? [`val ${r.validationLoss.toFixed(4)}`] : []),
      `lr ${r.lr.toExponential(2)}`, `grad ${r.gradNorm.toFixed(2)}`, `${Math.round(r.tokensPerSecond)} tok/s`, `${r.elapsedSeconds.toFixed(0)}s`,
    ].join(' | '),
    log,
    progress: hooks.progress,
    onStep: hooks.onStep,
  });
  const finalDir = join(config.out, FINAL_DIR);
  await saveModel(model, tokenizer, finalDir, { tokenizerFiles });
  log(`saved the fine-tuned model to ${finalDir}`);
  return {
    steps: step,
    finalDir,
    records,
    validationLoss: records.at(-1)?.validationLoss ?? (validationRows.length > 0 ? validationLoss(model, validationRows, config.microBatchSize, padId) : null),
    counts: {
      examples: trainExamples.length, validationExamples: validationExamples.length, sequences: sequences.length, rows: rows.length,
      truncated: cut.truncated, empty: cut.empty,
    },
  };
}

/** Mean next-token loss over the assistant tokens of `rows` (each token weighs the same), without gradients. */
export function validationLoss(model: CausalLM, rows: readonly SftRow[], batchSize: number, padId: number): number {
  function* batches(): Generator<HeldOutBatch> {
    for (let at = 0; at < rows.length; at += batchSize) yield paddedBatch(rows.slice(at, at + batchSize), padId);
  }
  return heldOutLoss(model, batches());
}

/** Rows padded into one batch, [rows, longest row], with the assistant tokens it trains on. */
function paddedBatch(rows: readonly SftRow[], padId: number): HeldOutBatch {
  const padded = padRows(rows, padId);
  return {
    inputs: tensor(padded.inputs, [padded.batch, padded.length], 'i32'),
    targets: tensor(padded.targets, [padded.batch, padded.length], 'i32'),
    tokens: rows.reduce((n, r) => n + r.trainedTokens, 0),
  };
}
