import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accuracyReward, mathAccuracyReward, taskAccuracyReward } from '../../src/rewards/accuracy.ts';
import { formatReward } from '../../src/rewards/format.ts';
import { scoreSample, type RewardInput } from '../../src/rewards/reward.ts';
import { r1ZeroPrompt } from '../../src/rewards/template.ts';
import type { Example, Task } from '../../src/tasks/task.ts';

const prompt = r1ZeroPrompt('What is half of one?');
const input = (completion: string, reference: unknown = '\\frac{1}{2}'): RewardInput => ({ prompt, completion, reference });

describe('math accuracy reward', () => {
  const reward = mathAccuracyReward();

  it('is 1 for an equivalent answer inside <answer>, 0 for a wrong one or one elsewhere (R1-Zero)', () => {
    assert.equal(reward(input('<think>1/2</think> <answer>0.5</answer>')), 1);
    assert.equal(reward(input('<think>1/2</think> <answer>$\\dfrac{1}{2}$</answer>')), 1);
    assert.equal(reward(input('<think>1/2</think> <answer>0.25</answer>')), 0);
    assert.equal(reward(input('<think>1/2</think> \\boxed{0.5}')), 0);
    assert.equal(reward(input('<think>the answer is 0.5')), 0);
  });

  it('reads other places when allowed, and takes numeric references', () => {
    const boxed = mathAccuracyReward({ places: ['answer-tag', 'boxed'] });
    assert.equal(boxed(input('so \\boxed{0.5}')), 1);
    assert.equal(reward(input('<answer>1,000</answer>', 1000)), 1);
  });

  it('a reference that is not a string or a number throws, which scoreSample scores 0 and reports', () => {
    assert.throws(() => reward(input('<answer>1</answer>', { gold: 1 })), /reference must be a string or a number/);
    const result = scoreSample(
      [
        { name: 'accuracy', fn: reward, weight: 1 },
        { name: 'format', fn: formatReward(), weight: 1 },
      ],
      input('<think>x</think> <answer>1</answer>', { gold: 1 }),
    );
    assert.deepEqual(result, { total: 1, parts: { accuracy: 0, format: 1 }, failed: ['accuracy'] });
  });

  it('R1-Zero\'s rule reward: accuracy + format with equal weights (NAT eq. 4)', () => {
    const rule = [
      { name: 'accuracy', fn: reward, weight: 1 },
      { name: 'format', fn: formatReward(), weight: 1 },
    ];
    assert.equal(scoreSample(rule, input(' <think>half</think> <answer>1/2</answer>')).total, 2);
    assert.equal(scoreSample(rule, input(' <think>half</think> <answer>1/3</answer>')).total, 1);
    assert.equal(scoreSample(rule, input('half <answer>1/2</answer>')).total, 1);
    assert.equal(scoreSample(rule, input('half is 1/2')).total, 0);
  });
});

describe('wrapping a verifier', () => {
  it('accepts verdicts and booleans', () => {
    assert.equal(accuracyReward(() => ({ answer: '4', correct: true }))(input('')), 1);
    assert.equal(accuracyReward(() => ({ answer: null, correct: false }))(input('')), 0);
    assert.equal(accuracyReward((completion, reference) => completion === reference)(input('yes', 'yes')), 1);
  });

  it('a task\'s verifier sees the completion and an example holding the reference', () => {
    const seen: Array<[string, Example]> = [];
    const task: Task = {
      name: 'parity',
      description: 'is the number even',
      sample: () => [],
      testSet: () => [],
      verify(completion, example) {
        seen.push([completion, example]);
        const answer = completion.trim();
        return { answer, correct: answer === (example.reference as { even: boolean }).even.toString() };
      },
    };
    const reward = taskAccuracyReward(task);
    assert.equal(reward({ prompt: 'p', completion: ' true', reference: { even: true } }), 1);
    assert.equal(reward({ prompt: 'p', completion: 'false', reference: { even: true } }), 0);
    assert.deepEqual(seen[0][1].reference, { even: true });
    assert.equal(seen[0][0], ' true');
  });
});
