// Pretraining: next-token prediction on a corpus (the synthetic one by default), from scratch or from a model
// directory, with AdamW, gradient clipping, warmup + decay, periodic validation, metrics.jsonl, checkpoints
// that resume exactly, a final Hugging Face model directory and a few samples.
//
// Exact resume: a checkpoint holds everything the next step reads (parameters and AdamW moments in float32,
// the update count, the batch generator's state, elapsed time), and the corpus and tokenizer are rebuilt
// deterministically (the token count is checked), so a resumed run computes the same losses as the
// uninterrupted one. A run that fails (bad corpus, diverged loss, an exception) saves nothing on the way out,
// and checkpoint writes are atomic (src/io/checkpoint.ts), so the last good checkpoint always survives.
import { join } from 'node:path';
import { generate } from '../generate/engine.ts';
import { DeepSeekModel, deepseekConfig, validateDeepSeekConfig, type DeepSeekConfig } from '../models/deepseek.ts';
import { DenseModel, denseConfig, validateDenseConfig, type DenseConfig, type DenseSize } from '../models/dense.ts';
import { FINAL_DIR } from '../io/checkpoint.ts';
import type { CausalLM } from '../models/pretrained.ts';
import { loadModel, saveModel } from '../models/pretrained.ts';
import { useDevice, type Device, type Precision } from '../tensor/index.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { trainBpe } from '../tokenizer/train.ts';
import { END_OF_TEXT } from '../tokenizer/chat.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { readCorpusFile, syntheticCorpus } from './corpus.ts';
import { RandomWindowBatcher, sequentialBatches, splitTokens, tokenizeDocuments, type BatcherState } from './data.ts';
import { broadcastParameters, rankShare } from './data-parallel.ts';
import { heldOutLoss, openRun, optimizerUpdate, restoreAdamW, runSteps, saveTrainingCheckpoint, trainingCommunicator, type HeldOutBatch, type TrainingHooks } from './loop.ts';
import { AdamW } from './optimizer.ts';
import type { DecayShape } from './schedule.ts';

export interface PretrainConfig {
  /** A .txt or .jsonl corpus; null trains on the synthetic corpus (corpus.ts). */
  corpus: string | null;
  /** Documents of the synthetic corpus. */
  syntheticDocuments: number;
  /** Run folder: metrics.jsonl, checkpoints/, final/. */
  out: string;
  /** Family of a new model: 'dense' (Llama/Qwen2 shapes, sized by `size`) or 'deepseek' (MLA + DeepSeekMoE + MTP, deepseekConfig's default shape). */
  family: 'dense' | 'deepseek';
  /** Shape of a new dense model (ignored with `model` or family 'deepseek'). */
  size: DenseSize;
  /** Changes to the new model's DenseConfig or DeepSeekConfig (e.g. { numLayers: 2 }). */
  modelOverrides: Partial<DenseConfig> | Partial<DeepSeekConfig>;
  /** A Hugging Face model directory to continue training (its tokenizer comes with it). */
  model: string | null;
  /** A tokenizer.json (or a folder holding one) for a new model; null trains a byte-level BPE on the corpus. */
  tokenizer: string | null;
  /** Vocabulary size of a trained BPE (it can come out smaller on a small corpus: merges run out). */
  vocabSize: number;
  /** Optimizer updates in the whole run (the schedule's length). */
  steps: number;
  /** Sequences per micro-batch. */
  batchSize: number;
  seqLen: number;
  /** Micro-batches per update; an update sees batchSize * gradAccumSteps * seqLen tokens. */
  gradAccumSteps: number;
  lr: number;
  minLrRatio: number;
  warmup: number;
  schedule: DecayShape;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global gradient-norm clip; 0 turns clipping off. */
  gradClip: number;
  validationFraction: number;
  evalEvery: number;
  evalBatches: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  /** Continue from the latest checkpoint in `out` (the run's saved settings are used; see RUN_FIELDS). */
  resume: boolean;
  seed: number;
  /** Stop (with a checkpoint and the final model) after this much training time; null for no limit. */
  timeLimitMinutes: number | null;
  /** Samples printed at the end. */
  samples: number;
  sampleTokens: number;
  /** Where the model computes: 'cpu' or 'cuda' (the CUDA backend, `npm run build:cuda`). */
  device: Device;
  /** GEMM precision: 'f32', or 'bf16' on cuda (bfloat16 operands, float32 accumulation, float32 weights and loss). */
  precision: Precision;
}

