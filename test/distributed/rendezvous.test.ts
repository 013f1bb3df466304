// The rendezvous that hands NCCL's unique id from rank 0 to the other ranks over TCP (src/distributed/rendezvous.ts),
// with ranks in one process on the loopback interface: every rank gets rank 0's bytes, ranks may start before
// rank 0 listens, and a mismatch or a missing rank ends in an error naming it instead of a hang.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { rendezvous } from '../../src/distributed/rendezvous.ts';
import { freePort } from './free-port.ts';

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('rendezvous', () => {
  it('hands rank 0\'s id to every rank, also to ranks that start before rank 0 listens', async () => {
    const port = await freePort();
    const id = new Uint8Array(randomBytes(128));
    let made = 0;
    const options = { worldSize: 4, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 10_000, makeId: () => (made++, id) };
    const others = [1, 2, 3].map((rank) => rendezvous({ ...options, rank }));
    await delay(300);
    const ids = await Promise.all([rendezvous({ ...options, rank: 0 }), ...others]);
    assert.equal(made, 1, 'only rank 0 makes the id');
    for (const got of ids) assert.deepEqual(got, id);
  });

  it('a world of one needs no connection', async () => {
    const id = new Uint8Array([1, 2, 3]);
    assert.deepEqual(await rendezvous({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 1, makeId: () => id }), id);
  });

  it('refuses a rank whose world size differs, naming both', async () => {
    const port = await freePort();
    const base = { masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 1500, makeId: () => new Uint8Array(128) };
    const master = rendezvous({ ...base, rank: 0, worldSize: 2 }).catch((err: Error) => err);
    await assert.rejects(rendezvous({ ...base, rank: 1, worldSize: 3 }), /rank 1 has WORLD_SIZE=3, rank 0 has 2/);
    assert.match(String(await master), /rank\(s\) 1 of 2 did not check in within 1.5 s/);
  });

  it('a rank that never comes is named when the time runs out; a rank 0 that never comes too', async () => {
    const port = await freePort();
    const base = { masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 800, makeId: () => new Uint8Array(128) };
    const [master, one] = await Promise.all([
      rendezvous({ ...base, rank: 0, worldSize: 3 }).catch((err: Error) => err),
      rendezvous({ ...base, rank: 1, worldSize: 3 }).catch((err: Error) => err),
    ]);
    assert.match(String(master), /rank\(s\) 2 of 3 did not check in/);
    assert.match(String(one), /rank 0 at 127\.0\.0\.1:\d+ refused rank 1: .*rank\(s\) 2 of 3 did not check in/);
    await assert.rejects(rendezvous({ ...base, masterPort: await freePort(), rank: 1, worldSize: 2 }), /rank 1 could not get the id from rank 0 at 127\.0\.0\.1:\d+ within 0\.8 s/);
  });

  it('refuses a rank outside the world', async () => {
    await assert.rejects(rendezvous({ rank: 2, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 1, makeId: () => new Uint8Array(1) }), /rank 2 is not in a world of 2/);
  });
});
