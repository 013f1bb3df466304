// The MoE ops of src/tensor/moe.ts: on the CPU against direct definitions (a per-expert loop, float64 gradients
// by central differences), and on CUDA against the CPU on fresh random inputs (the seed comes from the clock and
// is printed; replay with R1_TEST_SEED=<seed>). Without a GPU or the built library the CUDA part is skipped with
// the reason.
//
// Tolerances: the routing, the counts and the dispatch are integers and must be equal (the device adds and
// compares the same float32 numbers as selectExperts); the grouped GEMMs and the MLA decode attention are float32
// sums in another order than the CPU's, within 1e-5 of the norm (with a bf16 latent cache too: the reference reads
// the same rounded numbers).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeepSeekMoE, type MoeConfig } from '../../src/nn/moe.ts';
import { cudaAvailable } from '../../src/tensor/backends/cuda.ts';
import {
  add, attention, copyInto, expertCounts, groupedLinear, linear, mlaDecodeAttention, moeDispatch, moeRoute, mul, noGrad, packBf16, rand, randn, Rng, scope, selectExperts, setGrad, sigmoid,
  slice, sum, tensor, withDevice, type Device, type MoeRouting, type Tensor,
} from '../../src/tensor/index.ts';
import { gradcheck, leaf } from './gradcheck.ts';

const available = cudaAvailable();
const skip = available.ok ? false : available.reason;
const seed = Number(process.env.R1_TEST_SEED ?? Date.now() % 1_000_000_007);
if (available.ok) console.log(`# moe.test.ts seed ${seed} (replay with R1_TEST_SEED=${seed})`);

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    diff += (got[i] - want[i]) ** 2;
    norm += want[i] * want[i];
  }
  return Math.sqrt(diff / Math.max(norm, 1e-30));
}

describe('MoE ops on the CPU', () => {
  it('moeDispatch sorts the (token, slot) pairs by expert, tokens in order within an expert; expertCounts counts them per segment', () => {
    const experts = tensor([2, 0, 1, 2, 0, 2, 1, 0], [4, 2], 'i32');
    const { offsets, tokenOfRow, slotOfRow } = moeDispatch(experts, 4);
    assert.deepEqual([...offsets.toArray()], [0, 3, 5, 8, 8]);
    assert.deepEqual([...slotOfRow.toArray()], [1, 4, 7, 2, 6, 0, 3, 5]);
    assert.deepEqual([...tokenOfRow.toArray()], [0, 2, 3, 1, 3, 0, 1, 2]);
    assert.deepEqual([...expertCounts(experts, 4, 2).toArray()], [1, 1, 2, 0, 2, 1, 1, 0]);
  });

  it('groupedLinear gives the rows of each expert that expert\'s linear (an expert without rows is skipped)', () => {
    const rng = new Rng(1);
    const x = randn([5, 3], rng);
    const weights = [randn([4, 3], rng), randn([4, 3], rng), randn([4, 3], rng)];
    const offsets = tensor([0, 2, 2, 5], [4], 'i32');
    const got = groupedLinear(x, weights, offsets).toArray();
    const want = [...linear(slice(x, 0, 0, 2), weights[0]).toArray(), ...linear(slice(x, 0, 2, 5), weights[2]).toArray()];
    assert.ok(relativeError(got, want) === 0, 'the same linear on the same slices');
  });

  it('groupedLinear: float64 gradients by central differences, with respect to x and every weight', () => {
    const x = leaf([6, 4], 11);
    const weights = [leaf([3, 4], 12), leaf([3, 4], 13), leaf([3, 4], 14)];
    const offsets = tensor([0, 1, 4, 6], [4], 'i32');
    gradcheck((xi, ...ws) => groupedLinear(xi, ws, offsets), [x, ...weights]);
  });
});

// ---- CUDA against the CPU ----

const routings: Array<[string, MoeRouting]> = [
  ['plain top-2 of 16', { numRoutedExperts: 16, numExpertsPerToken: 2, numGroups: 1, topkGroup: 1 }],
  ['V3-mini: top-4 of 32 in 2 of 4 groups', { numRoutedExperts: 32, numExpertsPerToken: 4, numGroups: 4, topkGroup: 2 }],
  ['V3: top-8 of 256 in 4 of 8 groups', { numRoutedExperts: 256, numExpertsPerToken: 8, numGroups: 8, topkGroup: 4 }],
];

