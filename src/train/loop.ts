// What every training loop shares (pretraining, SFT, the reward model, GRPO): opening a run folder (fresh, or
// resumed from its latest checkpoint), one optimizer update over micro-batches and the end of every update, the
// loop of updates with its progress bar, metrics.jsonl, validation, checkpoint cadence and time limit, and the
// checkpoint writes (the final model folder is saveModel's, src/models/pretrained.ts). A trainer supplies what
// differs: its data, the record of one update, its validation, its trainer state.
//
// Exact resume rests on three things kept here: a checkpoint holds the parameters and AdamW moments in float32
// and the update count; metrics.jsonl is cut back to the checkpoint's step, so the records of redone updates
// are not doubled; and a failed update (a diverged loss) throws before anything is saved, so the last good
// checkpoint survives.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { appendJsonl, CHECKPOINTS_DIR, float32Arrays, METRICS_FILE, hasCheckpoints, loadLatestCheckpoint, momentArrays, OPTIMIZER_FILE, parameterArrays, readJsonl, saveCheckpoint, type LoadedCheckpoint, writeRunFile } from '../io/checkpoint.ts';
import type { TensorMap } from '../io/safetensors.ts';
import { openCommunicator, type Communicator } from '../distributed/communicator.ts';
import { readDistributedEnv } from '../distributed/environment.ts';
import type { CausalLM } from '../models/pretrained.ts';
import type { MoeLoadStats } from '../nn/moe.ts';
import { mul, noGrad, scope, type Tensor } from '../tensor/index.ts';
import type { TokenizerFiles } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { pickFields } from '../util/pick-fields.ts';
import { progressBar } from '../util/progress.ts';
import { allReduceGradients, averageOverRanks } from './data-parallel.ts';
import { clipGradNorm, releaseGradients, type AdamW } from './optimizer.ts';
import { learningRate, scheduleOf, type DecayShape } from './schedule.ts';


type Log = (line: string) => void;

/** What openRun gives a trainer: the checkpoint it resumes from, that checkpoint's trainer state, and the run's config. */
export interface OpenedRun<C, S> {
  checkpoint: LoadedCheckpoint | null;
  /** The checkpoint's trainer state (undefined for a fresh run). */
  saved: S | undefined;
  /** The given config, with the fields that decide what the run computes (`runFields`) taken from the checkpoint's. */
  config: C;
}

/**
 * Opens `out` for a run. With `resume`: its latest checkpoint, or null (logged) when it has none. Without: a
 * folder that already holds checkpoints is refused, so a fresh run never overwrites another. A resumed run keeps
 * its checkpoint's settings of `runFields` (what the run computes), so that it is the same run, for as long and
 * with the saving the caller asks now; a field a checkpoint from an older version lacks keeps the given value.
 * `pathFields` (files and folders) are made absolute. metrics.jsonl (and the run's other files of one record per step, `run.stepFiles`) is then cut back to the
 * checkpoint's step (emptied for a fresh run), and run.json records the config the run goes on with (the
 * dashboard shows its kind and config). On the other ranks of a data-parallel run (`primary` false) it only reads
 * the checkpoint to resume from: rank 0 alone writes the folder.
 */
