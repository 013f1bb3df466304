import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainOfThought, countedWords, languageConsistency, languageReward } from '../../src/rewards/language.ts';

describe('language consistency (R1 2.3.2: target words / all words of the chain of thought)', () => {
  it('counts words by script, each Han or kana character as a word', () => {
    assert.deepEqual(countedWords('我们 compute 这个'), ['我', '们', 'compute', '这', '个']);
    assert.equal(languageConsistency('我们 compute 这个', 'zh'), 4 / 5);
    assert.equal(languageConsistency('我们 compute 这个', 'en'), 1 / 5);
    assert.equal(languageConsistency('すべての数を足す', 'ja'), 1);
    assert.equal(languageConsistency('すべての数を足す', 'zh'), 2 / 8); // only 数 and 足 are Han
    assert.equal(languageConsistency('сложим числа and done', 'ru'), 2 / 4);
    assert.equal(languageConsistency('숫자를 더하면 된다', 'ko'), 1);
  });

  it('ignores math, LaTeX commands, code and lone variables', () => {
    assert.deepEqual(countedWords('Let x be $\\frac{a}{b}$ so \\(y^2\\) is \\sqrt{z} fine'), ['Let', 'be', 'so', 'is', 'fine']);
    assert.equal(languageConsistency('所以 x 等于 $\\frac{1}{2}$', 'zh'), 1);
    assert.deepEqual(countedWords('look ```python\nprint(x)\n``` here'), ['look', 'here']);
    assert.equal(languageConsistency('2 + 3 = 5', 'en'), 0); // no words at all
  });

  it('accented Latin letters are Latin; other scripts are not', () => {
    assert.equal(languageConsistency('café naïve résumé', 'en'), 1);
    assert.equal(languageConsistency('the 答案 is', 'en'), 2 / 4);
  });

  it('reads the first think block (to the end when unclosed; before <answer> without tags)', () => {
    assert.equal(chainOfThought('<think> a b </think> <answer>c</answer>'), ' a b ');
    assert.equal(chainOfThought('x <think>unfinished thought'), 'unfinished thought');
    assert.equal(chainOfThought('thinking aloud <answer>5</answer>'), 'thinking aloud ');
    const reward = languageReward('en');
    assert.equal(reward({ prompt: 'p', completion: '<think>我们 add them</think> <answer>答案 5</answer>', reference: '5' }), 2 / 4);
    assert.equal(reward({ prompt: 'Assistant: <think>', completion: 'add 它们</think> <answer>5</answer>', reference: '5' }), 1 / 3);
  });
});
