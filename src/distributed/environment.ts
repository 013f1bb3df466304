// The variables a launcher gives each process of a distributed run, named as torchrun names them, so that a
// run spread over hosts (one launcher per host, same MASTER_ADDR and MASTER_PORT) needs nothing else.
import { UserError } from '../util/errors.ts';

export interface DistributedEnv {
  /** This process's rank in [0, worldSize). */
  rank: number;
  worldSize: number;
  /** Its rank on this host: the GPU it uses. */
  localRank: number;
  /** Where rank 0 listens for the rendezvous. */
  masterAddr: string;
  masterPort: number;
}

/** The launcher's variables, as the child environment holds them. */
export function distributedVariables(env: DistributedEnv, localWorldSize: number): Record<string, string> {
  return {
    RANK: String(env.rank),
    WORLD_SIZE: String(env.worldSize),
    LOCAL_RANK: String(env.localRank),
    LOCAL_WORLD_SIZE: String(localWorldSize),
    MASTER_ADDR: env.masterAddr,
    MASTER_PORT: String(env.masterPort),
    // The CUDA backend initialises the device R1_CUDA_DEVICE names (src/tensor/backends/cuda.ts).
    R1_CUDA_DEVICE: String(env.localRank),
  };
}

/** Reads them back; null when WORLD_SIZE is unset (a process not started by a launcher). */
export function readDistributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return null;
  const integer = (name: string, min: number, max: number): number => {
    const raw = env[name];
    const value = Number(raw);
    if (raw === undefined || raw === '' || !Number.isInteger(value) || value < min || value > max) {
      throw new UserError(`environment variable ${name}=${raw ?? '(unset)'} must be an integer in [${min}, ${max}] (set by \`r1 launch\`)`);
    }
    return value;
  };
  const worldSize = integer('WORLD_SIZE', 1, 65536);
  const rank = integer('RANK', 0, worldSize - 1);
  const localRank = integer('LOCAL_RANK', 0, worldSize - 1);
  const masterPort = integer('MASTER_PORT', 1, 65535);
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr) throw new UserError('environment variable MASTER_ADDR is unset (set by `r1 launch`)');
  return { rank, worldSize, localRank, masterAddr, masterPort };
}
