// NCCL through the CUDA library (native/cuda/nccl.cu, src/distributed/communicator.ts). On one GPU: a communicator of
// one rank (NCCL's own, not the identity) leaves values unchanged and its data-parallel update is exactly the
// single-process one. On two or more GPUs: 2 ranks started by the launcher check sum, mean and broadcast
// against values they compute, and 3 data-parallel updates on half the batch each against one process on the
// whole batch (losses within 1e-4 relative: float32 sums in another order). Skipped, with the reason, without
// a GPU, the built library (`npm run build:cuda`), NCCL (libnccl.so.2 or R1_NCCL_LIBRARY), or a second GPU.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NcclCommunicator } from '../../src/distributed/communicator.ts';
import { launch } from '../../src/distributed/launch.ts';
import { cudaLibraryPath } from '../../src/tensor/backends/cuda-library.ts';
import { cudaAvailable, cudaLibrary } from '../../src/tensor/backends/cuda.ts';
import * as T from '../../src/tensor/index.ts';
import { freePort } from './free-port.ts';

const available = cudaAvailable();
const gpus = available.ok ? cudaLibrary().deviceCount() : 0;
const noGpu = available.ok ? false : available.reason;
const fewGpus = noGpu || (gpus < 2 ? `needs 2 GPUs (this machine has ${gpus})` : false);

const built = existsSync(cudaLibraryPath()) ? false : `${cudaLibraryPath()} is not built (npm run build:cuda)`;

describe('NCCL', () => {
  // Runs wherever the library is built (CI builds it without a GPU): NCCL is loaded by the first NCCL call, and
  // when it cannot be, that call fails with a message saying what to install; nothing else needs a GPU.
  it('the first NCCL call names the library it could not load', { skip: built }, () => {
    const script = `import koffi from 'koffi';
      const lib = koffi.load(${JSON.stringify(cudaLibraryPath())});
      const status = lib.func('int r1_nccl_unique_id(uint8_t *id)')(new Uint8Array(128));
      console.log(JSON.stringify({ status, error: lib.func('const char *r1_cuda_last_error()')() }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, R1_NCCL_LIBRARY: '/nonexistent/libnccl.so.2' }, encoding: 'utf8',
    });
    const { status, error } = JSON.parse(out);
    assert.equal(status, 1);
    assert.match(error, /^r1_nccl_unique_id: cannot load NCCL from R1_NCCL_LIBRARY=\/nonexistent\/libnccl\.so\.2: /);
  });

  it('a communicator of one rank on one GPU leaves values unchanged', { skip: noGpu }, async () => {
    const comm = await NcclCommunicator.join({ rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1', masterPort: await freePort() });
    try {
      const values = Array.from({ length: 4099 }, (_, i) => Math.sin(i));
      const x = T.tensor(values, [values.length], 'f32', 'cuda');
      const expected = Array.from(T.tensor(values).toArray());
      comm.allReduce(x, 'sum');
      assert.deepEqual(Array.from(x.toArray()), expected);
      comm.allReduce(x, 'avg');
      assert.deepEqual(Array.from(x.toArray()), expected);
      comm.broadcast(x, 0);
      assert.deepEqual(Array.from(x.toArray()), expected);
      assert.throws(() => comm.allReduce(T.tensor([1, 2]), 'sum'), /NCCL needs a tensor on cuda/);
    } finally {
      comm.destroy();
    }
  });

  it('2 ranks: collectives, and data-parallel losses equal one process on the whole batch', { skip: fewGpus }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'r1-nccl-'));
    try {
      const child = fileURLToPath(new URL('./nccl-child.ts', import.meta.url));
      await launch({ gpus: 2, masterPort: await freePort(), program: process.execPath, args: ['--import', 'tsx', child, dir] });
      const ranks = [0, 1].map((r) => JSON.parse(readFileSync(join(dir, `rank-${r}.json`), 'utf8')));
      const values = (rank: number) => Array.from({ length: 1000 }, (_, i) => (i % 17) * (rank + 1));
      for (const result of ranks) {
        assert.deepEqual(result.sum, values(0).map((v, i) => v + values(1)[i]));
        assert.deepEqual(result.avg, values(0).map((v, i) => (v + values(1)[i]) / 2));
        assert.deepEqual(result.broadcast, values(1));
        assert.deepEqual(result.parallel, ranks[0].parallel, 'every rank logs the same mean loss');
      }
      ranks[0].single.forEach((loss: number, i: number) => {
        const error = Math.abs(ranks[0].parallel[i] - loss) / Math.abs(loss);
        assert.ok(error < 1e-4, `update ${i + 1}: data-parallel loss ${ranks[0].parallel[i]}, one process ${loss}`);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
