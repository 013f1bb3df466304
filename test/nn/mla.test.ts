// Multi-head latent attention: the absorbed decode path over the latent cache computes what the naive path
// (per-head keys and values materialised) computes, the cache holds kv_lora_rank + rope numbers per token,
// and training reaches every projection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyLatentKvCache, MultiHeadLatentAttention, type MlaConfig } from '../../src/nn/mla.ts';
import { ropeTables } from '../../src/nn/rope.ts';
import { concat, mul, noGrad, randn, Rng, slice, sum, tensor, type Tensor } from '../../src/tensor/index.ts';

const config = (qLoraRank: number | null): MlaConfig => ({
  hiddenSize: 24, numHeads: 3, qLoraRank, kvLoraRank: 10, qkNopeHeadDim: 6, qkRopeHeadDim: 4, vHeadDim: 5, rmsNormEps: 1e-6,
  softmaxScale: 1 / Math.sqrt(6 + 4),
});
const tables = ropeTables({ rotDim: 4, theta: 10000, scaling: null, maxPositions: 32, interleaved: true });
const positions = (B: number, T: number, start = 0) => tensor(Array.from({ length: B * T }, (_, i) => start + (i % T)), [B, T], 'i32');

function maxDifference(a: Tensor, b: Tensor): number {
  const x = Array.from(a.toArray());
  const y = b.toArray();
  assert.equal(x.length, y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
}

describe('MultiHeadLatentAttention', () => {
  for (const qLoraRank of [8, null]) {
    it(`absorbed decoding over the latent cache equals the naive path (q_lora_rank ${qLoraRank})`, () => {
      const mla = new MultiHeadLatentAttention(config(qLoraRank), new Rng(1));
      const B = 2;
      const T = 7;
      // Weights of std 0.02 give near-uniform attention; larger ones make the check sensitive to the scores.
      for (const [, p] of mla.namedParameters()) if (p.ndim === 2) p.floats().set(randn(p.shape, new Rng(p.size), 0.4).toArray());
      const x = randn([B, T, 24], new Rng(2));
      noGrad(() => {
        const naive = mla.forward(x, positions(B, T), tables);
        // Prefill 4 tokens, then decode the other 3 one at a time.
        const cache = emptyLatentKvCache(B, T + 1, 10, 4);
        const outputs = [mla.forward(slice(x, 1, 0, 4), positions(B, 4), tables, cache)];
        for (let t = 4; t < T; t++) outputs.push(mla.forward(slice(x, 1, t, t + 1), positions(B, 1, t), tables, cache));
        assert.equal(cache.length, T);
        const scale = Math.max(...Array.from(naive.toArray(), Math.abs));
        // Float32 both ways; the absorbed path sums over d_c = 10 instead of 6 + 5 terms: ~1e-7 of the scale.
        assert.ok(maxDifference(concat(outputs, 1), naive) < 1e-5 * scale, `difference ${maxDifference(concat(outputs, 1), naive)}`);
      });
    });
  }

  it('masks left padding through kvStart on the absorbed path as the naive path does', () => {
    const mla = new MultiHeadLatentAttention(config(8), new Rng(3));
    const x = randn([1, 5, 24], new Rng(4));
    noGrad(() => {
      const alone = mla.forward(slice(x, 1, 2, 5), positions(1, 3), tables);
      const cache = emptyLatentKvCache(1, 6, 10, 4);
      const padded = mla.forward(x, tensor([0, 0, 0, 1, 2], [1, 5], 'i32'), tables, cache, tensor([2], [1], 'i32'));
      assert.ok(maxDifference(slice(padded, 1, 2, 5), alone) < 1e-5);
    });
  });

  it('caches kv_lora_rank + qk_rope_head_dim numbers per token, in one buffer whose values view the keys', () => {
    const cache = emptyLatentKvCache(2, 9, 512, 64);
    assert.deepEqual(cache.k.shape, [2, 9, 1, 576]);
    assert.equal(cache.k.storage.length, 2 * 9 * 576);
    assert.equal(cache.v.storage, cache.k.storage);
    assert.deepEqual(cache.v.shape, [2, 9, 1, 512]);
  });

  it('the naive path sends gradients to every projection and norm', () => {
    for (const qLoraRank of [8, null]) {
      const mla = new MultiHeadLatentAttention(config(qLoraRank), new Rng(5));
      const x = randn([2, 4, 24], new Rng(6));
      const out = mla.forward(x, positions(2, 4), tables);
      sum(mul(out, randn(out.shape, new Rng(7)))).backward();
      const names = mla.namedParameters().map(([n]) => n);
      assert.deepEqual(names, qLoraRank === null
        ? ['q_proj.weight', 'kv_a_proj_with_mqa.weight', 'kv_a_layernorm.weight', 'kv_b_proj.weight', 'o_proj.weight']
        : ['q_a_proj.weight', 'q_a_layernorm.weight', 'q_b_proj.weight', 'kv_a_proj_with_mqa.weight', 'kv_a_layernorm.weight', 'kv_b_proj.weight', 'o_proj.weight']);
      for (const [name, p] of mla.namedParameters()) {
        assert.ok(p.grad && p.grad.toArray().some((g) => g !== 0), `${name} got no gradient`);
      }
    }
  });
});
