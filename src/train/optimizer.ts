// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2) over a model's named
// parameters, and global gradient-norm clipping. The update itself is the fused `adamw` kernel (native/r1.h),
// run in place on each parameter's storage, on the parameter's device (the moments live beside it, kept out of
// every scope): the optimizer is the one place parameters are written.
import { kernelsOn, releaseHostArrays, type FloatArray, type HostArray } from '../tensor/backend.ts';
import { add, contiguous, copyInto, dispose, div, globalNorm, gt, keep, lt, mul, setGrad, sumSquares, tensor, where, zeros, type Tensor } from '../tensor/index.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled decay coefficient (the kernel applies p -= lr * wd * p), for the parameters that decay. */
  weightDecay: number;
}

export const defaultAdamW: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** A set of parameters sharing a weight decay (PyTorch's param_groups). */
export interface ParamGroup {
  params: Array<[string, Tensor]>;
  weightDecay: number;
}

/**
 * The usual split (GPT-2/nanoGPT, Llama): the matrices of linear layers decay; norms' gains, biases and
 * embedding tables do not. Decaying a gain pulls it toward 0 rather than toward its initial 1, and decaying
 * a table shrinks the rows of rare tokens that seldom get a gradient to pull back.
 */
export function weightDecayGroups(named: ReadonlyArray<[string, Tensor]>, weightDecay: number): ParamGroup[] {
  const decay: Array<[string, Tensor]> = [];
  const noDecay: Array<[string, Tensor]> = [];
  for (const entry of named) {
    const [name, p] = entry;
    (p.ndim >= 2 && !/embed/.test(name) ? decay : noDecay).push(entry);
  }
  return [{ params: decay, weightDecay }, { params: noDecay, weightDecay: 0 }].filter((g) => g.params.length > 0);
}

/** Moments of every parameter by name (host arrays), and the number of updates taken (for bias correction). */
export interface AdamWState {
  step: number;
  m: Map<string, FloatArray>;
  v: Map<string, FloatArray>;
}

export class AdamW {
  readonly groups: ParamGroup[];
  readonly options: AdamWOptions;
  /** Updates taken so far; the next one uses t = step + 1 in the bias corrections. */
  step = 0;
  private readonly m = new Map<string, Tensor>();
  private readonly v = new Map<string, Tensor>();

  /** `named` is model.namedParameters(); the decay split follows weightDecayGroups. */
  constructor(named: ReadonlyArray<[string, Tensor]>, options: Partial<AdamWOptions> = {}) {
    this.options = { ...defaultAdamW, ...options };
    this.groups = weightDecayGroups(named, this.options.weightDecay);
    for (const [name, p] of named) {
      if (this.m.has(name)) throw new Error(`AdamW: parameter '${name}' is listed twice`);
      if (p.dtype === 'i32' || !p.isContiguous || p.offset !== 0) throw new Error(`AdamW: parameter '${name}' must be a contiguous float tensor`);
      this.m.set(name, keep(zeros([p.size], p.dtype, p.device)));
      this.v.set(name, keep(zeros([p.size], p.dtype, p.device)));
    }
  }

  /** Frees the device memory of the moments now (see Module.dispose); the optimizer must not be used afterwards. */
  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) dispose(t);
  }

  /**
   * One update with learning rate `lr` from each parameter's `.grad`; parameters without a gradient are left
   * alone (their moments do not decay either, as in PyTorch).
   */
  update(lr: number): void {
    const { beta1, beta2, eps } = this.options;
    this.step++;
    const bias1 = 1 - beta1 ** this.step;
    const bias2 = 1 - beta2 ** this.step;
    for (const group of this.groups) {
      for (const [name, p] of group.params) {
        const g = p.grad;
        if (!g) continue;
        if (g.dtype !== p.dtype || g.size !== p.size || g.device !== p.device) throw new Error(`AdamW: gradient of '${name}' is ${g} for a parameter ${p}`);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        if (m.device !== p.device) throw new Error(`AdamW: parameter '${name}' moved to ${p.device} after the optimizer was made on ${m.device}; make the optimizer after model.to()`);
        kernelsOn(p.device).adamw(p.floatData(), contiguous(g.detach()).floatData(), m.floatData(), v.floatData(), p.size, lr, beta1, beta2, eps,
          group.weightDecay, bias1, bias2);
      }
    }
  }

  /**
   * The moments and the step count. On the CPU the arrays are the live moments, not copies (save them before
   * the next update); on a device they are downloaded copies.
   */
  stateDict(): AdamWState {
    const host = (moments: Map<string, Tensor>) => new Map([...moments].map(([name, t]) => [name, t.hostValues() as FloatArray]));
    return { step: this.step, m: host(this.m), v: host(this.v) };
  }

  /** Restores a state saved by stateDict(); every parameter must be present with its size. `source` names the file. */
  loadStateDict(state: AdamWState, source: string): void {
    for (const [which, target, saved] of [['m', this.m, state.m], ['v', this.v, state.v]] as const) {
      for (const [name, moment] of target) {
        const values = saved.get(name);
        if (!values) throw new Error(`${source}: optimizer state has no ${which} for parameter '${name}'`);
        if (values.length !== moment.size) throw new Error(`${source}: optimizer ${which} of '${name}' has ${values.length} values, the parameter ${moment.size}`);
        copyInto(tensor(values, moment.shape, moment.dtype, moment.device), moment);
      }
    }
    this.step = state.step;
  }
}

