// Rollouts on a code task: a round's completions are verified in one batch (the sandbox runs its programs in
// parallel), and the accuracy reward is the verdict's partial credit, read from that verdict rather than computed
// again.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { DenseModel, denseConfig } from '../../src/models/dense.ts';
import { sourceOverTask } from '../../src/pipeline/rl.ts';
import { zeroSource } from '../../src/pipeline/zero.ts';
import { sampleRollout, scoreCompletion } from '../../src/rl/rollout.ts';
import { generatedCodeTask } from '../../src/tasks/code.ts';
import type { Task, VerifyItem } from '../../src/tasks/task.ts';
import { Rng } from '../../src/tensor/random.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { trainBpe } from '../../src/tokenizer/train.ts';

const skip = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0 ? false : 'bubblewrap is not installed (apt-get install bubblewrap)';
const zero = zeroSource({ task: 'code', level: null, accuracyWeight: 1, formatWeight: 1, formatRule: 'strict', tagCountWeight: 0 });

describe('rollouts on a code task', { skip }, () => {
  const code = generatedCodeTask({ sandbox: { limits: { wallMs: 5000 }, workers: 2 } });
  const batches: number[] = [];
  // The real task, with its batch verifier counted.
  const counted: Task = { ...code, verifyMany: (items: readonly VerifyItem[]) => (batches.push(items.length), code.verifyMany!(items)) };

  const trained = trainBpe(['a, b = map(int, input().split())\nprint(a + b) <think> </think> <answer> </answer>'], { vocabSize: 270 });
  const tokenizer = Tokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);

  it('verifies a whole round in one batch', () => {
    const model = new DenseModel(denseConfig('1m', tokenizer.vocabSize, { hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 16 }), 1);
    const options = { promptsPerStep: 2, groupSize: 3, maxNewTokens: 6, temperature: 1, topP: 1, dynamicSampling: false, maxSamplingRounds: 1, overlongCacheTokens: 0 };
    const rollout = sampleRollout(model, tokenizer, [sourceOverTask(zero, counted, tokenizer).rollout], options, new Rng(4), 1);
    assert.deepEqual(batches, [6]);
    assert.equal(rollout.samples.length, 6);
    for (const sample of rollout.samples) assert.equal(sample.parts.accuracy, 0, 'a random model writes no program');
  });

  it('scores accuracy as the verdict\'s fraction of tests passed, without verifying again', () => {
    const [example] = code.sample(new Rng(2), 1);
    const source = sourceOverTask(zero, counted, tokenizer).rollout;
    const before = batches.length;
    const sample = scoreCompletion(source, example, 0, [], [], '<think> x </think> <answer> print(1) </answer>', false, { maxNewTokens: 8, overlongCacheTokens: 0 },
      { answer: 'print(1)\n', correct: false, score: 1 / 3, status: 'wrong_answer' });
    assert.equal(batches.length, before);
    assert.equal(sample.parts.accuracy, 1 / 3);
    assert.equal(sample.correct, false);
    assert.equal(sample.reward, 1 / 3 + 1);
  });
});
