// The sampling engine against full forwards of the same model: the KV cache, left padding and dropping of
// finished rows must not change any logit, a prompt's completion must not depend on its batch, seeds fix
// samples, stop rules cut where they say, and the returned log-probabilities are the model's own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchDecoder, generate, type GenerationRequest, type TokenEvent } from '../../src/generate/engine.ts';
import type { DenseModel } from '../../src/models/dense.ts';
import { logSoftmax, noGrad, tensor, type Tensor } from '../../src/tensor/index.ts';
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
    // A stop string taken from the middle of the free completion.
    const stop = free.text.slice(6, 9);
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
