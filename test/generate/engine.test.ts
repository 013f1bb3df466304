// The sampling engine against full forwards of the same model: the KV cache, left padding, rows entering and
// leaving mid-flight and the cache's compaction must not change any logit, a request's completion must not
// depend on its batch or when it entered, seeds fix samples, stop rules cut where they say, and the returned
// log-probabilities are the model's own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchDecoder, generate, SamplingEngine, type GenerationRequest, type GenerationResult, type StepEvent, type TokenEvent } from '../../src/generate/engine.ts';
import { DeepSeekModel, deepseekConfig } from '../../src/models/deepseek.ts';
import type { DenseModel } from '../../src/models/dense.ts';
import type { CausalLM } from '../../src/models/pretrained.ts';
import { cudaAvailable } from '../../src/tensor/backends/cuda.ts';
import { cudaMemoryStats, logSoftmax, noGrad, tensor, withBackend, type Tensor } from '../../src/tensor/index.ts';
import { UserError } from '../../src/util/errors.ts';
import { tinyModel, tinyTokenizer } from './fixtures.ts';

// Cached decoding, padding and a full forward compute the same float32 sums in different orders and over
// different GEMM shapes; with logits of magnitude ~5 the differences stay near 1e-5. 1e-4 leaves room while
// still catching any wrong position, mask or cache row (those move logits by O(1)).
const LOGIT_TOL = 1e-4;

/** Logits [T, V] of a full forward over one unpadded sequence. */
function fullLogits(model: DenseModel, ids: readonly number[]): Float32Array[] {
  const V = model.config.vocabSize;
  const out = noGrad(() => model.forward(tensor(ids, [1, ids.length], 'i32'))).toArray() as Float32Array;
  return ids.map((_, t) => out.subarray(t * V, (t + 1) * V));
}