/** The default job: a 5M model on the synthetic corpus, a few minutes on 2 CPU cores (docs/BENCHMARKS.md). */
export const defaultPretrainConfig: PretrainConfig = {
  corpus: null,
  syntheticDocuments: 20000,
  out: 'runs/pretrain',
  family: 'dense',
  size: '5m',
  modelOverrides: {},
  model: null,
  tokenizer: null,
  vocabSize: 2048,
  steps: 400,
  batchSize: 16,
  seqLen: 64,
  gradAccumSteps: 1,
  lr: 3e-3,
  minLrRatio: 0.1,
  warmup: 30,
  schedule: 'cosine',
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  gradClip: 1,
  validationFraction: 0.02,
  evalEvery: 100,
  evalBatches: 8,
  checkpointEvery: 100,
  keepCheckpoints: 2,
  resume: false,
  seed: 1,
  timeLimitMinutes: null,
  samples: 4,
  sampleTokens: 64,
  device: 'cpu',
  precision: 'f32',
};

/**
 * Fields that decide what a run computes. A resumed run takes them from its checkpoint (so it continues the
 * same run); the others (how long, how often to evaluate and save) come from the config it is given.
 */
export const RUN_FIELDS = [
  'corpus', 'syntheticDocuments', 'family', 'size', 'modelOverrides', 'model', 'tokenizer', 'vocabSize', 'batchSize', 'seqLen', 'gradAccumSteps',
  'lr', 'minLrRatio', 'warmup', 'schedule', 'weightDecay', 'beta1', 'beta2', 'eps', 'gradClip', 'validationFraction', 'seed',
] as const satisfies ReadonlyArray<keyof PretrainConfig>;

/** One line of metrics.jsonl. */
export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  validationLoss?: number;
  /** DeepSeek models: max / mean tokens per routed expert in this step, one number per MoE layer (1 = balanced). */
  moeMaxLoadRatio?: number[];
}

export type PretrainHooks = TrainingHooks<StepRecord>;

export interface PretrainResult {
  /** Updates done, counting those before a resume. */
  steps: number;
  /** Mean training loss of the last (up to) 10 updates of this process. */
  trainLoss: number;
  validationLoss: number;
  finalDir: string;
  samples: Array<{ prompt: string; text: string }>;
  tokensPerSecond: number;
}

/** What trainer_state.json's "state" holds. */
interface TrainerState {
  config: PretrainConfig;
  optimizerStep: number;
  data: BatcherState;
  corpusTokens: number;
  elapsedSeconds: number;
}

/**
 * Runs (or resumes) a pretraining job. It computes on config.device, which it makes the process's default device
 * (useDevice), so the model, the batches and the sampling at the end are created there.
 */
