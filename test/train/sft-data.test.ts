// SFT data: the three TRL formats, the assistant-only loss mask computed from rendered spans (ChatML in place,
// Qwen3's history-rewriting template as one sequence per rewritten turn), rows, packing, and bad input named
// by file and line.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CHATML_TEMPLATE, type ChatMessage } from '../../src/tokenizer/chat.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { encodeSftExamples } from '../../src/train/sft.ts';
import { IGNORE_INDEX } from '../../src/tensor/index.ts';
import { chatSegments, packedRows, padRows, readSftExamples, sequenceRows, type SftSequence } from '../../src/train/sft-data.ts';
import { UserError } from '../../src/util/errors.ts';

const fixtures = new URL('../tokenizer/fixtures/', import.meta.url).pathname;
const tokenizer = Tokenizer.fromFile(join(fixtures, 'trained-small'));
const QWEN3_TEMPLATE = (JSON.parse(readFileSync(join(fixtures, 'chat-cases.json'), 'utf8')) as { templates: Record<string, string> }).templates.qwen3;

function jsonl(lines: unknown[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'r1-sft-data-')), 'data.jsonl');
  writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

/** The text of a sequence's trained tokens and of its untrained ones (each run of them decoded whole). */
function spans(sequence: SftSequence): { trained: string[]; prompt: string[] } {
  const out = { trained: [] as string[], prompt: [] as string[] };
  let start = 0;
  for (let t = 1; t <= sequence.ids.length; t++) {
    if (t === sequence.ids.length || sequence.trained[t] !== sequence.trained[start]) {
      (sequence.trained[start] ? out.trained : out.prompt).push(tokenizer.decode([...sequence.ids.subarray(start, t)]));
      start = t;
    }
  }
  return out;
}

const u = (content: string): ChatMessage => ({ role: 'user', content });
const a = (content: string): ChatMessage => ({ role: 'assistant', content });
const conversation = [{ role: 'system', content: 'Be brief.' }, u('What is 2 + 3?'), a('<think>2 + 3 = 5</think> 5'), u('Times 4?'), a('<think>5 * 4</think> 20')];

test('ChatML: one sequence whose trained tokens are exactly the assistant turns, each with its <|im_end|>', () => {
  const [sequence, ...rest] = encodeSftExamples(tokenizer, CHATML_TEMPLATE, readSftExamples(jsonl([{ messages: conversation }])));
  assert.equal(rest.length, 0);
  assert.equal(tokenizer.decode([...sequence.ids]), tokenizer.applyChatTemplate(conversation));
  assert.deepEqual(spans(sequence), {
    trained: ['<think>2 + 3 = 5</think> 5<|im_end|>\n', '<think>5 * 4</think> 20<|im_end|>\n'],
    prompt: [
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n',
      '<|im_start|>user\nTimes 4?<|im_end|>\n<|im_start|>assistant\n',
    ],
  });
});

test("Qwen3's template drops earlier turns' reasoning: that turn is trained in a sequence of its own, as the model sees it", () => {
  const sequences = encodeSftExamples(tokenizer, QWEN3_TEMPLATE, readSftExamples(jsonl([{ messages: conversation }])));
  assert.equal(sequences.length, 2);
  // The whole conversation, with the last turn trained; the first turn appears there without its reasoning.
  assert.deepEqual(spans(sequences[0]).trained, ['<think>\n5 * 4\n</think>\n\n20<|im_end|>\n']);
  assert.match(spans(sequences[0]).prompt[0], /<\|im_start\|>assistant\n5<\|im_end\|>/);
  // The first turn, rendered as it is when it is the last one: with its reasoning.
  assert.deepEqual(spans(sequences[1]), {
    prompt: ['<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n'],
    trained: ['<think>\n2 + 3 = 5\n</think>\n\n5<|im_end|>\n'],
  });
});

test('prompt-completion: conversational completions train only the completion; plain text trains the completion and eos', () => {
  const file = jsonl([
    { prompt: [u('Hi'), a('Hello.'), u('2 + 2?')], completion: [a('4')] },
    { prompt: 'Q: 2 + 2?\nA:', completion: ' 4' },
  ]);
  const [chat, text] = encodeSftExamples(tokenizer, CHATML_TEMPLATE, readSftExamples(file));
  assert.deepEqual(spans(chat).trained, ['4<|im_end|>\n']);
  assert.deepEqual(spans(text), { prompt: ['Q: 2 + 2?\nA:'], trained: [' 4<|im_end|>'] });
  assert.equal(text.ids.at(-1), tokenizer.eosTokenId);
});

