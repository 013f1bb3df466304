import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matmul, mul, sum, tanh, tensor, withBackend, type Tensor } from '../../src/tensor/index.ts';
import { AdamW, clipGradNorm, releaseGradients, weightDecayGroups } from '../../src/train/optimizer.ts';

function param(values: number[], shape: number[]): Tensor {
  const p = tensor(values, shape);
  p.requiresGrad = true;
  return p;
}

// float32 storage: a few ulps of the hand values.
const close = (actual: ArrayLike<number>, expected: number[], tol = 1e-6) =>
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i] - e) <= tol, `element ${i}: ${actual[i]} vs ${e}`));

// One body on both CPU backends: the kernel is the native one in training, the reference one defines it.
for (const backend of ['reference', 'native'] as const) {
  test(`AdamW steps match a hand computation, with decay on weights and none on biases (${backend})`, () => withBackend(backend, () => {
    const w = param([1, -2], [1, 2]);
    const b = param([1], [1]);
    const opt = new AdamW([['layer.weight', w], ['layer.bias', b]], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
    w.grad = tensor([0.5, 0.1], [1, 2]);
    b.grad = tensor([0.5], [1]);
    opt.update(0.1);
    // t=1: m = 0.1 g, v = 0.001 g^2, m/(1-0.9) = g, sqrt(v/(1-0.999)) = |g|, so the Adam step is sign(g) = 1.
    // w -= 0.1 (1 + 0.1 w): 1 -> 0.89, -2 -> -2.08. The bias has no decay: 1 -> 0.9.
    close(w.floats(), [0.89, -2.08]);
    close(b.floats(), [0.9]);
    opt.update(0.1);
    // t=2, same gradient: m/(1-0.81) = g and v/(1-0.998001) = g^2 again, so the step is 1 again:
    // 0.89 - 0.1 (1 + 0.089) = 0.7811; -2.08 - 0.1 (1 - 0.208) = -2.1592.
    // Tolerance 1e-6: parameters are float32 (2^-24 ~ 6e-8 relative per rounding, a few roundings per step).
    close(w.floats(), [0.7811, -2.1592], 1e-6);
    close(b.floats(), [0.8], 1e-6);
    assert.equal(opt.step, 2);
  }));
}

test('weight decay applies to linear weights only: not to norms, biases or embeddings', () => {
  const named: Array<[string, Tensor]> = [
    ['model.embed_tokens.weight', param([0, 0], [1, 2])],
    ['model.layers.0.self_attn.q_proj.weight', param([0, 0], [1, 2])],
    ['model.layers.0.self_attn.q_proj.bias', param([0], [1])],
    ['model.norm.weight', param([1], [1])],
  ];
  const groups = weightDecayGroups(named, 0.1);
  assert.deepEqual(groups.map((g) => [g.weightDecay, g.params.map(([n]) => n)]), [
    [0.1, ['model.layers.0.self_attn.q_proj.weight']],
    [0, ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.bias', 'model.norm.weight']],
  ]);
});

test('an optimizer restored from stateDict continues exactly as the original', () => {
  const make = () => param([0.3, -0.7, 1.1], [3, 1]);
  const a = make();
  const optA = new AdamW([['w', a]]);
  const grads = [[0.2, -0.1, 0.4], [-0.3, 0.5, 0.1]];
  a.grad = tensor(grads[0], [3, 1]);
  optA.update(0.01);
  const saved = optA.stateDict();
  const b = param(Array.from(a.floats()), [3, 1]);
  const optB = new AdamW([['w', b]]);
  optB.loadStateDict({ step: saved.step, m: new Map([...saved.m].map(([k, v]) => [k, v.slice()])), v: new Map([...saved.v].map(([k, v]) => [k, v.slice()])) }, 'test');
  a.grad = tensor(grads[1], [3, 1]);
  b.grad = tensor(grads[1], [3, 1]);
  optA.update(0.01);
  optB.update(0.01);
  assert.deepEqual(Array.from(b.floats()), Array.from(a.floats()));
  assert.throws(() => new AdamW([['w', make()], ['u', make()]]).loadStateDict(saved, 'ckpt/optimizer.safetensors'), /ckpt\/optimizer.safetensors: optimizer state has no m for parameter 'u'/);
});

test('clipGradNorm returns the norm before clipping and scales gradients to the max norm without touching the old ones', () => {
  const a = param([0, 0], [2]);
  const b = param([0], [1]);
  const ga = tensor([3, 4], [2]);
  a.grad = ga;
  b.grad = tensor([12], [1]);
  const norm = clipGradNorm([a, b], 6.5);
  assert.equal(norm, 13); // sqrt(9 + 16 + 144)
  close(a.grad!.floats(), [1.5, 2], 1e-5);
  close(b.grad!.floats(), [6], 1e-5);
  assert.deepEqual(Array.from(ga.floats()), [3, 4]);
  const before = a.grad;
  assert.ok(Math.abs(clipGradNorm([a, b], 100) - 6.5) < 1e-5);
  assert.equal(a.grad, before, 'gradients under the limit are left as they are');
});

test('a step\'s end that releases its gradients (clip with release, releaseGradients) trains the same, and a released gradient throws', () => {
  // 64 x 64 floats, large enough for the recycling allocator; weights made by an op, as a model's are (randn).
  const values = (seed: number, n: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i) * 0.5);
  const run = (release: boolean) => {
    const w1 = mul(tensor(values(1, 4096), [64, 64]), 1).detach();
    const w2 = mul(tensor(values(2, 4096), [64, 64]), 1).detach();
    w1.requiresGrad = w2.requiresGrad = true;
    const optimizer = new AdamW([['w1', w1], ['w2', w2]]);
    let kept: Tensor | null = null;
    for (let step = 0; step < 4; step++) {
      const x = tensor(values(3 + step, 4096), [64, 64]);
      sum(mul(tanh(matmul(x, w1)), matmul(x, w2))).backward();
      kept = w1.grad;
      clipGradNorm([w1, w2], 0.5, { release });  // clips on every step: the norm is far above 0.5
      optimizer.update(1e-2);
      if (release) releaseGradients([w1, w2]);
      else for (const w of [w1, w2]) w.grad = null;
    }
    return { w1: w1.toArray(), w2: w2.toArray(), kept: kept! };
  };
  const plain = run(false), released = run(true);
  assert.deepEqual(released.w1, plain.w1);
  assert.deepEqual(released.w2, plain.w2);
  assert.equal(plain.kept.toArray().length, 4096, 'without release an old gradient stays readable');
  assert.throws(() => released.kept.toArray(), /used after its buffer was released/);
});
