// The GRPO trainer (DeepSeekMath sec. 4.1, Algorithm 1; SPEC.md 1): per step, sample P prompts x G completions
// from the old policy (from one or several prompt sources, rollout.ts), score them with their source's rewards,
// compute group advantages, then run mu inner iterations of clipped-ratio updates over mini-batches, with a k3 KL
// penalty to a frozen reference when beta > 0, and DAPO's dynamic sampling, overlong filtering and overlong
// shaping as options. The math lives in grpo.ts; this file turns samples into token log-probabilities, runs the optimizer, logs metrics and checkpoints.
//
// The run itself (its folder, metrics.jsonl, progress, checkpoint cadence, time limit) is the shared training loop's
// (src/train/loop.ts), as for pretraining and SFT. Exact resume: a checkpoint holds the policy, the AdamW moments
// and step, the reference weights (when there is a reference) and the generator's state (it draws every prompt
// and every completion's seed), so a resumed run samples the same completions and computes the same updates as
// the run that was killed; metrics.jsonl and samples.jsonl are cut back to the checkpoint's step.
import { join } from 'node:path';
import { appendJsonl, arraysUnder, METRICS_FILE, OPTIMIZER_FILE, parameterArrays, readJsonl, SAMPLES_FILE } from '../io/checkpoint.ts';
import { createModel, type CausalLM } from '../models/pretrained.ts';
import { copyInto, crossEntropy, exp, IGNORE_INDEX, logSoftmax, mul, neg, noGrad, reshape, scope, sum, synchronize, tensor, withDevice, type Tensor } from '../tensor/index.ts';
import { Rng } from '../tensor/random.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { finishUpdate, openRun, restoreAdamW, runSteps, saveTrainingCheckpoint } from '../train/loop.ts';
import { AdamW } from '../train/optimizer.ts';
import type { DecayShape } from '../train/schedule.ts';
import { average } from '../util/average.ts';
import { logToStderr } from '../util/log.ts';
import { clipFraction, groupAdvantages, lossVariants, maskedMean, tokenTerms, type LossType } from './grpo.ts';
import { sampleRollout, type RolloutOptions, type RolloutTask, type Sample } from './rollout.ts';

export interface GrpoConfig extends RolloutOptions {
  /** Steps (rollouts) in the whole run. */
  steps: number;
  /** How token terms are averaged and whether advantages are divided by the group std (SPEC.md 1's table). */
  lossType: LossType;
  /** Clip range below 1 (PPO's eps: 0.2). */
  epsLow: number;
  /** Clip range above 1 (0.2; DAPO's clip-higher: 0.28). */
  epsHigh: number;
  /** k3 KL coefficient (R1-Zero 0.001, DeepSeekMath 0.04); 0 skips the reference model entirely. */
  beta: number;
  /** Inner iterations over each rollout (DeepSeekMath's mu; R1 uses 1). */
  mu: number;
  /** Optimizer updates per inner iteration: the rollout is split into this many mini-batches (R1: 16). */
  miniBatches: number;
  /** Sequences per forward pass; a mini-batch larger than this accumulates gradients over several. */
  microBatchSize: number;
  /** DAPO overlong filtering: truncated completions are masked out of the loss. */
  overlongFiltering: boolean;
  /** Copy the policy into the reference every N steps (R1: 400); 0 never refreshes. */
  referenceRefreshEvery: number;
  lr: number;
  warmup: number;
  schedule: DecayShape;
  minLrRatio: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEps: number;
  /** Global gradient-norm clip; 0 turns clipping off. */
  gradClip: number;
  /** Seed of the prompt draws and of every completion's sampling. */
  seed: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  /** Stop (with a checkpoint) after this much time; null for no limit. */
  timeLimitMinutes: number | null;
}

/**
 * Paper settings where they apply (SPEC.md 1: temperature 1.0, eps 0.2, beta 0.001, mu 1, DAPO-style token
 * mean as TRL's default) with sizes for a small model on a CPU; src/pipeline/zero.ts tunes the demo's.
 */
