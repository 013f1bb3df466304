// Byte-level BPE training (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
// Units", Algorithm 1, over bytes as in GPT-2 sec. 2.2), writing the same tokenizer.json that Hugging Face's
// trainer writes for Qwen2, so the result loads in `tokenizers` (Rust and JS) and `transformers`.
//
// 1. Split each text with the Qwen2 regex into words and count distinct words (special tokens are cut out
//    first: they are matched whole at encode time, so merges inside them would be wasted).
// 2. Every word starts as its UTF-8 bytes; ids 0..255 are the bytes themselves.
// 3. Repeatedly merge the most frequent adjacent pair into a new token. Pair counts are kept incrementally:
//    a merge only touches the words that contain the pair (an index from pair to words), and only pairs
//    that involve the new token can gain counts, so a max-heap with lazy deletion finds the next best pair
//    (an entry whose count is stale is re-queued with its current count when popped).
//
// Tie-breaking, so that a corpus always gives the same merges: among pairs with the same count, the one
// with the smaller left id wins, then the smaller right id. Byte tokens have id = byte value and merged
// tokens take ids in the order they are made, so ties go to pairs of bytes in byte order, then to older
// tokens. Stopping: when the vocabulary is full, no pair is left, or the best count is below minFrequency.
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.ts';
import { UserError } from '../util/errors.ts';
import { BYTE_LEVEL_COMPONENT, BYTE_TO_CHAR, QWEN2_SPLIT_COMPONENT, qwen2PreTokenizerJson } from './byte-level.ts';
import { HfSplitPreTokenizer } from './hf-tokenizers.ts';
import { CHAT_SPECIAL_TOKENS, CHATML_TEMPLATE, END_OF_TEXT, IM_END, REASONING_TAG_TOKENS } from './chat.ts';

export interface TrainBpeOptions {
  /** Size of the whole vocabulary: 256 bytes + merges + added tokens. */
  vocabSize: number;
  /** Special tokens beyond the chat ones every tokenizer here has (CHAT_SPECIAL_TOKENS). */
  specialTokens?: readonly string[];
  /** A pair seen fewer times than this is not merged (default 2: a merge for a single occurrence only memorizes). */
  minFrequency?: number;
  onProgress?: (progress: TrainProgress) => void;
}

export type TrainProgress = { phase: 'count'; texts: number; words: number } | { phase: 'merge'; merges: number; maxMerges: number };

export interface TrainedBpe {
  /** Hugging Face tokenizer.json content. */
  tokenizerJson: Record<string, unknown>;
  /** Hugging Face tokenizer_config.json content (bos/eos/pad, chat_template). */
  tokenizerConfig: Record<string, unknown>;
  /** The merges in rank order, as vocabulary strings. */
  merges: Array<[string, string]>;
  /** Bytes + learned tokens + added tokens (below the requested size when the corpus runs out of pairs). */
  vocabSize: number;
  /** Special and reasoning-tag tokens, at the end of the id range. */
  addedTokens: number;
}

/** Ids are packed into one number per pair; 2^21 ids leave the key below 2^42, exact in a double. */
const MAX_IDS = 1 << 21;
const pairKey = (left: number, right: number) => left * MAX_IDS + right;

/** One heap entry: a pair and the count it had when queued. */
interface Candidate {
  count: number;
  left: number;
  right: number;
}

/** True when a should be merged before b (see the tie-breaking rule at the top of the file). */
function before(a: Candidate, b: Candidate): boolean {
  if (a.count !== b.count) return a.count > b.count;
  if (a.left !== b.left) return a.left < b.left;
  return a.right < b.right;
}

class CandidateHeap {
  private items: Candidate[] = [];

  push(c: Candidate): void {
    const items = this.items;
    items.push(c);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): Candidate | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && before(items[l], items[best])) best = l;
        if (r < items.length && before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}

