// The launcher (src/distributed/launch.ts) on the CPU: real processes get torchrun's variables and meet through the
// rendezvous; a failing rank stops the others and the error names it. Ranks are test/distributed/rank-child.ts.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launch } from '../../src/distributed/launch.ts';
import { freePort } from './free-port.ts';

const child = fileURLToPath(new URL('./rank-child.ts', import.meta.url));
const quiet = () => {};

describe('r1 launch', () => {
  it('starts one process per GPU with torchrun\'s variables, and the ranks of two "hosts" share rank 0\'s id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'r1-launch-'));
    try {
      const port = await freePort();
      // Two launchers, as on two hosts: node 1's ranks are 2 and 3.
      const common = { gpus: 2, nnodes: 2, masterAddr: '127.0.0.1', masterPort: port, program: process.execPath, args: ['--import', 'tsx', child, 'rendezvous', dir], log: quiet };
      const exits = await Promise.all([launch({ ...common, nodeRank: 1 }), launch({ ...common, nodeRank: 0 })]);
      assert.deepEqual(exits.map((e) => e.map((x) => [x.rank, x.code])), [[[2, 0], [3, 0]], [[0, 0], [1, 0]]]);
      const ranks = [0, 1, 2, 3].map((r) => JSON.parse(readFileSync(join(dir, `rank-${r}.json`), 'utf8')));
      ranks.forEach(({ variables }, rank) => assert.deepEqual(variables, {
        RANK: String(rank), WORLD_SIZE: '4', LOCAL_RANK: String(rank % 2), LOCAL_WORLD_SIZE: '2',
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), R1_CUDA_DEVICE: String(rank % 2),
      }));
      assert.match(ranks[0].id, /^[0-9a-f]{256}$/);
      for (const { id } of ranks) assert.equal(id, ranks[0].id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a failing rank stops the others and the error names it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'r1-launch-'));
    try {
      const lines: string[] = [];
      await assert.rejects(
        launch({ gpus: 3, masterPort: await freePort(), program: process.execPath, args: ['--import', 'tsx', child, 'fail', dir], log: (l) => lines.push(l) }),
        /rank 1 of 3 exited with code 3; the other ranks of this host were stopped/,
      );
      assert.match(lines.join('\n'), /rank 1 exited with code 3; stopping the other \d rank\(s\)/);
      for (const rank of [0, 2]) assert.ok(!existsSync(join(dir, `finished-${rank}`)), `rank ${rank} was stopped before finishing`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad sizes before starting anything', async () => {
    const base = { program: process.execPath, args: ['-e', ''] };
    await assert.rejects(launch({ ...base, gpus: 0 }), /--gpus must be a positive integer \(got 0\)/);
    await assert.rejects(launch({ ...base, gpus: 1, nnodes: 2, nodeRank: 2 }), /--node-rank must be in \[0, 2\) \(got 2\)/);
    await assert.rejects(launch({ ...base, gpus: 1, masterPort: 70000 }), /--master-port must be a port number/);
  });
});