export const defaultGrpoConfig: GrpoConfig = {
  steps: 100,
  promptsPerStep: 8,
  groupSize: 8,
  maxNewTokens: 64,
  temperature: 1,
  topP: 1,
  dynamicSampling: false,
  maxSamplingRounds: 3,
  overlongCacheTokens: 0,
  lossType: 'dapo',
  epsLow: 0.2,
  epsHigh: 0.2,
  beta: 0.001,
  mu: 1,
  miniBatches: 1,
  microBatchSize: 64,
  overlongFiltering: false,
  referenceRefreshEvery: 0,
  lr: 1e-6,
  warmup: 0,
  schedule: 'constant',
  minLrRatio: 1,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.99,
  adamEps: 1e-8,
  gradClip: 1,
  seed: 1,
  checkpointEvery: 25,
  keepCheckpoints: 2,
  timeLimitMinutes: null,
};

/** Fields a resumed run takes from its checkpoint (what it computes); how long it runs and how often it saves come from the given config. */
export const GRPO_RUN_FIELDS = [
  'promptsPerStep', 'groupSize', 'maxNewTokens', 'temperature', 'topP', 'dynamicSampling', 'maxSamplingRounds', 'overlongCacheTokens', 'lossType', 'epsLow',
  'epsHigh', 'beta', 'mu', 'miniBatches', 'microBatchSize', 'overlongFiltering', 'referenceRefreshEvery', 'lr', 'warmup', 'schedule', 'minLrRatio',
  'weightDecay', 'adamBeta1', 'adamBeta2', 'adamEps', 'gradClip', 'seed',
] as const satisfies ReadonlyArray<keyof GrpoConfig>;

/** Reflection vocabulary counted in responses (the "aha moment" words of R1 sec. 2.2.4 and Fig. 3's analysis). */
export const REFLECTION_WORDS = ['wait', 'verify', 'check', 'recheck', 'however', 'mistake', 'retry', 'reconsider', 'again'] as const;
const REFLECTION_PATTERN = new RegExp(`\\b(${REFLECTION_WORDS.join('|')})\\b`, 'gi');

/** How many reflection words (REFLECTION_WORDS, whole words, any case) a text holds: the metric's count per response. */
export function countReflectionWords(text: string): number {
  return text.match(REFLECTION_PATTERN)?.length ?? 0;
}

/** One line of metrics.jsonl. */
export interface GrpoStepRecord {
  step: number;
  /** Mean total reward of every sample drawn this step. */
  reward: number;
  /** Mean unweighted value of each reward component over the samples it scored. */
  rewardParts: Record<string, number>;
  /** Fraction of samples the task's verifier accepts. */
  accuracy: number;
  /** Fraction of samples in the output format. */
  formatRate: number;
  /** Completion length in tokens. */
  responseLengthMean: number;
  responseLengthMax: number;
  /** Fraction of samples cut off at maxNewTokens. */
  truncatedRate: number;
  /** Mean k3 KL to the reference over counted tokens (null with beta = 0: no reference). */
  kl: number | null;
  clipFraction: number;
  /** Mean entropy (nats) of the policy's next-token distribution at the sampled completion tokens. */
  entropy: number;
  /** Mean aggregated loss of the step's optimizer updates (0 when nothing was trained). */
  loss: number;
  gradNorm: number;
  lr: number;
  /** Reflection words (REFLECTION_WORDS) per response. */
  reflectionWords: number;
  droppedGroups: number;
  /** Samples whose reward components threw or returned a non-finite value (scored 0). */
  rewardFailures: number;
  /** Groups trained on this step. */
  trainedGroups: number;
  /** Samples drawn from each prompt source this step, with their mean reward, accuracy and format rate. */
  perSource: Record<string, SourceStats>;
  /** Wall time of the step's parts: sampling the rollout, the frozen reference's forward passes, the policy update. */
  samplingSeconds: number;
  referenceSeconds: number;
  trainingSeconds: number;
  /** Completion tokens sampled per second of the whole step. */
  tokensPerSecond: number;
  elapsedSeconds: number;
}

