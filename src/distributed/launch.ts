// `r1 launch`: one process per GPU of this host, each with the variables torchrun sets (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and R1_CUDA_DEVICE = LOCAL_RANK. On several hosts, one
// launcher per host with the same --nnodes, --master-addr and --master-port and its own --node-rank: host k runs
// ranks k * gpus .. (k + 1) * gpus - 1. When a rank fails, the launcher stops the others (SIGTERM) and reports
// which rank failed and how, so a run never hangs on a collective that a dead rank will not join.
import { spawn, type ChildProcess } from 'node:child_process';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { distributedVariables } from './environment.ts';

export interface LaunchOptions {
  /** Processes (GPUs) on this host. */
  gpus: number;
  /** Hosts in the run, and this one's index. */
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** The program each process runs and its arguments (the CLI: node and bin/r1.js with the subcommand). */
  program: string;
  args: readonly string[];
  /** Extra environment for every process (on top of this process's). */
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the program could not be started at all. */
  spawnError?: string;
}

const DEFAULT_MASTER_PORT = 29500; // torchrun's

/** Starts the ranks of this host and waits for them; resolves when all exit 0, throws naming the first failure. */
export async function launch(options: LaunchOptions): Promise<RankExit[]> {
  const { gpus, nnodes = 1, nodeRank = 0, masterAddr = '127.0.0.1', masterPort = DEFAULT_MASTER_PORT } = options;
  const log = options.log ?? logToStderr;
  if (!Number.isInteger(gpus) || gpus < 1) throw new UserError(`--gpus must be a positive integer (got ${gpus})`);
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new UserError(`--nnodes must be a positive integer (got ${nnodes})`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) throw new UserError(`--node-rank must be in [0, ${nnodes}) (got ${nodeRank})`);
  if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535) throw new UserError(`--master-port must be a port number (got ${masterPort})`);
  const worldSize = gpus * nnodes;
  const children: ChildProcess[] = [];
  const exits: RankExit[] = [];
  let failure: RankExit | null = null;
  await new Promise<void>((resolve) => {
    let running = gpus;
    for (let localRank = 0; localRank < gpus; localRank++) {
      const rank = nodeRank * gpus + localRank;
      const env = { ...process.env, ...options.env, ...distributedVariables({ rank, worldSize, localRank, masterAddr, masterPort }, gpus) };
      const child = spawn(options.program, options.args, { env, stdio: 'inherit' });
      children.push(child);
      let finished = false; // a failed spawn may report both 'error' and 'exit'
      const finish = (exit: RankExit) => {
        if (finished) return;
        finished = true;
        exits.push(exit);
        if (failure === null && (exit.code !== 0 || exit.signal !== null)) {
          failure = exit;
          const others = children.filter((c) => c !== child && c.exitCode === null && c.signalCode === null);
          if (others.length > 0) log(`r1 launch: rank ${rank} ${describe(exit)}; stopping the other ${others.length} rank(s)`);
          for (const other of others) other.kill('SIGTERM');
        }
        if (--running === 0) resolve();
      };
      child.on('error', (err) => finish({ rank, code: null, signal: null, spawnError: err.message }));
      child.on('exit', (code, signal) => finish({ rank, code, signal }));
    }
  });
  if (failure !== null) {
    const first: RankExit = failure;
    const stopped = gpus > 1 ? '; the other ranks of this host were stopped' : '';
    throw new UserError(`rank ${first.rank} of ${worldSize} ${describe(first)}${stopped} (its own output above says why)`);
  }
  return exits.sort((a, b) => a.rank - b.rank);
}

function describe(exit: RankExit): string {
  if (exit.spawnError) return `could not start (${exit.spawnError})`;
  return exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}
