// DeepSeekMoE: routing on hand-made scores, parity with transformers 5.17 (fixture), the batched dispatch
// against a per-token loop, float64 gradients of the whole block, the bias update and the balance loss.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  DeepSeekMoE, expertGates, moeForward, selectExperts, sequenceBalanceLoss, validateMoeConfig, type MoeConfig, type MoeParts,
} from '../../src/nn/moe.ts';
import {
  add, linear, mul, noGrad, randn, reshape, Rng, sigmoid, slice, sum, swiglu, tensor, type Tensor,
} from '../../src/tensor/index.ts';
import { UserError } from '../../src/util/errors.ts';
import { fromFloat32 } from '../../src/io/safetensors.ts';
import { gradcheck, leaf } from '../tensor/gradcheck.ts';

const base: MoeConfig = {
  hiddenSize: 8, moeIntermediateSize: 6, numRoutedExperts: 4, numSharedExperts: 1, numExpertsPerToken: 2, numGroups: 1, topkGroup: 1,
  normTopkProb: true, routedScalingFactor: 2.5,
};

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string) => {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tolerance ${tolerance})`);
  }
};

describe('routing on hand-made scores', () => {
  it('selects with the bias, gates with the unbiased scores, normalised, times the scaling factor', () => {
    const scores = tensor([0.9, 0.8, 0.3, 0.2]).floats();
    // choice scores 0.9, 0.8, 1.0, 0.2: the bias lifts expert 2 above expert 1
    const picked = selectExperts(scores, tensor([0, 0, 0.7, 0]).floats(), 1, base);
    assert.deepEqual([...picked], [0, 2]);
    // without the bias the two best are 0 and 1
    assert.deepEqual([...selectExperts(scores, tensor([0, 0, 0, 0]).floats(), 1, base)], [0, 1]);
    // gates come from s (0.9, 0.3), not s + b: 0.9 / 1.2 * 2.5 = 1.875 and 0.3 / 1.2 * 2.5 = 0.625
    const s = tensor([0.9, 0.8, 0.3, 0.2], [1, 4]);
    const chosen = tensor(picked, [1, 2], 'i32');
    close(expertGates(s, chosen, base).toArray(), [1.875, 0.625], 1e-6, 'normalised gates');
    // without normalisation: 0.9 * 2.5 and 0.3 * 2.5
    close(expertGates(s, chosen, { ...base, normTopkProb: false }).toArray(), [2.25, 0.75], 1e-6, 'raw gates');
    close(expertGates(s, chosen, { ...base, routedScalingFactor: 1 }).toArray(), [0.75, 0.25], 1e-6, 'unscaled gates');
  });

  it('keeps the topkGroup groups with the best top-2 sums and picks only inside them', () => {
    const c: MoeConfig = { ...base, numRoutedExperts: 8, numGroups: 4, topkGroup: 2, numExpertsPerToken: 2 };
    // group sums of the two best: 0.95 + 0.05 = 1.0, 0.6 + 0.6 = 1.2, 0.55 + 0.55 = 1.1, 0.2: groups 1 and 2 kept,
    // so the single best expert (0, in group 0) is not eligible
    const scores = tensor([0.95, 0.05, 0.6, 0.6, 0.55, 0.55, 0.1, 0.1]).floats();
    const zero = new Float32Array(8);
    assert.deepEqual([...selectExperts(scores, zero, 1, c)], [2, 3]);
    assert.deepEqual([...selectExperts(scores, zero, 1, { ...c, numGroups: 1, topkGroup: 1 })], [0, 2]);
    // a group is scored by its best two, not its best one: group 0 = [0.95, 0.05] loses to [0.6, 0.6]
    const oneBest = tensor([0.95, 0.05, 0.6, 0.6, 0.1, 0.1, 0.2, 0.2]).floats();
    assert.deepEqual([...selectExperts(oneBest, zero, 1, { ...c, topkGroup: 1 })], [2, 3]);
  });

  it('masks the other groups with -inf (transformers 5.17), so negative choice scores never lose to masked experts', () => {
    const c: MoeConfig = { ...base, numRoutedExperts: 8, numGroups: 4, topkGroup: 2, numExpertsPerToken: 3 };
    // every choice score is negative (bias -1); groups 0 and 1 are best; a 0.0 mask (older transformers) would
    // rank the masked experts of groups 2 and 3 (0.0) above the kept ones (< 0)
    const scores = tensor([0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.3, 0.05]).floats();
    const bias = new Float32Array(8).fill(-1);
    assert.deepEqual([...selectExperts(scores, bias, 1, c)], [0, 1, 2]);
  });

  it('rejects configs whose routing cannot work, naming the field', () => {
    assert.throws(() => validateMoeConfig({ ...base, numGroups: 3 }, 'config.json'), (e: unknown) => e instanceof UserError && /numRoutedExperts \(4\) must be a multiple of numGroups \(3\)/.test(e.message));
    assert.throws(() => validateMoeConfig({ ...base, numGroups: 4, topkGroup: 1 }, 'x'), /at least 2 experts/);
    assert.throws(() => validateMoeConfig({ ...base, numGroups: 2, topkGroup: 1, numExpertsPerToken: 3 }, 'x'), /numExpertsPerToken \(3\) exceeds the 2 experts/);
    validateMoeConfig(base, 'x');
  });
});

// transformers 5.17's DeepseekV3MoE on fixed weights (test/nn/fixtures/make_hf_moe.py, run on the GPU machine
// where torch and transformers are installed).
interface FixtureCase {
  name: string;
  config: Record<string, number | boolean>;
  weights: Record<string, { shape: number[]; data: number[] }>;
  input: { shape: number[]; data: number[] };
  topkIndices: number[][];
  topkWeights: number[][];
  output: number[];
  upstream: number[];
  inputGrad: number[];
  routerWeightGrad: number[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/hf-moe.json', import.meta.url), 'utf8')) as { transformers: string; cases: FixtureCase[] };

function fixtureModule(fc: FixtureCase): DeepSeekMoE {
  const h = fc.config;
  const config: MoeConfig = {
    hiddenSize: h.hidden_size as number, moeIntermediateSize: h.moe_intermediate_size as number, numRoutedExperts: h.n_routed_experts as number,
    numSharedExperts: h.n_shared_experts as number, numExpertsPerToken: h.num_experts_per_tok as number, numGroups: h.n_group as number,
    topkGroup: h.topk_group as number, normTopkProb: h.norm_topk_prob as boolean, routedScalingFactor: h.routed_scaling_factor as number,
  };
  const moe = new DeepSeekMoE(config, new Rng(0));
  const values = new Map(Object.entries(fc.weights).map(([name, w]) => [name.replace(/^mlp\./, ''), fromFloat32(w.shape, Float32Array.from(w.data), 'F32')]));
  assert.deepEqual([...values.keys()].sort(), moe.namedParameters().map(([n]) => n).sort(), 'tensor names are transformers\'');
  moe.loadState(values, fc.name);
  return moe;
}

describe(`parity with transformers ${fixture.transformers}`, () => {
  for (const fc of fixture.cases) {
    it(`${fc.name}: same experts, gates, output and gradients`, () => {
      const moe = fixtureModule(fc);
      const x = tensor(fc.input.data, fc.input.shape);
      x.requiresGrad = true;
      const n = x.size / moe.config.hiddenSize;
      const scores = noGrad(() => sigmoid(linear(reshape(x, [n, moe.config.hiddenSize]), moe.gate.weight)));
      const experts = selectExperts(scores.floats(), moe.gate.bias.floats(), n, moe.config);
      const K = moe.config.numExpertsPerToken;
      assert.deepEqual(Array.from({ length: n }, (_, t) => [...experts.subarray(t * K, (t + 1) * K)]), fc.topkIndices);
      // float32 both sides; sigmoid, the normalising sum and the scale round differently by a few ulps
      close(expertGates(scores, tensor(experts, [n, K], 'i32'), moe.config).toArray(), fc.topkWeights.flat(), 1e-6, 'gates');
      const { output } = moe.forward(x);
      close(output.toArray(), fc.output, 1e-5, 'output');
      sum(mul(output, tensor(fc.upstream, output.shape))).backward();
      close(x.grad!.toArray(), fc.inputGrad, 1e-5, 'd output / d x');
      close(moe.gate.weight.grad!.toArray(), fc.routerWeightGrad, 1e-5, 'd output / d router weight');
      assert.equal(moe.gate.bias.grad, null, 'the selection bias gets no gradient');
    });
  }

  it('the grouped case exercises group limiting (plain top-K would route some token elsewhere)', () => {
    const fc = fixture.cases.find((c) => c.name === 'groups')!;
    const moe = fixtureModule(fc);
    const n = fc.input.data.length / moe.config.hiddenSize;
    const scores = noGrad(() => sigmoid(linear(tensor(fc.input.data, [n, moe.config.hiddenSize]), moe.gate.weight)));
    const plain = selectExperts(scores.floats(), moe.gate.bias.floats(), n, { ...moe.config, numGroups: 1, topkGroup: 1 });
    assert.notDeepEqual([...plain], fc.topkIndices.flat());
  });
});

/** A per-token loop: route the token alone, run each chosen expert on its one row, add up. */
function naiveForward(moe: DeepSeekMoE, x: Tensor): Float32Array {
  const c = moe.config;
  const n = x.size / c.hiddenSize;
  const flat = reshape(x, [n, c.hiddenSize]);
  const out = new Float32Array(n * c.hiddenSize);
  noGrad(() => {
    for (let t = 0; t < n; t++) {
      const row = slice(flat, 0, t, t + 1);
      const s = sigmoid(linear(row, moe.gate.weight)).floats();
      const picked = selectExperts(s, moe.gate.bias.floats(), 1, c);
      const chosen = [...picked].map((e) => s[e]);
      const norm = c.normTopkProb ? chosen.reduce((a, b) => a + b, 0) + 1e-20 : 1;
      let y = moe.sharedExperts!.forward(row);
      picked.forEach((e, k) => {
        y = add(y, mul(moe.experts[e].forward(row), (chosen[k] / norm) * c.routedScalingFactor));
      });
      out.set(y.toArray(), t * c.hiddenSize);
    }
  });
  return out;
}

describe('batched dispatch', () => {
  it('equals a per-token loop on random inputs (float32, within 1e-5)', () => {
    const c: MoeConfig = { ...base, hiddenSize: 16, moeIntermediateSize: 12, numRoutedExperts: 6, numGroups: 3, topkGroup: 2, numExpertsPerToken: 2 };
    const moe = new DeepSeekMoE(c, new Rng(3));
    const rng = new Rng(4);
    // larger router weights than the 0.02 init spread the scores, so the routing differs between tokens
    moe.gate.weight.floats().set(randn(moe.gate.weight.shape, rng, 0.5).floats());
    moe.gate.bias.floats().set(randn([6], rng, 0.1).floats());
    const x = randn([2, 7, 16], rng);
    const batched = noGrad(() => moe.forward(x).output.toArray());
    // Outputs are O(0.01-0.1); the two paths sum the same float32 products in different orders (GEMM blocks vs
    // row by row), which differ by ~1e-7 relative.
    close(batched, naiveForward(moe, x), 1e-5, 'batched vs per-token');
    const used = new Set(selectExperts(noGrad(() => sigmoid(linear(reshape(x, [14, 16]), moe.gate.weight))).floats(), moe.gate.bias.floats(), 14, c));
    assert.ok(used.size >= 4, `the random routing should use most experts, used ${[...used]}`);
  });
});

describe('gradients (float64, central differences)', () => {
  // A tiny block with float64 weights, run through the same moeForward that DeepSeekMoE.forward runs.
  const c: MoeConfig = { ...base, hiddenSize: 4, moeIntermediateSize: 3, numRoutedExperts: 4, numGroups: 2, topkGroup: 1, numExpertsPerToken: 2 };
  const biasValues = [0.05, -0.1, 0.0, 0.1];
  const bias = tensor(biasValues, [4], 'f64');
  const expertLeaves = Array.from({ length: 4 }, (_, e) => [leaf([3, 4], 100 + e), leaf([3, 4], 110 + e), leaf([4, 3], 120 + e)]);
  const sharedLeaves = [leaf([3, 4], 130), leaf([3, 4], 131), leaf([4, 3], 132)];
  const swigluBlock = ([g, u, d]: Tensor[], rows: Tensor) => linear(swiglu(linear(rows, g), linear(rows, u)), d);
  const parts = (routerWeight: Tensor): MoeParts => ({
    routerWeight, bias,
    experts: { gate: expertLeaves.map((l) => l[0]), up: expertLeaves.map((l) => l[1]), down: expertLeaves.map((l) => l[2]) },
    shared: (h) => swigluBlock(sharedLeaves, h),
  });
  const x = leaf([2, 3, 4], 140);
  const router = leaf([4, 4], 141);

  it('the routing margins are wide enough for finite differences', () => {
    // A perturbation of 1e-6 must not change any choice: the K-th and (K+1)-th choice scores (and group scores)
    // of every token are more than 1e-3 apart.
    const s = noGrad(() => sigmoid(linear(reshape(x, [6, 4]), router))).toArray();
    for (let t = 0; t < 6; t++) {
      const choice = [0, 1, 2, 3].map((e) => s[t * 4 + e] + biasValues[e]);
      const groups = [choice[0] + choice[1], choice[2] + choice[3]];
      assert.ok(Math.abs(groups[0] - groups[1]) > 1e-3, `token ${t}: group scores ${groups}`);
    }
  });

  it('the whole block, with respect to the input, the router weight (through the gates) and the experts', () => {
    // The expert leaves reach moeForward through parts(); listing them as inputs makes gradcheck perturb them.
    gradcheck((xi, w) => moeForward(xi, parts(w), c).output, [x, router, expertLeaves[0][0], expertLeaves[1][2], sharedLeaves[0]]);
  });

  it('the sequence-wise balance loss, with respect to the input and the router weight', () => {
    gradcheck((xi, w) => moeForward(xi, parts(w), c, 0.5).balanceLoss!, [x, router]);
  });
});

describe('auxiliary-loss-free balancing', () => {
  it('updateBias moves each bias by gamma against its load, counting only grad-recording forwards', () => {
    const c: MoeConfig = { ...base, hiddenSize: 4, numRoutedExperts: 3, numExpertsPerToken: 1 };
    const moe = new DeepSeekMoE(c, new Rng(0), { biasUpdateSpeed: 0.01 });
    moe.countLoad(tensor([3, 1, 2]));
    noGrad(() => moe.forward(randn([5, 4], new Rng(1))));
    assert.deepEqual(moe.pendingLoad(), [3, 1, 2], 'a noGrad forward (validation, sampling) counts nothing');
    const stats = moe.updateBias()!;
    // mean load 2: expert 0 is overloaded (bias down), expert 1 underloaded (up), expert 2 exactly at the mean
    close(moe.gate.bias.toArray(), [-0.01, 0.01, 0], 1e-9, 'bias');
    assert.equal(stats.maxLoadRatio, 1.5);
    assert.deepEqual(stats.load, [3, 1, 2]);
    assert.deepEqual(moe.pendingLoad(), [0, 0, 0], 'the counts start over for the next step');
    assert.equal(moe.updateBias(), null, 'no tokens, no update');
    moe.forward(randn([5, 4], new Rng(2)));
    assert.equal(moe.pendingLoad().reduce((a, b) => a + b, 0), 5, 'a training forward counts each token once (K = 1)');
  });

  it('balances a skewed router over a few hundred steps, and gamma 0 leaves it skewed', () => {
    const c: MoeConfig = { ...base, hiddenSize: 8, moeIntermediateSize: 4, numRoutedExperts: 8, numExpertsPerToken: 2, numSharedExperts: 0 };
    const tokens = 512;
    const run = (gamma: number) => {
      const moe = new DeepSeekMoE(c, new Rng(5), { biasUpdateSpeed: gamma });
      // Feature 0 of every token is 1 and router column 0 ramps from +2 (expert 0) to -2 (expert 7): a fixed
      // preference for the low experts, on top of a random part (std 0.5 weights) that varies between tokens.
      const w = moe.gate.weight.floats();
      w.set(randn([64], new Rng(7), 0.5).floats());
      for (let e = 0; e < 8; e++) w[e * 8] = 2 - (4 * e) / 7;
      const rng = new Rng(6);
      const ratios: number[] = [];
      for (let step = 0; step < 300; step++) {
        const x = randn([tokens, 8], rng);
        for (let t = 0; t < tokens; t++) x.floats()[t * 8] = 1;
        moe.forward(x);
        ratios.push(moe.updateBias()!.maxLoadRatio);
      }
      // 1024 assignments a step over 8 experts: sampling noise alone puts max/mean near 1.1
      const last = ratios.slice(-50).reduce((p, q) => p + q, 0) / 50;
      return { first: ratios[0], last, bias: Array.from(moe.gate.bias.floats()) };
    };
    const balanced = run(0.01);
    assert.ok(balanced.first > 2.5, `the router starts skewed (max/mean ${balanced.first})`);
    assert.ok(balanced.last < 1.3, `after 300 steps max/mean load is ${balanced.last}`);
    assert.ok(balanced.bias[0] < 0 && balanced.bias[7] > 0, `the favoured expert's bias fell, the shunned one's rose: ${balanced.bias}`);
    const frozen = run(0);
    assert.ok(frozen.last > 2.5, `without the update the skew stays (${frozen.last})`);
  });
});

describe('sequence-wise balance loss (V3 eq. 17-20)', () => {
  it('matches a hand-worked example', () => {
    const c: MoeConfig = { ...base, numRoutedExperts: 3, numExpertsPerToken: 1 };
    // One sequence of T = 2 tokens. Top-1: token 0 -> expert 0, token 1 -> expert 1, so
    // f = E / (K T) * counts = 3/2 * [1, 1, 0]. s' = s / sum(s): [4/7, 2/7, 1/7] and [0.1, 0.6, 0.3];
    // P = their mean. L = alpha * (1.5 (4/7 + 0.1) / 2 + 1.5 (2/7 + 0.6) / 2) = alpha * 0.75 (6/7 + 0.7).
    const scores = tensor([0.8, 0.4, 0.2, 0.1, 0.6, 0.3], [2, 3], 'f64');
    const expected = 0.75 * (6 / 7 + 0.7);
    close([sequenceBalanceLoss(scores, 1, c, 1).item()], [expected], 1e-12, 'L_Bal');
    close([sequenceBalanceLoss(scores, 1, c, 1e-4).item()], [1e-4 * expected], 1e-16, 'alpha');
    // Two sequences are averaged: the same pair twice gives the same value; each token alone (T = 1) gives
    // 3 * 4/7 for token 0 and 3 * 0.6 for token 1, mean 0.5 (12/7 + 1.8).
    const twice = tensor([0.8, 0.4, 0.2, 0.1, 0.6, 0.3, 0.8, 0.4, 0.2, 0.1, 0.6, 0.3], [4, 3], 'f64');
    close([sequenceBalanceLoss(twice, 2, c, 1).item()], [expected], 1e-12, 'mean over sequences');
    close([sequenceBalanceLoss(scores, 2, c, 1).item()], [0.5 * (12 / 7 + 1.8)], 1e-12, 'sequences of one token');
  });

  it('is alpha when routing and affinities are uniform (its value at perfect balance)', () => {
    const c: MoeConfig = { ...base, numRoutedExperts: 4, numExpertsPerToken: 1 };
    // 4 tokens, each top-1 on a different expert, each with its own expert slightly ahead
    const s = [0.6, 0.5, 0.5, 0.5, 0.5, 0.6, 0.5, 0.5, 0.5, 0.5, 0.6, 0.5, 0.5, 0.5, 0.5, 0.6];
    close([sequenceBalanceLoss(tensor(s, [4, 4], 'f64'), 1, c, 1).item()], [1], 1e-12, 'balanced');
  });

  it('DeepSeekMoE returns it only when alpha > 0 and gradients are recorded', () => {
    const x = randn([2, 3, 8], new Rng(9));
    assert.equal(new DeepSeekMoE(base, new Rng(1)).forward(x).balanceLoss, null);
    const withLoss = new DeepSeekMoE(base, new Rng(1), { seqBalanceWeight: 1e-4 });
    assert.ok(withLoss.forward(x).balanceLoss!.item() > 0);
    assert.equal(noGrad(() => withLoss.forward(x).balanceLoss), null);
  });
});

describe('module', () => {
  it('has transformers\' tensor names and shapes, and a bias that is not trained by gradient', () => {
    const moe = new DeepSeekMoE({ ...base, numSharedExperts: 2 }, new Rng(0));
    const shapes = Object.fromEntries(moe.namedParameters().map(([n, p]) => [n, [...p.shape]]));
    assert.deepEqual(shapes['experts.3.gate_proj.weight'], [6, 8]);
    assert.deepEqual(shapes['experts.3.down_proj.weight'], [8, 6]);
    assert.deepEqual(shapes['gate.weight'], [4, 8]);
    assert.deepEqual(shapes['gate.e_score_correction_bias'], [4]);
    assert.deepEqual(shapes['shared_experts.up_proj.weight'], [12, 8]);
    assert.equal(Object.keys(shapes).length, 4 * 3 + 2 + 3);
    assert.equal(moe.gate.bias.requiresGrad, false);
  });
});