describe('MoE ops on CUDA match the CPU', { skip }, () => {
  for (const [name, routing] of routings) {
    it(`moeRoute, expertCounts and moeDispatch give the CPU's integers (${name})`, () => {
      const rng = new Rng(seed + routing.numRoutedExperts);
      const n = 700; // n K pairs span several 1024-pair chunks of the dispatch kernel
      const E = routing.numRoutedExperts;
      const scores = noGrad(() => sigmoid(randn([n, E], rng, 2)));
      const bias = rand([E], rng, -0.05, 0.05);
      const onCpu = (() => {
        const experts = moeRoute(scores, bias, routing);
        const d = moeDispatch(experts, E);
        return [experts, expertCounts(experts, E, 7), d.offsets, d.tokenOfRow, d.slotOfRow].map((t) => [...t.toArray()]);
      })();
      const onCuda = withDevice('cuda', () => scope(() => {
        const experts = moeRoute(scores.to('cuda'), bias.to('cuda'), routing);
        const d = moeDispatch(experts, E);
        return [experts, expertCounts(experts, E, 7), d.offsets, d.tokenOfRow, d.slotOfRow].map((t) => [...t.toArray()]);
      }));
      ['experts', 'counts', 'offsets', 'tokenOfRow', 'slotOfRow'].forEach((what, i) => assert.deepEqual(onCuda[i], onCpu[i], `${what} (seed ${seed})`));
      // The device routes exactly as the host definition does, token by token.
      assert.deepEqual(onCpu[0], [...selectExperts(scores.floats(), bias.floats(), n, routing)]);
    });
  }

  // Rows per expert below, across and beyond the kernel's 64-row tiles (and its row-tile splits), ragged.
  const rowCounts = [[9, 0, 3, 20, 1, 16], [40, 30, 0, 25, 1], [70, 0, 3, 129, 1]];
  for (const counts of rowCounts) it(`groupedLinear forward and backward within 1e-5 of the CPU (ragged tiles, an expert without rows: ${counts})`, () => {
    const rng = new Rng(seed + 1);
    const E = counts.length;
    const [C, N] = [72, 40];
    const R = counts.reduce((a, b) => a + b, 0);
    const offsets = [0];
    for (const c of counts) offsets.push(offsets[offsets.length - 1] + c);
    const xValues = randn([R, C], rng);
    const wValues = Array.from({ length: E }, () => randn([N, C], rng, 0.2));
    const upstream = randn([R, N], rng);
    const run = (device: Device) => withDevice(device, () => scope(() => {
      const [x, ...ws] = [xValues, ...wValues].map(leafOn(device));
      const y = groupedLinear(x, ws, tensor(offsets, [E + 1], 'i32'));
      sum(mul(y, upstream.to(device))).backward();
      const result = [y, x.grad!, ...ws.map((w) => w.grad)].map((t) => (t ? Array.from(t.toArray()) : new Array<number>(N * C).fill(0)));
      [x, ...ws].forEach((t) => setGrad(t, null));
      return result;
    }));
    const [cpu, cuda] = [run('cpu'), run('cuda')];
    const names = ['y', 'dx', ...wValues.map((_, e) => `dW${e}`)];
    cpu.forEach((want, i) => {
      const error = relativeError(cuda[i], want);
      if (i >= 2 && counts[i - 2] === 0) assert.ok(cuda[i].every((v) => v === 0), `the expert without rows gets a zero gradient (${names[i]})`);
      else assert.ok(error <= 1e-5, `${names[i]}: relative error ${error.toExponential(2)} (seed ${seed})`);
    });
  });

  it('a DeepSeekMoE block, forward and gradients, within 1e-5 of the CPU, with no host wait on CUDA', () => {
    const c: MoeConfig = { hiddenSize: 48, moeIntermediateSize: 24, numRoutedExperts: 16, numSharedExperts: 1, numExpertsPerToken: 4, numGroups: 4, topkGroup: 2,
      normTopkProb: true, routedScalingFactor: 2.5 };
    const rng = new Rng(seed + 2);
    const cpuBlock = new DeepSeekMoE(c, rng, { seqBalanceWeight: 0.01 });
    // Router weights wider than the 0.02 init, so that tokens spread over the experts.
    cpuBlock.gate.weight.floats().set(randn(cpuBlock.gate.weight.shape, rng, 0.5).floats());
    cpuBlock.gate.bias.floats().set(rand([16], rng, -0.02, 0.02).floats());
    const x = randn([3, 40, 48], rng);
    const upstream = randn([3, 40, 48], rng);
    const run = (block: DeepSeekMoE, device: Device) => withDevice(device, () => scope(() => {
      const xs = leafOn(device)(x);
      const { output, balanceLoss } = block.forward(xs);
      const loss = sum(mul(output, upstream.to(device)));
      (balanceLoss ? add(loss, balanceLoss) : loss).backward();
      const grads = [xs.grad!, ...block.parameters().filter((p) => p.requiresGrad).map((p) => p.grad ?? null)];
      const result = { output: Array.from(output.toArray()), balance: balanceLoss!.item(), grads: grads.map((g) => (g ? Array.from(g.toArray()) : null)), load: block.pendingLoad() };
      block.zeroGrad();
      return result;
    }));
    const cpu = run(cpuBlock, 'cpu');
    const cudaBlock = new DeepSeekMoE(c, new Rng(0), { seqBalanceWeight: 0.01 }).to('cuda');
    const cpuParameters = cpuBlock.parameters();
    noGrad(() => cudaBlock.parameters().forEach((p, i) => copyInto(cpuParameters[i].to('cuda'), p)));
    const cuda = run(cudaBlock, 'cuda');
    cudaBlock.dispose();
    assert.ok(relativeError(cuda.output, cpu.output) <= 1e-5, `output (seed ${seed})`);
    assert.ok(Math.abs(cuda.balance - cpu.balance) <= 1e-5 * Math.abs(cpu.balance), `balance loss ${cuda.balance} vs ${cpu.balance}`);
    assert.deepEqual(cuda.load, cpu.load, 'the loads counted for the bias update');
    cpu.grads.forEach((want, i) => {
      // An expert no token chose has no gradient on the CPU and a zero one on CUDA.
      if (want === null) return assert.ok(cuda.grads[i]!.every((v) => v === 0), `gradient ${i} should be zero`);
      const error = relativeError(cuda.grads[i]!, want);
      assert.ok(error <= 1e-5, `gradient ${i}: relative error ${error.toExponential(2)} (seed ${seed})`);
    });
  });

  const mlaCases = [['f32', 96, 16], ['bf16', 96, 16], ['f32', 512, 64]] as const; // the last: V3's latent (576 numbers)
  for (const [format, dc, dr] of mlaCases) {
    it(`mlaDecodeAttention equals attention over the cached columns within 1e-5 (${format} cache, ${dc} + ${dr})`, () => {
      const rng = new Rng(seed + 3);
      const [B, H, capacity] = [5, 12, 70];
      const D = dc + dr;
      const q = randn([B, 1, H, D], rng, 0.3);
      const rows = randn([B, capacity, 1, D], rng);
      const kvStart = [0, 3, 17, 40, 69];
      const kvEnd = [70, 20, 18, 69, 70];
      const scale = 0.11;
      // bf16: the device reads keys rounded to bf16, and so does the reference (the same rounded numbers).
      const cache = format === 'bf16' ? withDevice('cuda', () => packBf16(rows.to('cuda'))) : rows.to('cuda');
      const keys = format === 'bf16' ? widenBf16(cache) : rows;
      const got = withDevice('cuda', () => Array.from(mlaDecodeAttention(q.to('cuda'), cache, tensor(kvStart, [B], 'i32'), tensor(kvEnd, [B], 'i32'), dc, scale, format).toArray()));
      const want: number[] = [];
      noGrad(() => kvStart.forEach((start, b) => {
        const k = slice(slice(keys, 0, b, b + 1), 1, start, kvEnd[b]);
        want.push(...attention(slice(q, 0, b, b + 1), k, slice(k, 3, 0, dc), { causal: true, scale }).toArray());
      }));
      const error = relativeError(got, want);
      assert.ok(error <= 1e-5, `relative error ${error.toExponential(2)} (seed ${seed})`);
    });
  }
});

// A fresh leaf on `device` holding t's values (t itself stays without a gradient).
const leafOn = (device: Device) => (t: Tensor): Tensor => {
  const copy = tensor(t.toArray(), t.shape, 'f32', device);
  copy.requiresGrad = true;
  return copy;
};

// A bf16-packed CUDA tensor [..., D / 2] widened to float32 [..., D] on the CPU.
function widenBf16(packed: Tensor): Tensor {
  const words = Float32Array.from(packed.toArray());
  const halves = new Uint16Array(words.buffer);
  const values = Float32Array.from(halves, (bits) => new Float32Array(Uint32Array.of(bits * 65536).buffer)[0]);
  return tensor(values, [...packed.shape.slice(0, -1), packed.shape[packed.ndim - 1] * 2]);
}
