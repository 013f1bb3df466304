// Rotary scalings worked by hand: YaRN's ramp between kept and interpolated frequencies, its attention factor,
// and DeepSeek's mscale variant. (Parity with transformers on whole models: test/models/hf-reference.test.ts,
// llama-yarn, and test/models/deepseek-hf.test.ts, v3-yarn.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inverseFrequencies, ropeAttentionFactor, ropeTables, yarnMscale, type YarnScaling } from '../../src/nn/rope.ts';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
const yarn: YarnScaling = { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32, betaFast: 32, betaSlow: 1, mscale: 0, mscaleAllDim: 0, attentionFactor: null, truncate: true };

test('YaRN keeps the fast frequencies, divides the slow ones by the factor, and blends on the ramp between', () => {
  // rotDim 8, theta 500: plain frequencies 500^(-i/4). The pair turning 32 times over 32 positions sits at
  // 8 ln(32 / (32 * 2 pi)) / (2 ln 500) = -1.18 (floor -2, clamped to 0); the one turning once at
  // 8 ln(32 / (2 pi)) / (2 ln 500) = 1.05 (ceil 2). So the ramp over pairs 0..3 is 0, 1/2, 1, 1.
  const plain = [0, 1, 2, 3].map((i) => 500 ** (-i / 4));
  const expected = [plain[0], 0.5 * plain[1] + 0.5 * (plain[1] / 4), plain[2] / 4, plain[3] / 4];
  inverseFrequencies(8, 500, yarn).forEach((f, i) => near(f, expected[i], `pair ${i}`));
  // Without truncation the ramp runs from 0 to 1.0478...: pair 1 is 0.954 of the way to interpolated.
  const high = (8 * Math.log(32 / (2 * Math.PI))) / (2 * Math.log(500));
  const untruncated = inverseFrequencies(8, 500, { ...yarn, truncate: false });
  near(untruncated[1], (1 / high) * (plain[1] / 4) + (1 - 1 / high) * plain[1], 'pair 1, untruncated');
});

test("YaRN's attention factor: 0.1 ln s + 1, DeepSeek's mscale ratio, or the config's own; it scales cos and sin", () => {
  near(ropeAttentionFactor(yarn), 0.1 * Math.log(4) + 1, 'paper default');
  near(ropeAttentionFactor({ ...yarn, mscale: 1, mscaleAllDim: 0.8 }), (0.1 * Math.log(4) + 1) / (0.08 * Math.log(4) + 1), 'mscale ratio');
  near(ropeAttentionFactor({ ...yarn, mscale: 1, mscaleAllDim: 1 }), 1, "V3's own setting");
  near(ropeAttentionFactor({ ...yarn, attentionFactor: 0.5 }), 0.5, 'explicit');
  near(ropeAttentionFactor({ type: 'linear', factor: 2 }), 1, 'linear');
  near(yarnMscale(1, 7), 1, 'no extension, no temperature');
  const tables = ropeTables({ rotDim: 8, theta: 500, scaling: yarn, maxPositions: 4 });
  const cos = tables.cos.toArray();
  const sin = tables.sin.toArray();
  const factor = 0.1 * Math.log(4) + 1;
  // Position 0: cos = factor, sin = 0; position 3, pair 0 (kept frequency 1): factor * cos(3).
  near(cos[0], Math.fround(factor), 'cos at 0');
  assert.equal(sin[0], 0);
  near(cos[3 * 4], Math.fround(factor * Math.cos(3)), 'cos at 3');
});
