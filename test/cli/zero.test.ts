// `r1 zero`'s edge: every hyperparameter is a flag with its default in the help, and bad flags or config
// fields fail with one line naming them, before any work.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readZeroConfigFile, zeroConfigFromFlags } from '../../src/cli/zero.ts';
import { denseSizes } from '../../src/models/dense.ts';
import { defaultZeroConfig } from '../../src/pipeline/zero.ts';
import { r1 } from './r1.ts';

test('r1 zero --help lists the GRPO, reward, evaluation and base-model settings with their defaults', () => {
  const { code, stdout: text } = r1('zero', '--help');
  assert.equal(code, 0);
  for (const flag of ['--task', '--model', '--out', '--resume', '--steps', '--group-size', '--prompts-per-step', '--temperature', '--loss-type', '--eps-low', '--eps-high',
    '--beta', '--mu', '--dynamic-sampling', '--overlong-filtering', '--overlong-cache-tokens', '--reference-refresh-every', '--lr', '--format-weight', '--eval-k', '--base-steps']) {
    assert.match(text, new RegExp(`${flag}\\b`), `no ${flag}`);
  }
  assert.match(text, /--beta <b>\s+k3 KL coefficient[\s\S]*?\(default:\s+0\.001\)/);
});

test('flags and config files are validated, naming the flag or the field', () => {
  assert.deepEqual(zeroConfigFromFlags({}), defaultZeroConfig);
  const config = zeroConfigFromFlags({ steps: '12', lossType: 'dr_grpo', dynamicSampling: true, beta: '0' });
  assert.equal(config.steps, 12);
  assert.equal(config.lossType, 'dr_grpo');
  assert.equal(config.dynamicSampling, true);
  assert.equal(config.beta, 0);
  assert.throws(() => zeroConfigFromFlags({ groupSize: '1' }), /^UserError: --group-size "1": /);
  assert.throws(() => zeroConfigFromFlags({ lossType: 'ppo' }), /--loss-type "ppo": .*grpo/);
  assert.throws(() => zeroConfigFromFlags({ epsLow: '1.5' }), /--eps-low 1\.5: must be below 1/);

  const dir = mkdtempSync(join(tmpdir(), 'r1-cli-zero-'));
  const file = join(dir, 'zero.json');
  writeFileSync(file, JSON.stringify({ steps: 5, lr: -1, groupsize: 4 }));
  assert.throws(() => readZeroConfigFile(file), (e: Error) => /zero\.json: field "groupsize": not a setting of r1 zero/.test(e.message) && /field "lr": /.test(e.message));
  writeFileSync(file, JSON.stringify({ steps: 5, baseModelOverrides: { numLayers: 2 } }));
  assert.equal(zeroConfigFromFlags({ config: file, steps: '7' }).steps, 7);
  writeFileSync(file, JSON.stringify({ baseStyles: { guessRate: 0.5, guessRateBySteps: { two: 0.5 }, guessCorrectRate: 0.25, checkedRate: 0.3, slipRate: 0.2 } }));
  assert.throws(() => readZeroConfigFile(file), /zero\.json: field "baseStyles\.guessRateBySteps\.two": Invalid key/);
  writeFileSync(file, '{ steps: 5');
  assert.throws(() => readZeroConfigFile(file), /zero\.json: cannot read a JSON config/);
});

test('the long-chain presets in configs/ are valid r1 zero configs: styled base text, room for long completions', () => {
  const root = join(import.meta.dirname, '../..');
  for (const [file, device] of [['configs/zero-gpu.json', 'cuda'], ['configs/zero-long-chains-cpu.json', 'cpu']] as const) {
    const config = zeroConfigFromFlags({ config: join(root, file) });
    assert.equal(config.device, device, file);
    assert.equal(config.task, 'arithmetic');
    assert.ok(config.baseStyles !== null && config.baseStyles.guessRate > 0 && config.baseStyles.checkedRate > 0, file);
    assert.ok(config.level !== null && config.level >= 2, `${file}: level 1 has nothing to think about`);
    assert.ok(config.maxNewTokens >= 160, file);
  }
  const gpu = zeroConfigFromFlags({ config: join(root, 'configs/zero-gpu.json') });
  assert.ok(gpu.maxNewTokens >= 256, 'room for several hundred completion tokens');
  assert.ok(gpu.timeLimitMinutes !== null, 'the GPU preset bounds its GRPO time');
  // Tens of millions of parameters, as the issue asks of the GPU preset's base model.
  const { hiddenSize: h, intermediateSize: f, numLayers: l, numHeads, numKvHeads, headDim } = { ...denseSizes[gpu.baseSize], ...gpu.baseModelOverrides };
  const perLayer = 2 * h * numHeads * headDim + 2 * h * numKvHeads * headDim + 3 * h * f;
  assert.ok(l * perLayer > 10e6, String(l * perLayer));
});