function fullLogprobs(model: DenseModel, ids: readonly number[]): Float32Array[] {
  const V = model.config.vocabSize;
  const out = noGrad(() => logSoftmax(model.forward(tensor(ids, [1, ids.length], 'i32')))).toArray() as Float32Array;
  return ids.map((_, t) => out.subarray(t * V, (t + 1) * V));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const model = tinyModel(1);
const tokenizer = tinyTokenizer();
const V = model.config.vocabSize;
const promptOf = (length: number, salt: number) => Array.from({ length }, (_, i) => (i * 37 + salt * 101 + 5) % 290);

describe('BatchDecoder', () => {
  it('gives the logits of a full forward at every step, through rows entering and leaving, widening, compaction and shrinking', () => {
    const prompts = [promptOf(3, 1), promptOf(5, 2), promptOf(9, 3), promptOf(1, 4), promptOf(4, 5)];
    const sequences = prompts.map((p) => [...p]);
    /** Row i of logits against a full forward over sequence ids[i]. */
    const check = (logits: Tensor, ids: readonly (number | null)[], what: string) => {
      const values = logits.toArray() as Float32Array;
      ids.forEach((id, i) => {
        if (id === null) return;
        const diff = maxAbsDiff(values.subarray(i * V, (i + 1) * V), fullLogits(model, sequences[id]).at(-1)!);
        assert.ok(diff < LOGIT_TOL, `${what}, sequence ${id}: max |diff| ${diff}`);
      });
    };
    const enter = (decoder: BatchDecoder, ids: number[], what: string) => check(decoder.enter(ids.map((id) => ({ id, prompt: prompts[id] }))), ids, what);
    noGrad(() => {
      const decoder = new BatchDecoder(model, 3, 14);
      enter(decoder, [0, 1], 'prefill');
      const lengths: number[] = [];
      for (let step = 0; step < 13; step++) {
        // Sequence 2 is longer than the 6 columns filled at step 1, so the cache widens on the left.
        if (step === 1) enter(decoder, [2], 'widening');
        if (step === 3) {
          decoder.leave(decoder.rows.indexOf(0));
          enter(decoder, [3], 'entering a freed row');
        }
        // At step 6 the 14 columns are full: the next forward compacts the cache first.
        if (step === 6) {
          decoder.leave(decoder.rows.indexOf(2));
          enter(decoder, [4], 'entering a full cache');
        }
        if (step === 8) {
          decoder.leave(decoder.rows.indexOf(1));
          decoder.shrink();
          assert.deepEqual(decoder.rows, [3, 4]);
        }
        const tokens = decoder.rows.map((id) => (id === null ? 0 : (id * 13 + step * 7 + 1) % V));
        decoder.rows.forEach((id, r) => id !== null && sequences[id].push(tokens[r]));
        check(decoder.next(tokens), decoder.rows, `step ${step}`);
        lengths.push(decoder.length);
      }
      assert.deepEqual(lengths, [6, 10, 11, 12, 13, 14, 12, 13, 7, 8, 9, 10, 11], 'widened at step 1, compacted at steps 6 and 8');
      decoder.dispose();
    });
  });

  it('says so when a row needs more columns than the cache has', () => noGrad(() => {
    const decoder = new BatchDecoder(model, 1, 4);
    decoder.enter([{ id: 0, prompt: promptOf(3, 1) }]);
    decoder.next([1]);
    assert.throws(() => decoder.next([2]), /all 4 columns are in use by a live row/);
    assert.throws(() => decoder.enter([{ id: 1, prompt: promptOf(2, 1) }]), /1 sequences for 0 free rows/);
  }));
});

describe('generate', () => {
  const prompts = [promptOf(4, 1), promptOf(11, 2), promptOf(1, 3), promptOf(7, 4), promptOf(2, 5), promptOf(9, 6)];

  it('gives a prompt the same greedy completion alone as in a batch with longer and shorter prompts', () => {
    const base = { temperature: 0, maxNewTokens: 12, stopTokenIds: [] };
    const alone = prompts.map((prompt) => generate(model, tokenizer, [{ prompt }], base)[0]);
    const batched = generate(model, tokenizer, prompts.map((prompt) => ({ prompt })), base);
    const smallBatches = generate(model, tokenizer, prompts.map((prompt) => ({ prompt })), { ...base, maxBatchSize: 4 });
    prompts.forEach((_, i) => {
      assert.deepEqual(batched[i].tokenIds, alone[i].tokenIds, `prompt ${i}`);
      assert.deepEqual(smallBatches[i].tokenIds, alone[i].tokenIds, `prompt ${i}`);
      assert.ok(maxAbsDiff(batched[i].logprobs, alone[i].logprobs) < LOGIT_TOL);
      assert.equal(batched[i].promptTokens, prompts[i].length);
    });
  });

  it('returns the log-probabilities a full forward gives the sampled tokens', () => {
    // Sampling settings that change the distribution drawn from; the reported log-probabilities must not see them.
    const results = generate(model, tokenizer, prompts.map((prompt, i) => ({ prompt, seed: i })), {
      temperature: 0.7, topK: 20, topP: 0.9, maxNewTokens: 10, stopTokenIds: [],
    });
    results.forEach((result, i) => {
      const sequence = [...prompts[i], ...result.tokenIds];
      const logprobs = fullLogprobs(model, sequence.slice(0, -1));
      result.tokenIds.forEach((id, j) => {
        const expected = logprobs[prompts[i].length - 1 + j][id];
        assert.ok(Math.abs(result.logprobs[j] - expected) < LOGIT_TOL, `prompt ${i}, token ${j}: ${result.logprobs[j]} vs ${expected}`);
      });
    });
  });

  it('is fixed by a seed, whatever the batch; different seeds differ', () => {
    const request: GenerationRequest = { prompt: prompts[0], seed: 42, maxNewTokens: 16, stopTokenIds: [] };
    const alone = generate(model, tokenizer, [request])[0];
    const again = generate(model, tokenizer, [request])[0];
    const inBatch = generate(model, tokenizer, [{ prompt: prompts[1], seed: 1 }, { prompt: prompts[2] }, request], { stopTokenIds: [] })[2];
    assert.deepEqual(again.tokenIds, alone.tokenIds);
    assert.deepEqual(inBatch.tokenIds, alone.tokenIds);
    const other = generate(model, tokenizer, [{ ...request, seed: 43 }])[0];
    assert.notDeepEqual(other.tokenIds, alone.tokenIds);
    // Requests without a seed take the base seed plus their index: the same prompt twice gives two samples.
    const [first, second] = generate(model, tokenizer, [{ prompt: prompts[0] }, { prompt: prompts[0] }], { maxNewTokens: 16, stopTokenIds: [], seed: 7 });
    assert.notDeepEqual(first.tokenIds, second.tokenIds);
  });

  it('cuts the text before a stop string and reports it', () => {
    const free = generate(model, tokenizer, [{ prompt: 'the cat', temperature: 0, maxNewTokens: 24, stopTokenIds: [] }])[0];
    assert.equal(free.finishReason, 'length');
    assert.equal(free.tokenIds.length, 24);
    assert.equal(free.text, tokenizer.decode(free.tokenIds));
    // A stop string taken from the middle of the free completion, of whole characters (a U+FFFD that stands for
    // bytes still to come is not final text, so it cannot complete a stop string at its own token).
    const start = 3 + free.text.slice(3).search(/[ -~]{3}/);
    assert.ok(start >= 3, `no three printable characters after the third in ${JSON.stringify(free.text)}`);
    const stop = free.text.slice(start, start + 3);
    const at = free.text.indexOf(stop);
    const stopped = generate(model, tokenizer, [{ prompt: 'the cat', temperature: 0, maxNewTokens: 24, stopTokenIds: [], stop: ['NEVER THERE', stop] }])[0];
    assert.equal(stopped.finishReason, 'stop');
    assert.equal(stopped.stopString, stop);
    assert.equal(stopped.stopTokenId, null);
    assert.equal(stopped.text, free.text.slice(0, at));
    // Generation ends at the token that completed the stop string.
    const tokens = stopped.tokenIds.length;
    assert.deepEqual(stopped.tokenIds, free.tokenIds.slice(0, tokens));
    assert.ok(tokenizer.decode(free.tokenIds.slice(0, tokens)).includes(stop));
    assert.ok(!tokenizer.decode(free.tokenIds.slice(0, tokens - 1)).includes(stop));
  });

  it('ends at a stop token, keeping it in tokenIds but not in the text', () => {
    const free = generate(model, tokenizer, [{ prompt: prompts[3], temperature: 0, maxNewTokens: 10, stopTokenIds: [] }])[0];
    const stopId = free.tokenIds[4];
    const first = free.tokenIds.indexOf(stopId);
    const stopped = generate(model, tokenizer, [{ prompt: prompts[3], temperature: 0, maxNewTokens: 10, stopTokenIds: [stopId] }])[0];
    assert.equal(stopped.finishReason, 'stop');
    assert.equal(stopped.stopTokenId, stopId);
    assert.deepEqual(stopped.tokenIds, free.tokenIds.slice(0, first + 1));
    assert.equal(stopped.logprobs.length, first + 1);
    assert.equal(stopped.text, tokenizer.decode(free.tokenIds.slice(0, first)));
  });

  it('stops at the tokenizer\'s EOS by default', () => {
    // With EOS's logit raised far above the rest (its output-embedding row scaled), the first token is EOS.
    const eosModel = tinyModel(1);
    const eos = tokenizer.eosTokenId!;
    const row = eosModel.lmHead.floats().subarray(eos * 32, (eos + 1) * 32);
    const hidden = noGrad(() => eosModel.hidden(tensor(prompts[0], [1, prompts[0].length], 'i32'))).toArray();
    const last = hidden.subarray(hidden.length - 32);
    row.forEach((_, i) => (row[i] = 50 * Math.sign(last[i])));
    const result = generate(eosModel, tokenizer, [{ prompt: prompts[0], temperature: 0 }])[0];
    assert.deepEqual(result.tokenIds, [eos]);
    assert.equal(result.finishReason, 'stop');
    assert.equal(result.stopTokenId, eos);
    assert.equal(result.text, '');
  });

  it('streams text whose pieces add up to the result, holding back a possible stop string', () => {
    const events: TokenEvent[] = [];
    const requests: GenerationRequest[] = [
      { prompt: 'the cat', seed: 3, stop: ['the'] },
      { prompt: 'a dog ran', seed: 4 },
    ];
    const results = generate(model, tokenizer, requests, { maxNewTokens: 20, stopTokenIds: [], onToken: (e) => events.push(e) });
    results.forEach((result, i) => {
      const mine = events.filter((e) => e.request === i);
      assert.equal(mine.map((e) => e.text).join(''), result.text);
      assert.deepEqual(mine.map((e) => e.tokenId), result.tokenIds);
      assert.deepEqual(mine.map((e) => e.done), result.tokenIds.map((_, j) => j === result.tokenIds.length - 1));
    });
  });

  it('stops at the model\'s last position and at maxNewTokens', () => {
    const long = promptOf(125, 9);
    const [atLimit, zero] = generate(model, tokenizer, [{ prompt: long }, { prompt: prompts[0], maxNewTokens: 0 }], { maxNewTokens: 10, stopTokenIds: [] });
    // 128 positions: 125 prompt tokens, then tokens fed at 125 and 126, and one more sampled from 127's logits.
    assert.equal(atLimit.tokenIds.length, 4);
    assert.equal(atLimit.finishReason, 'length');
    assert.deepEqual(zero.tokenIds, []);
    assert.equal(zero.finishReason, 'length');
  });

  it('rejects prompts it cannot run, naming the request and token', () => {
    assert.throws(() => generate(model, tokenizer, [{ prompt: [1, 2] }, { prompt: [3, V] }]), (e: Error) => e instanceof UserError && /request 1: prompt token 1 is 304/.test(e.message));
    assert.throws(() => generate(model, tokenizer, [{ prompt: [] }]), /request 0: the prompt has no tokens/);
    assert.throws(() => generate(model, tokenizer, [{ prompt: promptOf(129, 1) }]), /129 tokens, more than the model's maxPositionEmbeddings \(128\)/);
    assert.throws(() => generate(model, tokenizer, [{ prompt: [1], topP: 0 }]), /request 0: topP must be in \(0, 1\]/);
  });
});

describe('continuous batching', () => {
  const deepseek = new DeepSeekModel(deepseekConfig(V, {
    hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 2, qLoraRank: 16, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4,
    vHeadDim: 8, numRoutedExperts: 4, numExpertsPerToken: 2, moeIntermediateSize: 16, maxPositionEmbeddings: 64,
  }), 3);

  /** Ten requests of mixed prompt lengths, sampling settings and stop rules, each with its own seed. */
  function mixedRequests(m: CausalLM): GenerationRequest[] {
    const lengths = [4, 11, 1, 7, 2, 9, 5, 12, 3, 6];
    const free = lengths.map((length, i): GenerationRequest => ({
      prompt: promptOf(length, i + 1), seed: 100 + i, maxNewTokens: 4 + ((i * 5) % 13), temperature: [1, 0, 0.7][i % 3], topK: i % 4 === 0 ? 20 : 0, stopTokenIds: [],
    }));
    // Stop rules placed where the free completions make them fire: a token id for some, a string for others.
    const completions = generate(m, tokenizer, free, { maxBatchSize: 10 });
    return free.map((request, i) => {
      const { tokenIds, text } = completions[i];
      if (i % 3 === 0 && tokenIds.length > 3) return { ...request, stopTokenIds: [tokenIds[2]] };
      if (i % 3 === 1 && text.length > 5) return { ...request, stop: [text.slice(2, 4)] };
      return request;
    });
  }

  // The reference backend's arithmetic for a row depends neither on the other rows nor on the columns the row
  // occupies (attention's key blocks start at each row's own kvStart), so there a request's results are exactly
  // those it gets alone. The native GEMM streams matrix-vector shapes (one row: a request decoding alone, or
  // the last one left) through a dedicated loop that sums in another order than its packed kernel, so there
  // log-probabilities agree to float32 rounding (measured <= 4e-6) and the tokens exactly.
  for (const backend of ['reference', 'native'] as const) {
    for (const [family, m] of [['dense', model], ['deepseek', deepseek]] as const) {
      it(`gives a request the same tokens and log-probabilities whatever its neighbours, order, maxBatchSize or entry step (${family}, ${backend})`, () => withBackend(backend, () => {
        const requests = mixedRequests(m);
        const wide = generate(m, tokenizer, requests, { maxBatchSize: 10 });
        const narrow = generate(m, tokenizer, requests, { maxBatchSize: 3 });
        const reversed = generate(m, tokenizer, [...requests].reverse(), { maxBatchSize: 3 }).reverse();
        const alone = requests.map((request) => generate(m, tokenizer, [request])[0]);
        for (const [name, other] of [['maxBatchSize 3', narrow], ['reversed', reversed], ['alone', alone]] as const) {
          if (backend === 'reference') {
            assert.deepEqual(other, wide, name);
            continue;
          }
          other.forEach((result, i) => {
            assert.deepEqual({ ...result, logprobs: [] }, { ...wide[i], logprobs: [] }, `${name}, request ${i}`);
            assert.ok(maxAbsDiff(result.logprobs, wide[i].logprobs) < 1e-5, `${name}, request ${i}: ${maxAbsDiff(result.logprobs, wide[i].logprobs)}`);
          });
        }
        const ends = new Set(wide.map((r) => (r.stopTokenId !== null ? 'token' : r.stopString !== null ? 'string' : r.finishReason)));
        assert.deepEqual([...ends].sort(), ['length', 'string', 'token'], 'the requests end in every way');
      }));
    }
  }

  it('prefills each distinct prompt of a batch once (GRPO\'s groups), and every sample gets what it gets alone', () => withBackend('reference', () => {
    // Groups of 4 samples of one prompt, and single prompts of a group's length (consecutive rows, one copy).
    const groups = [promptOf(6, 1), promptOf(3, 2), promptOf(6, 3)];
    const requests: GenerationRequest[] = [...groups.flatMap((prompt, g) => Array.from({ length: 4 }, (_, i) => ({ prompt, seed: 10 * g + i }))),
      { prompt: promptOf(6, 4), seed: 50 }, { prompt: promptOf(6, 5), seed: 51 }];
    const prefillRows: number[] = [];
    const counting = Object.create(model) as DenseModel;
    counting.lastLogits = (ids, options) => {
      if (ids.shape[1] > 1) prefillRows.push(ids.shape[0]);
      return model.lastLogits(ids, options);
    };
    const options = { maxNewTokens: 5, temperature: 1, stopTokenIds: [] };
    const together = generate(counting, tokenizer, requests, { ...options, maxBatchSize: 16 });
    assert.deepEqual(prefillRows, [5], 'one prefill row per distinct prompt');
    requests.forEach((request, i) => assert.deepEqual(together[i], generate(model, tokenizer, [request], options)[0], `request ${i}`));
    // The samples of a group differ (their own seeds), though they share the prefill.
    assert.notDeepEqual(together[0].tokenIds, together[1].tokenIds);
    // A bf16 KV cache is for CUDA graph steps only: on the CPU the cache stays float32 and nothing changes.
    assert.deepEqual(generate(model, tokenizer, requests, { ...options, maxBatchSize: 16, kvCache: 'bf16' }), together);
  }));

  it('lets a queued request enter as soon as a row is free, keeping the batch full until the queue is empty', () => {
    const events: TokenEvent[] = [];
    const steps: StepEvent[] = [];
    const requests = [3, 12, 4, 2].map((maxNewTokens, i) => ({ prompt: promptOf(5, i + 1), maxNewTokens, seed: i }));
    generate(model, tokenizer, requests, { maxBatchSize: 2, stopTokenIds: [], onToken: (e) => events.push(e), onStep: (e) => steps.push(e) });
    const first = (request: number) => events.findIndex((e) => e.request === request);
    const done = (request: number) => events.findIndex((e) => e.request === request && e.done);
    // Request 2 takes request 0's row right after it finishes, and request 3 takes request 2's, while request 1
    // (from the first batch) is still decoding.
    assert.ok(done(0) < first(2) && first(2) < done(1), `request 2 enters at event ${first(2)}, request 0 is done at ${done(0)}, request 1 at ${done(1)}`);
    assert.ok(done(2) < first(3) && first(3) < done(1));
    // Request 1 decodes 11 steps after its prefill; the other three need 2 + 3 + 1 steps, all beside it, so both
    // rows are busy until the queue is empty, and then the batch shrinks to request 1's row.
    assert.deepEqual(steps.map((s) => [s.rows, s.liveRows]), [[2, 2], [2, 2], [2, 2], [2, 2], [2, 2], [2, 2], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]]);
    assert.deepEqual(steps.map((s) => s.entered), [2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4]);
  });

  it('keeps the cache bounded over a long queue, compacting it as rows come and go', () => {
    const steps: StepEvent[] = [];
    const requests = Array.from({ length: 40 }, (_, i) => ({ prompt: promptOf(1 + ((i * 7) % 10), i), maxNewTokens: 3 + (i % 8), seed: i }));
    const results = generate(model, tokenizer, requests, { maxBatchSize: 2, stopTokenIds: [], onStep: (s) => steps.push(s) });
    results.forEach((r, i) => assert.equal(r.tokenIds.length, requests[i].maxNewTokens));
    // The longest request spans 10 + 10 - 1 columns; the cache has a quarter more, however long the queue.
    assert.ok(steps.length > 100, `${steps.length} steps`);
    assert.ok(Math.max(...steps.map((s) => s.cacheColumns)) <= 24, `${Math.max(...steps.map((s) => s.cacheColumns))} columns`);
  });
});

describe('SamplingEngine', () => {
  it('gives requests submitted between steps the results they get alone, growing the batch in rows and columns', () => withBackend('reference', () => {
    const requests: GenerationRequest[] = [
      { prompt: promptOf(3, 1), maxNewTokens: 9, seed: 1 },
      { prompt: promptOf(12, 2), maxNewTokens: 14, seed: 2, temperature: 0 },
      { prompt: promptOf(2, 3), maxNewTokens: 30, seed: 3 },
      { prompt: promptOf(6, 4), maxNewTokens: 5, seed: 4, temperature: 0.7, topK: 10 },
      { prompt: promptOf(1, 5), maxNewTokens: 12, seed: 5 },
    ];
    const alone = requests.map((request) => generate(model, tokenizer, [request], { stopTokenIds: [] })[0]);
    const steps: StepEvent[] = [];
    const engine = new SamplingEngine(model, tokenizer, { stopTokenIds: [], maxBatchSize: 4, onStep: (e) => steps.push(e) });
    const results = new Map<number, GenerationResult>();
    const onDone = (id: number, result: GenerationResult) => results.set(id, result);
    // Request k arrives before step 3k: the first alone in a one-row batch of few columns, the later ones
    // needing more rows (up to 4, then a queue) and, for requests 1 and 2, more columns.
    let submitted = 0;
    for (let step = 0; submitted < requests.length || engine.liveCount + engine.waitingCount > 0; step++) {
      if (submitted < requests.length && step === 3 * submitted) assert.deepEqual(engine.submit([requests[submitted]], { onDone }), [submitted++]);
      engine.step();
    }
    requests.forEach((_, i) => assert.deepEqual(results.get(i), alone[i], `request ${i}`));
    assert.deepEqual([...new Set(steps.map((s) => s.rows))].slice(0, 4), [1, 2, 3, 4], 'the batch grew a row per arrival');
    assert.equal(engine.batchRows, 0, 'idle: the cache is freed');
  }));

  it('frees a cancelled request\'s row at once and never reports it', () => {
    const steps: StepEvent[] = [];
    const engine = new SamplingEngine(model, tokenizer, { stopTokenIds: [], maxBatchSize: 4, onStep: (e) => steps.push(e) });
    const done: number[] = [];
    const tokens: number[] = [];
    const [a, b] = engine.submit([{ prompt: promptOf(4, 1), maxNewTokens: 40 }, { prompt: promptOf(4, 2), maxNewTokens: 40 }], {
      onDone: (id) => done.push(id), onToken: (e) => tokens.push(e.request),
    });
    const [queued] = engine.submit([{ prompt: promptOf(4, 3), maxNewTokens: 40 }], { onDone: (id) => done.push(id) });
    engine.cancel(queued);
    engine.step();
    engine.step();
    assert.deepEqual([engine.liveCount, engine.waitingCount], [2, 0]);
    engine.cancel(a);
    engine.step();
    assert.deepEqual(steps.at(-1)!.liveRows, 1, 'the next step decodes only request b');
    // Its first token came from the prefill, then one per decode step.
    const tokensOfA = tokens.filter((id) => id === a).length;
    assert.equal(tokensOfA, 3);
    while (engine.step());
    assert.deepEqual(done, [b]);
    assert.equal(tokens.filter((id) => id === a).length, tokensOfA);
    assert.equal(engine.batchRows, 0);
  });

  it('reports the most likely tokens with the log-probabilities a full forward gives them', () => {
    const prompt = promptOf(5, 7);
    const [result] = generate(model, tokenizer, [{ prompt, maxNewTokens: 6, topLogprobs: 5, seed: 3 }], { stopTokenIds: [] });
    const logprobs = fullLogprobs(model, [...prompt, ...result.tokenIds].slice(0, -1));
    assert.equal(result.topLogprobs!.length, 6);
    result.topLogprobs!.forEach((top, j) => {
      const row = logprobs[prompt.length - 1 + j];
      const expected = [...row.subarray(0, tokenizer.vocabSize)].map((logprob, id) => ({ id, logprob })).sort((x, y) => y.logprob - x.logprob || x.id - y.id).slice(0, 5);
      assert.deepEqual(top.map((t) => t.id), expected.map((t) => t.id), `position ${j}`);
      top.forEach((t, k) => assert.ok(Math.abs(t.logprob - expected[k].logprob) < LOGIT_TOL));
    });
    assert.equal(generate(model, tokenizer, [{ prompt, maxNewTokens: 2 }])[0].topLogprobs, undefined);
  });
});

const cuda = cudaAvailable();
describe('the sampling engine on CUDA', { skip: cuda.ok ? false : cuda.reason }, () => {
  it('matches the CPU and leaves no device memory behind but the model\'s', () => {
    const requests = Array.from({ length: 10 }, (_, i) => ({ prompt: promptOf(1 + ((i * 5) % 12), i), maxNewTokens: 4 + ((i * 3) % 9), seed: i, temperature: 0 }));
    const onCuda = tinyModel(1).to('cuda');
    generate(onCuda, tokenizer, requests, { maxBatchSize: 3, stopTokenIds: [] }); // warm-up: allocations that persist (cuBLAS)
    const before = cudaMemoryStats().inUse;
    const results = generate(onCuda, tokenizer, requests, { maxBatchSize: 3, stopTokenIds: [] });
    assert.equal(cudaMemoryStats().inUse, before);
    const cpu = generate(model, tokenizer, requests, { maxBatchSize: 3, stopTokenIds: [] });
    results.forEach((r, i) => {
      assert.deepEqual(r.tokenIds, cpu[i].tokenIds, `request ${i}`);
      assert.ok(maxAbsDiff(r.logprobs, cpu[i].logprobs) < LOGIT_TOL, `request ${i}`);
    });
  });
});