export interface SourceStats {
  samples: number;
  reward: number;
  accuracy: number;
  formatRate: number;
}

export interface GrpoHooks {
  log?: (line: string) => void;
  /** A progress bar on stderr when it is a terminal (default true). */
  progress?: boolean;
  /** Called after each step with every sample drawn, before that step's checkpoint (tests use it to stop a run). */
  onStep?: (record: GrpoStepRecord, samples: readonly Sample[]) => void;
}

export interface GrpoRun {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** Prompt sources with their rewards (one, or a mix). */
  sources: readonly RolloutTask[];
  config: GrpoConfig;
  /** Run folder: metrics.jsonl and checkpoints/. */
  out: string;
  /** Continue from the latest checkpoint in `out`. */
  resume?: boolean;
}

export interface GrpoResult {
  steps: number;
  records: GrpoStepRecord[];
}

/** What trainer_state.json's "state" holds. */
interface TrainerState {
  config: GrpoConfig;
  rng: number[];
  optimizerStep: number;
  elapsedSeconds: number;
}

const REFERENCE_PREFIX = 'reference/';

/**
 * Trains `run.model` in place; returns the step records of the whole run (earlier ones too after a resume). The
 * run folder, metrics, progress, checkpoint cadence and time limit are the shared training loop's (src/train/loop.ts).
 */
export async function trainGrpo(run: GrpoRun, hooks: GrpoHooks = {}): Promise<GrpoResult> {
  const log = hooks.log ?? logToStderr;
  const { model, tokenizer, sources, out } = run;
  const { checkpoint, saved, config } = await openRun<GrpoConfig, TrainerState>(out, run.resume ?? false, log, { kind: 'grpo', config: run.config, runFields: GRPO_RUN_FIELDS, stepFiles: [SAMPLES_FILE] });

  const optimizer = new AdamW(model.namedParameters(), { beta1: config.adamBeta1, beta2: config.adamBeta2, eps: config.adamEps, weightDecay: config.weightDecay });
  if (checkpoint && saved) {
    model.loadState(checkpoint.model.tensors, checkpoint.dir);
    restoreAdamW(optimizer, checkpoint, saved.optimizerStep);
  }
  const reference = config.beta > 0 ? cloneModel(model) : null;
  if (reference && checkpoint) reference.loadState(arraysUnder(checkpoint.optimizer.other, REFERENCE_PREFIX), join(checkpoint.dir, OPTIMIZER_FILE));
  const rng = saved ? Rng.fromState(saved.rng) : new Rng(config.seed);
  const earlier = checkpoint ? await readJsonl<GrpoStepRecord>(join(out, METRICS_FILE), (m) => log(`warning: ${m}`)) : [];

  const samplesFile = join(out, SAMPLES_FILE);
  let stepSamples: Sample[] = [];
  const { step, records } = await runSteps<GrpoStepRecord>({
    out,
    resumed: checkpoint,
    totalSteps: config.steps,
    config,
    update: async (index, lr) => {
      // On the policy's device, in one scope: the rollout's tensors and old/reference log-probs die with the step.
      const { record, samples } = withDevice(model.device, () => scope(() => grpoStep(model, reference, optimizer, tokenizer, sources, config, rng, lr, index + 1)));
      if (reference && config.referenceRefreshEvery > 0 && record.step % config.referenceRefreshEvery === 0) copyParameters(model, reference);
      await appendJsonl(samplesFile, { step: record.step, samples: samples.slice(0, SAMPLES_KEPT_PER_STEP).map(sampleSummary) });
      stepSamples = samples;
      return record;
    },
    validate: null,
    save: (at, elapsedSeconds) => saveTrainingCheckpoint(out, at, {
      model, optimizer, tokenizer: tokenizer.files, keepLast: config.keepCheckpoints,
      other: reference ? parameterArrays(reference.namedParameters().map(([name, p]) => [REFERENCE_PREFIX + name, p])) : undefined,
      trainerState: { config, rng: rng.state(), optimizerStep: optimizer.step, elapsedSeconds } satisfies TrainerState,
    }),
    bar: {
      format: 'GRPO {bar} step {value}/{total} | reward {reward} | acc {acc} | len {len} | ETA {eta_formatted}',
      values: (r) => ({ reward: r ? r.reward.toFixed(3) : '-', acc: r ? r.accuracy.toFixed(2) : '-', len: r ? r.responseLengthMean.toFixed(1) : '-' }),
    },
    format: (r) => formatRecord(r, config.steps),
    log,
    progress: hooks.progress,
    onStep: (record) => hooks.onStep?.(record, stepSamples),
  });
  return { steps: step, records: [...earlier, ...records] };
}