/**
 * Scales all gradients together so that their global L2 norm is at most maxNorm (Pascanu et al. 2013, as
 * torch.nn.utils.clip_grad_norm_), replacing each `.grad` with a new tensor (gradients are never written in
 * place: one may be shared; on a device the old buffers are freed, see setGrad). Returns the norm before
 * clipping; a non-finite norm is returned unclipped for the caller to act on. On a device the work is queued
 * by clipGradNormQueued and the norm read back once, at the end. With `release` (a training step's end, where
 * nothing holds the old gradients), the old host buffers serve the new ones, and an old gradient read later throws.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, options: { release?: boolean } = {}): number {
  const grads = params.flatMap((p) => (p.grad ? [p.grad] : []));
  if (grads.length > 0 && grads[0].device !== 'cpu') return clipGradNormQueued(params, maxNorm).item();
  let sumSq = 0;
  for (const g of grads) sumSq += sumSquares(g.detach());
  const norm = Math.sqrt(sumSq);
  if (!Number.isFinite(norm) || norm <= maxNorm) return norm;
  // The 1e-6 keeps the clipped norm just under maxNorm, as PyTorch does.
  const scale = maxNorm / (norm + 1e-6);
  // With release, each old buffer goes back once no parameter's gradient still reads it, so that the next
  // parameter of its shape takes it (a model repeats a few shapes many times).
  const readers = new Map<unknown, number>();
  if (options.release) for (const g of grads) readers.set(g.storage, (readers.get(g.storage) ?? 0) + 1);
  for (const p of params) {
    const old = p.grad;
    if (!old) continue;
    setGrad(p, mul(old, scale));
    if (!options.release) continue;
    const left = readers.get(old.storage)! - 1;
    readers.set(old.storage, left);
    if (left === 0) releaseHostArrays([old.storage as HostArray], false);
  }
  return norm;
}

/**
 * Drops every parameter's gradient, as Module.zeroGrad, and hands their host buffers to the next step's
 * gradients (releaseHostArrays): for a training step's end, where nothing reads the gradients again (one read
 * later throws). Saves a step's worth of fresh gradient memory for V8's collector to find.
 */
export function releaseGradients(params: readonly Tensor[]): void {
  const buffers = new Set<HostArray>();
  for (const p of params) {
    if (p.grad && p.grad.device === 'cpu') buffers.add(p.grad.storage as HostArray);
    setGrad(p, null);
  }
  releaseHostArrays(buffers, true);
}

/**
 * clipGradNorm with nothing read back: the norm is a scalar tensor on the gradients' device, and the clip
 * factor is computed there and applied to every gradient (factor 1 when the norm is within maxNorm or not
 * finite), so a training step queues its backward, the clip and the update without waiting for the device
 * (a host round trip per parameter was 2-4% of a GPU step). Read the norm after queueing the update.
 */
export function clipGradNormQueued(params: readonly Tensor[], maxNorm: number): Tensor {
  const withGrad = params.filter((p) => p.grad);
  const norm = globalNorm(withGrad.map((p) => p.grad!.detach()));
  if (maxNorm === Infinity || withGrad.length === 0) return norm;
  const clips = mul(gt(norm, maxNorm), lt(norm, Infinity));
  const scale = where(clips, div(maxNorm, add(norm, 1e-6)), 1);
  for (const p of withGrad) setGrad(p, mul(p.grad!, scale));
  return norm;
}
