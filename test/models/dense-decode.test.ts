// The fused CUDA decode step of a dense model (src/models/dense-decode.ts) against the layer-by-layer one
// (DenseModel.lastLogits with a device step), on fresh random weights, biases and norm scales: the same logits
// and the same keys and values written into the cache, in fewer kernels. Without a GPU or the built library
// (`npm run build:cuda`) the test is skipped with the reason.
//
// Tolerances (relative to the norm of the unfused result): float32, 1e-5 (the two differ only in the order of
// the GEMMs' sums, cuBLASLt choosing its algorithm for the concatenated shapes); bf16 precision, 1e-2 (the bf16
// bound of test/tensor/cuda.test.ts: a sum that lands on the other side of a bf16 rounding moves an operand of
// the next GEMM by 2^-8).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { denseDecodeLogits, denseDecodeWeights, disposeDecodeWeights } from '../../src/models/dense-decode.ts';
import { DenseModel, denseConfig } from '../../src/models/dense.ts';
import { cudaAvailable } from '../../src/tensor/backends/cuda.ts';
import { captureGraph, copyInto, noGrad, setSkinnyGemmRows, packBf16, profileCuda, randn, Rng, scope, setMatmulPrecision, tensor, withDevice, type CacheFormat, type Precision, type Tensor } from '../../src/tensor/index.ts';

const available = cudaAvailable();
const skip = available.ok ? false : available.reason;
const seed = Number(process.env.R1_TEST_SEED ?? Date.now() % 1_000_000_007);
if (available.ok) console.log(`# dense-decode.test.ts seed ${seed} (replay with R1_TEST_SEED=${seed})`);

// Values of a float32 tensor, or of a bf16-packed one widened (element 2i in the low half of word i).
function values(t: Tensor, format: CacheFormat): Float64Array {
  const words = Float32Array.from(t.toArray());
  if (format === 'f32') return Float64Array.from(words);
  const halves = new Uint16Array(words.buffer);
  return Float64Array.from(halves, (bits) => new Float32Array(Uint32Array.of(bits * 65536).buffer)[0]);
}

function relativeError(got: Float64Array, want: Float64Array): number {
  assert.equal(got.length, want.length);
  let diff = 0;
  let norm = 0;
  want.forEach((w, i) => {
    diff += (got[i] - w) ** 2;
    norm += w * w;
  });
  return Math.sqrt(diff / norm);
}

