// Training checkpoints and the metrics log, safe against a process killed at any moment.
//
// A checkpoint is a folder runDir/checkpoints/step-000123/ holding a Hugging Face model directory (so any
// checkpoint opens in transformers as is), optimizer.safetensors (AdamW first and second moments per
// parameter, plus any other named arrays) and trainer_state.json (the step and an opaque object from the
// trainer: its config, RNG state, data-loader position, metrics summary).
//
// Crash safety: the folder is written under a temporary name, fsynced and renamed into place, so a
// step-* folder is always complete; then runDir/checkpoints/latest, a small file naming that folder, is
// replaced atomically. Removing old checkpoints renames them to a temporary name before deleting. A killed
// save or prune leaves only temporary folders, which loading ignores and the next save deletes.

import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../util/errors.ts';
import { cleanTemporaries, fsyncDir, removeDirAtomic, temporarySibling, writeFileAtomic, writeJsonAtomic } from './atomic.ts';
import { readJsonFile } from './json-file.ts';
import { loadHfModel, saveHfModel, type HfModel, type ModelConfig, type SaveHfOptions } from './hf.ts';
import type { Tensor } from '../tensor/index.ts';
import { fromFloat32, readSafetensors, toFloat32, writeSafetensors, type TensorMap } from './safetensors.ts';

export const CHECKPOINTS_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';

/** Optimizer state by parameter name (the names of the model's tensors). */
export interface OptimizerState {
  /** AdamW first moment (Loshchilov & Hutter, Algorithm 2, m_t) per parameter. */
  m: TensorMap;
  /** AdamW second moment (v_t) per parameter. */
  v: TensorMap;
  /** Any other named arrays the trainer needs back (e.g. fp32 master weights, loss-scale state). */
  other: TensorMap;
}

/** optimizer.safetensors stores each map under a prefix: "m/model.layers.0.mlp.up_proj.weight". */
const OPTIMIZER_PREFIXES = ['m', 'v', 'other'] as const satisfies readonly (keyof OptimizerState)[];

export interface CheckpointParts {
  model: { config: ModelConfig; tensors: TensorMap; torchDtype?: string | null; eosTokenIds?: number[] };
  optimizer: OptimizerState;
  /** Opaque JSON object owned by the trainer; stored and returned as is. */
  trainerState: Record<string, unknown>;
  /** Tokenizer files to store with the model, so that a checkpoint is a complete HF directory. */
  tokenizer?: Pick<SaveHfOptions, 'tokenizerFrom' | 'tokenizerJson' | 'tokenizerConfig'>;
}

export interface LoadedCheckpoint {
  step: number;
  /** The checkpoint folder. */
  dir: string;
  model: HfModel;
  optimizer: OptimizerState;
  trainerState: Record<string, unknown>;
}

export interface SaveCheckpointOptions {
  /** Keep this many most recent checkpoints (by step) and delete older ones; Infinity keeps all. Default 3. */
  keepLast?: number;
}

type Warn = (message: string) => void;
const warnOnConsole: Warn = (message) => console.warn(`warning: ${message}`);

/** step 123 -> "step-000123" (wider numbers keep all their digits; folders are sorted by parsed step). */
export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

const CHECKPOINT_NAME = /^step-(\d+)$/;

async function listCheckpoints(checkpointsDir: string): Promise<{ name: string; step: number }[]> {
  const found: { name: string; step: number }[] = [];
  for (const entry of await readdir(checkpointsDir, { withFileTypes: true })) {
    const match = CHECKPOINT_NAME.exec(entry.name);
    if (match && entry.isDirectory()) found.push({ name: entry.name, step: Number(match[1]) });
  }
  return found.sort((a, b) => a.step - b.step);
}

/**
 * Save a checkpoint for `step` under runDir/checkpoints and point `latest` at it; returns its folder. Saving a
 * step that already has a checkpoint replaces it. Meant for one writer per run directory.
 */