/** Learns a byte-level BPE vocabulary from `texts`; see the file comment for the algorithm and tie-breaking. */
export function trainBpe(texts: Iterable<string>, options: TrainBpeOptions): TrainedBpe {
  const extraSpecials = options.specialTokens ?? [];
  const addedTokens = [
    ...CHAT_SPECIAL_TOKENS.map((content) => ({ content, special: true })),
    ...REASONING_TAG_TOKENS.map((content) => ({ content, special: false })),
    ...extraSpecials.map((content) => ({ content, special: true })),
  ];
  const seen = new Set<string>();
  for (const { content } of addedTokens) {
    if (content.length === 0) throw new UserError('special tokens: an empty string cannot be a token');
    if (seen.has(content)) throw new UserError(`special tokens: ${JSON.stringify(content)} is listed twice (the defaults are ${[...CHAT_SPECIAL_TOKENS, ...REASONING_TAG_TOKENS].join(' ')})`);
    seen.add(content);
  }
  const minVocab = 256 + addedTokens.length;
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < minVocab || options.vocabSize > MAX_IDS) {
    throw new UserError(`vocab size must be an integer from ${minVocab} (256 bytes + ${addedTokens.length} special tokens) to ${MAX_IDS}, got ${options.vocabSize}`);
  }
  const minFrequency = Math.max(1, options.minFrequency ?? 2);
  const bpeVocabTarget = options.vocabSize - addedTokens.length;

  // 1. Count words.
  const splitter = new HfSplitPreTokenizer(structuredClone(QWEN2_SPLIT_COMPONENT));
  const addedPattern = new RegExp(addedTokens.map((t) => t.content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu');
  const wordCounts = new Map<string, number>();
  let textCount = 0;
  for (const text of texts) {
    for (const piece of text.split(addedPattern)) {
      if (piece.length === 0) continue;
      for (const word of splitter.pre_tokenize_text(piece)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
    }
    if (++textCount % 1000 === 0) options.onProgress?.({ phase: 'count', texts: textCount, words: wordCounts.size });
  }
  options.onProgress?.({ phase: 'count', texts: textCount, words: wordCounts.size });

  // 2. Words as byte ids; the vocabulary starts as the 256 bytes.
  const encoder = new TextEncoder();
  const words: number[][] = [];
  const frequencies: number[] = [];
  for (const [word, count] of wordCounts) {
    words.push(Array.from(encoder.encode(word)));
    frequencies.push(count);
  }
  wordCounts.clear();
  const tokenStrings: string[] = [...BYTE_TO_CHAR];
  const tokenIds = new Map<string, number>(tokenStrings.map((s, id) => [s, id]));

  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  for (let w = 0; w < words.length; w++) {
    const word = words[w];
    for (let i = 0; i + 1 < word.length; i++) {
      const key = pairKey(word[i], word[i + 1]);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + frequencies[w]);
      let set = pairWords.get(key);
      if (set === undefined) pairWords.set(key, (set = new Set()));
      set.add(w);
    }
  }
  const heap = new CandidateHeap();
  for (const [key, count] of pairCounts) heap.push({ count, left: Math.floor(key / MAX_IDS), right: key % MAX_IDS });

  // 3. Merge.
  const merges: Array<[string, string]> = [];
  const maxMerges = bpeVocabTarget - 256;
  while (tokenStrings.length < bpeVocabTarget) {
    const top = heap.pop();
    if (top === undefined) break;
    const key = pairKey(top.left, top.right);
    const count = pairCounts.get(key) ?? 0;
    if (count !== top.count) {
      if (count > 0) heap.push({ ...top, count });
      continue;
    }
    if (count < minFrequency) break;
    const merged = tokenStrings[top.left] + tokenStrings[top.right];
    // Two merges can spell the same string ("a"+"bc", "ab"+"c"); like HF's trainer, they share one id.
    let newId = tokenIds.get(merged);
    if (newId === undefined) {
      newId = tokenStrings.length;
      tokenStrings.push(merged);
      tokenIds.set(merged, newId);
    }
    merges.push([tokenStrings[top.left], tokenStrings[top.right]]);
    const touched = new Set<number>();
    for (const w of pairWords.get(key) ?? []) {
      const word = words[w];
      const next = mergeWord(word, top.left, top.right, newId);
      if (next.length === word.length) continue; // this word lost the pair in an earlier merge
      const f = frequencies[w];
      // Remove the word's old pairs and add its new ones: pairs away from the merge cancel out.
      for (let i = 0; i + 1 < word.length; i++) {
        const k = pairKey(word[i], word[i + 1]);
        pairCounts.set(k, pairCounts.get(k)! - f);
      }
      for (let i = 0; i + 1 < next.length; i++) {
        const k = pairKey(next[i], next[i + 1]);
        pairCounts.set(k, (pairCounts.get(k) ?? 0) + f);
        if (next[i] === newId || next[i + 1] === newId) {
          touched.add(k);
          let set = pairWords.get(k);
          if (set === undefined) pairWords.set(k, (set = new Set()));
          set.add(w);
        }
      }
      words[w] = next;
    }
    pairCounts.delete(key);
    pairWords.delete(key);
    for (const k of touched) {
      const c = pairCounts.get(k)!;
      if (c > 0) heap.push({ count: c, left: Math.floor(k / MAX_IDS), right: k % MAX_IDS });
    }
    options.onProgress?.({ phase: 'merge', merges: merges.length, maxMerges });
  }

  return buildFiles(tokenStrings, merges, addedTokens);
}

/** `word` with every non-overlapping occurrence of (left, right), scanned left to right, replaced by `id`. */
function mergeWord(word: number[], left: number, right: number, id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < word.length; i++) {
    if (word[i] === left && i + 1 < word.length && word[i + 1] === right) {
      out.push(id);
      i++;
    } else out.push(word[i]);
  }
  return out;
}

function buildFiles(tokenStrings: string[], merges: Array<[string, string]>, addedTokens: Array<{ content: string; special: boolean }>): TrainedBpe {
  const vocab: Record<string, number> = {};
  tokenStrings.forEach((s, id) => (vocab[s] = id));
  const added = addedTokens.map((t, i) => ({
    id: tokenStrings.length + i,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  }));
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    // No normalizer: byte-level BPE is lossless, and decode(encode(s)) === s is what reward checks rely on
    // (Qwen adds NFC, which would rewrite decomposed accents).
    normalizer: null,
    pre_tokenizer: qwen2PreTokenizerJson(),
    post_processor: { ...BYTE_LEVEL_COMPONENT },
    decoder: { ...BYTE_LEVEL_COMPONENT },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // "a b" strings, the form every tokenizers release reads (pairs need >= 0.20); byte-level tokens
      // never contain a space, so the split is unambiguous.
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), rest])),
    additional_special_tokens: added.filter((t) => t.special && t.content !== END_OF_TEXT).map((t) => t.content),
    bos_token: null,
    eos_token: IM_END,
    pad_token: END_OF_TEXT,
    unk_token: null,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    errors: 'replace',
    split_special_tokens: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizerJson, tokenizerConfig, merges, vocabSize: tokenStrings.length + added.length, addedTokens: added.length };
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (each atomically). */
export async function saveTrainedBpe(dir: string, trained: TrainedBpe): Promise<void> {
  await writeJsonAtomic(join(dir, 'tokenizer.json'), trained.tokenizerJson);
  await writeJsonAtomic(join(dir, 'tokenizer_config.json'), trained.tokenizerConfig);
}