describe('the fused CUDA decode step of a dense model', { skip }, () => {
  const cases: [Precision, CacheFormat, number][] = [['f32', 'f32', 1e-5], ['bf16', 'f32', 1e-2], ['bf16', 'bf16', 1e-2]];
  for (const [precision, format, tolerance] of cases) {
    it(`gives lastLogits' logits and cache writes in about half its kernel calls or fewer (${precision} precision, ${format} cache)`, () => {
      const rng = new Rng(seed);
      setMatmulPrecision(precision);
      try {
        withDevice('cuda', () => scope(() => noGrad(() => {
          const { model, ids, positions, start, step, newCache } = decodeCase(rng, format);
          const [unfusedCache, fusedCache] = [newCache(), newCache()];
          const unfused = profileCuda(() => model.lastLogits(ids, { positions, cache: unfusedCache, kvStart: start, step }));
          const weights = denseDecodeWeights(model);
          const fused = profileCuda(() => denseDecodeLogits(model, weights, ids, positions, fusedCache, start, step));
          disposeDecodeWeights(weights);

          const error = relativeError(values(fused.result, 'f32'), values(unfused.result, 'f32'));
          console.log(`#   ${precision} precision, ${format} cache: logits within ${error.toExponential(2)}; kernel calls ${calls(fused.rows)} fused, ${calls(unfused.rows)} layer by layer`);
          assert.ok(error <= tolerance, `logits: ${error}`);
          unfusedCache.forEach((layer, l) => layer.buffers.forEach((buffer, i) => {
            const cacheError = relativeError(values(fusedCache[l].buffers[i], format), values(buffer, format));
            assert.ok(cacheError <= tolerance, `layer ${l} ${i === 0 ? 'keys' : 'values'}: ${cacheError}`);
          }));
          // Per layer ~20 calls become 9 in float32 (plus the embedding, first norm and head), and ~28 become 10 in
          // bf16 (where the layer-by-layer step also widens the bf16 outputs that its float32 kernels read): measured
          // 21 fused against 37 to 43 layer by layer in float32, 19 against 60 in bf16.
          assert.ok(calls(fused.rows) < 0.6 * calls(unfused.rows), `${calls(fused.rows)} kernel calls fused, ${calls(unfused.rows)} unfused`);
        })));
      } finally {
        setMatmulPrecision('f32');
      }
    });
  }

  // With the skinny GEMM on (here up to 64 rows) and off: its epilogues and overlapped launches too.
  for (const skinnyRows of [64, 0]) {
    it(`replayed from a CUDA graph, whose kernels overlap the tails of the ones before, gives the eager step's logits and cache writes bit for bit (skinny GEMM ${skinnyRows ? 'on' : 'off'})`, () => {
      const rng = new Rng(seed + 1);
      setMatmulPrecision('bf16');
      const previous = setSkinnyGemmRows(skinnyRows);
      try {
        withDevice('cuda', () => scope(() => noGrad(() => {
          const { model, ids, positions, start, step, newCache } = decodeCase(rng, 'bf16');
          const [eagerCache, graphCache] = [newCache(), newCache()];
          const weights = denseDecodeWeights(model);
          const eager = denseDecodeLogits(model, weights, ids, positions, eagerCache, start, step);
          const { graph, result } = captureGraph(() => denseDecodeLogits(model, weights, ids, positions, graphCache, start, step));
          graph.launch();
          assert.deepEqual(values(result, 'f32'), values(eager, 'f32'), 'logits');
          eagerCache.forEach((layer, l) => layer.buffers.forEach((buffer, i) => assert.deepEqual(values(graphCache[l].buffers[i], 'bf16'), values(buffer, 'bf16'), `layer ${l} buffer ${i}`)));
          graph.dispose();
          disposeDecodeWeights(weights);
        })));
      } finally {
        setSkinnyGemmRows(previous);
        setMatmulPrecision('f32');
      }
    });
  }
});

/**
 * A 2-layer model with random biases and norm scales, one decode step's inputs for 3 rows at column 9 of a
 * 12-column cache, and caches of `format` that all hold the same random earlier keys and values.
 */
function decodeCase(rng: Rng, format: CacheFormat) {
  const model = new DenseModel(denseConfig('1m', 96, { hiddenSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64, numLayers: 2, maxPositionEmbeddings: 32 }), seed);
  for (const [name, p] of model.namedParameters()) {
    if (name.endsWith('.bias') || name.endsWith('norm.weight')) copyInto(randn(p.shape, rng, name.endsWith('.bias') ? 0.5 : 1), p);
  }
  const B = 3;
  const capacity = 12;
  const column = 9;
  const kvStart = [0, 2, 5];
  const ids = tensor([5, 61, 90], [B, 1], 'i32');
  const positions = tensor(kvStart.map((s) => column - s), [B, 1], 'i32');
  const start = tensor(kvStart, [B], 'i32');
  const step = { column: tensor([column, column, column], [B], 'i32'), kvEnd: tensor([column + 1, column + 1, column + 1], [B], 'i32') };
  const filled = model.newCache(B, capacity, 'f32').map((layer) => layer.buffers.map((buffer) => randn(buffer.shape, rng)));
  const newCache = () => {
    const cache = model.newCache(B, capacity, format);
    cache.forEach((layer, l) => layer.buffers.forEach((buffer, i) => copyInto(format === 'bf16' ? packBf16(filled[l][i]) : filled[l][i], buffer)));
    return cache;
  };
  return { model, ids, positions, start, step, newCache };
}

// Kernel calls of a profile, bf16 roundings of GEMM operands included (profileCuda's rows).
function calls(rows: { what: string; calls: number }[]): number {
  return rows.filter((row) => row.what !== 'between calls').reduce((total, row) => total + row.calls, 0);
}