export async function pretrain(given: PretrainConfig, hooks: PretrainHooks = {}): Promise<PretrainResult> {
  useDevice(given.device, given.precision);
  // Data-parallel (under `r1 launch`): every rank trains on its share of each batch; rank 0 alone logs and writes.
  const communicator = await trainingCommunicator(hooks);
  const worldSize = communicator?.worldSize ?? 1;
  const primary = (communicator?.rank ?? 0) === 0;
  const log = !primary ? () => {} : hooks.log ?? logToStderr;
  if (given.batchSize % worldSize !== 0) {
    throw new UserError(`--batch-size ${given.batchSize} is not a multiple of the ${worldSize} ranks (each takes an equal share of every batch)`);
  }

  // Which run: a fresh one, or the latest checkpoint's (whose settings of RUN_FIELDS it keeps).
  const { checkpoint, saved, config } = await openRun<PretrainConfig, TrainerState>(given.out, given.resume, log, { kind: 'pretrain', config: given, runFields: RUN_FIELDS, pathFields: ['corpus', 'model', 'tokenizer'] }, primary);

  // Corpus, tokenizer, token stream.
  const docs = config.corpus === null ? syntheticCorpus(config.seed, config.syntheticDocuments) : readCorpusFile(config.corpus);
  const corpusName = config.corpus ?? 'the synthetic corpus';
  const tokenizer = checkpoint ? Tokenizer.fromFile(checkpoint.dir)
    : config.model ? Tokenizer.fromFile(config.model)
    : config.tokenizer ? Tokenizer.fromFile(config.tokenizer)
    : trainTokenizer(docs, config.vocabSize, log);
  const endOfText = tokenizer.tokenToId(END_OF_TEXT) ?? tokenizer.eosTokenId;
  if (endOfText === null || endOfText === undefined) throw new UserError(`the tokenizer has neither ${END_OF_TEXT} nor an eos_token to end documents with`);
  const tokens = tokenizeDocuments(docs, (text) => tokenizer.encode(text, { addSpecialTokens: false }), endOfText);
  const { train, validation } = splitTokens(tokens, config.validationFraction, config.seqLen, corpusName);
  log(`${corpusName}: ${docs.length} documents, ${tokens.length} tokens (${validation.length} held out), vocabulary ${tokenizer.vocabSize}`);

  // Model, optimizer, data position.
  const model = checkpoint ? (await loadModel(checkpoint.dir)).model
    : config.model ? (await loadModel(config.model)).model
    : newModel(config, tokenizer.vocabSize, endOfText);
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new UserError(`the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary is ${model.config.vocabSize}`);
  }
  if (config.seqLen > model.config.maxPositionEmbeddings) {
    throw new UserError(`--seq-len ${config.seqLen} exceeds the model's maxPositionEmbeddings (${model.config.maxPositionEmbeddings})`);
  }
  if (communicator) broadcastParameters(model.parameters(), communicator);
  const optimizer = new AdamW(model.namedParameters(), { beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay });
  const batcher = new RandomWindowBatcher(train, config.batchSize, config.seqLen, config.seed);
  if (checkpoint && saved) {
    if (saved.corpusTokens !== tokens.length) {
      throw new UserError(`${corpusName} now has ${tokens.length} tokens, but the run in ${given.out} was trained on ${saved.corpusTokens}; the corpus changed, so the run cannot resume exactly`);
    }
    restoreAdamW(optimizer, checkpoint, saved.optimizerStep);
    batcher.restore(saved.data);
  } else {
    log(`model: ${model.parameterCount().toLocaleString('en')} parameters (${config.model ?? (config.family === 'deepseek' ? 'deepseek' : config.size)}), ${config.steps} steps of ${config.batchSize * config.gradAccumSteps} x ${config.seqLen} tokens`);
  }

  const tokensPerStep = config.batchSize * config.gradAccumSteps * config.seqLen;
  const startMs = performance.now();
  function* microBatches() {
    // Every rank draws the whole batch (the same draws as one process) and keeps its rows.
    for (let micro = 0; micro < config.gradAccumSteps; micro++) yield { ...rankShare(batcher.next(), communicator), weight: 1 / config.gradAccumSteps };
  }
  const { step, records } = await runSteps<StepRecord>({
    out: config.out,
    resumed: checkpoint,
    totalSteps: config.steps,
    config,
    update: (index, lr) => {
      const stepStart = performance.now();
      const { loss, gradNorm, moeLoads } = optimizerUpdate(model, optimizer, microBatches(), lr, config.gradClip, index + 1, communicator);
      const record: Omit<StepRecord, 'step' | 'elapsedSeconds'> = { loss, lr, gradNorm, tokensPerSecond: tokensPerStep / ((performance.now() - stepStart) / 1000) };
      if (moeLoads?.length) record.moeMaxLoadRatio = moeLoads.map((s) => s.maxLoadRatio);
      return record;
    },
    validate: () => ({ validationLoss: evaluate(model, validation, config.batchSize, config.seqLen, config.evalBatches) }),
    save: (at, elapsedSeconds) => saveTrainingCheckpoint(config.out, at, {
      model, optimizer, tokenizer: tokenizer.files, keepLast: config.keepCheckpoints,
      trainerState: { config, optimizerStep: optimizer.step, data: batcher.state(), corpusTokens: tokens.length, elapsedSeconds } satisfies TrainerState,
    }),
    bar: {
      format: 'step {value}/{total} | loss {loss} | {tps} tok/s | {bar} | ETA {eta_formatted}',
      values: (r) => ({ loss: r ? r.loss.toFixed(3) : '-', tps: r ? Math.round(r.tokensPerSecond) : '-' }),
    },
    format: (r) => formatRecord(r, config.steps),
    log,
    progress: hooks.progress,
    onStep: hooks.onStep,
    primary,
  });
  const trainingSeconds = (performance.now() - startMs) / 1000;
  const finalDir = join(config.out, FINAL_DIR);
  if (primary) await saveModel(model, tokenizer, finalDir);
  log(`saved the model and tokenizer to ${finalDir}`);

  const recent = records.slice(-10);
  const samples = primary ? sampleFromModel(model, tokenizer, docs, config, endOfText) : [];
  return {
    steps: step,
    trainLoss: recent.reduce((a, r) => a + r.loss, 0) / Math.max(1, recent.length),
    validationLoss: records.at(-1)?.validationLoss ?? evaluate(model, validation, config.batchSize, config.seqLen, config.evalBatches),
    finalDir,
    samples,
    tokensPerSecond: (records.length * tokensPerStep) / Math.max(trainingSeconds, 1e-9),
  };
}

