// Pretraining: next-token prediction on a corpus (the synthetic one by default), from scratch or from a model
// directory, with AdamW, gradient clipping, warmup + decay, periodic validation, metrics.jsonl, checkpoints
// that resume exactly, a final Hugging Face model directory and a few samples.
//
// Exact resume: a checkpoint holds everything the next step reads (parameters and AdamW moments in float32,
// the update count, the batch generator's state, elapsed time), and the corpus and tokenizer are rebuilt
// deterministically (the token count is checked), so a resumed run computes the same losses as the
// uninterrupted one. A run that fails (bad corpus, diverged loss, an exception) saves nothing on the way out,
// and checkpoint writes are atomic (src/io/checkpoint.ts), so the last good checkpoint always survives.
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { generate } from '../generate/engine.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { appendJsonl, CHECKPOINTS_DIR, float32Arrays, hasCheckpoints, loadLatestCheckpoint, momentArrays, parameterArrays, readJsonl, saveCheckpoint, type LoadedCheckpoint } from '../io/checkpoint.ts';
import { saveHfModel } from '../io/hf.ts';
import { DeepSeekModel, deepseekConfig, validateDeepSeekConfig, type DeepSeekConfig } from '../models/deepseek.ts';
import { DenseModel, denseConfig, validateDenseConfig, type DenseConfig, type DenseSize } from '../models/dense.ts';
import type { CausalLM } from '../models/pretrained.ts';
import { loadModel } from '../models/pretrained.ts';
import { mul, noGrad, scope, useDevice, type Device, type Precision } from '../tensor/index.ts';
import { readJsonFile } from '../tokenizer/json-file.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { trainBpe } from '../tokenizer/train.ts';
import { END_OF_TEXT } from '../tokenizer/chat.ts';
import { UserError } from '../util/errors.ts';
import { readCorpusFile, syntheticCorpus } from './corpus.ts';
import { RandomWindowBatcher, sequentialBatches, splitTokens, tokenizeDocuments, type BatcherState } from './data.ts';
import { AdamW, clipGradNorm } from './optimizer.ts';
import { learningRate, type DecayShape } from './schedule.ts';

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

export interface PretrainHooks {
  /** Where progress lines go (default: stderr). */
  log?: (line: string) => void;
  /** A progress bar on stderr when it is a terminal (default true). */
  progress?: boolean;
  /** Called after each update, before that step's checkpoint (tests use it to stop a run mid-way). */
  onStep?: (record: StepRecord) => void;
}

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

interface TokenizerFiles {
  json: Record<string, unknown>;
  config: Record<string, unknown>;
}

export const METRICS_FILE = 'metrics.jsonl';
export const FINAL_DIR = 'final';

/**
 * Runs (or resumes) a pretraining job. It computes on config.device, which it makes the process's default device
 * (useDevice), so the model, the batches and the sampling at the end are created there.
 */
