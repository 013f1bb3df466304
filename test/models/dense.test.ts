// Model-level properties of the dense Llama/Qwen2 decoder: the size of each preset, the tied and untied
// output head, gradients reaching every parameter, and the Qwen2-style q/k/v bias.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DenseModel, denseConfig } from '../../src/models/dense.ts';
import { copyInto, noGrad, randn, Rng, sumSquares, tensor } from '../../src/tensor/index.ts';
import { tinyConfig } from '../generate/fixtures.ts';

describe('DenseModel', () => {
  it('has the parameter count of each preset, worked out by hand', () => {
    // Per layer: two RMSNorm scales (2h), q (h*h + h bias), k and v (h*kv + kv bias each, kv = kvHeads * headDim),
    // o (h*h), SwiGLU gate/up/down (3*h*ffn); plus the tied embedding V*h and the final norm h. With V = 4096:
    //   1m:  h 128, kv 64,  ffn 352:  256 + 16512 + 2*8256 + 16384 + 135168 = 184832 per layer, x4 = 739328,
    //        + 524288 + 128 = 1263744
    //   5m:  h 256, kv 128, ffn 688:  512 + 65792 + 2*32896 + 65536 + 528384 = 726016, x6 = 4356096,
    //        + 1048576 + 256 = 5404928
    //   20m: h 512, kv 256, ffn 1376: 1024 + 262656 + 2*131328 + 262144 + 2113536 = 2902016, x6 = 17412096,
    //        + 2097152 + 512 = 19509760
    const expected = { '1m': 1263744, '5m': 5404928, '20m': 19509760 } as const;
    for (const [size, count] of Object.entries(expected)) {
      assert.equal(new DenseModel(denseConfig(size as keyof typeof expected, 4096)).parameterCount(), count, size);
    }
  });

  it('ties the output head to the embedding, or gives it its own matrix', () => {
    const tied = new DenseModel(tinyConfig({ tieWordEmbeddings: true }), 1);
    const untied = new DenseModel(tinyConfig({ tieWordEmbeddings: false }), 1);
    const names = (m: DenseModel) => m.namedParameters().map(([n]) => n);
    assert.equal(tied.lmHead, tied.embedTokens.weight);
    assert.ok(!names(tied).includes('lm_head.weight'));
    assert.ok(names(untied).includes('lm_head.weight'));
    assert.notEqual(untied.lmHead, untied.embedTokens.weight);
    assert.equal(untied.parameterCount() - tied.parameterCount(), 304 * 32);
    // The untied head is what the logits read: changing it changes them, and the embedding keeps its values.
    const ids = tensor([1, 2, 3], [1, 3], 'i32');
    const before = noGrad(() => untied.forward(ids)).toArray();
    noGrad(() => copyInto(randn(untied.lmHead.shape, new Rng(9), 0.02), untied.lmHead));
    assert.notDeepEqual(noGrad(() => untied.forward(ids)).toArray(), before);
    assert.deepEqual(untied.embedTokens.weight.toArray(), new DenseModel(tinyConfig({ tieWordEmbeddings: false }), 1).embedTokens.weight.toArray());
  });

  for (const tie of [true, false]) {
    it(`backward reaches every parameter (${tie ? 'tied' : 'untied'} head)`, () => {
      const model = new DenseModel(tinyConfig({ tieWordEmbeddings: tie }), 2);
      // Biases start at zero and norm scales at one; a non-zero gradient at those points is still expected.
      const ids = tensor([3, 1, 4, 1, 5, 9, 2, 6], [2, 4], 'i32');
      const targets = tensor([1, 4, 1, 5, 9, 2, 6, -100], [2, 4], 'i32');
      model.loss(ids, targets).backward();
      for (const [name, p] of model.namedParameters()) {
        assert.ok(p.grad, `${name} has no gradient`);
        assert.ok(sumSquares(p.grad) > 0, `${name} has a zero gradient`);
      }
    });
  }

  it('has q/k/v biases only with attentionBias, and never an o_proj or MLP bias', () => {
    const biases = (attentionBias: boolean) => new DenseModel(tinyConfig({ attentionBias, numLayers: 1 }))
      .namedParameters().map(([n]) => n).filter((n) => n.endsWith('.bias'));
    assert.deepEqual(biases(true), ['model.layers.0.self_attn.q_proj.bias', 'model.layers.0.self_attn.k_proj.bias', 'model.layers.0.self_attn.v_proj.bias']);
    assert.deepEqual(biases(false), []);
  });
});
