// The batched sampling engine: many requests decoded together against one KV cache, with continuous batching.
//
// Requests wait in a queue and enter the batch as rows free up (once an eighth of them are free: decodeQueue
// says why), and a row is freed as soon as its request finishes (a stop token, a stop string, the token limit),
// so with more requests than maxBatchSize (GRPO: P prompts x G samples in one call) the rows stay busy until
// the queue runs dry. Entering requests are
// prefilled as their own small batch, left-padded among themselves, and their keys and values are spliced into
// the freed rows of the shared cache so that each prompt's last token lands on the last filled column; then
// every row decodes one token per step with one T = 1 forward over the cache. Each row's kvStart masks whatever
// lies before its own first token (padding, or an earlier request's columns), and its positions count from that
// token (position = column - kvStart), so a request's logits depend neither on its neighbours nor on when it
// entered.
//
// Why one [rows, columns] cache with a shared column counter, rather than a cache per row or a paged cache: the
// attention kernel of every backend already reads that layout with a per-row kvStart, so continuous batching
// needs no new kernel and works for every LayerKvCache (the dense K/V cache and DeepSeek's latent cache are
// moved through their `buffers`). The price is the shared counter, which two moves keep bounded
// (BatchDecoder.relayout): when the columns run out, every row shifts left by the smallest kvStart (compaction;
// the capacity has a quarter of the longest request's span to spare, so compaction comes at most once every
// span / 4 steps and copies the live cache once, less than attention reads meanwhile); when an entering prompt
// is longer than the columns filled so far, the cache widens on the left. Once the queue is empty, free rows are
// dropped (a smaller batch) when a quarter of the rows are free.
//
// The engine is a step function (SamplingEngine): requests can be submitted and cancelled between steps, so a
// server (src/serve) feeds it as clients come and go, and the batch grows and shrinks with the load; generate()
// submits everything at once and steps until the queue is done.
//
// Models often pad their vocabulary beyond the tokenizer's (Qwen2.5: 151,936 rows for 151,665 ids); tokens are
// drawn only among the ids the tokenizer can decode, while log-probabilities stay those of the full softmax
// that training computes.
//
// A request's k-th token is drawn with the uniform streamUniform(seed, k) (Philox, counter-based: a function of
// the request's seed and k alone), and rows are sampled independently, so a request's completion does not
// depend on which other requests share its batch or in what order they come.
//
// On a GPU the model runs there and so does sampling (sampleOnDevice, one fused kernel): only each row's token
// and log-probability come back each step, and the stop rules are checked on the host from those. With the
// cudaGraphs option, a decode step of a dense model is recorded once as a CUDA graph (per cache and row count)
// and replayed: the step's column lives in device memory (DeviceDecodeStep), so one recording serves every
// column, and a step costs a few small uploads and one launch instead of ~500 kernel launches from JavaScript;
// a dense model's step is recorded from fused kernels (src/models/dense-decode.ts: ~10 a layer instead of ~28),
// over its projections concatenated when the graph is recorded (a copy: a model updated while an engine holds a
// batch would be decoded with the weights of the recording; generate() makes its own engine). Steps are then
// pipelined: once a step and its draw are queued, the next step is queued with its tokens read on the device, and
// only then does the host wait for the first draw and take its tokens (stop rules, bookkeeping), so the device
// never waits for the host between steps. A row whose request ends on the drawn token decodes one placeholder step, ignored; the pipeline pauses
// whenever the batch changes (requests waiting to enter, the cache full, the batch about to shrink).
// Each step runs in its own scope, so its activations are freed at once, while the KV cache is kept outside
// scopes and disposed when the queue is done.
import type { LayerKvCache } from '../nn/attention.ts';
import { deepseekDecodesOnDevice } from '../models/deepseek.ts';
import { DenseModel } from '../models/dense.ts';
import { denseDecodeLogits, denseDecodeWeights, disposeDecodeWeights } from '../models/dense-decode.ts';
import type { CausalLM } from '../models/pretrained.ts';
import { HostRecycler, isUninitializedHostArray, moveHostArray, withHostRecycler, type Backend, type FloatArray, type HostArray } from '../tensor/backend.ts';
import { DeviceArray } from '../tensor/device.ts';
import { captureGraph, contiguous, cpuBackend, copyInto, dispose, embedding, empty, keep, logSoftmax, mul, noGrad, packBf16, reshape, scope, slice, softmax, Tensor, tensor, withDevice, writeValues, type CacheFormat, type CudaGraph } from '../tensor/index.ts';
import { streamUniform } from '../tensor/philox.ts';
import type { DecodeStream, Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { argmax, queueSampleOnDevice, sampleFromWeights, type DeviceSamplingRow, type QueuedDraw, type SamplingParams } from './sampler.ts';

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
  /** Keep tokens at least minP times as likely as the most likely; 0 = off (default). */
  minP?: number;
  /** Strings that end the completion; checked on the decoded text, and the returned text ends before them. */
  stop?: readonly string[];
  /** Token ids that end the completion (default: the tokenizer's and the model config's EOS ids). */
  stopTokenIds?: readonly number[];
  /** Also report the k most likely tokens at every position, with their log-probabilities (default 0 = off). */
  topLogprobs?: number;
}

export interface GenerationRequest extends SamplingOptions {
  /** Text (encoded with the tokenizer, adding what its post-processor adds) or token ids. */
  prompt: string | readonly number[];
  /** Seed of this request's generator; default GenerateOptions.seed + the request's index. */
  seed?: number;
}

