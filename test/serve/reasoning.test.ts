// The thinking/answer split of reasoning models' output, whole and streamed in pieces that cut the tags.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { promptOpensThinking, ReasoningParser, splitReasoning } from '../../src/serve/reasoning.ts';

/** Streams `text` in pieces of `pieceLength` characters and joins what comes out. */
function streamed(text: string, startsInReasoning: boolean, pieceLength: number): { reasoning: string; content: string } {
  const parser = new ReasoningParser(startsInReasoning);
  const out = { reasoning: '', content: '' };
  for (let i = 0; i < text.length; i += pieceLength) {
    const split = parser.push(text.slice(i, i + pieceLength));
    out.reasoning += split.reasoning;
    out.content += split.content;
  }
  const rest = parser.end();
  return { reasoning: out.reasoning + rest.reasoning, content: out.content + rest.content };
}

describe('reasoning split', () => {
  const cases: Array<[string, boolean, string, string]> = [
    // text, prompt opened <think>, reasoning, content
    ['<think>2 + 2 is 4</think> <answer>4</answer>', false, '2 + 2 is 4', ' <answer>4</answer>'],
    ['\n<think>a < b, so</think>\n\nb', false, 'a < b, so', '\n\nb'],
    ['plain answer with </think> inside', false, '', 'plain answer with </think> inside'],
    ['<thin', false, '', '<thin'],
    ['okay, so 7.</think>\n\nThe answer is 7.', true, 'okay, so 7.', '\n\nThe answer is 7.'],
    ['still thinking </thi', true, 'still thinking </thi', ''],
    ['', true, '', ''],
  ];
  it('splits whole completions at the tags, R1-Zero style and with the thinking opened by the prompt', () => {
    for (const [text, opened, reasoning, content] of cases) {
      const split = splitReasoning(text, opened);
      assert.deepEqual({ reasoning: split.reasoning, content: split.content }, { reasoning, content }, JSON.stringify(text));
    }
    assert.equal(splitReasoning('no tags', false).sawReasoning, false);
    assert.equal(splitReasoning('<think>x</think>y', false).sawReasoning, true);
  });

  it('gives the same split however the stream cuts the text, tags included', () => {
    for (const [text, opened, reasoning, content] of cases) {
      for (let piece = 1; piece <= 9; piece++) assert.deepEqual(streamed(text, opened, piece), { reasoning, content }, `${JSON.stringify(text)} in pieces of ${piece}`);
    }
  });

  it('sees whether the generation prompt opened the thinking', () => {
    assert.equal(promptOpensThinking('<|im_start|>assistant\n<think>\n'), true);
    assert.equal(promptOpensThinking('<think>old</think> answer<|im_start|>assistant\n'), false);
    assert.equal(promptOpensThinking('User: 1+1. Assistant:'), false);
    assert.equal(promptOpensThinking('<|im_start|>user\n<think>is this a tag?<|im_end|>\n<|im_start|>assistant\n'), false);
    assert.equal(promptOpensThinking('<|im_start|>assistant\n<think>\n\n</think>\n\n'), false);
  });
});
