// A byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (+ tokenizer_config.json beside it):
// the kind GPT-2, Llama-3, Qwen2/2.5/3 and DeepSeek-V3/R1 ship. Encoding and decoding go through
// @huggingface/tokenizers (pure JS, checked against HF's Rust tokenizers on real Qwen3 and DeepSeek-V3
// files); this class validates the file at the boundary, resolves the special tokens the config names,
// decodes incrementally for sampling, and renders chat templates.
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../util/errors.ts';
import { vocabStringToBytes } from './byte-level.ts';
import { HfTokenizer } from './hf-tokenizers.ts';
import { renderChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat.ts';
import { readJsonFile } from '../io/json-file.ts';

export interface EncodeOptions {
  /** Add what the post-processor adds (Llama-3's BOS; nothing for Qwen). Default true, as in HF. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (those added with special: true, and the config's additional_special_tokens). */
  skipSpecialTokens?: boolean;
}

/** Where a tokenizer came from, for error messages. */
export interface Sources {
  tokenizerFile: string;
  configFile: string | null;
}

/** tokenizer.json and tokenizer_config.json ({} when there is none), parsed: what a checkpoint or a model folder stores. */
export interface TokenizerFiles {
  json: Record<string, unknown>;
  config: Record<string, unknown>;
}

export class Tokenizer {
  /** Number of ids: one past the largest id of the vocabulary and the added tokens (HF's len(tokenizer)). */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** The config's chat_template (Jinja), or null when it has none. */
  readonly chatTemplate: string | null;
  readonly sources: Sources;
  /**
   * The files as read (or given to fromJson): what a trainer writes into its checkpoints and its final model
   * folder, so that they do not depend on the files still being there (a checkpoint loaded from gets pruned).
   */
  readonly files: TokenizerFiles;

  private readonly hf: HfTokenizer;
  private readonly config: Record<string, unknown>;
  private readonly specialIds: ReadonlySet<number>;
  /** Added tokens decode to their content verbatim (as the JS ByteLevel decoder does), not through the byte map. */
  private readonly addedTokenIds: ReadonlySet<number>;
  private readonly tokenBytesCache = new Map<number, Uint8Array>();

  private constructor(hf: HfTokenizer, tokenizerJson: Record<string, unknown>, config: Record<string, unknown>, sources: Sources, files: TokenizerFiles) {
    this.hf = hf;
    this.config = config;
    this.sources = sources;
    this.files = files;
    let maxId = hf.model.vocab.length - 1;
    const added = tokenizerJson.added_tokens as Array<{ id: number; content: string; special?: boolean }>;
    for (const t of added) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;
    this.addedTokenIds = new Set(added.map((t) => t.id));
    const special = new Set(added.filter((t) => t.special).map((t) => t.id));
    for (const content of (config.additional_special_tokens as unknown[] | undefined) ?? []) {
      const id = typeof content === 'string' ? hf.token_to_id(content) : undefined;
      if (id !== undefined) special.add(id);
    }
    this.specialIds = special;
    this.bosTokenId = this.configTokenId('bos_token');
    this.eosTokenId = this.configTokenId('eos_token');
    this.padTokenId = this.configTokenId('pad_token');
    this.chatTemplate = pickChatTemplate(config.chat_template, sources.configFile ?? sources.tokenizerFile);
  }

  /**
   * Loads `path`: a tokenizer.json, or a folder holding one. A tokenizer_config.json beside it, when present,
   * supplies bos/eos/pad tokens and the chat template.
   */
  static fromFile(path: string): Tokenizer {
    if (!existsSync(path)) throw new UserError(`${path}: no such file or folder`);
    const tokenizerFile = statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
    if (!existsSync(tokenizerFile)) throw new UserError(`${path}: folder has no tokenizer.json`);
    const configPath = join(dirname(tokenizerFile), 'tokenizer_config.json');
    const configFile = existsSync(configPath) ? configPath : null;
    const config = configFile === null ? {} : readJsonFile(configFile);
    return Tokenizer.fromJson(readJsonFile(tokenizerFile), config, { tokenizerFile, configFile });
  }

  /** Builds a tokenizer from parsed tokenizer.json (and tokenizer_config.json) objects. */
  static fromJson(tokenizerJson: unknown, config: unknown = {}, sources: Sources = { tokenizerFile: 'tokenizer.json', configFile: null }): Tokenizer {
    const json = checkByteLevelBpe(tokenizerJson, sources.tokenizerFile);
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new UserError(`${sources.configFile ?? 'tokenizer_config.json'}: expected a JSON object`);
    }
    // The JS library cleans up spaces before punctuation unless told otherwise; HF configs of byte-level
    // models (Qwen, DeepSeek) set it false, and without it decode(encode(s)) would not return s.
    const hfConfig = { clean_up_tokenization_spaces: false, ...config };
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(json, hfConfig);
    } catch (err) {
      throw new UserError(`${sources.tokenizerFile}: cannot build the tokenizer: ${(err as Error).message}`);
    }
    return new Tokenizer(hf, json, hfConfig as Record<string, unknown>, sources, { json: tokenizerJson as Record<string, unknown>, config: config as Record<string, unknown> });
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** The vocabulary strings of the tokens of `text` (byte-level: a space shows as `Ġ`). */
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).tokens;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) this.checkId(id);
    return this.hf.decode(ids as number[], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** An incremental decoder for sampling: feed ids one at a time, get text that never splits a character. */
  decodeStream(options: DecodeOptions = {}): DecodeStream {
    return new DecodeStream(this, options.skipSpecialTokens ?? false);
  }

  /** Renders a conversation with the config's chat template (see chat.ts for the variables it sees). */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const where = options.template !== undefined ? 'the chat template given' : this.sources.configFile ?? this.sources.tokenizerFile;
    const template = options.template ?? this.chatTemplate;
    if (template === null) throw new UserError(`${where}: no chat_template in tokenizer_config.json`);
    const tokenString = (key: string) => configTokenContent(this.config[key]) ?? undefined;
    return renderChatTemplate(template, messages, options, {
      bos_token: tokenString('bos_token'),
      eos_token: tokenString('eos_token'),
      pad_token: tokenString('pad_token'),
      unk_token: tokenString('unk_token'),
    }, where);
  }

  /** The chat rendered and encoded without post-processor additions (as HF's apply_chat_template(tokenize=True)). */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /** The UTF-8 bytes token `id` stands for, as the decoder produces them (used by DecodeStream). */
  tokenBytes(id: number): Uint8Array {
    this.checkId(id);
    let bytes = this.tokenBytesCache.get(id);
    if (bytes === undefined) {
      const token = this.hf.id_to_token(id)!;
      // Rust's ByteLevel decoder falls back to the token's own UTF-8 when a character is outside the byte map.
      bytes = (this.addedTokenIds.has(id) ? null : vocabStringToBytes(token)) ?? new TextEncoder().encode(token);
      this.tokenBytesCache.set(id, bytes);
    }
    return bytes;
  }

  isAddedToken(id: number): boolean {
    return this.addedTokenIds.has(id);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
      throw new UserError(`token id ${id} is not in the vocabulary of ${this.sources.tokenizerFile} (ids 0..${this.vocabSize - 1})`);
    }
  }

  private configTokenId(key: string): number | null {
    const content = configTokenContent(this.config[key]);
    if (content === null) return null;
    const id = this.hf.token_to_id(content);
    if (id === undefined) {
      throw new UserError(`${this.sources.configFile ?? 'tokenizer_config.json'}: ${key} ${JSON.stringify(content)} is not in the vocabulary of ${this.sources.tokenizerFile}`);
    }
    return id;
  }
}