export interface TokenEvent {
  /** Index of the request in the array given to generate() (a SamplingEngine's request id). */
  request: number;
  tokenId: number;
  /** The token's log-probability, as in GenerationResult.logprobs. */
  logprob: number;
  /** The most likely tokens at this position when the request asked for topLogprobs, else null. */
  topLogprobs: TokenLogprob[] | null;
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
  /** Rows decoded together (default 64, on CUDA 256); further requests wait in a queue and enter as rows finish. */
  maxBatchSize?: number;
  /** Called for every sampled token, in order within a request (streaming). */
  onToken?: (event: TokenEvent) => void;
  /** Called after every decode step: how full the batch was (benchmarks, and tests of the scheduling). */
  onStep?: (event: StepEvent) => void;
  /**
   * On CUDA, decode steps of dense models (head size 64 or 128) and of DeepSeek models replay a recorded CUDA graph instead of
   * launching each kernel from JavaScript (default true; false launches every kernel, for comparison: both
   * draw the same tokens up to the rounding of attention's summation order, docs/BENCHMARKS.md).
   */
  cudaGraphs?: boolean;
  /**
   * How the KV cache holds keys and values where decode steps are CUDA graphs: 'bf16' halves the bytes that
   * attention streams every step and the cache's memory, at the price of rounding keys and values to 8 bits of
   * mantissa (on the 494M shape the sampler's log-probabilities stayed within 2e-2 of the trainer's, as with
   * float32: docs/BENCHMARKS.md). Default 'f32'; elsewhere always float32.
   */
  kvCache?: CacheFormat;
}

export interface StepEvent {
  /** Rows of the batch in this step's forward (the batch shrinks once the queue is empty). */
  rows: number;
  /** Rows holding an unfinished request (the others were fed a placeholder). */
  liveRows: number;
  /** Requests that have entered the batch so far, this step's included. */
  entered: number;
  /** Cache columns filled after this step (bounded by compaction, whatever the queue's length). */
  cacheColumns: number;
}

export type FinishReason = 'stop' | 'length';

export interface TokenLogprob {
  id: number;
  logprob: number;
}

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
  /** With topLogprobs k: the k most likely tokens at each position of tokenIds, most likely first. */
  topLogprobs?: TokenLogprob[][];
  /** Decoded completion, without a stop token and ending before a stop string. */
  text: string;
  finishReason: FinishReason;
  /** The stop string that ended the completion, if one did. */
  stopString: string | null;
  /** The stop token that ended the completion, if one did. */
  stopTokenId: number | null;
}

const DEFAULT_MAX_NEW_TOKENS = 128;
/** The smallest array a CPU decode step hands on to the next (SamplingEngine.recycling). */
const RECYCLED_MIN_BYTES = 16384;
export const DEFAULT_MAX_BATCH_SIZE = 64;
/**
 * On a GPU a decode step of 256 rows costs about 1.5x one of 64 (H200, 494M shape: 4.5 vs 3.0 ms), so rows are
 * nearly free there: GRPO's P x G requests decode in fewer, fuller steps. The KV cache is the price (494M shape,
 * 320 columns: 7.9 MB a row in float32, 2 GB for 256 rows).
 */
export const DEFAULT_CUDA_MAX_BATCH_SIZE = 256;

/** The batch size when none is given: larger on a GPU (DEFAULT_CUDA_MAX_BATCH_SIZE says why). */
export function defaultMaxBatchSize(model: CausalLM): number {
  return model.device === 'cuda' ? DEFAULT_CUDA_MAX_BATCH_SIZE : DEFAULT_MAX_BATCH_SIZE;
}

/** Stop ids when none are given: every EOS id the tokenizer and the model's config name. */
export function defaultStopTokenIds(model: CausalLM, tokenizer: Tokenizer): number[] {
  const ids = [tokenizer.eosTokenId, model.config.eosTokenId].filter((id): id is number => id !== null);
  return [...new Set(ids)];
}

/** Samples a completion for each request; results are in request order. */
export function generate(model: CausalLM, tokenizer: Tokenizer, requests: readonly GenerationRequest[], options: GenerateOptions = {}): GenerationResult[] {
  const engine = new SamplingEngine(model, tokenizer, options);
  const results: GenerationResult[] = new Array(requests.length);
  try {
    const ids = engine.submit(requests, { onToken: options.onToken, onDone: (id, result) => (results[id] = result) });
    if (ids.some((id, i) => id !== i)) throw new Error('generate: a fresh engine numbers requests from 0');
    while (engine.step());
  } finally {
    engine.dispose();
  }
  return results;
}

/** What a SamplingEngine calls back for the requests of one submit(). */
export interface RequestCallbacks {
  /** Every sampled token, in order (streaming). */
  onToken?: (event: TokenEvent) => void;
  /** Once, when the request finishes (not when it is cancelled); the engine keeps nothing of it afterwards. */
  onDone?: (id: number, result: GenerationResult) => void;
}

/**
 * Continuous batching as a step function, for callers that cannot hand over every request at once (a server):
 * submit() queues requests at any time, step() runs one admission and one decode step, cancel() drops a
 * request and frees its row at once. generate() is this engine driven until its queue is done. The batch
 * adapts to the load: it grows (up to maxBatchSize rows, and in columns for a longer request) when requests
 * wait for a row, shrinks when a quarter of its rows are free and nothing waits, and its KV cache is freed
 * whenever the engine falls idle.
 */
export class SamplingEngine {
  /** Every request submitted and not yet finished or cancelled, waiting or in the batch. */
  private readonly open = new Map<number, { row: RowState; callbacks: RequestCallbacks }>();
  private readonly waiting: RowState[] = [];
  /** Request id -> its last sampled token, fed in the next step. */
  private readonly pending = new Map<number, number>();
  private decoder: BatchDecoder | null = null;
  /**
   * A decode step queued before the tokens of the step before it were taken (header: pipelining), with the rows it
   * decoded; the next step() reads its draw instead of decoding.
   */
  private inFlight: { batch: (RowState | null)[]; draw: QueuedDraw } | null = null;
  private nextId = 0;
  private entered = 0;
  private readonly maxBatch: number;
  private readonly fallbackStopIds: number[];
  /** The last CPU decode forward's arrays, for the next one (recycling()). */
  private hostRecycler = new HostRecycler();

  constructor(readonly model: CausalLM, readonly tokenizer: Tokenizer, private readonly options: GenerateOptions = {}) {
    if (tokenizer.vocabSize > model.config.vocabSize) {
      throw new UserError(`the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary only ${model.config.vocabSize}: they do not belong together`);
    }
    this.maxBatch = options.maxBatchSize ?? defaultMaxBatchSize(model);
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new UserError(`maxBatchSize must be a positive integer, got ${this.maxBatch}`);
    this.fallbackStopIds = defaultStopTokenIds(model, tokenizer);
  }

