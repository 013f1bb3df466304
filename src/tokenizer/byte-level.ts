// Byte-level BPE's alphabet and pre-tokenizer, shared by the loader (streaming decode) and the trainer.
//
// GPT-2 (Radford et al. 2019, sec. 2.2) runs BPE over UTF-8 bytes, not characters, so every string is
// representable with a 256-symbol base vocabulary and no unknown token. To keep vocabulary files printable,
// each byte is written as one visible character: `bytes_to_unicode` in openai/gpt-2 encoder.py maps the 188
// printable Latin-1 bytes to themselves and the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) to U+0100
// onward in byte order. Hugging Face's ByteLevel pre-tokenizer and decoder use the same table, so a space
// is `Ġ` (U+0120) and a newline `Ċ` (U+010A) in every GPT-2, Llama-3, Qwen and DeepSeek vocabulary.

/** BYTE_TO_CHAR[b] is the visible character that stands for byte b in vocabulary strings. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** The inverse of BYTE_TO_CHAR, keyed by that one character. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((char, byte) => [char, byte]));

function buildByteToChar(): string[] {
  const isPrintable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(isPrintable(b) ? b : 256 + next++);
  return table;
}

/** The vocabulary string of a byte sequence ("hi there" -> "hiĠthere"). */
export function bytesToVocabString(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}

/**
 * The bytes a vocabulary string stands for, or null when some character is not in the byte alphabet (an
 * added token such as `<|im_end|>` is also valid byte-level text, but one like `<｜User｜>` is not).
 */
export function vocabStringToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    // Every character of the alphabet is one UTF-16 unit below U+0144; a surrogate or anything else is not.
    const code = token.charCodeAt(i);
    const b = code < CODE_TO_BYTE.length ? CODE_TO_BYTE[code] : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

/**
 * CHAR_TO_BYTE by character code (-1: not in the alphabet): an array read, since decoding a sampled token's
 * bytes is on the sampling engine's per-token path and a Map lookup of a one-character string costs ~1 us.
 */
const CODE_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(Math.max(...BYTE_TO_CHAR.map((c) => c.charCodeAt(0))) + 1).fill(-1);
  BYTE_TO_CHAR.forEach((char, byte) => (table[char.charCodeAt(0)] = byte));
  return table;
})();

/**
 * The pre-tokenizer regex of Qwen2/Qwen2.5/Qwen3 (and, with `\p{N}{1,3}`, Llama-3). It splits text into
 * words before BPE, so merges never cross a word boundary: English contractions, a letter run with at most one
 * leading non-letter (" the", "_id"), single digits (so numbers tokenize digit by digit, which helps
 * arithmetic), punctuation runs with their trailing newlines, newline runs, and other whitespace runs where the
 * last space is left to prefix the next word. Written in Oniguruma syntax as in tokenizer.json; JS gets it
 * through @huggingface/tokenizers' translator so that training and encoding split identically.
 */
export const QWEN2_PRETOKENIZE_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The regex split as Qwen's tokenizer.json writes it: matches become pre-tokens, nothing is dropped. */
export const QWEN2_SPLIT_COMPONENT = {
  type: 'Split',
  pattern: { Regex: QWEN2_PRETOKENIZE_REGEX },
  behavior: 'Isolated',
  invert: false,
} as const;

/** The ByteLevel component as Qwen's tokenizer.json writes it (the regex split happens in the Split before it). */
export const BYTE_LEVEL_COMPONENT = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false } as const;

/** tokenizer.json's `pre_tokenizer` for a byte-level BPE with the Qwen2 regex. */
export function qwen2PreTokenizerJson(): object {
  return {
    type: 'Sequence',
    pretokenizers: [structuredClone(QWEN2_SPLIT_COMPONENT), { ...BYTE_LEVEL_COMPONENT }],
  };
}
