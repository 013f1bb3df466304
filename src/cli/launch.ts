// `r1 launch --gpus N -- <command> [args]`: runs `r1 <command> [args]` as N processes, one per GPU, with the
// variables torchrun sets (src/distributed/launch.ts). Across hosts: the same command on each host with --nnodes,
// --node-rank, and the --master-addr/--master-port of the host of rank 0.
import type { Command } from 'commander';
import { launch } from '../distributed/launch.ts';
import { UserError } from '../util/errors.ts';

interface LaunchFlags {
  gpus: string;
  nnodes: string;
  nodeRank: string;
  masterAddr: string;
  masterPort: string;
}

function integerFlag(name: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n)) throw new UserError(`${name} must be an integer (got "${value}")`);
  return n;
}

export function register(program: Command): void {
  program
    .command('launch')
    .description('run an r1 command as one process per GPU (data-parallel), setting RANK, WORLD_SIZE, LOCAL_RANK, ' +
      'LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT as torchrun does; if one rank fails, the others are stopped. ' +
      'Example: r1 launch --gpus 8 -- pretrain --corpus corpus.txt --out run')
    .argument('<command...>', 'the r1 command and its arguments (after --)')
    .requiredOption('--gpus <n>', 'processes on this host, one per GPU (rank r uses GPU LOCAL_RANK)')
    .option('--nnodes <n>', 'hosts in the run', '1')
    .option('--node-rank <k>', 'this host\'s index in [0, nnodes)', '0')
    .option('--master-addr <host>', 'the host of rank 0, where the rendezvous listens', '127.0.0.1')
    .option('--master-port <port>', 'the rendezvous port on that host', '29500')
    .action(async (command: string[], flags: LaunchFlags) => {
      // Each rank runs this same CLI (bin/r1.js, or the source entry under tsx) with the same node flags.
      await launch({
        gpus: integerFlag('--gpus', flags.gpus),
        nnodes: integerFlag('--nnodes', flags.nnodes),
        nodeRank: integerFlag('--node-rank', flags.nodeRank),
        masterAddr: flags.masterAddr,
        masterPort: integerFlag('--master-port', flags.masterPort),
        program: process.execPath,
        args: [...process.execArgv, process.argv[1], ...command],
      });
    });
}