/** Completions kept per step in samples.jsonl (the first groups drawn): enough to read, small on disk. */
const SAMPLES_KEPT_PER_STEP = 16;

function sampleSummary(s: Sample): object {
  return { group: s.group, question: s.example.question, completion: s.text, reward: s.reward, parts: s.parts, correct: s.correct, formatted: s.formatted, truncated: s.truncated };
}

function formatRecord(r: GrpoStepRecord, totalSteps: number): string {
  return [`step ${r.step}/${totalSteps}`, `reward ${r.reward.toFixed(3)}`, `acc ${r.accuracy.toFixed(2)}`, `format ${r.formatRate.toFixed(2)}`,
    `len ${r.responseLengthMean.toFixed(1)}`, r.kl === null ? null : `kl ${r.kl.toExponential(2)}`, `${r.elapsedSeconds.toFixed(0)}s`].filter(Boolean).join(' | ');
}

// ---------------------------------------------------------------------------------------------------------
// One step

/**
 * Samples a rollout with `rng`, scores it, and updates `model` (mu inner iterations x miniBatches updates).
 * Returns the step's metrics (elapsedSeconds is left to the caller) and every sample drawn.
 */
export function grpoStep(model: CausalLM, reference: CausalLM | null, optimizer: AdamW, tokenizer: Tokenizer, sources: readonly RolloutTask[], config: GrpoConfig, rng: Rng, lr: number, stepNumber: number): { record: GrpoStepRecord; samples: Sample[] } {
  const sampleStart = performance.now();
  const rollout = sampleRollout(model, tokenizer, sources, config, rng, stepNumber);
  const samplingSeconds = (performance.now() - sampleStart) / 1000;

  const trainStart = performance.now();
  const variant = lossVariants[config.lossType];
  const advantages = groupAdvantages(rollout.samples.map((s) => s.reward), config.groupSize, { scaleByStd: variant.scaleByStd, epsStd: 1e-4, std: 'unbiased' });
  const sequences: TrainSequence[] = rollout.samples.map((s, i) => ({
    promptIds: s.promptIds, completionIds: s.completionIds, advantage: advantages[i],
    counted: !(config.overlongFiltering && s.truncated),
  }));
  const update = sequences.length > 0 ? updatePolicy(model, reference, optimizer, sequences, config, lr, stepNumber) : null;
  synchronize(model.device);
  const referenceSeconds = update?.referenceSeconds ?? 0;
  const trainingSeconds = (performance.now() - trainStart) / 1000 - referenceSeconds;

  const drawn = rollout.drawn;
  const lengths = drawn.map((s) => s.completionIds.length);
  const generatedTokens = lengths.reduce((a, b) => a + b, 0);
  // Each component's mean over the samples it scored (with several sources, only its own source's samples).
  const partValues = new Map<string, number[]>();
  for (const s of drawn) for (const [name, value] of Object.entries(s.parts)) partValues.set(name, [...(partValues.get(name) ?? []), value]);
  const rewardParts = Object.fromEntries([...partValues].map(([name, values]) => [name, average(values)]));
  const record: GrpoStepRecord = {
    step: stepNumber,
    reward: average(drawn.map((s) => s.reward)),
    rewardParts,
    accuracy: average(drawn.map((s) => (s.correct ? 1 : 0))),
    formatRate: average(drawn.map((s) => (s.formatted ? 1 : 0))),
    responseLengthMean: average(lengths),
    responseLengthMax: Math.max(0, ...lengths),
    truncatedRate: average(drawn.map((s) => (s.truncated ? 1 : 0))),
    kl: update?.kl ?? (reference ? 0 : null),
    clipFraction: update?.clipFraction ?? 0,
    entropy: update?.entropy ?? 0,
    loss: update?.loss ?? 0,
    gradNorm: update?.gradNorm ?? 0,
    lr,
    reflectionWords: average(drawn.map((s) => countReflectionWords(s.text))),
    droppedGroups: rollout.droppedGroups,
    rewardFailures: drawn.filter((s) => s.failedRewards.length > 0).length,
    trainedGroups: rollout.samples.length / config.groupSize,
    perSource: Object.fromEntries(sources.map((source) => [source.name, sourceStats(drawn.filter((sample) => sample.source === source.name))])),
    samplingSeconds,
    referenceSeconds,
    trainingSeconds,
    tokensPerSecond: generatedTokens / Math.max(samplingSeconds + referenceSeconds + trainingSeconds, 1e-9),
    elapsedSeconds: 0,
  };
  return { record, samples: drawn };
}