function formatRecord(r: StepRecord, totalSteps: number): string {
  const parts = [`step ${r.step}/${totalSteps}`, `loss ${r.loss.toFixed(4)}`];
  if (r.validationLoss !== undefined && !Number.isNaN(r.validationLoss)) parts.push(`val ${r.validationLoss.toFixed(4)}`);
  if (r.lr > 0) parts.push(`lr ${r.lr.toExponential(2)}`, `grad ${r.gradNorm.toFixed(2)}`, `${Math.round(r.tokensPerSecond)} tok/s`, `${r.elapsedSeconds.toFixed(0)}s`);
  return parts.join(' | ');
}

/** Mean next-token loss over a fixed set of validation windows (weighted by token count). */
export function evaluate(model: CausalLM, tokens: Int32Array, batchSize: number, seqLen: number, maxBatches: number): number {
  function* batches(): Generator<HeldOutBatch> {
    for (const batch of sequentialBatches(tokens, batchSize, seqLen, maxBatches)) yield { ...batch, tokens: batch.targets.size };
  }
  return heldOutLoss(model, batches());
}

/** Continuations of the first words of a few corpus documents (spread over the corpus), at temperature 0.8. */
function sampleFromModel(model: CausalLM, tokenizer: Tokenizer, docs: readonly string[], config: PretrainConfig, endOfText: number): Array<{ prompt: string; text: string }> {
  if (config.samples <= 0) return [];
  const prompts = [...new Set(Array.from({ length: config.samples }, (_, i) => {
    const doc = docs[Math.floor((i * docs.length) / config.samples)];
    return doc.split(/(?<=\s)/).slice(0, 4).join('').trimEnd();
  }))].filter((p) => p.length > 0);
  const results = generate(model, tokenizer, prompts.map((prompt) => ({ prompt })), {
    maxNewTokens: config.sampleTokens, temperature: 0.8, seed: config.seed, stopTokenIds: [endOfText],
  });
  return prompts.map((prompt, i) => ({ prompt, text: results[i].text }));
}

function trainTokenizer(docs: readonly string[], vocabSize: number, log: (line: string) => void): Tokenizer {
  const trained = trainBpe(docs, { vocabSize });
  log(`trained a byte-level BPE tokenizer: ${trained.vocabSize} tokens (asked for ${vocabSize})`);
  return Tokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);
}

function newModel(config: PretrainConfig, vocabSize: number, endOfText: number): CausalLM {
  const common = { maxPositionEmbeddings: Math.max(1024, config.seqLen), eosTokenId: endOfText, bosTokenId: null };
  if (config.family === 'deepseek') {
    const modelConfig = deepseekConfig(vocabSize, { ...common, ...config.modelOverrides as Partial<DeepSeekConfig>, family: 'deepseek' });
    validateDeepSeekConfig(modelConfig, 'modelOverrides');
    return new DeepSeekModel(modelConfig, config.seed);
  }
  const modelConfig = denseConfig(config.size, vocabSize, { ...common, ...config.modelOverrides as Partial<DenseConfig> });
  validateDenseConfig(modelConfig, 'modelOverrides');
  return new DenseModel(modelConfig, config.seed);
}
