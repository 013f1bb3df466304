// The part of @huggingface/tokenizers we use, typed here: the package's .d.ts files re-export with
// extensionless relative paths, which NodeNext resolution cannot follow, so its named exports arrive untyped
// or not at all. Each signature below matches dist/tokenizers.mjs of version 0.2.
import * as tokenizers from '@huggingface/tokenizers';

export interface HfEncoding {
  ids: number[];
  tokens: string[];
}

export interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): HfEncoding;
  /** Throws on an empty list; maps ids it does not know to undefined tokens, so check ids first. */
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  /** vocab[id] is the token string, added tokens included (the constructor writes them in). */
  model: { vocab: string[] };
}

export interface HfPreTokenizer {
  pre_tokenize_text(text: string): string[];
}

const library = tokenizers as unknown as {
  Tokenizer: new (tokenizerJson: object, config: object) => HfTokenizer;
  SplitPreTokenizer: new (config: object) => HfPreTokenizer;
};

export const HfTokenizer = library.Tokenizer;
export const HfSplitPreTokenizer = library.SplitPreTokenizer;
