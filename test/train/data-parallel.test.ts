// Data-parallel training at world size 1: the update through the communicator (gradients copied into buckets,
// all-reduced by the identity, copied back) must be bit-for-bit the single-process update, whatever the bucket
// size. The NCCL path at several GPUs is in test/distributed/nccl.test.ts (skipped without GPUs).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IdentityCommunicator } from '../../src/distributed/communicator.ts';
import { DenseModel, denseConfig } from '../../src/models/dense.ts';
import * as T from '../../src/tensor/index.ts';
import { allReduceGradients, rankShare } from '../../src/train/data-parallel.ts';
import { optimizerUpdate, type MicroBatch } from '../../src/train/loop.ts';
import { AdamW } from '../../src/train/optimizer.ts';
import { defaultPretrainConfig, pretrain } from '../../src/train/pretrain.ts';
import { readJsonl } from '../../src/io/checkpoint.ts';

const config = denseConfig('1m', 64, { numLayers: 2, hiddenSize: 64, intermediateSize: 96, numHeads: 4, numKvHeads: 2, headDim: 16, maxPositionEmbeddings: 32 });

function* batches(rng: T.Rng): Generator<MicroBatch> {
  for (let i = 0; i < 2; i++) {
    const ids = Array.from({ length: 2 * 12 }, () => rng.int(64));
    yield { inputs: T.tensor(ids, [2, 12], 'i32'), targets: T.tensor(ids.map((x, j) => (j % 5 === 0 ? -100 : x)), [2, 12], 'i32'), weight: 0.5 };
  }
}

function train(communicator: IdentityCommunicator | undefined): { losses: number[]; norms: number[]; params: Array<[string, number[]]> } {
  const model = new DenseModel(config, 3);
  const optimizer = new AdamW(model.namedParameters());
  const rng = new T.Rng(11);
  const losses: number[] = [];
  const norms: number[] = [];
  for (let step = 1; step <= 3; step++) {
    // gradClip 0.5 engages clipping, so the global norm over the reduced gradients matters too.
    const { loss, gradNorm } = optimizerUpdate(model, optimizer, batches(rng), 3e-3, 0.5, step, communicator);
    losses.push(loss);
    norms.push(gradNorm);
  }
  return { losses, norms, params: model.namedParameters().map(([name, p]) => [name, Array.from(p.toArray())]) };
}

describe('data-parallel training at world size 1', () => {
  it('three updates through the identity communicator equal the single-process updates exactly', () => {
    const single = train(undefined);
    const parallel = train(new IdentityCommunicator());
    assert.deepEqual(parallel.losses, single.losses);
    assert.deepEqual(parallel.norms, single.norms);
    assert.ok(single.norms.some((n) => n > 0.5), `clipping was engaged (norms ${single.norms})`);
    for (let i = 0; i < single.params.length; i++) assert.deepEqual(parallel.params[i], single.params[i], single.params[i][0]);
  });

  it('gradients come back unchanged from buckets of any size, and a parameter without a gradient keeps none', () => {
    const model = new DenseModel(config, 4);
    const ids = T.tensor(Array.from({ length: 16 }, (_, i) => (i * 7) % 64), [2, 8], 'i32');
    model.loss(ids, ids).backward();
    const params = model.parameters();
    const withoutGrad = params[1];
    T.setGrad(withoutGrad, null);
    const before = params.map((p) => (p.grad ? Array.from(p.grad.toArray()) : null));
    // 1000 elements: many buckets, some holding one parameter larger than the bucket (the embedding table).
    for (const bucketElements of [1000, 1 << 30]) {
      allReduceGradients(params, new IdentityCommunicator(), bucketElements);
      params.forEach((p, i) => {
        if (before[i] === null) return assert.equal(p.grad, null, 'no gradient appears at world size 1');
        assert.deepEqual(p.grad!.shape, p.shape);
        assert.deepEqual(Array.from(p.grad!.toArray()), before[i], `parameter ${i}, buckets of ${bucketElements}`);
      });
    }
  });

  it('pretraining through the identity communicator writes the same metrics and the same final model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'r1-dp-'));
    try {
      const config = (out: string) => ({
        ...defaultPretrainConfig, out, syntheticDocuments: 100, vocabSize: 300, steps: 4, batchSize: 4, seqLen: 16, warmup: 1,
        lr: 1e-2, evalEvery: 2, evalBatches: 1, checkpointEvery: 2, samples: 0, gradAccumSteps: 2,
        modelOverrides: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 16 },
      });
      const quiet = { log: () => {}, progress: false };
      const single = await pretrain(config(join(dir, 'single')), quiet);
      const parallel = await pretrain(config(join(dir, 'parallel')), { ...quiet, communicator: new IdentityCommunicator() });
      const metrics = async (run: string) => (await readJsonl<{ step: number; loss: number; gradNorm: number; validationLoss?: number }>(join(dir, run, 'metrics.jsonl')))
        .map((r) => [r.step, r.loss, r.gradNorm, r.validationLoss]);
      assert.deepEqual(await metrics('parallel'), await metrics('single'));
      assert.equal((await metrics('single')).length, 4);
      assert.ok(readFileSync(join(parallel.finalDir, 'model.safetensors')).equals(readFileSync(join(single.finalDir, 'model.safetensors'))), 'the final weights are the same bytes');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the ranks\' shares of a batch are its rows in rank order, each a quarter of it at world size 4', () => {
    const batch = { inputs: T.tensor(Array.from({ length: 8 * 3 }, (_, i) => i), [8, 3], 'i32'), targets: T.tensor(Array.from({ length: 8 * 3 }, (_, i) => -i), [8, 3], 'i32'), weight: 0.5 };
    const shares = [0, 1, 2, 3].map((rank) => rankShare(batch, { rank, worldSize: 4 }));
    for (const share of shares) assert.deepEqual([share.inputs.shape, share.targets.shape, share.weight], [[2, 3], [2, 3], 0.5]);
    assert.deepEqual(shares.flatMap((s) => Array.from(s.inputs.toArray())), Array.from(batch.inputs.toArray()));
    assert.deepEqual(shares.flatMap((s) => Array.from(s.targets.toArray())), Array.from(batch.targets.toArray()));
    assert.equal(rankShare(batch, undefined), batch);
    assert.throws(() => rankShare(batch, { rank: 0, worldSize: 3 }), /a batch of 8 rows does not split over 3 ranks/);
  });

  it('the identity communicator refuses what NCCL would refuse', () => {
    const comm = new IdentityCommunicator();
    assert.throws(() => comm.allReduce(T.transpose(T.zeros([2, 3]), 0, 1), 'sum'), /contiguous float32/);
    assert.throws(() => comm.broadcast(T.zeros([2]), 1), /root 1 is not a rank of a world of 1/);
  });
});
