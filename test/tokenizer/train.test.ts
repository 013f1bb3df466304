import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BYTE_TO_CHAR, QWEN2_SPLIT_COMPONENT } from '../../src/tokenizer/byte-level.ts';
import { readCorpus } from '../../src/tokenizer/corpus.ts';
import { HfSplitPreTokenizer, HfTokenizer } from '../../src/tokenizer/hf-tokenizers.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe, trainBpe, type TrainProgress } from '../../src/tokenizer/train.ts';
import { UserError } from '../../src/util/errors.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
/** 256 bytes + the 7 tokens every trained tokenizer adds (3 special, 4 reasoning tags). */
const BASE = 263;

test('merges on a hand corpus: "aaab" x2, "ab", "ba" (worked by hand)', () => {
  // Pair counts over the words {aaab: 2, ab: 1, ba: 1}: (a,a) 2x2 = 4 (overlapping occurrences count),
  // (a,b) 2+1 = 3, (b,a) 1.   Merge 1: a+a -> aa; aaab becomes [aa, a, b].
  // Now (aa,a) 2, (a,b) 2+1 = 3, (b,a) 1.   Merge 2: a+b -> ab; words [aa, ab], [ab], [b, a].
  // Now (aa,ab) 2, (b,a) 1.   Merge 3: aa+ab -> aaab.   Merge 4 (only with minFrequency 1): b+a.
  const texts = ['aaab', 'aaab', 'ab', 'ba'];
  const all = trainBpe(texts, { vocabSize: BASE + 10, minFrequency: 1 });
  assert.deepEqual(all.merges, [['a', 'a'], ['a', 'b'], ['aa', 'ab'], ['b', 'a']]);
  assert.equal(all.vocabSize, BASE + 4, 'stops when no pair is left');
  const frequent = trainBpe(texts, { vocabSize: BASE + 10, minFrequency: 2 });
  assert.deepEqual(frequent.merges, [['a', 'a'], ['a', 'b'], ['aa', 'ab']]);
  const capped = trainBpe(texts, { vocabSize: BASE + 2, minFrequency: 1 });
  assert.deepEqual(capped.merges, [['a', 'a'], ['a', 'b']], 'stops when the vocabulary is full');
  const vocab = (all.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
  assert.equal(vocab.a, 97, 'byte tokens have id = byte value');
  assert.deepEqual([vocab.aa, vocab.ab, vocab.aaab, vocab.ba], [256, 257, 258, 259]);
});

test('merges across words with spaces: "the the the" (worked by hand, Ġ is the space byte)', () => {
  // Words: "the" 1, " the" 2. Counts: (t,h) 3, (h,e) 3, (Ġ,t) 2. Tie at 3: smaller left id wins, h (104)
  // before t (116), so h+e first; then (t,he) 3 -> the; then (Ġ,the) 2 -> Ġthe.
  const trained = trainBpe(['the the the'], { vocabSize: BASE + 10 });
  assert.deepEqual(trained.merges, [['h', 'e'], ['t', 'he'], ['Ġ', 'the']]);
});

test('ties break by ids, not by input order; overlapping pairs merge left to right', () => {
  for (const texts of [['ab', 'cd'], ['cd', 'ab']]) {
    assert.deepEqual(trainBpe(texts, { vocabSize: BASE + 10, minFrequency: 1 }).merges, [['a', 'b'], ['c', 'd']]);
  }
  // "aaaa": (a,a) occurs 3 times; merging left to right gives [aa, aa], then (aa,aa) once.
  assert.deepEqual(trainBpe(['aaaa'], { vocabSize: BASE + 10, minFrequency: 1 }).merges, [['a', 'a'], ['aa', 'aa']]);
});

test('special tokens in the corpus are cut out before counting', () => {
  const trained = trainBpe(['<|im_start|>'.repeat(50), 'x<think>y'.repeat(3)], { vocabSize: BASE + 10, minFrequency: 1 });
  // What is left between the tags: "x", "yx", "yx", "y": the only pair is (y,x), twice.
  assert.deepEqual(trained.merges, [['y', 'x']]);
});

/** Plain BPE training that recounts every pair before every merge: the definition the fast trainer must match. */
function naiveMerges(texts: string[], vocabSize: number, minFrequency: number): Array<[string, string]> {
  const splitter = new HfSplitPreTokenizer(structuredClone(QWEN2_SPLIT_COMPONENT));
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of splitter.pre_tokenize_text(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({ ids: Array.from(new TextEncoder().encode(w)), f }));
  const strings = [...BYTE_TO_CHAR];
  const merges: Array<[string, string]> = [];
  while (strings.length < vocabSize - 7) {
    const pairs = new Map<string, { left: number; right: number; count: number }>();
    for (const { ids, f } of words) {
      for (let i = 0; i + 1 < ids.length; i++) {
        const k = `${ids[i]},${ids[i + 1]}`;
        const p = pairs.get(k) ?? { left: ids[i], right: ids[i + 1], count: 0 };
        p.count += f;
        pairs.set(k, p);
      }
    }
    const best = [...pairs.values()].sort((a, b) => b.count - a.count || a.left - b.left || a.right - b.right)[0];
    if (best === undefined || best.count < minFrequency) break;
    const merged = strings[best.left] + strings[best.right];
    let id = strings.indexOf(merged);
    if (id === -1) id = strings.push(merged) - 1;
    merges.push([strings[best.left], strings[best.right]]);
    for (const word of words) {
      const out: number[] = [];
      for (let i = 0; i < word.ids.length; i++) {
        if (word.ids[i] === best.left && word.ids[i + 1] === best.right) out.push(id), i++;
        else out.push(word.ids[i]);
      }
      word.ids = out;
    }
  }
  return merges;
}

/** Seeded text from a small alphabet: many ties, repeated letters, spaces, newlines and some multi-byte chars. */
function syntheticCorpus(seed: number, words: number): string[] {
  let state = seed >>> 0;
  const next = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const alphabet = ['a', 'b', 'c', 'a', 'a', 'é', '的', 'b', ' ', '\n'];
  const texts: string[] = [];
  let text = '';
  for (let i = 0; i < words; i++) {
    const length = 1 + Math.floor(next() * 6);
    for (let k = 0; k < length; k++) text += alphabet[Math.floor(next() * alphabet.length)];
    text += next() < 0.1 ? '.\n' : ' ';
    if (next() < 0.05) texts.push(text), (text = '');
  }
  texts.push(text);
  return texts;
}

test('incremental pair counting learns exactly the merges of recounting from scratch', () => {
  for (const [seed, minFrequency] of [[1, 1], [2, 2], [3, 1]]) {
    const texts = syntheticCorpus(seed, 1500);
    const fast = trainBpe(texts, { vocabSize: BASE + 300, minFrequency }).merges;
    assert.ok(fast.length > 100, `enough merges to mean something (${fast.length})`);
    assert.deepEqual(fast, naiveMerges(texts, BASE + 300, minFrequency), `seed ${seed}`);
  }
});

test('the committed fixture is what trainBpe makes from small-corpus.txt (deterministic; its HF Rust check stays valid)', () => {
  // Made by: r1 tokenizer train --corpus test/tokenizer/fixtures/small-corpus.txt --vocab-size 400 --out test/tokenizer/fixtures/trained-small
  const trained = trainBpe(readCorpus(join(FIXTURES, 'small-corpus.txt')), { vocabSize: 400 });
  const onDisk = (name: string) => JSON.parse(readFileSync(join(FIXTURES, 'trained-small', name), 'utf8'));
  assert.deepEqual(trained.tokenizerJson, onDisk('tokenizer.json'));
  assert.deepEqual(trained.tokenizerConfig, onDisk('tokenizer_config.json'));
});

/** BPE encoding by the book: split, bytes, then apply the lowest-ranked merge present until none is. */
function referenceEncode(text: string, merges: Array<[string, string]>, vocab: Record<string, number>): number[] {
  const rank = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  const splitter = new HfSplitPreTokenizer(structuredClone(QWEN2_SPLIT_COMPONENT));
  const ids: number[] = [];
  for (const word of splitter.pre_tokenize_text(text)) {
    let symbols = Array.from(new TextEncoder().encode(word), (b) => BYTE_TO_CHAR[b]);
    for (;;) {
      let best = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = rank.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && (best === -1 || r < rank.get(`${symbols[best]} ${symbols[best + 1]}`)!)) best = i;
      }
      if (best === -1) break;
      symbols = [...symbols.slice(0, best), symbols[best] + symbols[best + 1], ...symbols.slice(best + 2)];
    }
    ids.push(...symbols.map((s) => vocab[s]));
  }
  return ids;
}