/**
 * Turns token ids into text as they arrive. Byte-level tokens can end inside a multi-byte UTF-8 character (an
 * emoji is often two or three tokens), so bytes are held in a streaming UTF-8 decoder until the character is
 * complete: no U+FFFD halves are emitted, and the concatenation of all pushes plus `end()` equals
 * `decode(ids)`. Added tokens are emitted verbatim and first flush any incomplete character (as U+FFFD),
 * exactly as the full decoder treats them. Unlike decode(), no clean_up_tokenization_spaces is applied.
 */
export class DecodeStream {
  private utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  constructor(private readonly tokenizer: Tokenizer, private readonly skipSpecialTokens: boolean) {}

  /** Text completed by token `id` (possibly empty). */
  push(id: number): string {
    if (this.skipSpecialTokens && this.tokenizer.isSpecial(id)) return '';
    const bytes = this.tokenizer.tokenBytes(id);
    if (this.tokenizer.isAddedToken(id)) return this.utf8.decode() + new TextDecoder().decode(bytes);
    return this.utf8.decode(bytes, { stream: true });
  }

  /**
   * What push() of each id in turn returns, joined: runs of ordinary tokens go through the UTF-8 decoder as one
   * chunk (a streaming decoder's output does not depend on how its bytes are split), since a decoder call costs
   * microseconds, far more than a token's bytes: the sampling engine decodes a batch's completions this way.
   */
  pushMany(ids: readonly number[]): string {
    let text = '';
    let run: Uint8Array[] = [];
    let runBytes = 0;
    const flushRun = () => {
      if (run.length === 0) return;
      const bytes = new Uint8Array(runBytes);
      let at = 0;
      for (const piece of run) {
        bytes.set(piece, at);
        at += piece.length;
      }
      text += this.utf8.decode(bytes, { stream: true });
      run = [];
      runBytes = 0;
    };
    for (const id of ids) {
      if (this.tokenizer.isAddedToken(id) || (this.skipSpecialTokens && this.tokenizer.isSpecial(id))) {
        flushRun();
        text += this.push(id);
        continue;
      }
      const bytes = this.tokenizer.tokenBytes(id);
      run.push(bytes);
      runBytes += bytes.length;
    }
    flushRun();
    return text;
  }