/** A prompt and its sampled completion, with the completion's advantage. */
export interface TrainSequence {
  promptIds: readonly number[];
  completionIds: readonly number[];
  advantage: number;
  /** False masks the whole completion out of the loss (overlong filtering). */
  counted: boolean;
}

/**
 * Sequences right-padded into one batch: inputs [n, T] hold prompt + completion from position 0; targets
 * (flat, n * T) hold the next token at completion positions and IGNORE_INDEX elsewhere; mask [n, T] is 1
 * where a target counts in the loss.
 */
export interface PackedSequences {
  inputs: Tensor;
  targets: Tensor;
  mask: Tensor;
  /** 1 at every completion position, counted or not (for the entropy metric). */
  completion: Uint8Array;
  rows: number;
  width: number;
  advantages: number[];
  /** Counted tokens. */
  tokens: number;
}

export function packSequences(sequences: readonly TrainSequence[]): PackedSequences {
  const rows = sequences.length;
  // The last token is only ever a target, so the inputs stop one short of the longest sequence.
  const width = Math.max(1, ...sequences.map((s) => s.promptIds.length + s.completionIds.length - 1));
  const inputs = new Int32Array(rows * width);
  const targets = new Int32Array(rows * width).fill(IGNORE_INDEX);
  const mask = new Float32Array(rows * width);
  const completion = new Uint8Array(rows * width);
  let tokens = 0;
  sequences.forEach((s, b) => {
    const all = [...s.promptIds, ...s.completionIds];
    for (let t = 0; t < all.length - 1; t++) inputs[b * width + t] = all[t];
    // Position t predicts token t + 1: completion token j sits at t = promptLength + j - 1.
    for (let j = 0; j < s.completionIds.length; j++) {
      const at = b * width + s.promptIds.length + j - 1;
      targets[at] = s.completionIds[j];
      completion[at] = 1;
      if (s.counted) {
        mask[at] = 1;
        tokens++;
      }
    }
  });
  return {
    inputs: tensor(inputs, [rows, width], 'i32'), targets: tensor(targets, [rows * width], 'i32'), mask: tensor(mask, [rows, width]),
    completion, rows, width, advantages: sequences.map((s) => s.advantage), tokens,
  };
}