export async function pretrain(given: PretrainConfig, hooks: PretrainHooks = {}): Promise<PretrainResult> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  useDevice(given.device, given.precision);
  await mkdir(given.out, { recursive: true });
  const metricsFile = join(given.out, METRICS_FILE);

  // Which run: a fresh one, or the latest checkpoint's. A fresh run never starts over existing checkpoints.
  let checkpoint: LoadedCheckpoint | null = null;
  let config = given;
  if (given.resume) {
    checkpoint = await loadLatestCheckpoint(given.out, (m) => log(`warning: ${m}`));
    if (checkpoint) {
      const saved = checkpoint.trainerState as unknown as TrainerState;
      config = { ...given, ...Object.fromEntries(RUN_FIELDS.map((field) => [field, saved.config[field]])) };
      log(`resuming ${given.out} from step ${checkpoint.step} (${checkpoint.dir})`);
    } else {
      log(`no checkpoint in ${given.out}; starting a new run`);
    }
  } else if (await hasCheckpoints(given.out)) {
    throw new UserError(`${join(given.out, CHECKPOINTS_DIR)} already holds checkpoints; pass --resume to continue that run, or choose another --out`);
  }

  // Corpus, tokenizer, token stream.
  const docs = config.corpus === null ? syntheticCorpus(config.seed, config.syntheticDocuments) : readCorpusFile(config.corpus);
  const corpusName = config.corpus ?? 'the synthetic corpus';
  const tokenizerFiles = checkpoint ? await readTokenizerFiles(checkpoint.dir)
    : config.model ? await readTokenizerFiles(config.model)
    : config.tokenizer ? await readTokenizerFiles(config.tokenizer)
    : trainTokenizer(docs, config.vocabSize, log);
  const tokenizer = Tokenizer.fromJson(tokenizerFiles.json, tokenizerFiles.config);
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
  const named = model.namedParameters();
  const params = named.map(([, p]) => p);
  const optimizer = new AdamW(named, { beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay });
  const batcher = new RandomWindowBatcher(train, config.batchSize, config.seqLen, config.seed);
  let step = 0;
  let elapsedBefore = 0;
  if (checkpoint) {
    const saved = checkpoint.trainerState as unknown as TrainerState;
    if (saved.corpusTokens !== tokens.length) {
      throw new UserError(`${corpusName} now has ${tokens.length} tokens, but the run in ${given.out} was trained on ${saved.corpusTokens}; the corpus changed, so the run cannot resume exactly`);
    }
    optimizer.loadStateDict({ step: saved.optimizerStep, m: float32Arrays(checkpoint.optimizer.m), v: float32Arrays(checkpoint.optimizer.v) }, join(checkpoint.dir, 'optimizer.safetensors'));
    batcher.restore(saved.data);
    step = checkpoint.step;
    elapsedBefore = saved.elapsedSeconds;
    // Records past the checkpoint belong to the steps about to be redone.
    const kept = (await readJsonl<StepRecord>(metricsFile, (m) => log(`warning: ${m}`)).catch(() => [])).filter((r) => r.step <= step);
    await writeFileAtomic(metricsFile, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  } else {
    await writeFileAtomic(metricsFile, '');
    log(`model: ${model.parameterCount().toLocaleString('en')} parameters (${config.model ?? (config.family === 'deepseek' ? 'deepseek' : config.size)}), ${config.steps} steps of ${config.batchSize * config.gradAccumSteps} x ${config.seqLen} tokens`);
  }

  const startMs = performance.now();
  const save = async (): Promise<void> => {
    const state: TrainerState = { config, optimizerStep: optimizer.step, data: batcher.state(), corpusTokens: tokens.length, elapsedSeconds: elapsedBefore + (performance.now() - startMs) / 1000 };
    const { m, v } = optimizer.stateDict();
    await saveCheckpoint(config.out, step, {
      model: { config: model.config, tensors: parameterArrays(named), torchDtype: 'float32' },
      optimizer: { m: momentArrays(named, m), v: momentArrays(named, v), other: new Map() },
      trainerState: state as unknown as Record<string, unknown>,
      tokenizer: { tokenizerJson: tokenizerFiles.json, tokenizerConfig: tokenizerFiles.config },
    }, { keepLast: config.keepCheckpoints });
  };

  const schedule = { shape: config.schedule, peakLr: config.lr, warmupSteps: config.warmup, totalSteps: config.steps, minLrRatio: config.minLrRatio };
  const tokensPerStep = config.batchSize * config.gradAccumSteps * config.seqLen;
  const deadlineMs = config.timeLimitMinutes === null ? Infinity : startMs + config.timeLimitMinutes * 60_000;
  const bar = hooks.progress !== false && process.stderr.isTTY ? new cliProgress.SingleBar({
    format: 'step {value}/{total} | loss {loss} | {tps} tok/s | {bar} | ETA {eta_formatted}',
    hideCursor: true, etaBuffer: 20,
  }, cliProgress.Presets.shades_classic) : null;
  const logEvery = Math.max(1, Math.round(config.steps / 20));
  bar?.start(config.steps, step, { loss: '-', tps: '-' });
  const recentLosses: number[] = [];
  let validationLoss = NaN;
  let lastSavedStep = checkpoint?.step ?? -1;
  let tokensThisRun = 0;
  try {
    while (step < config.steps && performance.now() < deadlineMs) {
      const stepStart = performance.now();
      const lr = learningRate(step, schedule);
      // One scope per step: the batch, the activations and the gradients are freed at its end (on a device).
      const { loss, gradNorm, moeLoads } = scope(() => {
        let loss = 0;
        for (let micro = 0; micro < config.gradAccumSteps; micro++) {
          const { inputs, targets } = batcher.next();
          const microLoss = model.loss(inputs, targets);
          loss += microLoss.item() / config.gradAccumSteps;
          (config.gradAccumSteps === 1 ? microLoss : mul(microLoss, 1 / config.gradAccumSteps)).backward();
        }
        const gradNorm = clipGradNorm(params, config.gradClip > 0 ? config.gradClip : Infinity);
        if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
          throw new UserError(`step ${step + 1}: the loss is ${loss} and the gradient norm ${gradNorm}: training diverged (try a lower --lr); the last checkpoint is kept`);
        }
        optimizer.update(lr);
        // DeepSeekMoE's auxiliary-loss-free bias update, from this step's expert loads (V3 §2.1.2).
        const moeLoads = model.afterStep?.();
        model.zeroGrad();
        return { loss, gradNorm, moeLoads };
      });
      step++;
      tokensThisRun += tokensPerStep;
      const now = performance.now();
      const record: StepRecord = {
        step, loss, lr, gradNorm,
        tokensPerSecond: tokensPerStep / ((now - stepStart) / 1000),
        elapsedSeconds: elapsedBefore + (now - startMs) / 1000,
      };
      if (moeLoads?.length) record.moeMaxLoadRatio = moeLoads.map((s) => s.maxLoadRatio);
      const last = step === config.steps || now >= deadlineMs;
      if (step % config.evalEvery === 0 || last) {
        validationLoss = evaluate(model, validation, config.batchSize, config.seqLen, config.evalBatches);
        record.validationLoss = validationLoss;
      }
      recentLosses.push(loss);
      if (recentLosses.length > 10) recentLosses.shift();
      await appendJsonl(metricsFile, record);
      hooks.onStep?.(record);
      if (bar) bar.update(step, { loss: loss.toFixed(3), tps: Math.round(record.tokensPerSecond) });
      else if (step % logEvery === 0 || last || record.validationLoss !== undefined) log(formatRecord(record, config.steps));
      if (step % config.checkpointEvery === 0 || last) {
        await save();
        lastSavedStep = step;
      }
    }
  } finally {
    bar?.stop();
  }
  const trainingSeconds = (performance.now() - startMs) / 1000;
  if (lastSavedStep !== step) await save();
  if (bar) log(formatRecord({ step, loss: recentLosses.at(-1) ?? NaN, lr: 0, gradNorm: NaN, tokensPerSecond: 0, elapsedSeconds: 0, validationLoss }, config.steps));

  const finalDir = join(config.out, FINAL_DIR);
  await mkdir(finalDir, { recursive: true });
  await saveHfModel(finalDir, { config: model.config, tensors: parameterArrays(named), torchDtype: 'float32' }, { tokenizerJson: tokenizerFiles.json, tokenizerConfig: tokenizerFiles.config });
  log(`saved the model and tokenizer to ${finalDir}`);

  const samples = sampleFromModel(model, tokenizer, docs, config, endOfText);
  return {
    steps: step,
    trainLoss: recentLosses.reduce((a, b) => a + b, 0) / Math.max(1, recentLosses.length),
    validationLoss: Number.isNaN(validationLoss) ? evaluate(model, validation, config.batchSize, config.seqLen, config.evalBatches) : validationLoss,
    finalDir,
    samples,
    tokensPerSecond: tokensThisRun / Math.max(trainingSeconds, 1e-9),
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
  return scope(() => noGrad(() => {
    let total = 0;
    let count = 0;
    for (const { inputs, targets } of sequentialBatches(tokens, batchSize, seqLen, maxBatches)) {
      total += scope(() => model.loss(inputs, targets).item()) * targets.size;
      count += targets.size;
    }
    return total / count;
  }));
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

function trainTokenizer(docs: readonly string[], vocabSize: number, log: (line: string) => void): TokenizerFiles {
  const trained = trainBpe(docs, { vocabSize });
  log(`trained a byte-level BPE tokenizer: ${trained.vocabSize} tokens (asked for ${vocabSize})`);
  return { json: trained.tokenizerJson, config: trained.tokenizerConfig };
}

/** tokenizer.json (+ tokenizer_config.json when present) of a folder or a tokenizer.json path. */
async function readTokenizerFiles(path: string): Promise<TokenizerFiles> {
  const isDir = await stat(path).then((s) => s.isDirectory(), () => false);
  const file = isDir ? join(path, 'tokenizer.json') : path;
  const dir = isDir ? path : join(file, '..');
  const configFile = join(dir, 'tokenizer_config.json');
  const hasConfig = await stat(configFile).then(() => true, () => false);
  return {
    json: readJsonFile(file) as Record<string, unknown>,
    config: hasConfig ? readJsonFile(configFile) as Record<string, unknown> : {},
  };
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
