// The batched sampling engine: many prompts decoded together against a KV cache.
//
// Prompts of different lengths are left-padded to the longest one and decoded in lockstep: one prefill
// forward over the padded prompts, then one forward per new token with T = 1. Each row's padding is masked
// by kvStart and its positions count from its own first token (position = column - padStart), so a prompt's
// logits do not depend on the batch it sits in. Rows that finish (a stop token, a stop string, the token
// limit) stop producing output, and once a quarter of a batch has finished the finished rows are dropped
// from the cache and the batch (BatchDecoder.retain) instead of being decoded to the end.
//
// Models often pad their vocabulary beyond the tokenizer's (Qwen2.5: 151,936 rows for 151,665 ids); tokens are
// drawn only among the ids the tokenizer can decode, while log-probabilities stay those of the full softmax
// that training computes.
//
// Every request draws from its own generator, seeded per request, and rows are sampled independently, so a
// request's completion does not depend on which other requests share its batch or in what order they come.
//
// On a GPU the model runs there and only what the host sampler reads comes back each step ([rows, vocab]
// log-probabilities, and the weights or logits the rows need); each step runs in its own scope, so its
// activations are freed at once, while the KV cache lives until the batch is done.
import type { LayerKvCache } from '../nn/attention.ts';
import type { CausalLM } from '../models/pretrained.ts';
import type { FloatArray } from '../tensor/backend.ts';
import { contiguous, copyInto, dispose, logSoftmax, mul, noGrad, scope, slice, softmax, tensor, withDevice, type Tensor } from '../tensor/index.ts';
import { Rng } from '../tensor/random.ts';
import type { DecodeStream, Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { argmax, sampleFromWeights, type SamplingParams } from './sampler.ts';

/** How one completion is sampled and when it ends. Unset fields take GenerateOptions' values, then the defaults. */
export interface SamplingOptions {
  /** Tokens to generate at most (default 128). Also capped by the model's maxPositionEmbeddings. */
  maxNewTokens?: number;
  /** 0 = greedy (default 1). */
  temperature?: number;
  /** Nucleus mass in (0, 1] (default 1 = off). */
  topP?: number;
  /** 0 = off (default). */
  topK?: number;
  /** Strings that end the completion; checked on the decoded text, and the returned text ends before them. */
  stop?: readonly string[];
  /** Token ids that end the completion (default: the tokenizer's and the model config's EOS ids). */
  stopTokenIds?: readonly number[];
}

export interface GenerationRequest extends SamplingOptions {
  /** Text (encoded with the tokenizer, adding what its post-processor adds) or token ids. */
  prompt: string | readonly number[];
  /** Seed of this request's generator; default GenerateOptions.seed + the request's index. */
  seed?: number;
}

export interface TokenEvent {
  /** Index of the request in the array given to generate(). */
  request: number;
  tokenId: number;
  /**
   * Text newly made final by this token: text that could still turn out to be the start of a stop string is
   * held back until it cannot, so the concatenation of a request's events is exactly its result's text.
   */
  text: string;
  done: boolean;
}

export interface GenerateOptions extends SamplingOptions {
  /** Base seed: a request without its own seed uses seed + its index (default 0). */
  seed?: number;
  /** Rows decoded together (default 64); more requests are decoded in several batches of similar lengths. */
  maxBatchSize?: number;
  /** Called for every sampled token, in order within a request (streaming). */
  onToken?: (event: TokenEvent) => void;
}

export type FinishReason = 'stop' | 'length';

export interface GenerationResult {
  /** Number of prompt tokens. */
  promptTokens: number;
  /** The sampled tokens, including a final stop token or the tokens that completed a stop string. */
  tokenIds: number[];
  /**
   * log p(token | prompt, earlier tokens) of each sampled token under the model's unmodified distribution:
   * log_softmax of the logits at temperature 1, with no top-k or top-p, whatever the sampling settings. These
   * are the old-policy log-probabilities of GRPO's ratio (DeepSeekMath eq. 3), one per entry of tokenIds.
   */
  logprobs: number[];
  /** Decoded completion, without a stop token and ending before a stop string. */
  text: string;
  finishReason: FinishReason;
  /** The stop string that ended the completion, if one did. */
  stopString: string | null;
  /** The stop token that ended the completion, if one did. */
  stopTokenId: number | null;
}

const DEFAULT_MAX_NEW_TOKENS = 128;
const DEFAULT_MAX_BATCH_SIZE = 64;

/** Stop ids when none are given: every EOS id the tokenizer and the model's config name. */
export function defaultStopTokenIds(model: CausalLM, tokenizer: Tokenizer): number[] {
  const ids = [tokenizer.eosTokenId, model.config.eosTokenId].filter((id): id is number => id !== null);
  return [...new Set(ids)];
}

/** Samples a completion for each request; results are in request order. */
export function generate(model: CausalLM, tokenizer: Tokenizer, requests: readonly GenerationRequest[], options: GenerateOptions = {}): GenerationResult[] {
  const vocab = model.config.vocabSize;
  const maxPositions = model.config.maxPositionEmbeddings;
  const fallbackStopIds = defaultStopTokenIds(model, tokenizer);
  if (tokenizer.vocabSize > vocab) {
    throw new UserError(`the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary only ${vocab}: they do not belong together`);
  }
  const rows = requests.map((request, index) => {
    const promptIds = typeof request.prompt === 'string' ? tokenizer.encode(request.prompt) : [...request.prompt];
    checkPrompt(promptIds, index, vocab, maxPositions);
    const settings = resolveSettings(request, options, index, fallbackStopIds);
    // The last sampled token is never fed back, so n new tokens use positions up to promptLength + n - 2,
    // which the rotary table must cover.
    const maxNewTokens = Math.min(settings.maxNewTokens, maxPositions - promptIds.length + 1);
    return new RowState(index, promptIds, { ...settings, maxNewTokens }, tokenizer);
  });

  // Batches of similar prompt lengths waste less on padding; the results do not depend on the grouping.
  const order = rows.map((_, i) => i).sort((a, b) => rows[b].promptIds.length - rows[a].promptIds.length || a - b);
  const maxBatch = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new UserError(`maxBatchSize must be a positive integer, got ${maxBatch}`);
  withDevice(model.device, () => noGrad(() => {
    for (let start = 0; start < order.length; start += maxBatch) {
      const batch = order.slice(start, start + maxBatch).map((i) => rows[i]).filter((row) => !row.finishIfEmpty());
      if (batch.length > 0) decodeBatch(model, batch, tokenizer.vocabSize, options.onToken);
    }
  }));
  return rows.map((row) => row.result());
}

function decodeBatch(model: CausalLM, rows: RowState[], sampleVocab: number, onToken: GenerateOptions['onToken']): void {
  const vocab = model.config.vocabSize;
  const decoder = new BatchDecoder(model, rows.map((r) => r.promptIds), Math.max(...rows.map((r) => r.settings.maxNewTokens)));
  const rowsNow = () => decoder.rows.map((rowIndex) => rows[rowIndex]);
  try {
    let step = scope(() => samplingInputs(decoder.prefill(), rowsNow()));
    for (;;) {
      const next = sampleStep(step, decoder, rows, vocab, sampleVocab, onToken);
      if (next === null) return;
      step = scope(() => samplingInputs(decoder.next(next), rowsNow()));
    }
  } finally {
    decoder.dispose();
  }
}

// Picks each row's next token from one step's sampling inputs; drops finished rows from the decoder once a
// quarter of the batch has finished. Returns the tokens to feed (one per remaining row), or null when all are done.
function sampleStep(step: SamplingInputs, decoder: BatchDecoder, rows: RowState[], vocab: number, sampleVocab: number,
  onToken: GenerateOptions['onToken']): number[] | null {
  const next: number[] = [];
  let finished = 0;
  decoder.rows.forEach((rowIndex, r) => {
    const row = rows[rowIndex];
    if (row.done) {
      // Not yet dropped from the batch: decode anything, its logits are not read.
      next.push(0);
      finished++;
      return;
    }
    const at = r * vocab;
    const id = row.settings.temperature === 0
      ? argmax(step.logits!.subarray(at, at + sampleVocab))
      : sampleFromWeights(step.weights!.subarray(at, at + sampleVocab), row.settings, row.rng);
    row.accept(id, step.logprobs[at + id], onToken);
    next.push(id);
    if (row.done) finished++;
  });
  if (finished === decoder.rows.length) return null;
  if (finished * 4 < decoder.rows.length) return next;
  const keep = decoder.rows.map((rowIndex, r) => ({ rowIndex, r })).filter(({ rowIndex }) => !rows[rowIndex].done);
  decoder.retain(keep.map(({ r }) => r));
  return keep.map(({ r }) => next[r]);
}

/** Host arrays [rows, vocab] that sampling reads; logits only when a row is greedy, weights only when one samples. */
interface SamplingInputs { logits: FloatArray | null; logprobs: FloatArray; weights: FloatArray | null }

/**
 * What sampling reads for a whole batch, computed by tensor kernels rather than row by row in JavaScript:
 * the log-softmax at temperature 1 (the reported log-probabilities) and, when any row samples, the softmax of
 * logits / T with each row's own temperature (rows that are greedy or done use 1 and are not read). On the
 * CPU these are the kernels' own arrays; on a device, downloads.
 */
function samplingInputs(logits: Tensor, rows: readonly RowState[]): SamplingInputs {
  const logprobs = logSoftmax(logits).hostValues() as FloatArray;
  const live = rows.filter((row) => !row.done);
  const greedy = live.some((row) => row.settings.temperature === 0);
  const sampling = live.some((row) => row.settings.temperature > 0);
  const hostLogits = greedy ? logits.hostValues() as FloatArray : null;
  if (!sampling) return { logits: hostLogits, logprobs, weights: null };
  const inverseTemperature = Float32Array.from(rows, (row) => (row.done || row.settings.temperature === 0 ? 1 : 1 / row.settings.temperature));
  const weights = softmax(mul(logits, tensor(inverseTemperature, [rows.length, 1], 'f32', logits.device))).hostValues() as FloatArray;
  return { logits: hostLogits, logprobs, weights };
}

// ---------------------------------------------------------------------------------------------------------
// One request's progress: tokens, log-probabilities, incrementally decoded text and the stop rules.

interface RowSettings extends SamplingParams {
  maxNewTokens: number;
  stop: readonly string[];
  stopTokenIds: readonly number[];
}

class RowState {
  readonly rng: Rng;
  readonly tokenIds: number[] = [];
  readonly logprobs: number[] = [];
  done = false;
  private text = '';
  private emitted = 0;
  private finishReason: FinishReason = 'length';
  private stopString: string | null = null;
  private stopTokenId: number | null = null;
  private readonly stream: DecodeStream;
  private readonly stopIds: ReadonlySet<number>;
  /** A stop string can only start in the last (longest stop - 1) characters of text that has no stop yet. */
  private readonly holdBack: number;

  constructor(readonly index: number, readonly promptIds: number[], readonly settings: RowSettings & { seed: number }, tokenizer: Tokenizer) {
    this.rng = new Rng(settings.seed);
    this.stream = tokenizer.decodeStream();
    this.stopIds = new Set(settings.stopTokenIds);
    this.holdBack = Math.max(0, ...settings.stop.map((s) => s.length - 1));
  }

  /** maxNewTokens = 0: finished before any decoding. */
  finishIfEmpty(): boolean {
    if (this.settings.maxNewTokens > 0) return false;
    this.done = true;
    return true;
  }

  accept(id: number, logprob: number, onToken: GenerateOptions['onToken']): void {
    this.tokenIds.push(id);
    this.logprobs.push(logprob);
    if (this.stopIds.has(id)) {
      this.finish('stop');
      this.stopTokenId = id;
    } else {
      const searchFrom = Math.max(0, this.text.length - this.holdBack);
      this.text += this.stream.push(id);
      const found = firstStop(this.text, this.settings.stop, searchFrom);
      if (found) {
        this.text = this.text.slice(0, found.at);
        this.done = true;
        this.finishReason = 'stop';
        this.stopString = found.stop;
      } else if (this.tokenIds.length >= this.settings.maxNewTokens) {
        this.finish('length');
      }
    }
    if (onToken) {
      const safeEnd = this.done ? this.text.length : Math.max(this.emitted, this.text.length - this.holdBack);
      onToken({ request: this.index, tokenId: id, text: this.text.slice(this.emitted, safeEnd), done: this.done });
      this.emitted = safeEnd;
    }
  }

  private finish(reason: FinishReason): void {
    // A character cut off by the end of the sequence decodes as U+FFFD, as a full decode would.
    this.text += this.stream.end();
    this.done = true;
    this.finishReason = reason;
  }

  result(): GenerationResult {
    return {
      promptTokens: this.promptIds.length,
      tokenIds: this.tokenIds,
      logprobs: this.logprobs,
      text: this.text,
      finishReason: this.finishReason,
      stopString: this.stopString,
      stopTokenId: this.stopTokenId,
    };
  }
}

/** The earliest occurrence of any stop string starting at or after `from`. */
function firstStop(text: string, stops: readonly string[], from: number): { at: number; stop: string } | null {
  let best: { at: number; stop: string } | null = null;
  for (const stop of stops) {
    if (stop === '') continue;
    const at = text.indexOf(stop, from);
    if (at >= 0 && (best === null || at < best.at)) best = { at, stop };
  }
  return best;
}

function resolveSettings(request: GenerationRequest, defaults: GenerateOptions, index: number, fallbackStopIds: readonly number[]): RowSettings & { seed: number } {
  const where = `request ${index}`;
  const pick = <K extends keyof SamplingOptions>(key: K): SamplingOptions[K] => request[key] ?? defaults[key];
  const maxNewTokens = pick('maxNewTokens') ?? DEFAULT_MAX_NEW_TOKENS;
  const temperature = pick('temperature') ?? 1;
  const topP = pick('topP') ?? 1;
  const topK = pick('topK') ?? 0;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new UserError(`${where}: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new UserError(`${where}: temperature must be >= 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new UserError(`${where}: topP must be in (0, 1], got ${topP}`);
  if (!Number.isInteger(topK) || topK < 0) throw new UserError(`${where}: topK must be a non-negative integer, got ${topK}`);
  const seed = request.seed ?? (defaults.seed ?? 0) + index;
  return { maxNewTokens, temperature, topP, topK, stop: pick('stop') ?? [], stopTokenIds: pick('stopTokenIds') ?? fallbackStopIds, seed };
}

function checkPrompt(ids: readonly number[], index: number, vocab: number, maxPositions: number): void {
  if (ids.length === 0) throw new UserError(`request ${index}: the prompt has no tokens (give at least one, e.g. a BOS token)`);
  if (ids.length > maxPositions) {
    throw new UserError(`request ${index}: the prompt has ${ids.length} tokens, more than the model's maxPositionEmbeddings (${maxPositions})`);
  }
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new UserError(`request ${index}: prompt token ${i} is ${id}, outside the model's vocabulary [0, ${vocab})`);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The KV-cache side: left padding, positions, and dropping finished rows.

/**
 * Rows of token sequences decoded in lockstep against one KV cache. Column c of the cache holds, for row b,
 * the token at position c - padStart[b]; columns before padStart[b] are padding, masked by kvStart.
 * `rows[r]` is the index (into the prompts given to the constructor) of the sequence now in row r.
 */
export class BatchDecoder {
  rows: number[];
  private cache: LayerKvCache[];
  private padStart: Int32Array;
  private capacity: number;
  private readonly width: number;
  private prefilled = false;

  constructor(private readonly model: CausalLM, private readonly prompts: readonly (readonly number[])[], maxNewTokens: number) {
    const width = (this.width = Math.max(...prompts.map((p) => p.length)));
    this.rows = prompts.map((_, i) => i);
    this.padStart = Int32Array.from(prompts, (p) => width - p.length);
    // The last sampled token is never fed back, so width + maxNewTokens - 1 columns would do; one spare
    // keeps maxNewTokens = 0 valid.
    this.capacity = width + maxNewTokens;
    this.cache = model.newCache(prompts.length, this.capacity);
  }

  /** Columns filled so far (the same for every row). */
  get length(): number {
    return this.cache[0].length;
  }

  /** Runs the padded prompts; logits [rows, V] of each prompt's last token. */
  prefill(): Tensor {
    if (this.prefilled) throw new Error('BatchDecoder.prefill: already prefilled');
    this.prefilled = true;
    const B = this.rows.length;
    const width = this.width;
    const ids = new Int32Array(B * width);
    const positions = new Int32Array(B * width);
    for (let b = 0; b < B; b++) {
      const prompt = this.prompts[b];
      const pad = this.padStart[b];
      for (let c = 0; c < width; c++) {
        // Padding columns hold token 0 at position 0: finite inputs whose keys are masked everywhere.
        ids[b * width + c] = c < pad ? 0 : prompt[c - pad];
        positions[b * width + c] = c < pad ? 0 : c - pad;
      }
    }
    const device = this.model.device;
    return this.forward(tensor(ids, [B, width], 'i32', device), tensor(positions, [B, width], 'i32', device));
  }

  /** Feeds one token per row (in row order); logits [rows, V] of the next position. */
  next(tokens: readonly number[]): Tensor {
    if (!this.prefilled) throw new Error('BatchDecoder.next: prefill first');
    const B = this.rows.length;
    if (tokens.length !== B) throw new Error(`BatchDecoder.next: ${tokens.length} tokens for ${B} rows`);
    const column = this.length;
    const positions = Int32Array.from(this.padStart, (pad) => column - pad);
    const device = this.model.device;
    return this.forward(tensor(tokens, [B, 1], 'i32', device), tensor(positions, [B, 1], 'i32', device));
  }

  /**
   * Keeps only the rows at the given indices (into `rows`, in increasing order): their cache rows are copied
   * into a smaller cache, and padding columns that no kept row needs any more are cut from the left.
   */
  retain(keep: readonly number[]): void {
    const trim = Math.min(...keep.map((r) => this.padStart[r]));
    const length = this.length;
    const kept = length - trim;
    const cache = this.model.newCache(keep.length, this.capacity - trim);
    this.cache.forEach((layer, l) => {
      // A latent (MLA) cache's values are a view of its keys (src/nn/mla.ts): copying the keys moves both.
      const valuesInKeys = layer.v.storage === layer.k.storage;
      keep.forEach((r, i) => {
        copyInto(slice(slice(layer.k, 0, r, r + 1), 1, trim, length), slice(slice(cache[l].k, 0, i, i + 1), 1, 0, kept));
        if (!valuesInKeys) copyInto(slice(slice(layer.v, 0, r, r + 1), 1, trim, length), slice(slice(cache[l].v, 0, i, i + 1), 1, 0, kept));
      });
      cache[l].length = kept;
    });
    this.dispose();
    this.cache = cache;
    this.capacity -= trim;
    this.padStart = Int32Array.from(keep, (r) => this.padStart[r] - trim);
    this.rows = keep.map((r) => this.rows[r]);
  }

  /** Frees the KV cache's device memory now (a no-op on the CPU); the decoder is not used afterwards. */
  dispose(): void {
    for (const layer of this.cache) {
      dispose(layer.k);
      dispose(layer.v);
    }
  }

  private forward(ids: Tensor, positions: Tensor): Tensor {
    const kvStart = tensor(this.padStart, [this.padStart.length], 'i32', this.model.device);
    return contiguous(this.model.lastLogits(ids, { positions, cache: this.cache, kvStart }));
  }
}