/**
 * log pi(target) at every position, [n, T] (0 where the target is ignored), from one forward over the packed
 * sequences: the fused cross-entropy's per-row values are exactly -log softmax(logits)[target]. Also returns
 * the logits for the entropy metric.
 */
export function tokenLogprobs(model: CausalLM, batch: PackedSequences): { logp: Tensor; logits: Tensor } {
  const logits = model.forward(batch.inputs);
  const perToken = crossEntropy(reshape(logits, [-1, model.config.vocabSize]), batch.targets, { reduction: 'none' });
  return { logp: reshape(neg(perToken), [batch.rows, batch.width]), logits };
}

/**
 * Entropy of softmax(logits) summed over the completion positions, and their count: H = -sum p log p by
 * batch-wide kernels on the logits' device, so that only one value per position reaches the host (on a GPU the
 * [n, T, V] logits of a micro-batch are gigabytes).
 */
function meanEntropy(logits: Tensor, completion: Uint8Array): { total: number; count: number } {
  const logp = logSoftmax(logits.detach());
  const entropies = neg(sum(mul(exp(logp), logp), -1)).hostValues();
  let total = 0;
  let count = 0;
  for (let at = 0; at < completion.length; at++) {
    if (!completion[at]) continue;
    total += entropies[at];
    count++;
  }
  return { total, count };
}

interface MicroBatch {
  batch: PackedSequences;
  /** Which mini-batch (optimizer update) it belongs to. */
  miniBatch: number;
  logpOld: Tensor | null;
  logpRef: Tensor | null;
}

interface UpdateMetrics {
  /** Time of the reference model's forward passes (part of the update's wall time). */
  referenceSeconds: number;
  loss: number;
  kl: number | null;
  clipFraction: number;
  entropy: number;
  gradNorm: number;
}

/**
 * mu inner iterations, each one optimizer update per mini-batch (DeepSeekMath Algorithm 1's inner loop). Old
 * log-probs: with a single update per rollout the policy is the old policy, so the forward's own values,
 * detached, are used and rho = 1 exactly (as TRL does); otherwise they are computed once, without gradients,
 * before the first update. Reference log-probs come from the frozen reference only when beta > 0.
 */