  /** Requests waiting for a row. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Requests in the batch. */
  get liveCount(): number {
    return this.open.size - this.waiting.length;
  }

  /** Rows of the batch (live and free); 0 when idle. */
  get batchRows(): number {
    return this.decoder?.rows.length ?? 0;
  }

  /**
   * Checks and queues requests (all or none: a bad one throws before any is queued) and returns their ids,
   * consecutive from the engine's count of requests so far. Longest prompts are queued first: later entrants
   * then rarely need the cache widened, and requests entering together have similar lengths, so their
   * prefill pads little. Results do not depend on the order.
   */
  submit(requests: readonly GenerationRequest[], callbacks: RequestCallbacks = {}): number[] {
    const vocab = this.model.config.vocabSize;
    const maxPositions = this.model.config.maxPositionEmbeddings;
    const rows = requests.map((request, i) => {
      const index = this.nextId + i;
      const promptIds = typeof request.prompt === 'string' ? this.tokenizer.encode(request.prompt) : [...request.prompt];
      checkPrompt(promptIds, index, vocab, maxPositions);
      const settings = resolveSettings(request, this.options, index, this.fallbackStopIds);
      // The last sampled token is never fed back, so n new tokens use positions up to promptLength + n - 2,
      // which the rotary table must cover.
      const maxNewTokens = Math.min(settings.maxNewTokens, maxPositions - promptIds.length + 1);
      return new RowState(index, promptIds, { ...settings, maxNewTokens }, this.tokenizer);
    });
    this.nextId += rows.length;
    const queued = rows.filter((row) => {
      if (!row.finishIfEmpty()) return true;
      callbacks.onDone?.(row.index, row.result());
      return false;
    }).sort((a, b) => b.promptIds.length - a.promptIds.length || a.index - b.index);
    for (const row of queued) this.open.set(row.index, { row, callbacks });
    this.waiting.push(...queued);
    return rows.map((row) => row.index);
  }

  /** Drops request `id`: out of the queue, or out of the batch at once (its row is free for the next step). */
  cancel(id: number): void {
    const at = this.waiting.findIndex((row) => row.index === id);
    if (at >= 0) this.waiting.splice(at, 1);
    const r = this.decoder?.rows.indexOf(id) ?? -1;
    if (r >= 0) this.decoder!.leave(r);
    this.open.delete(id);
    this.pending.delete(id);
  }

  /**
   * Admits waiting requests into free rows (sampling their first token from their prefill's logits), then
   * advances every row by one token. Returns whether work remains (requests waiting or in the batch).
   */
  step(): boolean {
    if (this.open.size > 0) withDevice(this.model.device, () => noGrad(() => this.decodeStep()));
    if (this.open.size === 0) this.dispose();
    return this.open.size > 0;
  }

  /**
   * Runs a CPU decode forward and draw with their arrays handed on to the next one (each makes the same shapes).
   * Everything an op made there is dead once the tokens are drawn, except a KV cache made anew when the batch is
   * relaid out: what else outlives it is plain numbers. A fresh ArrayBuffer per activation was V8 external
   * memory, and V8 answers it with a collection per 32-64 MB on the thread that runs the op layer (20m, batch 32:
   * ~5% of a step in the collector and in allocation). Only arrays of RECYCLED_MIN_BYTES or more: moving an
   * array costs ~5 us, twice a fresh small one, so batch 1's arrays (a few KB) stay fresh. Only the decode
   * forward: a prefill's activations are larger and of other shapes, so they stay the collector's, and each
   * step's recycler holds only the previous step's arrays (leftovers are dropped), which keeps peak memory where
   * it was. Released arrays move to new ArrayBuffers (moveHostArray): a tensor of the step read afterwards by
   * mistake throws instead of seeing the next step's values.
   */
  private recycling<T>(fn: () => T): T {
    if (this.model.device !== 'cpu') return fn();
    const recycler = this.hostRecycler;
    return withHostRecycler(recycler, () => {
      const result = fn();
      const next = new HostRecycler();
      const cache = new Set(this.decoder?.cacheArrays() ?? []);
      for (const array of recycler.handedOut) {
        if (array.byteLength >= RECYCLED_MIN_BYTES && !cache.has(array) && isUninitializedHostArray(array)) next.release(moveHostArray(array));
      }
      this.hostRecycler = next;
      return result;
    });
  }

  /** Frees the KV cache now (a no-op on the CPU); a later step() makes a new one. */
  dispose(): void {
    if (this.inFlight) {
      // A step queued ahead whose rows all ended: read (every queued draw is read once) and dropped.
      this.inFlight.draw.finish();
      dispose(this.inFlight.draw.ids);
    }
    this.inFlight = null;
    this.decoder?.dispose();
    this.decoder = null;
  }

  private decodeStep(): void {
    if (this.inFlight) {
      const { batch, draw } = this.inFlight;
      this.inFlight = null;
      this.finishStep(this.decoder!, batch, draw);
      return;
    }
    const decoder = this.fitDecoder();
    // Each admission is a prefill forward of its own, whose fixed cost (the op layer on the CPU, kernel launches
    // on a GPU) is that of a decode step, so requests enter once an eighth of the rows are free (or once all
    // that wait fit): on 32 rows that is 4x fewer prefills for about 1/16 of the occupancy.
    const entryGroup = Math.ceil(decoder.rows.length / 8);
    // A request that finishes on its first token frees its row again at once.
    for (let free = decoder.freeRows(); this.waiting.length > 0 && free.length >= Math.min(entryGroup, this.waiting.length); free = decoder.freeRows()) {
      const entering = this.waiting.splice(0, free.length);
      this.entered += entering.length;
      const drawn = scope(() => this.draw(decoder.enter(entering.map((row) => ({ id: row.index, prompt: row.promptIds }))), entering));
      entering.forEach((row, e) => this.take(drawn, e, row, free[e]));
    }
    const free = decoder.freeRows().length;
    if (free === decoder.rows.length) return;
    if (this.waiting.length === 0 && free * 4 >= decoder.rows.length) decoder.shrink();
    const batch = decoder.rows.map((id) => (id === null ? null : this.open.get(id)!.row));
    const tokens = batch.map((row) => (row === null ? 0 : this.pending.get(row.index)!));
    if (decoder.replaysGraphs && this.samplesOnDevice(batch)) {
      this.finishStep(decoder, batch, scope(() => queueSampleOnDevice(decoder.next(tokens), this.deviceRows(batch, 0), this.tokenizer.vocabSize)));
      return;
    }
    const drawn = this.recycling(() => scope(() => this.draw(decoder.next(tokens), batch)));
    batch.forEach((row, r) => row && this.take(drawn, r, row, r));
    this.options.onStep?.({ rows: batch.length, liveRows: batch.filter((row) => row !== null).length, entered: this.entered, cacheColumns: decoder.length });
  }

