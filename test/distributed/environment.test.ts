// The launcher's variables read back by a rank, and the communicator they give (src/distributed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdentityCommunicator, openCommunicator } from '../../src/distributed/communicator.ts';
import { distributedVariables, readDistributedEnv } from '../../src/distributed/environment.ts';

test('the variables the launcher sets read back as they were; bad ones are named', () => {
  const env = { rank: 5, worldSize: 8, localRank: 1, masterAddr: '10.0.0.1', masterPort: 29500 };
  assert.deepEqual(readDistributedEnv(distributedVariables(env, 4)), env);
  assert.equal(readDistributedEnv({}), null);
  assert.throws(() => readDistributedEnv({ ...distributedVariables(env, 4), RANK: '8' }), /RANK=8 must be an integer in \[0, 7\]/);
  assert.throws(() => readDistributedEnv({ ...distributedVariables(env, 4), MASTER_ADDR: '' }), /MASTER_ADDR is unset/);
});

test('a process of a world of one, or not launched at all, gets the identity communicator', async () => {
  assert.ok(await openCommunicator({}) instanceof IdentityCommunicator);
  const one = distributedVariables({ rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1', masterPort: 29500 }, 1);
  assert.ok(await openCommunicator(one) instanceof IdentityCommunicator);
});