export async function openRun<C extends object, S extends { config: C }>(out: string, resume: boolean, log: Log, run: { kind: string; config: C; runFields: readonly (keyof C)[]; pathFields?: readonly (keyof C)[]; stepFiles?: readonly string[] }, primary = true): Promise<OpenedRun<C, S>> {
  // Files and folders are kept as absolute paths, so that a run resumed from another directory still finds them.
  const given = { ...run.config };
  for (const key of run.pathFields ?? []) if (typeof given[key] === 'string' && given[key] !== '') given[key] = resolve(given[key]) as C[keyof C];
  const opened = (checkpoint: LoadedCheckpoint | null): OpenedRun<C, S> => {
    const saved = checkpoint?.trainerState as unknown as S | undefined;
    const config = saved ? { ...given, ...pickFields(saved.config, run.runFields.filter((key) => key in saved.config)) } : given;
    return { checkpoint, saved, config };
  };
  if (!primary) return opened(resume ? await loadLatestCheckpoint(out, () => {}) : null);
  await mkdir(out, { recursive: true });
  let checkpoint: LoadedCheckpoint | null = null;
  if (resume) {
    checkpoint = await loadLatestCheckpoint(out, (m) => log(`warning: ${m}`));
    log(checkpoint ? `resuming ${out} from step ${checkpoint.step} (${checkpoint.dir})` : `no checkpoint in ${out}; starting a new run`);
  } else if (await hasCheckpoints(out)) {
    throw new UserError(`${join(out, CHECKPOINTS_DIR)} already holds checkpoints; pass --resume to continue that run, or choose another --out`);
  }
  // The records past the checkpoint belong to updates about to be redone.
  for (const name of [METRICS_FILE, ...(run.stepFiles ?? [])]) {
    const file = join(out, name);
    const step = checkpoint?.step ?? 0;
    const kept = checkpoint ? (await readJsonl<{ step: number }>(file, (m) => log(`warning: ${m}`)).catch(() => [])).filter((r) => r.step <= step) : [];
    await writeFileAtomic(file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
  const result = opened(checkpoint);
  // The settings a resume takes from the flags rather than the run (how long, how often to save) are said when they
  // differ from the run's: a length other than the run's also moves a decaying learning rate.
  const before = result.saved?.config as Record<string, unknown> | undefined;
  if (before) {
    const now = result.config as Record<string, unknown>;
    const changed = Object.keys(now).filter((key) => key !== 'resume' && key !== 'out' && key in before && JSON.stringify(now[key]) !== JSON.stringify(before[key]));
    if (changed.length > 0) log(`settings given now, not the run's: ${changed.map((key) => `${key} ${JSON.stringify(before[key])} -> ${JSON.stringify(now[key])}`).join(', ')}`);
  }
  await writeRunFile(out, run.kind, result.config);
  return result;
}

/** Puts a checkpoint's AdamW moments (saved by saveTrainingCheckpoint) and update count back into `optimizer`. */
export function restoreAdamW(optimizer: AdamW, checkpoint: LoadedCheckpoint, optimizerStep: number): void {
  const { m, v } = checkpoint.optimizer;
  optimizer.loadStateDict({ step: optimizerStep, m: float32Arrays(m), v: float32Arrays(v) }, join(checkpoint.dir, OPTIMIZER_FILE));
}

export interface TrainingCheckpoint {
  /** The model stored as the checkpoint's model folder. */
  model: CausalLM;
  optimizer: AdamW;
  /** What the optimizer updates, when more than `model` (the reward model's head too); its moments are stored. */
  optimized?: ReadonlyArray<[string, Tensor]>;
  /** The trainer's own state (its config, data position, elapsed time), returned as is on resume. */
  trainerState: object;
  tokenizer: TokenizerFiles;
  keepLast: number;
  /** Further arrays the run needs to resume (the reward model's head, GRPO's reference model), stored beside the moments. */
  other?: TensorMap;
}

/** Writes checkpoint `step` of the run in `out` (atomically; older ones beyond keepLast are removed). */
export async function saveTrainingCheckpoint(out: string, step: number, parts: TrainingCheckpoint): Promise<void> {
  const named = parts.model.namedParameters();
  const optimized = parts.optimized ?? named;
  const { m, v } = parts.optimizer.stateDict();
  await saveCheckpoint(out, step, {
    model: { config: parts.model.config, tensors: parameterArrays(named), torchDtype: 'float32' },
    optimizer: { m: momentArrays(optimized, m), v: momentArrays(optimized, v), other: parts.other ?? new Map() },
    trainerState: parts.trainerState as Record<string, unknown>,
    tokenizer: { tokenizerJson: parts.tokenizer.json, tokenizerConfig: parts.tokenizer.config },
  }, { keepLast: parts.keepLast });
}

/** One forward/backward of an update: a batch and the share of the update's loss its mean loss stands for. */
export interface MicroBatch {
  /** int32 [B, T] */
  inputs: Tensor;
  /** int32 [B, T], -100 where no loss is taken */
  targets: Tensor;
  /** The update's loss is sum over micro-batches of weight * (the micro-batch's mean loss); the weights add up to 1. */
  weight: number;
}

export interface UpdateResult {
  loss: number;
  gradNorm: number;
  /** DeepSeek models: the update's expert loads per MoE layer. */
  moeLoads: MoeLoadStats[] | undefined;
}

/** A batch of held-out text and how many of its targets count (each counted token weighs the same). */
export interface HeldOutBatch {
  inputs: Tensor;
  targets: Tensor;
  tokens: number;
}

/**
 * Mean next-token loss over held-out batches, each counted token weighing the same, without gradients, each
 * batch in a scope of its own. `batches` should be lazy (a generator), so that its tensors are made inside.
 */
export function heldOutLoss(model: CausalLM, batches: Iterable<HeldOutBatch>): number {
  return scope(() => noGrad(() => {
    let total = 0;
    let count = 0;
    for (const { inputs, targets, tokens } of batches) {
      total += scope(() => model.loss(inputs, targets).item()) * tokens;
      count += tokens;
    }
    return total / count;
  }));
}

/**
 * One optimizer update in one scope (on a device, the batches, activations and gradients are freed at its end):
 * backward through every micro-batch's weighted loss, then finishUpdate. `microBatches` should be lazy (a
 * generator), so that its tensors are made inside the scope. With a `communicator` (data-parallel training),
 * the gradients are averaged over its ranks before clipping, so every rank takes the same step, and the loss
 * returned is the mean over ranks.
 */
export function optimizerUpdate(model: CausalLM, optimizer: AdamW, microBatches: Iterable<MicroBatch>, lr: number, gradClip: number, step: number,
  communicator?: Communicator): UpdateResult {
  return scope(() => {
    let loss = 0;
    for (const { inputs, targets, weight } of microBatches) {
      const microLoss = model.loss(inputs, targets);
      loss += microLoss.item() * weight;
      // Nothing of the graph is read after its backward: its activations serve the next micro-batch (CPU).
      (weight === 1 ? microLoss : mul(microLoss, weight)).backward(undefined, { releaseGraph: true });
    }
    if (communicator) {
      allReduceGradients(model.parameters(), communicator);
      loss = averageOverRanks(loss, communicator, model.parameters()[0].device);
    }
    return { loss, ...finishUpdate(model, optimizer, loss, lr, gradClip, step) };
  });
}

/**
 * The end of every update once its backward passes are done: global-norm clipping (gradClip 0: off), a check
 * that loss and norm are finite, AdamW at `lr`, the model's after-step hook (DeepSeekMoE's bias balancing, V3
 * §2.1.2), zeroed gradients. `step` (1-based) names the update in the divergence error, thrown before AdamW
 * changes a weight.
 */
export function finishUpdate(model: Pick<CausalLM, 'parameters' | 'afterStep'>, optimizer: AdamW, loss: number, lr: number, gradClip: number,
  step: number): Omit<UpdateResult, 'loss'> {
  // Nothing reads this step's gradients after the update: their buffers serve the next step's (CPU).
  const gradNorm = clipGradNorm(model.parameters(), gradClip > 0 ? gradClip : Infinity, { release: true });
  if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
    throw new UserError(`step ${step}: the loss is ${loss} and the gradient norm ${gradNorm}: training diverged (try a lower --lr); the last checkpoint is kept`);
  }
  optimizer.update(lr);
  const moeLoads = model.afterStep?.();
  releaseGradients(model.parameters());
  return { gradNorm, moeLoads };
}

/** What a caller of a trainer may pass besides its config. */
export interface TrainingHooks<R> {
  /** Where progress lines go (default: stderr). */
  log?: (line: string) => void;
  /** A progress bar on stderr when it is a terminal (default true). */
  progress?: boolean;
  /** Called after each update, before that step's checkpoint (tests use it to stop a run mid-way). */
  onStep?: (record: R) => void;
  /**
   * Data-parallel training: the communicator of the ranks (default: the launcher's, from RANK and WORLD_SIZE,
   * when they are set; none otherwise). Rank 0 alone writes the run folder.
   */
  communicator?: Communicator;
}

/** The communicator a trainer uses: the hooks', else the launcher's when this process was launched, else none. */
export async function trainingCommunicator(hooks: { communicator?: Communicator }): Promise<Communicator | undefined> {
  if (hooks.communicator) return hooks.communicator;
  return readDistributedEnv() === null ? undefined : openCommunicator();
}

/** The fields of a metrics.jsonl record that the loop itself fills in or reads. */
export interface LoopRecord {
  step: number;
  loss: number;
  elapsedSeconds: number;
  validationLoss?: number;
}

export interface StepLoop<R extends LoopRecord> {
  out: string;
  /**
   * The checkpoint the run resumes from (openRun's), or null: its step is the updates already done, and its
   * trainer state's elapsedSeconds (every trainer saves the one `save` is given) the training time before this process.
   */
  resumed: LoadedCheckpoint | null;
  /** Updates in the whole run. */
  totalSteps: number;
  /**
   * The trainer's config: when to stop, save and validate (every checkpointEvery updates when it has no
   * evalEvery), and its learning-rate schedule over totalSteps (scheduleOf).
   */
  config: { timeLimitMinutes: number | null; checkpointEvery: number; evalEvery?: number; lr: number; warmup: number; schedule: DecayShape; minLrRatio: number };
  /**
   * Runs update `step` (0-based) at learning rate `lr` and returns its record but for step and elapsedSeconds (a
   * promise when it writes files of its own).
   */
  update(step: number, lr: number): Omit<R, 'step' | 'elapsedSeconds'> | Promise<Omit<R, 'step' | 'elapsedSeconds'>>;
  /** The held-out measures merged into the record (validationLoss and any others the trainer keeps), every
   * evalEvery updates and after the last; null when nothing is held out. */
  validate: (() => Pick<R, 'validationLoss'> & Partial<R>) | null;
  /** Saves checkpoint `step`; elapsedSeconds is the run's training time so far. */
  save(step: number, elapsedSeconds: number): Promise<void>;
  /** The progress bar's format (cli-progress tokens; {value} and {total} are the steps) and its payload. */
  bar: { format: string; values(record: R | null): Record<string, string | number> };
  /** A record as a log line (when stderr is not a terminal, or the bar is off). */
  format(record: R): string;
  log: Log;
  /** A progress bar on stderr when it is a terminal (default true). */
  progress?: boolean;
  onStep?: (record: R) => void;
  /** false on the ranks of a data-parallel run but rank 0: they train alike but write, log and show nothing. */
  primary?: boolean;
}

/**
 * Runs the updates after the resumed checkpoint's step up to totalSteps (or until the time limit), appending each record to metrics.jsonl,
 * validating every evalEvery updates and after the last, checkpointing every checkpointEvery updates and at the
 * end. Returns the step reached and this process's records.
 */
export async function runSteps<R extends LoopRecord>(loop: StepLoop<R>): Promise<{ step: number; records: R[] }> {
  const metricsFile = join(loop.out, METRICS_FILE);
  const startMs = performance.now();
  const elapsedBefore = (loop.resumed?.trainerState as { elapsedSeconds?: number } | undefined)?.elapsedSeconds ?? 0;
  const elapsed = () => elapsedBefore + (performance.now() - startMs) / 1000;
  const { timeLimitMinutes, checkpointEvery, evalEvery = checkpointEvery } = loop.config;
  const schedule = scheduleOf(loop.config, loop.totalSteps);
  const deadlineMs = timeLimitMinutes === null ? Infinity : startMs + timeLimitMinutes * 60_000;
  const primary = loop.primary !== false;
  const bar = progressBar(loop.bar.format, primary && loop.progress !== false, { etaBuffer: 20 });
  const logEvery = Math.max(1, Math.round(loop.totalSteps / 20));
  const records: R[] = [];
  let step = loop.resumed?.step ?? 0;
  let lastSavedStep = step;
  bar?.start(loop.totalSteps, step, loop.bar.values(null));
  try {
    while (step < loop.totalSteps && performance.now() < deadlineMs) {
      const fields = await loop.update(step, learningRate(step, schedule));
      step++;
      const record = { ...fields, step, elapsedSeconds: elapsed() } as R;
      const last = step === loop.totalSteps || performance.now() >= deadlineMs;
      if (loop.validate && (step % evalEvery === 0 || last)) Object.assign(record, loop.validate());
      records.push(record);
      if (primary) await appendJsonl(metricsFile, record);
      loop.onStep?.(record);
      if (bar) bar.update(step, loop.bar.values(record));
      else if (primary && (step % logEvery === 0 || last || record.validationLoss !== undefined)) loop.log(loop.format(record));
      if (step % checkpointEvery === 0 || last) {
        if (primary) await loop.save(step, elapsed());
        lastSavedStep = step;
      }
    }
  } finally {
    bar?.stop();
  }
  if (primary && lastSavedStep !== step) await loop.save(step, elapsed());
  if (bar && records.length > 0) loop.log(loop.format(records.at(-1)!));
  return { step, records };
}
