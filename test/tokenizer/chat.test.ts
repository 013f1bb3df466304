import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHATML_TEMPLATE, renderChatTemplate } from '../../src/tokenizer/chat.ts';
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