  /**
   * Takes the tokens of a queued decode step, having first queued the next step when it can run ahead
   * (pipelining: the device decodes step t + 1 while the host waits for step t's draw and takes its tokens; the
   * host's share of queueing step t + 1 overlaps step t). Rows whose request ended or was cancelled since the
   * step was queued are skipped.
   */
  private finishStep(decoder: BatchDecoder, batch: (RowState | null)[], draw: QueuedDraw): void {
    let drawn: Drawn;
    try {
      if (this.canRunAhead(decoder, batch)) {
        this.inFlight = scope(() => ({ batch, draw: queueSampleOnDevice(decoder.next(draw.ids), this.deviceRows(batch, 1), this.tokenizer.vocabSize) }));
      }
    } finally {
      // Read even when queueing the next step failed: every queued draw is read once (its staging slot).
      const { ids, logprobs } = draw.finish();
      drawn = { ids, logprobs, top: [] };
      // The next step's copy of the tokens is queued: the buffer is released in stream order.
      dispose(draw.ids);
    }
    const live = batch.map((row) => (row !== null && !row.done && this.open.has(row.index) ? row : null));
    live.forEach((row, r) => row && this.take(drawn, r, row, r));
    this.options.onStep?.({ rows: batch.length, liveRows: live.filter((row) => row !== null).length, entered: this.entered, cacheColumns: decoder.length });
  }

  /**
   * Whether the step after the one just drawn may be queued before its tokens are taken: its rows are this step's
   * (rows that end on this step's token decode a placeholder, ignored), so nothing may wait to enter, the cache
   * must have a column left, and the rows must not be so few that the batch would shrink first.
   */
  private canRunAhead(decoder: BatchDecoder, batch: readonly (RowState | null)[]): boolean {
    if (this.waiting.length > 0 || decoder.length >= decoder.capacity) return false;
    // Rows still decoding after this step's token (one ending on a stop token is found only when it is taken).
    const continuing = batch.filter((row) => row !== null && !row.done && row.tokenIds.length + 1 < row.settings.maxNewTokens).length;
    return continuing > 0 && (batch.length - continuing) * 4 < batch.length;
  }

  /** Whether the fused device sampler draws for these rows (it reports no top log-probabilities). */
  private samplesOnDevice(rows: readonly (RowState | null)[]): boolean {
    return this.model.device === 'cuda' && !rows.some((row) => row !== null && row.settings.topLogprobs > 0);
  }

  /** Device sampling settings of each row, for its token `ahead` after those it has taken; free or ended rows are greedy placeholders. */
  private deviceRows(rows: readonly (RowState | null)[], ahead: number): DeviceSamplingRow[] {
    return rows.map((row) => (row === null || row.done
      ? { temperature: 0, topK: 0, topP: 1, minP: 0, seed: 0, step: 0 }
      : { ...row.settings, step: row.tokenIds.length + ahead }));
  }

  /**
   * The decoder, made or grown for what waits: rows for every waiting request (up to maxBatchSize), columns
   * for the longest span. A request of n new tokens spans prompt + n - 1 columns (its last token is never fed
   * back); the spare quarter bounds how often compaction runs (header).
   */
  private fitDecoder(): BatchDecoder {
    const span = Math.max(...[...this.open.values()].map(({ row }) => row.promptIds.length + row.settings.maxNewTokens - 1));
    const capacity = span + Math.ceil(span / 4);
    const rows = Math.min(this.maxBatch, this.open.size);
    if (this.decoder === null) {
      this.decoder = new BatchDecoder(this.model, rows, capacity, {
        cudaGraphs: this.options.cudaGraphs, kvCache: this.options.kvCache, release: this.model.device === 'cpu' ? (array) => this.hostRecycler.release(array) : null,
      });
    } else if (rows > this.decoder.rows.length || capacity > this.decoder.capacity) {
      this.decoder.resize(Math.max(rows, this.decoder.rows.length), Math.max(capacity, this.decoder.capacity));
    }
    return this.decoder;
  }

  /**
   * Every live row's next token from one forward's logits [rows, V]: on CUDA with the fused kernel
   * (sampleOnDevice: 12 bytes per row come back, unless a row asks for its top log-probabilities), elsewhere row
   * by row with sampler.ts from batch-wide softmax kernels. Both draw a request's k-th token with the uniform
   * streamUniform(seed, k). Entries of free or finished rows are not read.
   */
  private draw(logits: Tensor, rows: readonly (RowState | null)[]): Drawn {
    const sampleVocab = this.tokenizer.vocabSize;
    const live = rows.map((row) => (row !== null && !row.done ? row : null));
    if (this.samplesOnDevice(live)) {
      const drawn = queueSampleOnDevice(logits, this.deviceRows(live, 0), sampleVocab).finish();
      return { ids: drawn.ids, logprobs: drawn.logprobs, top: [] };
    }
    const vocab = logits.shape[1];
    const host = logits.device === 'cpu' && logits.dtype === 'f32' ? cpuBackend() : null;
    if (host?.sample) return this.drawOnHost(host.sample, contiguous(logits), live);
    const inputs = samplingInputs(logits, rows);
    const ids = new Int32Array(rows.length);
    const logprobs = new Float64Array(rows.length);
    const top: TokenLogprob[][] = [];
    live.forEach((row, r) => {
      if (row === null) return;
      const at = r * vocab;
      ids[r] = row.settings.temperature === 0
        ? argmax(inputs.logits!.subarray(at, at + sampleVocab))
        : sampleFromWeights(inputs.weights!.subarray(at, at + sampleVocab), row.settings, streamUniform(row.settings.seed, row.tokenIds.length));
      logprobs[r] = inputs.logprobs[at + ids[r]];
      if (row.settings.topLogprobs > 0) top[r] = mostLikely(inputs.logprobs.subarray(at, at + sampleVocab), row.settings.topLogprobs);
    });
    return { ids, logprobs, top };
  }