export async function saveCheckpoint(runDir: string, step: number, parts: CheckpointParts, options: SaveCheckpointOptions = {}): Promise<string> {
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`saveCheckpoint: step must be a non-negative integer, got ${step}`);
  const keepLast = options.keepLast ?? 3;
  if (!(keepLast >= 1)) throw new Error(`saveCheckpoint: keepLast must be at least 1, got ${keepLast}`);
  const checkpointsDir = join(runDir, CHECKPOINTS_DIR);
  await mkdir(checkpointsDir, { recursive: true });
  await cleanTemporaries(checkpointsDir);

  const name = checkpointDirName(step);
  const finalDir = join(checkpointsDir, name);
  const tempDir = temporarySibling(finalDir);
  await mkdir(tempDir);
  await saveHfModel(tempDir, parts.model, parts.tokenizer ?? {});
  const optimizerArrays: TensorMap = new Map();
  for (const prefix of OPTIMIZER_PREFIXES) {
    for (const [param, array] of parts.optimizer[prefix]) optimizerArrays.set(`${prefix}/${param}`, array);
  }
  await writeSafetensors(join(tempDir, OPTIMIZER_FILE), optimizerArrays, { format: 'r1ts-optimizer' });
  await writeJsonAtomic(join(tempDir, TRAINER_STATE_FILE), { step, state: parts.trainerState });
  await fsyncDir(tempDir);

  // A folder cannot be renamed over a non-empty one; an earlier save of this step goes first. If the process
  // dies between the two renames, `latest` may name a missing folder: loading then falls back to the newest.
  if (await stat(finalDir).then(() => true, () => false)) await removeDirAtomic(finalDir);
  await rename(tempDir, finalDir);
  await fsyncDir(checkpointsDir);
  await writeFileAtomic(join(checkpointsDir, LATEST_FILE), `${name}\n`);

  const all = await listCheckpoints(checkpointsDir);
  const keep = new Set(all.slice(Math.max(0, all.length - keepLast)).map((c) => c.name));
  keep.add(name);
  for (const checkpoint of all) if (!keep.has(checkpoint.name)) await removeDirAtomic(join(checkpointsDir, checkpoint.name));
  return finalDir;
}

/** Load one checkpoint folder; errors name the file at fault. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const stateFile = join(dir, TRAINER_STATE_FILE);
  let stateJson: unknown;
  try {
    stateJson = JSON.parse(await readFile(stateFile, 'utf8'));
  } catch (error) {
    throw new UserError(`${stateFile}: cannot read trainer state (${(error as Error).message})`);
  }
  const { step, state } = (stateJson ?? {}) as { step?: unknown; state?: unknown };
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
    throw new UserError(`${stateFile}: field "step" must be a non-negative integer, found ${JSON.stringify(step)}`);
  }
  if (typeof state !== 'object' || state === null || Array.isArray(state)) {
    throw new UserError(`${stateFile}: field "state" must be an object, found ${JSON.stringify(state)}`);
  }

  const model = await loadHfModel(dir);
  const optimizerFile = join(dir, OPTIMIZER_FILE);
  const optimizer: OptimizerState = { m: new Map(), v: new Map(), other: new Map() };
  for (const [name, array] of (await readSafetensors(optimizerFile)).tensors) {
    const slash = name.indexOf('/');
    const prefix = name.slice(0, slash) as keyof OptimizerState;
    if (slash < 0 || !OPTIMIZER_PREFIXES.includes(prefix)) {
      throw new UserError(`${optimizerFile}: tensor "${name}" does not start with one of ${OPTIMIZER_PREFIXES.map((p) => `"${p}/"`).join(', ')}`);
    }
    optimizer[prefix].set(name.slice(slash + 1), array);
  }
  return { step, dir, model, optimizer, trainerState: state as Record<string, unknown> };
}

/**
 * The checkpoint `latest` names, or null when the run has none. If `latest` is missing, unreadable or names
 * a folder that is gone (a save killed between its renames), the newest complete step-* folder is used
 * instead, with a warning. Temporary folders of killed saves are ignored.
 */
export async function loadLatestCheckpoint(runDir: string, onWarning: Warn = warnOnConsole): Promise<LoadedCheckpoint | null> {
  const checkpointsDir = join(runDir, CHECKPOINTS_DIR);
  const available = await listCheckpoints(checkpointsDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (available === null) return null;
  const latestFile = join(checkpointsDir, LATEST_FILE);
  const named = await readFile(latestFile, 'utf8').then((text) => text.trim(), () => null);
  if (named !== null && available.some((c) => c.name === named)) return loadCheckpoint(join(checkpointsDir, named));
  const newest = available.at(-1);
  if (newest === undefined) return null;
  onWarning(named === null
    ? `${latestFile} is missing; resuming from the newest checkpoint, ${newest.name}`
    : `${latestFile} names "${named}", which is not a checkpoint folder; resuming from the newest, ${newest.name}`);
  return loadCheckpoint(join(checkpointsDir, newest.name));
}

/** Whether runDir/checkpoints holds a step-* folder (a fresh run must not start over an earlier run's). */
export async function hasCheckpoints(runDir: string): Promise<boolean> {
  const entries = await readdir(join(runDir, CHECKPOINTS_DIR)).catch(() => []);
  return entries.some((name) => CHECKPOINT_NAME.test(name));
}

// The arrays trainers put into a checkpoint and take back out of one.

/**
 * Named parameters as arrays to store (copies: training goes on changing the live tensors): float32, or bfloat16
 * (rounded to nearest even) for a smaller model folder.
 */
export function parameterArrays(named: ReadonlyArray<[string, Tensor]>, dtype: 'F32' | 'BF16' = 'F32'): TensorMap {
  return new Map(named.map(([name, p]) => [name, fromFloat32([...p.shape], Float32Array.from(p.hostValues()), dtype)]));
}

/** Per-parameter optimizer values (AdamW's moments) as float32 arrays of each parameter's shape. */
export function momentArrays(named: ReadonlyArray<[string, Tensor]>, values: ReadonlyMap<string, Float32Array | Float64Array>): TensorMap {
  return new Map(named.map(([name, p]) => [name, fromFloat32([...p.shape], Float32Array.from(values.get(name)!), 'F32')]));
}

/** Stored arrays as float32, by name (AdamW.loadStateDict's moments). */
export function float32Arrays(arrays: TensorMap): Map<string, Float32Array> {
  return new Map([...arrays].map(([name, array]) => [name, toFloat32(array)]));
}

/** The arrays under a name prefix, with the prefix removed (Module.loadState's input). */
export function arraysUnder(arrays: TensorMap, prefix: string): TensorMap {
  const out: TensorMap = new Map();
  for (const [name, array] of arrays) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), array);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// metrics.jsonl, and what the dashboard (src/serve/dashboard.ts) reads beside it

