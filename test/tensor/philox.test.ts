import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fillNormal, philox, streamUniform } from '../../src/tensor/philox.ts';
import { Rng, randn } from '../../src/tensor/index.ts';

describe('Philox4x32-10', () => {
  it('matches the known-answer vectors of Random123 (kat_vectors, philox4x32_10)', () => {
    const hex = (words: Uint32Array) => Array.from(words, (w) => w.toString(16).padStart(8, '0'));
    const out = new Uint32Array(4);
    assert.deepEqual(hex(philox(0, 0, 0, 0, 0, 0, out)), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const ones = 0xffffffff;
    assert.deepEqual(hex(philox(ones, ones, ones, ones, ones, ones, out)), ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    assert.deepEqual(hex(philox(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out)), ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });

  it('normal draws have mean 0 and the asked deviation, and a prefix does not depend on the length', () => {
    const n = 200001;
    const x = new Float64Array(n);
    fillNormal(x, n, 7, 11, 2);
    const mean = x.reduce((a, v) => a + v, 0) / n;
    const sd = Math.sqrt(x.reduce((a, v) => a + (v - mean) ** 2, 0) / n);
    // Standard errors: 2 / sqrt(n) = 0.0045 for the mean, 2 / sqrt(2n) = 0.003 for the deviation; 5 of each.
    assert.ok(Math.abs(mean) < 0.023, `mean ${mean}`);
    assert.ok(Math.abs(sd - 2) < 0.016, `sd ${sd}`);
    const shorter = new Float64Array(1001);
    fillNormal(shorter, 1001, 7, 11, 2);
    assert.deepEqual(shorter, x.subarray(0, 1001));
  });

  it('a stream uniform depends on its seed and step only, and seeds above 2^32 differ from their low words', () => {
    assert.equal(streamUniform(5, 3), streamUniform(5, 3));
    assert.notEqual(streamUniform(5, 3), streamUniform(5, 4));
    assert.notEqual(streamUniform(5, 3), streamUniform(5 + 2 ** 32, 3));
    const u = Array.from({ length: 20000 }, (_, step) => streamUniform(42, step));
    assert.ok(u.every((v) => v >= 0 && v < 1));
    const mean = u.reduce((a, v) => a + v, 0) / u.length;
    assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`); // standard error 0.002
  });

  it('randn takes a key from the generator: the same seed gives the same tensor, a new draw another', () => {
    const a = randn([3, 5], new Rng(1), 0.5).toArray();
    assert.deepEqual(randn([3, 5], new Rng(1), 0.5).toArray(), a);
    const rng = new Rng(1);
    randn([2], rng);
    assert.notDeepEqual(randn([3, 5], rng, 0.5).toArray(), a);
  });
});