export function updatePolicy(model: CausalLM, reference: CausalLM | null, optimizer: AdamW, sequences: readonly TrainSequence[], config: GrpoConfig, lr: number,
  stepNumber: number): UpdateMetrics {
  const variant = lossVariants[config.lossType];
  const objective = { epsLow: config.epsLow, epsHigh: config.epsHigh, beta: config.beta };
  const miniBatches = Math.min(config.miniBatches, sequences.length);
  const perMini = Math.ceil(sequences.length / miniBatches);
  const micro: MicroBatch[] = [];
  for (let m = 0; m * perMini < sequences.length; m++) {
    const mini = sequences.slice(m * perMini, (m + 1) * perMini);
    for (let start = 0; start < mini.length; start += config.microBatchSize) {
      micro.push({ batch: packSequences(mini.slice(start, start + config.microBatchSize)), miniBatch: m, logpOld: null, logpRef: null });
    }
  }
  const separateOld = config.mu > 1 || micro.some((mb) => mb.miniBatch > 0);
  let referenceSeconds = 0;
  noGrad(() => {
    for (const mb of micro) {
      // Each forward in a scope of its own: only the [n, T] log-probabilities outlive it, not its [n, T, V]
      // logits (on a GPU, 64 x 8 rollouts of 320 tokens would hold ~100 GB of them at once).
      if (separateOld) mb.logpOld = scope(() => tokenLogprobs(model, mb.batch).logp);
      if (config.beta > 0 && reference) {
        // Synchronised, so that a GPU's queued work is counted where it belongs.
        synchronize(reference.device);
        const start = performance.now();
        mb.logpRef = scope(() => tokenLogprobs(reference, mb.batch).logp);
        synchronize(reference.device);
        referenceSeconds += (performance.now() - start) / 1000;
      }
    }
  });

  let lossTotal = 0;
  let updates = 0;
  let klSum = 0;
  let clipSum = 0;
  let countedTokens = 0;
  let entropySum = 0;
  let entropyCount = 0;
  let gradNorm = 0;
  const miniCount = micro.at(-1)!.miniBatch + 1;
  for (let iteration = 0; iteration < config.mu; iteration++) {
    for (let m = 0; m < miniCount; m++) {
      const parts = micro.filter((mb) => mb.miniBatch === m);
      const context = {
        sequences: parts.reduce((n, mb) => n + mb.batch.rows, 0),
        tokens: parts.reduce((n, mb) => n + mb.batch.tokens, 0),
        microBatches: parts.length,
        maxCompletionLength: config.maxNewTokens,
      };
      let loss = 0;
      for (const mb of parts) {
        // One scope per micro-batch: its activations are freed once its backward is done; the gradients
        // accumulate in the parameters' own buffers (setGrad) until zeroGrad.
        scope(() => {
          const { logp, logits } = tokenLogprobs(model, mb.batch);
          const terms = tokenTerms({ logpNew: logp, logpOld: mb.logpOld ?? logp.detach(), logpRef: mb.logpRef, advantages: mb.batch.advantages, mask: mb.batch.mask }, objective);
          const microLoss = variant.aggregate(terms.loss, mb.batch.mask, context);
          loss += microLoss.item();
          // The metrics read the graph's tensors before its backward, which hands their buffers to the next
          // micro-batch (releaseGraph: on the CPU, the collector then has ~a step's activations less to find).
          if (iteration === 0) {
            // Metrics of the first pass over the rollout: what the policy that sampled it looked like.
            const entropy = meanEntropy(logits, mb.batch.completion);
            entropySum += entropy.total;
            entropyCount += entropy.count;
            if (terms.kl) klSum += maskedMean(terms.kl, mb.batch.mask) * mb.batch.tokens;
          }
          clipSum += clipFraction(terms.ratio, mb.batch.advantages, mb.batch.mask, objective) * mb.batch.tokens;
          countedTokens += mb.batch.tokens;
          microLoss.backward(undefined, { releaseGraph: true });
        });
      }
      // Clipping, the divergence check, AdamW, DeepSeekMoE's bias update (V3 sec. 2.1.2): the end of every trainer's update.
      gradNorm = scope(() => finishUpdate(model, optimizer, loss, lr, config.gradClip, stepNumber).gradNorm);
      lossTotal += loss;
      updates++;
    }
  }
  const firstPassTokens = micro.reduce((n, mb) => n + mb.batch.tokens, 0);
  return {
    referenceSeconds,
    loss: lossTotal / Math.max(updates, 1),
    kl: reference ? klSum / Math.max(firstPassTokens, 1) : null,
    clipFraction: clipSum / Math.max(countedTokens, 1),
    entropy: entropySum / Math.max(entropyCount, 1),
    gradNorm,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** A copy of a model with its own parameters (the frozen reference policy). */
export function cloneModel(model: CausalLM): CausalLM {
  const copy = withDevice(model.device, () => createModel(model.config, null));
  copyParameters(model, copy);
  return copy;
}

function copyParameters(from: CausalLM, to: CausalLM): void {
  const target = new Map(to.namedParameters());
  for (const [name, p] of from.namedParameters()) copyInto(p, target.get(name)!);
}

function sourceStats(samples: readonly Sample[]): SourceStats {
  return {
    samples: samples.length,
    reward: average(samples.map((s) => s.reward)),
    accuracy: average(samples.map((s) => (s.correct ? 1 : 0))),
    formatRate: average(samples.map((s) => (s.formatted ? 1 : 0))),
  };
}