/** One JSON record per training step (or update), appended as the run goes. */
export const METRICS_FILE = 'metrics.jsonl';
/** The trained model's Hugging Face folder inside a run folder. */
export const FINAL_DIR = 'final';
/** A run folder's kind and settings, written when the run starts: `{kind, config}`. */
export const RUN_FILE = 'run.json';
/** A few sampled completions per step with their rewards: one `{step, samples: [...]}` line per step. */
export const SAMPLES_FILE = 'samples.jsonl';

export async function writeRunFile(dir: string, kind: string, config: object): Promise<void> {
  await writeJsonAtomic(join(dir, RUN_FILE), { kind, config });
}

/** The settings a run in `dir` started with (its run.json's config); null when `dir` holds no run yet. */
export function readRunConfig(dir: string): Record<string, unknown> | null {
  const file = join(dir, RUN_FILE);
  if (!existsSync(file)) return null;
  const { config } = readJsonFile(file) as { config?: unknown };
  return typeof config === 'object' && config !== null && !Array.isArray(config) ? config as Record<string, unknown> : null;
}

const NEWLINE = 0x0a;

/** Length of the file up to and including its last newline (0 if it has none). */
async function lengthThroughLastNewline(handle: Awaited<ReturnType<typeof open>>, size: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - chunk.byteLength);
    const { bytesRead } = await handle.read(chunk, 0, end - start, start);
    const index = chunk.subarray(0, bytesRead).lastIndexOf(NEWLINE);
    if (index >= 0) return start + index + 1;
    end = start;
  }
  return 0;
}

/**
 * Append one record as one JSON line, with a single write call that ends in a newline, so a killed process
 * leaves at most one partial last line. If the file already ends in such a partial line (a previous writer
 * was killed), it is cut off first, with a warning, so that the new record starts on a line of its own.
 */
export async function appendJsonl(file: string, record: unknown, onWarning: Warn = warnOnConsole): Promise<void> {
  const json = JSON.stringify(record);
  if (json === undefined) throw new Error(`appendJsonl: ${String(record)} has no JSON form`);
  const line = Buffer.from(`${json}\n`, 'utf8');
  const handle = await open(file, 'a+');
  try {
    let size = (await handle.stat()).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] !== NEWLINE) {
        const keep = await lengthThroughLastNewline(handle, size);
        onWarning(`${file}: dropping a partial last line of ${size - keep} bytes left by an interrupted write`);
        await handle.truncate(keep);
        size = keep;
      }
    }
    const { bytesWritten } = await handle.write(line, 0, line.byteLength);
    if (bytesWritten !== line.byteLength) {
      await handle.truncate(size);
      throw new Error(`${file}: short write (${bytesWritten} of ${line.byteLength} bytes); is the disk full?`);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Read a JSONL file. A bad line is an error naming the file and line number, except an unterminated last line
 * that does not parse: that is what a killed writer leaves, and it is dropped with a warning. Blank lines are
 * skipped.
 */
export async function readJsonl<T = unknown>(file: string, onWarning: Warn = warnOnConsole): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UserError(`${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const lines = text.split('\n');
  const terminated = lines.at(-1) === '';
  if (terminated) lines.pop();
  const records: T[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    try {
      records.push(JSON.parse(line) as T);
    } catch (error) {
      if (!terminated && i === lines.length - 1) {
        onWarning(`${file}:${i + 1}: dropping an unterminated last line that is not valid JSON (an interrupted write)`);
        break;
      }
      throw new UserError(`${file}:${i + 1}: not valid JSON (${(error as Error).message})`);
    }
  }
  return records;
}
