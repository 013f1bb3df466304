import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FORMAT_RULES, formatReward, hasThinkBlock, isLooseFormat, isReadableFormat, isStrictFormat, summaryOf, tagCountReward } from '../../src/rewards/format.ts';
import { scoreSample } from '../../src/rewards/reward.ts';
import { r1ZeroPrompt } from '../../src/rewards/template.ts';

const prompt = r1ZeroPrompt('What is 2 + 3?');
const score = (rule: keyof typeof FORMAT_RULES, completion: string, p = prompt) => formatReward(rule)({ prompt: p, completion, reference: '5' });

describe('strict format: <think>…</think> <answer>…</answer> and nothing else', () => {
  it('accepts the template\'s shape, with the leading space the prompt leaves and any whitespace between and around', () => {
    for (const completion of [
      ' <think> 2 plus 3 is 5 </think> <answer> 5 </answer>',
      '<think>2 plus 3 is 5</think><answer>5</answer>',
      '\n<think>\nlet me add\n</think>\n\n<answer>\n5\n</answer>\n',
      '<think></think> <answer></answer>', // empty blocks are still the shape (as open-r1); accuracy gives them 0
    ]) {
      assert.equal(score('strict', completion), 1, completion);
    }
  });

  it('rejects text before, between or after the blocks, missing, repeated, nested or reordered tags', () => {
    for (const completion of [
      'Sure! <think>add</think> <answer>5</answer>',
      '<think>add</think> so <answer>5</answer>',
      '<think>add</think> <answer>5</answer> Hope this helps.',
      '<think>add</think> <answer>5</answer><answer>6</answer>',
      '<think>add <think>again</think></think> <answer>5</answer>',
      '<think>add <answer>4</answer></think> <answer>5</answer>',
      '<answer>5</answer> <think>add</think>',
      '<think>add</think>',
      '<think>add <answer>5</answer>',
      '<think>add</think> <answer>5',
      '2 + 3 = 5',
      '',
    ]) {
      assert.equal(score('strict', completion), 0, completion);
    }
  });

  it('a prompt that ends with <think> (prefilled) counts the completion as starting inside the think block', () => {
    const prefilled = `${prompt} <think>`;
    assert.equal(score('strict', 'add them</think> <answer>5</answer>', prefilled), 1);
    assert.equal(score('strict', '<think>add them</think> <answer>5</answer>', prefilled), 0); // a second <think>
    assert.equal(score('strict', 'add them</think> <answer>5</answer>'), 0);
  });
});

describe('looser rules', () => {
  it('loose: a think block followed later by an answer block, other text allowed', () => {
    assert.ok(isLooseFormat('Sure! <think>add</think> so <answer>5</answer> done'));
    assert.ok(isLooseFormat('<think>a</think><think>b</think><answer>5</answer>'));
    assert.ok(!isLooseFormat('<answer>5</answer> <think>add</think>'));
    assert.ok(!isLooseFormat('<think>add <answer>5</answer>'));
    assert.ok(!isLooseFormat('<think>add</think> <answer>5'));
  });

  it('think: only a closed think block is required (the paper\'s sentence)', () => {
    assert.ok(hasThinkBlock('<think>add</think> 5'));
    assert.ok(!hasThinkBlock('</think> <think> 5'));
    assert.ok(!hasThinkBlock('<answer>5</answer>'));
    assert.equal(score('think', 'the sum is <think>2+3</think> 5'), 1);
  });

  it('every rule accepts the strict shape', () => {
    const good = '<think>add</think> <answer>5</answer>';
    assert.ok(isStrictFormat(good));
    for (const rule of Object.keys(FORMAT_RULES) as Array<keyof typeof FORMAT_RULES>) assert.equal(score(rule, good), 1, rule);
  });
});

describe('tag-count partial credit', () => {
  const credit = (completion: string, p = prompt) => tagCountReward()({ prompt: p, completion, reference: null });
  it('gives 0.25 for each tag present exactly once', () => {
    assert.equal(credit('<think>a</think> <answer>5</answer>'), 1);
    assert.equal(credit('<think>a</think> 5'), 0.5);
    assert.equal(credit('<think>a</think><think>b</think> <answer>5</answer>'), 0.5);
    assert.equal(credit('5'), 0);
    assert.equal(credit('a</think> <answer>5</answer>', `${prompt} <think>`), 1);
  });
});

describe('scoreSample over format and other rewards', () => {
  it('sums weighted parts, and a reward that throws or returns NaN scores 0 and is named', () => {
    const completion = '<think>add</think> <answer>5</answer>';
    const result = scoreSample(
      [
        { name: 'format', fn: formatReward(), weight: 1 },
        { name: 'tags', fn: tagCountReward(), weight: 0.5 },
        { name: 'broken', fn: () => { throw new Error('boom'); }, weight: 1 },
        { name: 'nan', fn: () => Number.NaN, weight: 1 },
      ],
      { prompt, completion, reference: '5' },
    );
    assert.equal(result.total, 1.5);
    assert.deepEqual(result.parts, { format: 1, tags: 1, broken: 0, nan: 0 });
    assert.deepEqual(result.failed, ['broken', 'nan']);
  });
});

it('readable rule: one think block at the start, then a non-empty summary, no answer tags', () => {
  assert.equal(isReadableFormat('<think> a </think> The answer is \\boxed{3}.'), true);
  assert.equal(isReadableFormat('  <think>a</think>x'), true);
  assert.equal(isReadableFormat('<think> a </think>   '), false);
  assert.equal(isReadableFormat('<think> a </think> <answer> 3 </answer>'), false);
  assert.equal(isReadableFormat('x <think> a </think> y'), false);
  assert.equal(isReadableFormat('<think> a <think> b </think> y'), false);
  assert.equal(summaryOf('<think> a </think> b </think> c'), ' c');
  assert.equal(summaryOf('no think'), '');
});
