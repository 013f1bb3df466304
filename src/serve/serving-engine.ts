// The sampling engine driven by the event loop, for servers: one decode step at a time, each in its own turn
// of the loop (setImmediate), so HTTP requests are read, answered and streamed between steps. A request joins
// the continuous batch on the step after it arrives; a client that leaves is cancelled, freeing its row before
// the next step. Requests beyond the batch wait in a bounded queue; a full queue refuses new ones at once.
//
// Why steps on the main thread rather than the model in a worker: a step of a small model on the CPU takes a
// few milliseconds to tens of them, which is the latency a request waits at most to be read; a worker would
// need the model, its device memory and the tokenizer in another isolate, and every token to cross threads.
import type { GenerationRequest, GenerationResult, GenerateOptions, TokenEvent } from '../generate/engine.ts';
import { DEFAULT_MAX_BATCH_SIZE, SamplingEngine } from '../generate/engine.ts';
import { UserError } from '../util/errors.ts';
import type { CausalLM } from '../models/pretrained.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';

export interface ServingCallbacks {
  onToken?: (request: number, event: TokenEvent) => void;
  onDone?: (request: number, result: GenerationResult) => void;
  /** The engine failed while this request was open; it will not be called again. */
  onError?: (error: Error) => void;
}

export interface ServingOptions extends Pick<GenerateOptions, 'maxBatchSize' | 'onStep'> {
  /** Requests (rows) allowed to wait beyond a full batch; more are refused (default 256). */
  maxWaiting?: number;
}

export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

export interface ServingStats {
  /** Requests (rows) submitted and finished so far; cancelled ones are counted apart. */
  submitted: number;
  finished: number;
  cancelled: number;
  completionTokens: number;
  steps: number;
}

export class ServingEngine {
  private engine: SamplingEngine;
  private readonly open = new Map<number, ServingCallbacks>();
  private scheduled = false;
  readonly stats: ServingStats = { submitted: 0, finished: 0, cancelled: 0, completionTokens: 0, steps: 0 };
  readonly maxWaiting: number;
  readonly maxBatchSize: number;

  constructor(readonly model: CausalLM, readonly tokenizer: Tokenizer, private readonly options: ServingOptions = {}) {
    this.maxWaiting = options.maxWaiting ?? 256;
    this.maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    this.engine = this.newEngine();
  }

  get waiting(): number {
    return this.engine.waitingCount;
  }

  get running(): number {
    return this.engine.liveCount;
  }

  get batchRows(): number {
    return this.engine.batchRows;
  }

  /**
   * Queues requests (all or none) and returns their ids; throws QueueFullError when they would not fit the
   * waiting queue, and the engine's UserError for a request it cannot run.
   */
  submit(requests: readonly GenerationRequest[], callbacks: ServingCallbacks): number[] {
    const room = this.maxBatchSize + this.maxWaiting;
    if (requests.length > room) throw new UserError(`${requests.length} sequences at once is more than this server holds (${this.maxBatchSize} in the batch + ${this.maxWaiting} waiting)`);
    if (this.open.size + requests.length > room) {
      throw new QueueFullError(`the server is busy: ${this.engine.liveCount} requests in the batch and ${this.engine.waitingCount} waiting (at most ${this.maxWaiting} beyond the batch of ${this.maxBatchSize}); retry later`);
    }
    // A request with nothing to generate finishes inside submit(); its onDone waits until the caller has the ids.
    const finishedEarly = new Set<number>();
    let submitting = true;
    const ids = this.engine.submit(requests, {
      onToken: callbacks.onToken && ((event) => callbacks.onToken!(event.request, event)),
      onDone: (id, result) => {
        this.open.delete(id);
        this.stats.finished++;
        this.stats.completionTokens += result.tokenIds.length;
        if (!submitting) {
          callbacks.onDone?.(id, result);
          return;
        }
        finishedEarly.add(id);
        queueMicrotask(() => callbacks.onDone?.(id, result));
      },
    });
    submitting = false;
    this.stats.submitted += ids.length;
    for (const id of ids) if (!finishedEarly.has(id)) this.open.set(id, callbacks);
    this.schedule();
    return ids;
  }

  /** Drops requests that are still open (a client that left): their rows are free for the next step. */
  cancel(ids: readonly number[]): void {
    for (const id of ids) {
      if (!this.open.delete(id)) continue;
      this.engine.cancel(id);
      this.stats.cancelled++;
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.runStep());
  }

  private runStep(): void {
    this.scheduled = false;
    let busy: boolean;
    try {
      busy = this.engine.step();
      this.stats.steps++;
    } catch (error) {
      // The batch's state is unknown after a failed step: every open request fails, and a fresh engine serves
      // the next ones.
      const failed = [...this.open.values()];
      this.open.clear();
      this.engine.dispose();
      this.engine = this.newEngine();
      for (const callbacks of new Set(failed)) callbacks.onError?.(error as Error);
      return;
    }
    if (busy) this.schedule();
  }

  private newEngine(): SamplingEngine {
    return new SamplingEngine(this.model, this.tokenizer, { maxBatchSize: this.options.maxBatchSize, onStep: this.options.onStep });
  }
}
