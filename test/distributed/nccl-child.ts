// One rank of the several-GPU test in test/distributed/nccl.test.ts, started by the launcher: `nccl-child.ts <dir>`.
// Checks NCCL's collectives against values computed here, then trains 3 data-parallel updates on its half of
// each global batch; rank 0 also trains the same updates on the whole batch alone (its reference), and writes
// dir/rank-<RANK>.json with the collectives' results and both loss curves.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IdentityCommunicator, openCommunicator } from '../../src/distributed/communicator.ts';
import { DenseModel, denseConfig } from '../../src/models/dense.ts';
import * as T from '../../src/tensor/index.ts';
import { broadcastParameters } from '../../src/train/data-parallel.ts';
import { optimizerUpdate, type MicroBatch } from '../../src/train/loop.ts';
import { AdamW } from '../../src/train/optimizer.ts';
import type { Communicator } from '../../src/distributed/communicator.ts';

const dir = process.argv[2];
T.setDefaultDevice('cuda');
const comm = await openCommunicator();
const { rank, worldSize } = comm;

const values = Array.from({ length: 1000 }, (_, i) => (i % 17) * (rank + 1));
const sum = T.tensor(values);
comm.allReduce(sum, 'sum');
const avg = T.tensor(values);
comm.allReduce(avg, 'avg');
const broadcast = T.tensor(values);
comm.broadcast(broadcast, worldSize - 1);

const config = denseConfig('1m', 64, { numLayers: 2, hiddenSize: 64, intermediateSize: 96, numHeads: 4, numKvHeads: 2, headDim: 16, maxPositionEmbeddings: 32 });
// Global batch of 4 sequences per update; rank r takes rows [r * 4 / worldSize, (r + 1) * 4 / worldSize).
function globalIds(step: number): number[] {
  const rng = new T.Rng(100 + step);
  return Array.from({ length: 4 * 12 }, () => rng.int(64));
}
function* batch(step: number, rows: [number, number]): Generator<MicroBatch> {
  const ids = globalIds(step).slice(rows[0] * 12, rows[1] * 12);
  yield { inputs: T.tensor(ids, [rows[1] - rows[0], 12], 'i32'), targets: T.tensor(ids, [rows[1] - rows[0], 12], 'i32'), weight: 1 };
}
function train(communicator: Communicator, rows: [number, number], seed: number): number[] {
  const model = new DenseModel(config, seed);
  broadcastParameters(model.parameters(), communicator);
  const optimizer = new AdamW(model.namedParameters());
  return [1, 2, 3].map((step) => optimizerUpdate(model, optimizer, batch(step, rows), 3e-3, 1.0, step, communicator).loss);
}
const share = 4 / worldSize;
// Seeds differ per rank: the broadcast must give every rank rank 0's weights.
const parallel = train(comm, [rank * share, (rank + 1) * share], 7 + rank);
const single = rank === 0 ? train(new IdentityCommunicator(), [0, 4], 7) : null;
comm.destroy();
writeFileSync(join(dir, `rank-${rank}.json`), JSON.stringify({
  sum: Array.from(sum.toArray()), avg: Array.from(avg.toArray()), broadcast: Array.from(broadcast.toArray()), parallel, single,
}));
