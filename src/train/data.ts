// From documents to training batches. Documents are tokenised into one stream, each followed by the
// end-of-text token (GPT-2's packing: no padding, and the model learns where a document ends); the tail of
// the stream is held out for validation. Training batches are B windows of T + 1 tokens at starts drawn with
// a seeded generator; inputs are the first T tokens and targets the last T. The generator's state and the
// batch count are the loader's whole state, saved in checkpoints so a resumed run draws the same batches.
import { Rng, tensor, type Tensor } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';

export interface Batch {
  /** int32 [B, T] */
  inputs: Tensor;
  /** int32 [B, T]: inputs shifted left by one. */
  targets: Tensor;
}

/** Concatenates the token ids of every document, each followed by `eosId`. */
export function tokenizeDocuments(docs: readonly string[], encode: (text: string) => number[], eosId: number): Int32Array {
  const pieces: number[][] = [];
  let total = 0;
  for (const doc of docs) {
    const ids = encode(doc);
    pieces.push(ids);
    total += ids.length + 1;
  }
  const out = new Int32Array(total);
  let at = 0;
  for (const ids of pieces) {
    out.set(ids, at);
    at += ids.length;
    out[at++] = eosId;
  }
  return out;
}

/**
 * Splits the stream into train and validation parts: the last `validationFraction` of the tokens (at least one
 * window of seqLen + 1) are held out. `source` names the corpus in the error when it is too short.
 */
export function splitTokens(tokens: Int32Array, validationFraction: number, seqLen: number, source: string): { train: Int32Array; validation: Int32Array } {
  const window = seqLen + 1;
  const validationTokens = Math.max(window, Math.floor(tokens.length * validationFraction));
  const trainTokens = tokens.length - validationTokens;
  if (trainTokens < window) {
    throw new UserError(`${source}: the corpus has ${tokens.length} tokens; training needs at least ${2 * window} (one window of ${window} tokens to train on and one to validate)`);
  }
  return { train: tokens.subarray(0, trainTokens), validation: tokens.subarray(trainTokens) };
}

export interface BatcherState {
  rng: number[];
  batches: number;
}

export class RandomWindowBatcher {
  private rng: Rng;
  /** Batches drawn so far (for the record: the RNG state alone decides the next batch). */
  batches = 0;

  constructor(readonly tokens: Int32Array, readonly batchSize: number, readonly seqLen: number, seed: number) {
    if (tokens.length < seqLen + 1) throw new Error(`RandomWindowBatcher: ${tokens.length} tokens cannot fill a window of ${seqLen + 1}`);
    this.rng = new Rng(seed);
  }

  next(): Batch {
    const { batchSize: B, seqLen: T, tokens } = this;
    const starts = tokens.length - T; // windows of T + 1 tokens fit at starts 0 .. length - T - 1
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const s = this.rng.int(starts);
      inputs.set(tokens.subarray(s, s + T), b * T);
      targets.set(tokens.subarray(s + 1, s + T + 1), b * T);
    }
    this.batches++;
    return { inputs: tensor(inputs, [B, T], 'i32'), targets: tensor(targets, [B, T], 'i32') };
  }

  state(): BatcherState {
    return { rng: this.rng.state(), batches: this.batches };
  }

  restore(state: BatcherState): void {
    this.rng = Rng.fromState(state.rng);
    this.batches = state.batches;
  }
}

/**
 * Consecutive non-overlapping windows from the start of `tokens`, B at a time, at most maxBatches batches (a
 * fixed set, so that validation losses of different steps compare the same text).
 */
export function* sequentialBatches(tokens: Int32Array, batchSize: number, seqLen: number, maxBatches: number): Generator<Batch> {
  const windows = Math.floor((tokens.length - 1) / seqLen);
  for (let first = 0, n = 0; first < windows && n < maxBatches; first += batchSize, n++) {
    const B = Math.min(batchSize, windows - first);
    const inputs = new Int32Array(B * seqLen);
    const targets = new Int32Array(B * seqLen);
    for (let b = 0; b < B; b++) {
      const s = (first + b) * seqLen;
      inputs.set(tokens.subarray(s, s + seqLen), b * seqLen);
      targets.set(tokens.subarray(s + 1, s + seqLen + 1), b * seqLen);
    }
    yield { inputs: tensor(inputs, [B, seqLen], 'i32'), targets: tensor(targets, [B, seqLen], 'i32') };
  }
}

/**
 * Batch `step` (0-based) of a run over `items` in epochs of ceil(n / batchSize) batches, each epoch in the order
 * of a permutation drawn from seed + epoch (SFT's rows, the reward model's pairs). It depends on the step alone,
 * so a resumed run trains on the same batches as the uninterrupted one.
 */
export function epochBatch<T>(items: readonly T[], step: number, batchSize: number, seed: number): T[] {
  const stepsPerEpoch = Math.ceil(items.length / batchSize);
  const within = step % stepsPerEpoch;
  const order = new Rng(seed + Math.floor(step / stepsPerEpoch)).permutation(items.length);
  return order.slice(within * batchSize, (within + 1) * batchSize).map((i) => items[i]);
}
