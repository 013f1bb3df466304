// One rank of test/distributed/launch.test.ts, started by the launcher: `rank-child.ts <mode> <dir>`.
// mode "rendezvous": reads the launcher's variables, meets the other ranks (rank 0's id is 128 random bytes)
// and writes dir/rank-<RANK>.json with its variables and the id it got. mode "fail": rank 1 exits with code 3
// at once; the others write dir/started-<RANK> and would write dir/finished-<RANK> after 60 s.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDistributedEnv } from '../../src/distributed/environment.ts';
import { rendezvous } from '../../src/distributed/rendezvous.ts';

const [mode, dir] = process.argv.slice(2);
const env = readDistributedEnv()!;
if (mode === 'rendezvous') {
  const id = await rendezvous({ ...env, timeoutMs: 20_000, makeId: () => new Uint8Array(randomBytes(128)) });
  const variables = Object.fromEntries(['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'R1_CUDA_DEVICE'].map((k) => [k, process.env[k]]));
  writeFileSync(join(dir, `rank-${env.rank}.json`), JSON.stringify({ variables, id: Buffer.from(id).toString('hex') }));
} else if (mode === 'fail') {
  if (env.rank === 1) process.exit(3);
  writeFileSync(join(dir, `started-${env.rank}`), '');
  setTimeout(() => writeFileSync(join(dir, `finished-${env.rank}`), ''), 60_000);
}
