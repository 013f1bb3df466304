import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CHATML_TEMPLATE, DEFAULT_CHAT_TEMPLATE, renderChatTemplate, type ChatMessage } from '../../src/tokenizer/chat.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { UserError } from '../../src/util/errors.ts';

test('ChatML: one <|im_start|>role ... <|im_end|> block per message, then the assistant header when asked', () => {
  const messages = [{ role: 'user', content: 'Hi\nthere' }, { role: 'assistant', content: '<think>x</think> hello' }];
  const expected = '<|im_start|>user\nHi\nthere<|im_end|>\n<|im_start|>assistant\n<think>x</think> hello<|im_end|>\n';
  assert.equal(renderChatTemplate(CHATML_TEMPLATE, messages, {}, {}, 'x'), expected);
  assert.equal(renderChatTemplate(CHATML_TEMPLATE, messages, { addGenerationPrompt: true }, {}, 'x'), `${expected}<|im_start|>assistant\n`);
  assert.equal(renderChatTemplate(CHATML_TEMPLATE, [], { addGenerationPrompt: true }, {}, 'x'), '<|im_start|>assistant\n');
});

test("templates see HF's variables: special token strings, tools, extra variables", () => {
  const template = '{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{% if tools %}{{ tools | length }} tools{% endif %}{{ eos_token }}{{ flavor }}';
  const out = renderChatTemplate(template, [{ role: 'user', content: 'q' }], { tools: [{ name: 'a' }, { name: 'b' }], variables: { flavor: '!' } }, { bos_token: '<s>', eos_token: '</s>' }, 'x');
  assert.equal(out, '<s>[user:q]2 tools</s>!');
});

test('a message without a role is a UserError naming its index', () => {
  assert.throws(
    () => renderChatTemplate(CHATML_TEMPLATE, [{ role: 'user', content: 'a' }, { content: 'b' } as never], {}, {}, 'x'),
    (e: Error) => e instanceof UserError && e.message === 'chat message 1: "role" must be a string',
  );
});

// Renderings by transformers 5.17's apply_chat_template (test/tokenizer/fixtures/make_chat_expected.py, run on
// the GPU machine) of chat-cases.json: Qwen3's template verbatim (history rewriting: earlier turns lose their
// reasoning; reasoning_content; enable_thinking), ChatML and our default. Our renderer must give the same text.
const fixtures = new URL('./fixtures/', import.meta.url).pathname;
const chatCases = JSON.parse(readFileSync(join(fixtures, 'chat-cases.json'), 'utf8')) as {
  templates: Record<string, string>;
  cases: Array<{ name: string; template: string; messages: ChatMessage[]; addGenerationPrompt: boolean; variables: Record<string, unknown> }>;
};
const chatExpected = JSON.parse(readFileSync(join(fixtures, 'chat-expected.json'), 'utf8')) as { cases: Array<{ name: string; rendered: string }> };

test('the fixture holds the templates this code ships', () => {
  assert.equal(chatCases.templates.chatml, CHATML_TEMPLATE);
  assert.equal(chatCases.templates['r1ts-default'], DEFAULT_CHAT_TEMPLATE);
  assert.equal(chatExpected.cases.length, chatCases.cases.length);
});

test("templates render exactly as transformers' apply_chat_template renders them", () => {
  const tokenizer = Tokenizer.fromFile(join(fixtures, 'trained-small'));
  for (const [i, c] of chatCases.cases.entries()) {
    const got = tokenizer.applyChatTemplate(c.messages, { addGenerationPrompt: c.addGenerationPrompt, variables: c.variables, template: chatCases.templates[c.template] });
    assert.equal(got, chatExpected.cases[i].rendered, `${c.template}: ${c.name}`);
  }
});