  /**
   * draw() on a backend with a fused draw (the native core's r1_sample): every row in one call, the tokens
   * sampler.ts would draw; free and finished rows go as greedy placeholders, not read.
   */
  private drawOnHost(sample: NonNullable<Backend['sample']>, logits: Tensor, live: readonly (RowState | null)[]): Drawn {
    const [count, vocab] = logits.shape;
    const params = new Float64Array(5 * count);
    live.forEach((row, r) => {
      if (row === null) return;
      const { temperature, topP, minP, topK, seed } = row.settings;
      params.set([temperature, topP, minP, topK, temperature === 0 ? 0 : streamUniform(seed, row.tokenIds.length)], 5 * r);
    });
    const ids = new Int32Array(count);
    const logprobs = new Float32Array(count);
    sample(logits.floatData() as Float32Array, count, vocab, this.tokenizer.vocabSize, params, ids, logprobs);
    const top: TokenLogprob[][] = [];
    if (live.some((row) => row !== null && row.settings.topLogprobs > 0)) {
      const all = logSoftmax(logits).hostValues() as FloatArray;
      live.forEach((row, r) => {
        if (row !== null && row.settings.topLogprobs > 0) top[r] = mostLikely(all.subarray(r * vocab, r * vocab + this.tokenizer.vocabSize), row.settings.topLogprobs);
      });
    }
    return { ids, logprobs, top };
  }

  /** Records row r's drawn token; a finished request leaves the batch and is reported. */
  private take(drawn: Drawn, r: number, row: RowState, decoderRow: number): void {
    const { callbacks } = this.open.get(row.index)!;
    const id = drawn.ids[r];
    row.accept(id, drawn.logprobs[r], drawn.top[r] ?? null, callbacks.onToken);
    // onToken may have cancelled the request (a client gone): then nothing of it is left to keep.
    if (!this.open.has(row.index)) return;
    if (!row.done) {
      this.pending.set(row.index, id);
      return;
    }
    this.decoder!.leave(decoderRow);
    this.open.delete(row.index);
    this.pending.delete(row.index);
    callbacks.onDone?.(row.index, row.result());
  }
}

/** Each row's drawn token, its log-probability and (rows that asked) its top log-probabilities. */
interface Drawn { ids: ArrayLike<number>; logprobs: ArrayLike<number>; top: TokenLogprob[][] }

/** The k largest log-probabilities of a row, most likely first (ties: lower id first); one pass, k <= 20 or so. */
function mostLikely(logprobs: FloatArray, k: number): TokenLogprob[] {
  const top: TokenLogprob[] = [];
  for (let id = 0; id < logprobs.length; id++) {
    const logprob = logprobs[id];
    if (top.length === k && logprob <= top[k - 1].logprob) continue;
    let at = top.length;
    while (at > 0 && top[at - 1].logprob < logprob) at--;
    top.splice(at, 0, { id, logprob });
    if (top.length > k) top.pop();
  }
  return top;
}

/** Host arrays [rows, vocab] that sampling reads; logits only when a row is greedy, weights only when one samples. */
interface SamplingInputs { logits: FloatArray | null; logprobs: FloatArray; weights: FloatArray | null }

/**
 * What sampling reads for a whole batch, computed by tensor kernels rather than row by row in JavaScript:
 * the log-softmax at temperature 1 (the reported log-probabilities) and, when any row samples, the softmax of
 * logits / T with each row's own temperature (rows that are greedy or done use 1 and are not read). On the
 * CPU these are the kernels' own arrays; on a device, downloads.
 */
function samplingInputs(logits: Tensor, rows: readonly (RowState | null)[]): SamplingInputs {
  const logprobs = logSoftmax(logits).hostValues() as FloatArray;
  const live = rows.filter((row): row is RowState => row !== null && !row.done);
  const greedy = live.some((row) => row.settings.temperature === 0);
  const sampling = live.some((row) => row.settings.temperature > 0);
  const hostLogits = greedy ? logits.hostValues() as FloatArray : null;
  if (!sampling) return { logits: hostLogits, logprobs, weights: null };
  const inverseTemperature = Float32Array.from(rows, (row) => (row === null || row.done || row.settings.temperature === 0 ? 1 : 1 / row.settings.temperature));
  const weights = softmax(mul(logits, tensor(inverseTemperature, [rows.length, 1], 'f32', logits.device))).hostValues() as FloatArray;
  return { logits: hostLogits, logprobs, weights };
}

// ---------------------------------------------------------------------------------------------------------
// One request's progress: tokens, log-probabilities, incrementally decoded text and the stop rules.

interface RowSettings extends SamplingParams {
  maxNewTokens: number;
  stop: readonly string[];
  stopTokenIds: readonly number[];
  topLogprobs: number;
}

class RowState {
  readonly tokenIds: number[] = [];
  readonly logprobs: number[] = [];
  readonly topLogprobs: TokenLogprob[][] = [];
  done = false;
  private text = '';
  private emitted = 0;
  private finishReason: FinishReason = 'length';
  private stopString: string | null = null;
  private stopTokenId: number | null = null;
  private readonly stream: DecodeStream;
  /**
   * Tokens not yet decoded into text: a request with no stop strings and no onToken needs its text only at the
   * end, and decoding a whole completion at once costs one decoder call instead of one per token (measured on
   * 256 rows of random Qwen tokens: 0.2 instead of 0.35 ms a step of host time, beside GPU steps of 3-5 ms).
   */
  private undecoded: number[] = [];
  private readonly stopIds: ReadonlySet<number>;
  /** A stop string can only start in the last (longest stop - 1) characters of text that has no stop yet. */
  private readonly holdBack: number;