  /** Flushes what is still held: an unfinished character at the end of the sequence becomes U+FFFD. */
  end(): string {
    return this.utf8.decode();
  }
}

/** The content of a config token entry: a string, or `{content: ...}` (older AddedToken form), or null. */
function configTokenContent(entry: unknown): string | null {
  if (typeof entry === 'string') return entry;
  if (typeof entry === 'object' && entry !== null && typeof (entry as { content?: unknown }).content === 'string') {
    return (entry as { content: string }).content;
  }
  return null;
}

/** chat_template is a string, or (some HF configs) a list of {name, template} where "default" is used. */
function pickChatTemplate(entry: unknown, where: string): string | null {
  if (entry === undefined || entry === null) return null;
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) {
    const found = entry.find((t) => t?.name === 'default') ?? entry[0];
    if (typeof found?.template === 'string') return found.template;
  }
  throw new UserError(`${where}: chat_template must be a string or a list of {name, template}`);
}

/**
 * Rejects anything but byte-level BPE before the library sees it, naming the field: WordPiece/Unigram models,
 * SentencePiece-style BPE (Metaspace + byte_fallback, e.g. Llama-2), and files missing vocab or merges.
 */
function checkByteLevelBpe(json: unknown, file: string): Record<string, unknown> {
  const bad = (field: string, problem: string): never => {
    throw new UserError(`${file}: ${field} ${problem}; only byte-level BPE tokenizers (Qwen, Llama-3, DeepSeek, GPT-2 style) are supported`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('(top level)', 'is not a JSON object');
  const top = json as Record<string, unknown>;
  const model = top.model as Record<string, unknown> | undefined;
  if (typeof model !== 'object' || model === null) bad('"model"', 'is missing');
  if (model!.type !== undefined && model!.type !== 'BPE') bad('"model.type"', `is ${JSON.stringify(model!.type)}, not "BPE"`);
  const vocab = model!.vocab;
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) bad('"model.vocab"', 'is missing or not an object of token -> id');
  const merges = model!.merges;
  if (!Array.isArray(merges)) bad('"model.merges"', 'is missing or not a list');
  for (let i = 0; i < (merges as unknown[]).length; i++) {
    const m = (merges as unknown[])[i];
    const ok = (typeof m === 'string' && m.split(' ').length === 2) || (Array.isArray(m) && m.length === 2 && m.every((s) => typeof s === 'string'));
    if (!ok) bad(`"model.merges[${i}]"`, `is ${JSON.stringify(m)}, not "a b" or ["a", "b"]`);
  }
  if (!hasByteLevel(top.pre_tokenizer, 'pretokenizers')) bad('"pre_tokenizer"', 'has no ByteLevel step');
  if (!hasByteLevel(top.decoder, 'decoders')) bad('"decoder"', 'is not ByteLevel');
  const added = top.added_tokens ?? [];
  if (!Array.isArray(added)) bad('"added_tokens"', 'is not a list');
  (added as unknown[]).forEach((t, i) => {
    const entry = t as { id?: unknown; content?: unknown };
    if (!Number.isInteger(entry?.id) || typeof entry?.content !== 'string') bad(`"added_tokens[${i}]"`, 'needs an integer "id" and a string "content"');
  });
  // Optional in the format; the JS library wants the keys present.
  return { normalizer: null, post_processor: null, ...top, added_tokens: added };
}

/** True for a ByteLevel component, or a Sequence (under `listKey`) that contains one. */
function hasByteLevel(component: unknown, listKey: string): boolean {
  if (typeof component !== 'object' || component === null) return false;
  const c = component as Record<string, unknown>;
  if (c.type === 'ByteLevel') return true;
  return c.type === 'Sequence' && Array.isArray(c[listKey]) && (c[listKey] as unknown[]).some((x) => hasByteLevel(x, listKey));
}
