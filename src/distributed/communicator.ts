// A communicator joins the processes of a data-parallel run (one per GPU) for the two collectives training
// needs: all-reduce (gradients) and broadcast (the initial weights, from rank 0). Across GPUs it is NCCL
// (native/cuda/nccl.cu, on the CUDA library's stream); a run of one process has the identity communicator, so
// the data-parallel code path is the same at every world size.
import { cudaLibrary } from '../tensor/backends/cuda.ts';
import type { Tensor } from '../tensor/index.ts';
import { readDistributedEnv, type DistributedEnv } from './environment.ts';
import { rendezvous } from './rendezvous.ts';

export type CollectiveOp = 'sum' | 'avg';

export interface Communicator {
  readonly rank: number;
  readonly worldSize: number;
  /** Replaces t's values, on every rank, by their sum (or mean) over ranks. t: contiguous float32. */
  allReduce(t: Tensor, op: CollectiveOp): void;
  /** Replaces t's values, on every rank, by those of rank `root`. */
  broadcast(t: Tensor, root: number): void;
  destroy(): void;
}

/** The communicator of a run of one process: the sum and the mean over one rank are its own values. */
export class IdentityCommunicator implements Communicator {
  readonly rank = 0;
  readonly worldSize = 1;
  allReduce(t: Tensor, _op: CollectiveOp): void {
    checkCollectiveTensor(t, 'allReduce');
  }
  broadcast(t: Tensor, root: number): void {
    checkCollectiveTensor(t, 'broadcast');
    if (root !== 0) throw new Error(`broadcast: root ${root} is not a rank of a world of 1`);
  }
  destroy(): void {}
}

function checkCollectiveTensor(t: Tensor, call: string): void {
  if (t.dtype !== 'f32' || !t.isContiguous) throw new Error(`${call}: needs a contiguous float32 tensor, got ${t}`);
}

/** NCCL between processes with one GPU each; every tensor must be on 'cuda'. */
export class NcclCommunicator implements Communicator {
  private comm: number;
  private constructor(readonly rank: number, readonly worldSize: number, comm: number) {
    this.comm = comm;
  }

  /** Joins the run described by `env`: rank 0 makes NCCL's unique id and hands it out over the TCP rendezvous. */
  static async join(env: DistributedEnv, timeoutMs?: number): Promise<NcclCommunicator> {
    const library = cudaLibrary();
    const id = await rendezvous({ ...env, timeoutMs, makeId: () => library.ncclUniqueId() });
    return new NcclCommunicator(env.rank, env.worldSize, library.ncclCommInit(id, env.worldSize, env.rank));
  }

  private pointer(t: Tensor, call: string): number {
    checkCollectiveTensor(t, call);
    if (t.device !== 'cuda') throw new Error(`${call}: NCCL needs a tensor on cuda, got one on ${t.device}`);
    if (this.comm === 0) throw new Error(`${call}: the communicator was destroyed`);
    return t.floatData() as number;
  }

  allReduce(t: Tensor, op: CollectiveOp): void {
    const ptr = this.pointer(t, 'allReduce');
    cudaLibrary().ncclAllReduce(this.comm, ptr, ptr, t.size, op === 'avg');
  }

  broadcast(t: Tensor, root: number): void {
    const ptr = this.pointer(t, 'broadcast');
    cudaLibrary().ncclBroadcast(this.comm, ptr, ptr, t.size, root);
  }

  destroy(): void {
    if (this.comm === 0) return;
    cudaLibrary().ncclCommDestroy(this.comm);
    this.comm = 0;
  }
}

/**
 * The communicator of this process, from the launcher's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):
 * the identity without them or with WORLD_SIZE=1, NCCL otherwise.
 */
export async function openCommunicator(env: NodeJS.ProcessEnv = process.env): Promise<Communicator> {
  const dist = readDistributedEnv(env);
  if (dist === null || dist.worldSize === 1) return new IdentityCommunicator();
  return NcclCommunicator.join(dist);
}
