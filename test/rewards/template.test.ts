import assert from 'node:assert/strict';
import { test } from 'node:test';
import { R1_ZERO_TEMPLATE, r1ZeroPrompt } from '../../src/rewards/template.ts';

// DeepSeek-R1 Table 1 as one line (SPEC.md 2, r1-spec-detail 2.1), typed here independently of the source file.
const PAPER =
  'A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: prompt. Assistant:';

test('the template is the paper\'s text verbatim', () => {
  assert.equal(R1_ZERO_TEMPLATE, PAPER);
});

test('the question replaces "prompt" and nothing else; surrounding whitespace of the question is dropped', () => {
  const question = 'What is the prompt of 2 + 3?';
  assert.equal(r1ZeroPrompt(question), PAPER.replace('User: prompt.', `User: ${question}.`));
  assert.equal(r1ZeroPrompt('  Compute 7 * 6.\n'), PAPER.replace('User: prompt.', 'User: Compute 7 * 6..'));
  assert.ok(r1ZeroPrompt('x').endsWith('User: x. Assistant:'));
});
