// The package entry (src/index.ts, published as dist/index.js): README's library example runs as written, and
// every R1 part README names is importable from 'r1ts' itself, not only from deep paths.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as r1ts from '../src/index.ts';

test("README's library example runs from the package entry", () => {
  const { DenseModel, denseConfig, tensor, noGrad } = r1ts;
  const model = new DenseModel(denseConfig('1m', 4096), 0);
  const ids = tensor([1, 2, 3, 4], [1, 4], 'i32');
  const loss = model.loss(ids, tensor([2, 3, 4, 5], [1, 4], 'i32'));
  loss.backward();
  assert.ok(Number.isFinite(loss.item()));
  assert.ok(model.parameters().every((p) => p.grad !== null), 'every parameter got a gradient');
  const logits = noGrad(() => model.forward(ids));
  assert.deepEqual(logits.shape, [1, 4, 4096]);
});

test('the R1 parts README names are exported', () => {
  for (const name of ['loadModel', 'saveModel', 'Tokenizer', 'generate', 'checkAnswer', 'taskByName', 'groupAdvantages',
    'trainGrpo', 'evaluateModel', 'runZero', 'DeepSeekModel', 'readSafetensors', 'AdamW', 'sft', 'readSftExamples',
    'runRl', 'buildSources', 'REWARD_KINDS', 'trainRewardModel', 'loadRewardModel', 'RewardModel', 'bradleyTerryLoss', 'rejectionSample',
    'SAMPLE_FILTERS', 'endpointJudge', 'modelJudge',
    'runR1Pipeline', 'instructionTask', 'readableTask']) {
    assert.ok(name in r1ts, `${name} is not exported from src/index.ts`);
  }
  assert.equal(r1ts.checkAnswer('<answer>\\frac{1}{2}</answer>', '0.5').correct, true);
});
