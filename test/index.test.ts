// The package entry (src/index.ts, published as dist/index.js): README's library example runs as written, and
// every R1 part README names is importable from 'r1ts' itself, not only from deep paths.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
    'SAMPLE_FILTERS', 'endpointJudge', 'modelJudge', 'DEFAULT_CHAT_TEMPLATE',
    'runR1Pipeline', 'instructionTask', 'readableTask']) {
    assert.ok(name in r1ts, `${name} is not exported from src/index.ts`);
  }
  assert.equal(r1ts.checkAnswer('<answer>\\frac{1}{2}</answer>', '0.5').correct, true);
});

// The names README gives as calls (`runRl(config)`, `new Sandbox(options)`) and in its "From TypeScript" and library
// paragraphs, read from README itself so that a name added there is checked too.
test('every library name README.md gives is exported from the package entry', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const names = new Set<string>();
  for (const match of readme.matchAll(/`(?:new |await )?([A-Za-z_$][\w$]*)\(/g)) names.add(match[1]);
  for (const paragraph of readme.split(/\n\s*\n/)) {
    const start = paragraph.search(/From\s+TypeScript|The R1 parts are there too/);
    if (start < 0) continue;
    for (const match of paragraph.slice(start).matchAll(/`(?:new |await )?([A-Za-z_$][\w$]*)[`(.]/g)) names.add(match[1]);
  }
  // Not library names: YaRN's mscale formula, and `model.to(...)`, a method of a model.
  for (const notExport of ['mscale', 'model']) names.delete(notExport);
  assert.ok(names.size > 30, `README names ${names.size} library parts: the scan found too few`);
  const missing = [...names].filter((name) => !(name in r1ts));
  assert.deepEqual(missing, [], `README names these, but src/index.ts does not export them: ${missing.join(', ')}`);
});
