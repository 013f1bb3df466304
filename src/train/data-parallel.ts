// Data parallelism (PyTorch DDP's scheme, Li et al. 2020): every rank holds the whole model, computes the
// gradients of its share of the batch, and the gradients are averaged over ranks before the optimizer step, so
// that every rank takes the same step from the same weights. Ranks start from rank 0's weights (broadcast once).
//
// Gradients travel in buckets of about 25 MB (DDP's default): one collective per bucket instead of one per
// parameter (hundreds of small all-reduces are latency-bound), without a second copy of every gradient at once.
// Buckets run in reverse parameter order, the order in which backward produces gradients. They are reduced
// after the whole backward, not overlapped with it (overlap needs a hook in the autograd tape, not there yet).
//
// At world size 1 (the identity communicator) the gradients pass through the bucket copies unchanged, so the
// update is bit-for-bit the single-process one; test/train/data-parallel.test.ts checks that.
import type { Communicator } from '../distributed/communicator.ts';
import { concat, contiguous, registerWeight, reshape, setGrad, slice, tensor, zeros, type Tensor } from '../tensor/index.ts';

/** DDP's default bucket: 25 MiB of float32 gradients. */
export const DEFAULT_BUCKET_ELEMENTS = (25 << 20) / 4;

/**
 * Replaces each parameter's gradient by its mean over the ranks of `communicator`. Every rank must call it with
 * the same parameters in the same order. A parameter without a gradient on this rank (an expert no token
 * reached) counts as a zero gradient when there are several ranks, since another rank may have one; at world
 * size 1 it keeps no gradient, as in a single process.
 */
export function allReduceGradients(params: readonly Tensor[], communicator: Communicator, bucketElements = DEFAULT_BUCKET_ELEMENTS): void {
  const several = communicator.worldSize > 1;
  const reduced = [...params].reverse().filter((p) => p.grad || several);
  for (let start = 0; start < reduced.length;) {
    let end = start;
    let elements = 0;
    while (end < reduced.length && (end === start || elements + reduced[end].size <= bucketElements)) elements += reduced[end++].size;
    const bucket = reduced.slice(start, end);
    const flat = concat(bucket.map((p) => (p.grad ? reshape(p.grad.detach(), [p.size]) : zeros([p.size], p.dtype, p.device))), 0);
    communicator.allReduce(flat, 'avg');
    let at = 0;
    for (const p of bucket) {
      setGrad(p, reshape(slice(flat, 0, at, at + p.size), p.shape));
      at += p.size;
    }
    start = end;
  }
}

/** Gives every rank rank 0's parameter values (before the first step, so that all ranks start alike). */
export function broadcastParameters(params: readonly Tensor[], communicator: Communicator): void {
  for (const p of params) {
    communicator.broadcast(p, 0);
    registerWeight(p); // NCCL wrote the buffer behind the bf16 copy's back (native/r1_cuda.h)
  }
}

/** The mean over ranks of a number each rank computed (a loss, for the log); the number itself at world size 1. */
export function averageOverRanks(value: number, communicator: Communicator, device: Tensor['device']): number {
  if (communicator.worldSize === 1) return value;
  const t = tensor([value], [1], 'f32', device);
  communicator.allReduce(t, 'avg');
  return t.item();
}

/**
 * This rank's rows of a batch that every rank drew alike: rank r of W keeps rows [r B / W, (r + 1) B / W). With
 * equal token counts per rank (no masked targets), the mean over ranks of their mean losses is the whole
 * batch's mean loss, so the averaged gradient is the one-process gradient. The batch itself at world size 1.
 */
export function rankShare<B extends { inputs: Tensor; targets: Tensor }>(batch: B, communicator: Pick<Communicator, 'rank' | 'worldSize'> | undefined): B {
  const worldSize = communicator?.worldSize ?? 1;
  if (worldSize === 1) return batch;
  const rows = batch.inputs.shape[0];
  if (rows % worldSize !== 0) throw new Error(`a batch of ${rows} rows does not split over ${worldSize} ranks`);
  const share = rows / worldSize;
  const start = communicator!.rank * share;
  return { ...batch, inputs: contiguous(slice(batch.inputs, 0, start, start + share)), targets: contiguous(slice(batch.targets, 0, start, start + share)) };
}