test('a saved tokenizer loads in @huggingface/tokenizers and in our class, both encoding as BPE by the book', async () => {
  const texts = syntheticCorpus(7, 3000);
  const trained = trainBpe(texts, { vocabSize: 600, specialTokens: ['<|tool|>'] });
  const dir = mkdtempSync(join(tmpdir(), 'r1-train-'));
  try {
    await saveTrainedBpe(dir, trained);
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    const library = new HfTokenizer(json, config);
    const ours = Tokenizer.fromFile(dir);
    assert.equal(ours.vocabSize, 600);
    const probes = [...texts.slice(0, 20), 'abc aab\nbca ébé 的的的', 'unseen: xyz QRS 😀 ∑', '  \n\n  a'];
    for (const text of probes) {
      const expected = referenceEncode(text, trained.merges, json.model.vocab);
      assert.deepEqual(library.encode(text, { add_special_tokens: true }).ids, expected, JSON.stringify(text));
      assert.deepEqual(ours.encode(text), expected, JSON.stringify(text));
      assert.equal(ours.decode(expected), text);
    }
    const tool = ours.tokenToId('<|tool|>')!;
    assert.equal(tool, 599, 'extra special tokens come last');
    assert.ok(ours.isSpecial(tool));
    assert.deepEqual(ours.encode('a<|tool|>b'), [97, tool, 98]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a 1 MB corpus trains to 4096 tokens in seconds (incremental counts, not a recount per merge)', () => {
  const texts = syntheticWords(1 << 20);
  const progress: TrainProgress[] = [];
  const started = performance.now();
  const trained = trainBpe(texts, { vocabSize: 4096, onProgress: (p) => progress.push(p) });
  const seconds = (performance.now() - started) / 1000;
  assert.equal(trained.vocabSize, 4096);
  // About 1 s on the 2-core dev machine; a recount per merge would take minutes.
  assert.ok(seconds < 15, `took ${seconds.toFixed(1)} s`);
  const merges = progress.filter((p) => p.phase === 'merge');
  assert.equal(merges.length, trained.merges.length);
  assert.deepEqual(merges.at(-1), { phase: 'merge', merges: 4096 - BASE, maxMerges: 4096 - BASE });
});

/** About `bytes` of text made of Zipf-distributed pseudo-words of 1-4 syllables. */
function syntheticWords(bytes: number): string[] {
  let state = 12345;
  const next = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const syllables = ['ka', 'to', 'ri', 'sen', 'mo', 'la', 'qu', 'ex', 'ion', 'th', 'er', 'an', 'st', 'ou', 'ze', 'pi'];
  const lexicon = Array.from({ length: 20000 }, () => {
    let w = '';
    const n = 1 + Math.floor(next() * 4);
    for (let i = 0; i < n; i++) w += syllables[Math.floor(next() * syllables.length)];
    return w;
  });
  const texts: string[] = [];
  let line = '';
  let total = 0;
  while (total < bytes) {
    const word = lexicon[Math.floor(lexicon.length * next() ** 3)]; // skewed toward the first words
    line += (line.length === 0 ? '' : ' ') + word;
    if (line.length > 80) {
      texts.push(`${line}.\n`);
      total += line.length + 2;
      line = '';
    }
  }
  return texts;
}

test('bad options are UserErrors that say what is allowed', () => {
  assert.throws(() => trainBpe(['a'], { vocabSize: 100 }), (e: Error) => e instanceof UserError && /from 263 \(256 bytes \+ 7 special tokens\)/.test(e.message));
  assert.throws(() => trainBpe(['a'], { vocabSize: 300.5 }), UserError);
  assert.throws(() => trainBpe(['a'], { vocabSize: 300, specialTokens: ['<|im_end|>'] }), (e: Error) => e instanceof UserError && /"<\|im_end\|>" is listed twice/.test(e.message));
  assert.throws(() => trainBpe(['a'], { vocabSize: 300, specialTokens: [''] }), UserError);
});