  constructor(readonly index: number, readonly promptIds: number[], readonly settings: RowSettings & { seed: number }, tokenizer: Tokenizer) {
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

  accept(id: number, logprob: number, top: TokenLogprob[] | null, onToken: GenerateOptions['onToken']): void {
    this.tokenIds.push(id);
    this.logprobs.push(logprob);
    if (top) this.topLogprobs.push(top);
    if (this.stopIds.has(id)) {
      this.finish('stop');
      this.stopTokenId = id;
    } else if (!onToken && this.settings.stop.length === 0) {
      this.undecoded.push(id);
      if (this.tokenIds.length >= this.settings.maxNewTokens) this.finish('length');
    } else {
      const searchFrom = Math.max(0, this.text.length - this.holdBack);
      this.text += this.stream.pushMany(this.undecoded) + this.stream.push(id);
      this.undecoded = [];
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
      onToken({ request: this.index, tokenId: id, logprob, topLogprobs: top, text: this.text.slice(this.emitted, safeEnd), done: this.done });
      this.emitted = safeEnd;
    }
  }

  private finish(reason: FinishReason): void {
    // A character cut off by the end of the sequence decodes as U+FFFD, as a full decode would.
    this.text += this.stream.pushMany(this.undecoded) + this.stream.end();
    this.undecoded = [];
    this.done = true;
    this.finishReason = reason;
  }

  result(): GenerationResult {
    return {
      promptTokens: this.promptIds.length,
      tokenIds: this.tokenIds,
      logprobs: this.logprobs,
      ...(this.settings.topLogprobs > 0 ? { topLogprobs: this.topLogprobs } : {}),
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
  const minP = pick('minP') ?? 0;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new UserError(`${where}: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new UserError(`${where}: temperature must be >= 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new UserError(`${where}: topP must be in (0, 1], got ${topP}`);
  if (!Number.isInteger(topK) || topK < 0) throw new UserError(`${where}: topK must be a non-negative integer, got ${topK}`);
  if (!(minP >= 0 && minP <= 1)) throw new UserError(`${where}: minP must be in [0, 1], got ${minP}`);
  const topLogprobs = pick('topLogprobs') ?? 0;
  if (!Number.isInteger(topLogprobs) || topLogprobs < 0) throw new UserError(`${where}: topLogprobs must be a non-negative integer, got ${topLogprobs}`);
  const seed = request.seed ?? (defaults.seed ?? 0) + index;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UserError(`${where}: seed must be a non-negative integer, got ${seed}`);
  return { maxNewTokens, temperature, topP, topK, minP, topLogprobs, stop: pick('stop') ?? [], stopTokenIds: pick('stopTokenIds') ?? fallbackStopIds, seed };
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
// The KV-cache side: rows entering and leaving, positions, compaction.

/**
 * Sequences decoded together against one KV cache of a fixed number of rows and columns. Row r holds, from
 * column kvStart[r] on, the sequence rows[r] (an id given to enter()); column c is its token at position
 * c - kvStart[r], and everything before kvStart[r] is masked. Every row's next token goes to the same column,
 * `length`. A free row (rows[r] = null) is fed a placeholder that only attends to itself.
 */
export class BatchDecoder {
  rows: (number | null)[];
  private cache: LayerKvCache[];
  private kvStart: Int32Array;
  /** Whether next() replays a recorded CUDA graph (deviceDecodeSupported), and the recording of this cache. */
  private readonly graphs: boolean;
  private graph: DecodeGraph | null = null;
  /** The cache's format: bf16 only when asked for and decode steps are graphs (the only steps that read it). */
  private readonly format: CacheFormat;

  /** Where a CPU cache's memory goes when it is let go (the engine's next step may reuse it), or null (the collector). */
  private readonly release: ((array: HostArray) => void) | null;

  constructor(private readonly model: CausalLM, rows: number, private columns: number,
    options: { cudaGraphs?: boolean; kvCache?: CacheFormat; release?: ((array: HostArray) => void) | null } = {}) {
    this.release = options.release ?? null;
    this.rows = new Array<number | null>(rows).fill(null);
    this.kvStart = new Int32Array(rows);
    this.graphs = (options.cudaGraphs ?? true) && deviceDecodeSupported(model);
    this.format = this.graphs ? options.kvCache ?? 'f32' : 'f32';
    this.cache = this.newCache(rows);
  }

  /** Columns of the cache: the most any row can span. */
  get capacity(): number {
    return this.columns;
  }

  /** Columns filled so far (the same for every row). */
  get length(): number {
    return this.cache[0].length;
  }

  /** Indices of the rows no sequence holds. */
  freeRows(): number[] {
    return this.rows.flatMap((id, r) => (id === null ? [r] : []));
  }

  /**
   * Prefills the prompts as one left-padded batch of their own and splices their keys and values into free
   * rows (the lowest first), each prompt ending at the last filled column (the cache widens on the left when a
   * prompt is longer than that). Returns logits [entrants, V] of each prompt's last token, in the given order.
   * Equal prompts (GRPO's G samples of one question enter together) are prefilled once: their keys, values and
   * logits are copied to every row that holds them.
   */
  enter(entrants: readonly { id: number; prompt: readonly number[] }[]): Tensor {
    const free = this.freeRows();
    if (entrants.length === 0 || entrants.length > free.length) throw new Error(`BatchDecoder.enter: ${entrants.length} sequences for ${free.length} free rows`);
    const width = Math.max(...entrants.map((e) => e.prompt.length));
    if (width >= this.capacity) throw new Error(`BatchDecoder.enter: a prompt of ${width} tokens leaves no column of the ${this.capacity} to decode into`);
    if (width > this.length) this.relayout(this.rows.map((_, r) => r), width);
    const distinct = new Map<string, number>();
    const prompts: (readonly number[])[] = [];
    const source = entrants.map(({ prompt }) => {
      const key = prompt.join(',');
      if (!distinct.has(key)) {
        distinct.set(key, prompts.length);
        prompts.push(prompt);
      }
      return distinct.get(key)!;
    });
    const B = prompts.length;
    const ids = new Int32Array(B * width);
    const positions = new Int32Array(B * width);
    const padStart = Int32Array.from(prompts, (prompt) => width - prompt.length);
    prompts.forEach((prompt, b) => {
      // Padding columns hold token 0 at position 0: finite inputs whose keys are masked everywhere.
      for (let c = padStart[b]; c < width; c++) {
        ids[b * width + c] = prompt[c - padStart[b]];
        positions[b * width + c] = c - padStart[b];
      }
    });
    const device = this.model.device;
    const prefillCache = this.model.newCache(B, width);
    try {
      const logits = this.forward(tensor(ids, [B, width], 'i32', device), tensor(positions, [B, width], 'i32', device), prefillCache, padStart);
      const end = this.length;
      // One copy per buffer for each run of entrants going to consecutive rows with prompts of one length, whose
      // prefill rows are one and the same (a group: broadcast) or consecutive. A bf16 cache takes the prefill's
      // keys and values rounded and packed first.
      scope(() => {
        const prefill = this.format === 'bf16' ? prefillCache.map((layer) => layer.buffers.map((buffer) => packBf16(buffer))) : prefillCache.map((layer) => layer.buffers);
        for (let e = 0; e < entrants.length;) {
          const step = e + 1 < entrants.length ? source[e + 1] - source[e] : 0;
          let j = e + 1;
          while (j < entrants.length && (step === 0 || step === 1) && source[j] - source[j - 1] === step && free[j] === free[j - 1] + 1 && entrants[j].prompt.length === entrants[e].prompt.length) j++;
          const length = entrants[e].prompt.length;
          const b = source[e];
          this.cache.forEach((layer, l) => layer.buffers.forEach((buffer, i) => {
            const from = slice(slice(prefill[l][i], 0, b, b + 1 + step * (j - e - 1)), 1, padStart[b], width);
            copyInto(from, slice(slice(buffer, 0, free[e], free[j - 1] + 1), 1, end - length, end));
          }));
          for (let k = e; k < j; k++) this.kvStart[free[k]] = end - length;
          e = j;
        }
      });
      entrants.forEach(({ id }, e) => (this.rows[free[e]] = id));
      return B === entrants.length ? logits : embedding(logits, tensor(source, [entrants.length], 'i32', device));
    } finally {
      for (const layer of prefillCache) layer.buffers.forEach((buffer) => dispose(buffer));
    }
  }

  /** Whether next() replays a recorded CUDA graph (and so takes its tokens from the device too). */
  get replaysGraphs(): boolean {
    return this.graphs;
  }

  /**
   * Feeds one token per row (free rows' are ignored); logits [rows, V] of each row's next position. With graphs
   * the tokens may be a device tensor of int32 [rows] (a draw not yet read: the engine's pipelining).
   */
  next(tokens: readonly number[] | Tensor): Tensor {
    const B = this.rows.length;
    const count = tokens instanceof Tensor ? tokens.size : tokens.length;
    if (count !== B) throw new Error(`BatchDecoder.next: ${count} tokens for ${B} rows`);
    if (tokens instanceof Tensor && !this.graphs) throw new Error('BatchDecoder.next: tokens on the device need CUDA graphs (deviceDecodeSupported)');
    if (this.rows.every((id) => id === null)) throw new Error('BatchDecoder.next: no row holds a sequence (enter() first)');
    if (this.length === this.capacity) {
      const first = this.firstLiveColumn();
      if (first === 0) throw new Error(`BatchDecoder.next: all ${this.capacity} columns are in use by a live row (capacity below its prompt + new tokens)`);
      this.relayout(this.rows.map((_, r) => r), this.length - first);
    }
    const column = this.length;
    const kvStart = Int32Array.from(this.rows, (id, r) => (id === null ? column : this.kvStart[r]));
    const positions = Int32Array.from(kvStart, (start) => column - start);
    if (this.graphs) return this.replay(tokens instanceof Tensor ? tokens : Int32Array.from(tokens), positions, kvStart, column);
    const device = this.model.device;
    return this.forward(tensor(tokens as readonly number[], [B, 1], 'i32', device), tensor(positions, [B, 1], 'i32', device), this.cache, kvStart);
  }

  /**
   * One decode step by replaying the recorded graph of this cache (recorded first if the cache or the row count
   * changed since): the step's inputs are written into the graph's input buffers, and the logits it leaves are
   * read before the next replay overwrites them.
   */
  private replay(tokens: Int32Array | Tensor, positions: Int32Array, kvStart: Int32Array, column: number): Tensor {
    if (this.graph === null) this.graph = recordDecodeStep(this.model, this.cache, this.rows.length);
    const { inputs, logits, graph } = this.graph;
    // One upload for the step's inputs (after the ids when those are copied on the device).
    const B = positions.length;
    const values = new Int32Array(5 * B);
    values.set(positions, B);
    values.set(kvStart, 2 * B);
    values.fill(column, 3 * B, 4 * B);
    values.fill(column + 1, 4 * B);
    if (tokens instanceof Tensor) {
      copyInto(reshape(tokens, [B]), slice(inputs, 0, 0, B));
      writeValues(slice(inputs, 0, B, 5 * B), values.subarray(B));
    } else {
      values.set(tokens);
      writeValues(inputs, values);
    }
    graph.launch();
    for (const layer of this.cache) layer.length = column + 1;
    return logits;
  }

  /** Frees row r (its sequence is done); a later enter() reuses it. */
  leave(r: number): void {
    if (this.rows[r] === null) throw new Error(`BatchDecoder.leave: row ${r} is already free`);
    this.rows[r] = null;
  }

  /** Drops the free rows: the cache is copied into one of fewer rows (and compacted on the way). */
  shrink(): void {
    const live = this.rows.flatMap((id, r) => (id === null ? [] : [r]));
    this.relayout(live, this.length - this.firstLiveColumn());
  }

  /** Grows the cache to `rows` rows (the new ones free, after the present ones) and `capacity` columns. */
  resize(rows: number, capacity: number): void {
    if (rows < this.rows.length || capacity < this.columns) throw new Error(`BatchDecoder.resize: ${rows} x ${capacity} is smaller than ${this.rows.length} x ${this.columns}`);
    this.relayout(this.rows.map((_, r) => r), this.length, rows - this.rows.length, capacity);
  }

  /**
   * Frees the KV cache's device memory (and the graph recorded over it) now, or hands its host memory on
   * (options.release); the decoder is not used afterwards.
   */
  dispose(): void {
    this.graph?.dispose();
    this.graph = null;
    for (const layer of this.cache) {
      layer.buffers.forEach((buffer) => {
        const array = buffer.storage;
        if (this.release && !(array instanceof DeviceArray) && array.length > 0 && isUninitializedHostArray(array)) this.release(moveHostArray(array));
        else dispose(buffer);
      });
    }
  }

  /** The host arrays holding the KV cache (none on a device). */
  cacheArrays(): HostArray[] {
    return this.cache.flatMap((layer) => layer.buffers.flatMap((buffer) => (buffer.storage instanceof DeviceArray ? [] : [buffer.storage])));
  }

  /** The smallest kvStart of a live row: the columns before it hold nothing any row reads. */
  private firstLiveColumn(): number {
    return Math.min(this.length, ...this.rows.flatMap((id, r) => (id === null ? [] : [this.kvStart[r]])));
  }

  /**
   * Moves the cache into a new one of `capacity` columns holding the rows `keep` (indices, in their new order)
   * and then `added` free rows, with `length` columns filled: column c becomes c + (length - this.length), so
   * the same shift compacts (negative) or widens (positive) every row, and kvStart moves with it. Free rows'
   * columns are not copied.
   */
  private relayout(keep: readonly number[], length: number, added = 0, capacity = this.columns): void {
    const shift = length - this.length;
    const live = keep.filter((r) => this.rows[r] !== null);
    if (live.length === 0 && keep.length === this.rows.length && added === 0 && capacity === this.columns) {
      // Nothing to move (the first prompts entering an empty cache): only the column counter changes.
      for (const layer of this.cache) layer.length = length;
      return;
    }
    const from = Math.min(this.length, ...live.map((r) => this.kvStart[r]));
    if (from + shift < 0 || length > capacity) throw new Error(`BatchDecoder.relayout: ${length} columns do not hold columns ${from}-${this.length} shifted by ${shift}`);
    this.columns = capacity;
    const cache = this.newCache(keep.length + added);
    scope(() => {
      // Runs of consecutive rows that stay consecutive move with one copy per buffer.
      for (let i = 0; i < keep.length;) {
        let j = i + 1;
        while (j < keep.length && keep[j] === keep[j - 1] + 1) j++;
        if (from < this.length) {
          this.cache.forEach((layer, l) => layer.buffers.forEach((buffer, b) => {
            copyInto(slice(slice(buffer, 0, keep[i], keep[j - 1] + 1), 1, from, this.length), slice(slice(cache[l].buffers[b], 0, i, j), 1, from + shift, length));
          }));
        }
        i = j;
      }
    });
    for (const layer of cache) layer.length = length;
    this.dispose();
    this.cache = cache;
    this.kvStart = Int32Array.from([...keep.map((r) => this.kvStart[r] + shift), ...new Array<number>(added).fill(0)]);
    this.rows = [...keep.map((r) => this.rows[r]), ...new Array<null>(added).fill(null)];
  }

  // The cache outlives the scopes of the steps that write it: kept, and freed by dispose() or relayout().
  private newCache(rows: number): LayerKvCache[] {
    const cache = this.model.newCache(rows, this.capacity, this.format);
    for (const layer of cache) layer.buffers.forEach((buffer) => keep(buffer));
    return cache;
  }

  private forward(ids: Tensor, positions: Tensor, cache: LayerKvCache[], kvStart: Int32Array): Tensor {
    const start = tensor(kvStart, [kvStart.length], 'i32', this.model.device);
    return contiguous(this.model.lastLogits(ids, { positions, cache, kvStart: start }));
  }
}

/**
 * Whether a model's decode steps can be recorded as a CUDA graph: on CUDA, a dense model with head size 64 or 128,
 * or a DeepSeek model whose MLA and MoE fit the device kernels (deepseekDecodesOnDevice).
 */
function deviceDecodeSupported(model: CausalLM): boolean {
  const c = model.config;
  if (model.device !== 'cuda') return false;
  if (c.family === 'deepseek') return deepseekDecodesOnDevice(c);
  return (c.headDim === 64 || c.headDim === 128) && c.numHeads / c.numKvHeads <= 32;
}

/** A recorded decode step: its inputs (written before each replay), its logits and the graph. */
interface DecodeGraph {
  /** int32 [5 rows]: each row's token, position, kvStart, column and attention end, in that order (one upload). */
  inputs: Tensor;
  logits: Tensor;
  graph: CudaGraph;
  dispose(): void;
}

/**
 * Records one decode step of `rows` rows over `cache` (which must outlive the recording): the forward reads its
 * tokens, positions and kvStart from buffers of its own and writes and attends at the columns in two more
 * (DeviceDecodeStep), so the recording is valid at every column.
 */
function recordDecodeStep(model: CausalLM, cache: LayerKvCache[], rows: number): DecodeGraph {
  const inputs = keep(empty([5 * rows], 'i32', 'cuda'));
  // Values written before recording: index checks read the host copies, and never wait on the device.
  writeValues(inputs, new Int32Array(5 * rows));
  const part = (i: number, shape: number[]) => reshape(slice(inputs, 0, i * rows, (i + 1) * rows), shape);
  const [ids, positions, kvStart] = [part(0, [rows, 1]), part(1, [rows, 1]), part(2, [rows])];
  const step = { column: part(3, [rows]), kvEnd: part(4, [rows]) };
  // A dense model's step in fused kernels (dense-decode.ts), over its projections concatenated as of now.
  const fused = model instanceof DenseModel ? denseDecodeWeights(model) : null;
  const { graph, result: logits } = captureGraph(() => (model instanceof DenseModel && fused
    ? denseDecodeLogits(model, fused, ids, positions, cache, kvStart, step)
    : contiguous(model.lastLogits(ids, { positions, cache, kvStart, step }))));
  return {
    inputs, logits, graph,
    dispose() {
      graph.dispose();
      dispose(inputs);
      if (fused) disposeDecodeWeights(fused);
    },
  };
}