test('rows: targets are the next tokens where trained, -100 elsewhere; long sequences are cut; packing fills rows', () => {
  const sequence = (ids: number[], trained: number[]): SftSequence => ({ id: 'x', ids: Int32Array.from(ids), trained: Uint8Array.from(trained) });
  const sequences = [sequence([10, 11, 12, 13], [0, 0, 1, 1]), sequence([20, 21, 22, 23, 24, 25], [0, 1, 1, 1, 1, 1]), sequence([30, 31], [0, 0])];
  const { rows, truncated, empty } = sequenceRows(sequences, 3);
  assert.deepEqual([truncated, empty], [1, 1]);
  assert.deepEqual(rows.map((r) => [[...r.inputs], [...r.targets], r.trainedTokens]), [
    [[10, 11, 12], [IGNORE_INDEX, 12, 13], 2],
    [[20, 21, 22], [21, 22, 23], 3],
  ]);
  // Packing: one stream of 12 tokens cut into rows of 4 inputs (5-token windows overlapping by one).
  const packed = packedRows(sequences, 4);
  assert.deepEqual(packed.map((r) => [[...r.inputs], [...r.targets]]), [
    [[10, 11, 12, 13], [IGNORE_INDEX, 12, 13, IGNORE_INDEX]],
    [[20, 21, 22, 23], [21, 22, 23, 24]],
    [[24, 25, 30], [25, IGNORE_INDEX, IGNORE_INDEX]],
  ]);
  const padded = padRows(packed.slice(1), 0);
  assert.deepEqual([[...padded.inputs], [...padded.targets]], [[20, 21, 22, 23, 24, 25, 30, 0], [21, 22, 23, 24, 25, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]);
});

test('bad input fails with the file and line: malformed JSON, no assistant turn, wrong fields, a template that fails', () => {
  const fails = (lines: unknown[], message: RegExp) => {
    const file = jsonl(lines);
    assert.throws(() => encodeSftExamples(tokenizer, CHATML_TEMPLATE, readSftExamples(file)), (e: unknown) => e instanceof UserError && e.message.startsWith(`${file}:`) && message.test(e.message), String(message));
  };
  fails([{ messages: conversation }, '{"messages": [}'], /:2: not valid JSON at column 15/);
  fails([{ messages: [u('hello?')] }], /:1: the conversation has no assistant turn to train on/);
  fails([{ prompt: [u('hi')], completion: [u('no')] }], /:1: "completion" has no assistant turn to train on/);
  fails([{ prompt: 'text', completion: [a('4')] }], /:1: "prompt" and "completion" must both be strings or both be lists of messages/);
  fails([{ text: 'plain' }], /:1: expected \{"messages": \[\.\.\.\]\} or \{"prompt": \.\.\., "completion": \.\.\.\}, found the fields \["text"\]/);
  fails([{ messages: [u('hi'), { role: 'assistant', content: 4 }] }], /:1: "messages"\[1\]\.content must be a string/);
  const failing = '{% for m in messages %}{{ m.content | no_such_filter }}{% endfor %}';
  const file = jsonl([{ messages: conversation }]);
  assert.throws(() => encodeSftExamples(tokenizer, failing, readSftExamples(file)), (e: unknown) => e instanceof UserError && e.message.startsWith(`${file}:1: the chat template given: chat_template failed`));
});

test('a template that does not put an assistant turn after its generation prompt is refused, naming the example', () => {
  // Generation prompt "ASSISTANT:" but turns rendered as "BOT:": no span can be cut.
  const template = "{% for m in messages %}{{ (m.role == 'assistant') and 'BOT: ' or 'USER: ' }}{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT: {% endif %}";
  assert.throws(() => chatSegments((messages, gen) => tokenizer.applyChatTemplate(messages, { addGenerationPrompt: gen, template }), [u('q'), a('r')], 0, 'd.jsonl:3'),
    /^UserError: d\.jsonl:3: the chat template does not render assistant message 1 after its generation prompt/);
});
