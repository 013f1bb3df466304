// Tensor: a typed buffer with a shape, strides and an offset (so transposes, slices and broadcasts are views),
// plus what reverse-mode autograd needs: `requiresGrad`, `grad`, and the tape node of the op that made it.
//
// Storage is host memory (a typed array) or device memory (a DeviceArray, src/tensor/device.ts); `device` says
// which. Kernels read a tensor through floatData()/intData(): the typed array positioned at the tensor's offset
// on the CPU, its device address there on CUDA. toArray(), item() and toNested() download.
//
// Lifetime rule: host memory belongs to the JavaScript garbage collector; device memory to scopes (device.ts).
// A tensor holds its storage, its autograd node holds its inputs; `backward()` drops the nodes it has used, so
// the graph of a step is freed once the loss is out of scope. `liveNodes()` counts graph nodes not yet freed
// (tests check it returns to 0).
import { allocHost, HostRecycler, isUninitializedHostArray, moveHostArray, withHostRecycler, type DType, type FloatArray, type HostArray } from './backend.ts';
import { DeviceArray, dispose, keep, type Device } from './device.ts';

export type Shape = readonly number[];

/** What an op leaves on the tape: its inputs and the function from the output's gradient to theirs. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Returns one gradient per input (null where an input needs none), given the output's gradient. */
  backward(gradOutput: Tensor): Array<Tensor | null>;
}

let gradEnabled = true;
let nodeCount = 0;

/** Runs fn without recording anything on the tape (sampling, evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Graph nodes created and not yet released by backward() or garbage collection of an unused graph. */
export function liveNodes(): number {
  return nodeCount;
}

export class Tensor {
  readonly shape: Shape;
  readonly strides: Shape;
  readonly offset: number;
  readonly dtype: DType;
  /** Where the storage lives; changes only through moveStorage (Module.to moving parameters in place). */
  device: Device;
  storage: HostArray | DeviceArray;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  node: GradNode | null = null;

  constructor(storage: HostArray | DeviceArray, shape: Shape, options: { strides?: Shape; offset?: number; requiresGrad?: boolean } = {}) {
    this.storage = storage;
    this.shape = shape;
    this.strides = options.strides ?? contiguousStrides(shape);
    this.offset = options.offset ?? 0;
    if (storage instanceof DeviceArray) {
      this.dtype = storage.dtype;
      this.device = storage.memory.device;
    } else {
      this.dtype = storage instanceof Float32Array ? 'f32' : storage instanceof Float64Array ? 'f64' : 'i32';
      this.device = 'cpu';
    }
    this.requiresGrad = options.requiresGrad ?? false;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return shapeSize(this.shape);
  }

  get isContiguous(): boolean {
    let expected = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.strides[d] !== expected) return false;
      expected *= this.shape[d];
    }
    return true;
  }

  /** Dimension index from a possibly negative axis. */
  axis(dim: number): number {
    const d = dim < 0 ? dim + this.ndim : dim;
    if (d < 0 || d >= this.ndim) throw new RangeError(`axis ${dim} out of range for a tensor of shape [${this.shape}]`);
    return d;
  }

  /** The host float array positioned at this tensor's first element (writable: it is the storage). */
  floats(): FloatArray {
    if (this.dtype === 'i32') throw new TypeError(`expected a float tensor, got int32 of shape [${this.shape}]`);
    if (this.storage instanceof DeviceArray) throw new Error(`floats() reads host memory, but ${this} is on ${this.device}: use toArray(), or .to('cpu')`);
    this.checkNotReleased();
    return this.offset === 0 ? this.storage as FloatArray : (this.storage as FloatArray).subarray(this.offset);
  }

  ints(): Int32Array {
    if (this.dtype !== 'i32') throw new TypeError(`expected an int32 tensor, got ${this.dtype} of shape [${this.shape}]`);
    if (this.storage instanceof DeviceArray) throw new Error(`ints() reads host memory, but ${this} is on ${this.device}: use toArray(), or .to('cpu')`);
    this.checkNotReleased();
    return this.offset === 0 ? this.storage as Int32Array : (this.storage as Int32Array).subarray(this.offset);
  }

  /** What kernels take for this float tensor: floats() on the CPU, the device address of the first element on CUDA. */
  floatData(): FloatArray | number {
    const s = this.storage;
    if (!(s instanceof DeviceArray)) return this.floats();
    if (this.dtype === 'i32') throw new TypeError(`expected a float tensor, got int32 of shape [${this.shape}]`);
    return s.address(() => this.toString()) + this.offset * 4;
  }

  /** What kernels take for this int32 tensor (as floatData). */
  intData(): Int32Array | number {
    const s = this.storage;
    if (!(s instanceof DeviceArray)) return this.ints();
    if (this.dtype !== 'i32') throw new TypeError(`expected an int32 tensor, got ${this.dtype} of shape [${this.shape}]`);
    return s.address(() => this.toString()) + this.offset * 4;
  }

  /**
   * The values of this contiguous int32 tensor on the host, for checking indices before a kernel reads them:
   * the storage itself on the CPU, the array a device buffer was uploaded from while it is unchanged, else a
   * download. Read-only.
   */
  hostInts(): Int32Array {
    const s = this.storage;
    if (!(s instanceof DeviceArray)) return this.ints();
    if (s.hostMirror && this.isContiguous) return s.hostMirror.subarray(this.offset, this.offset + this.size);
    return this.toArray() as Int32Array;
  }

  /**
   * The elements in row-major order on the host, read-only: the storage itself for a contiguous CPU tensor (no
   * copy: decoding reads [batch, vocab] rows every step), a fresh array otherwise.
   */
  hostValues(): HostArray {
    this.checkNotReleased();
    if (!(this.storage instanceof DeviceArray) && this.isContiguous) {
      return this.storage.subarray(this.offset, this.offset + this.size);
    }
    return this.toArray();
  }

  /** The elements in row-major order as a fresh host array of this dtype (a download for device tensors). */
  toArray(): HostArray {
    this.checkNotReleased();
    const out = allocHost(this.dtype, this.size);
    const s = this.storage;
    if (s instanceof DeviceArray) {
      const src = this.isContiguous ? this : ops().contiguous(this.detach());
      s.memory.download(out, (src.storage as DeviceArray).address(() => this.toString()) + src.offset * 4);
      return out;
    }
    const idx = new Array(this.ndim).fill(0);
    for (let i = 0; i < out.length; i++) {
      let p = this.offset;
      for (let d = 0; d < this.ndim; d++) p += idx[d] * this.strides[d];
      out[i] = s[p];
      for (let d = this.ndim - 1; d >= 0; d--) {
        if (++idx[d] < this.shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a tensor of one element, got shape [${this.shape}]`);
    if (this.storage instanceof DeviceArray) return this.toArray()[0];
    this.checkNotReleased();
    return this.storage[this.offset];
  }

  /**
   * Throws when this tensor's host buffer was handed on (its ArrayBuffer is then detached, length 0: see
   * backend.ts's moveHostArray), instead of reading memory that now belongs to another tensor.
   */
  private checkNotReleased(): void {
    if (!(this.storage instanceof DeviceArray) && this.storage.length === 0 && this.size > 0) {
      throw new Error(`${this} was used after its buffer was released to later steps (by backward({ releaseGraph: true }), or a gradient by clipGradNorm's release or releaseGradients): read what you need before, or leave the release off`);
    }
  }

  /** Nested arrays, for printing and tests. */
  toNested(): unknown {
    const flat = Array.from(this.toArray());
    const build = (dim: number, start: number): unknown => {
      if (dim === this.ndim) return flat[start];
      const inner = shapeSize(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, start + i * inner));
    };
    return build(0, 0);
  }

  /** This tensor on another device (itself when already there); gradients flow back across the copy. */
  to(device: Device): Tensor {
    return device === this.device ? this : ops().to(this, device);
  }

  /** A tensor sharing this one's storage that is not part of any graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, { strides: this.strides, offset: this.offset });
  }

  /**
   * Computes the gradient of this scalar with respect to every tensor with requiresGrad that it depends on.
   * With `releaseGraph`, the caller promises that no tensor of the graph except this one is read afterwards: the
   * host buffers of its intermediate tensors (the forward's activations) then serve the next step's allocations
   * instead of waiting for the garbage collector, and reading one of those tensors throws.
   */
  backward(gradOutput?: Tensor, options: { releaseGraph?: boolean } = {}): void {
    backward(this, gradOutput, options.releaseGraph ?? false);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape}]${this.device === 'cpu' ? '' : `, ${this.device}`})`;
  }
}

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const nodeRegistry = new FinalizationRegistry<null>(() => {
  nodeCount--;
});

/**
 * Records `out` as produced by an op, if grad mode is on and any input requires a gradient. Ops call this
 * once, right after computing their output, with the backward written beside their forward.
 */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode['backward']): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  nodeCount++;
  // An unused graph (a forward with no backward) is released by the garbage collector.
  nodeRegistry.register(out.node, null, out.node);
  return out;
}

// Reverse-mode accumulation over the tape, in reverse topological order. Gradients of leaves (tensors with
// requiresGrad and no node: parameters) are added into `.grad`, so several backward calls accumulate.
function backward(root: Tensor, gradOutput: Tensor | undefined, releaseGraph: boolean): void {
  if (!root.requiresGrad) throw new Error('backward() on a tensor that does not require grad');
  if (!gradOutput && root.size !== 1) throw new Error(`backward() without a gradient needs a scalar, got shape [${root.shape}]`);
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative depth-first post-order: deep graphs (many layers) must not overflow the JS stack.
  const stack: Array<[Tensor, number]> = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, gradOutput ?? ops().onesLike(root));
  // Host buffers that only this pass can reach: made by a node's backward (the recycler saw them handed out
  // during the call) and not given to a leaf, each with how many entries of `grads` read it. A buffer one
  // entry alone reads is added into in place; one no entry reads any more is dead and goes back to the
  // recycler, which the ops of later nodes allocate from. Neither changes a value: kernels write their outputs
  // whole, and a + b is b + a in floating point.
  const owned = new Map<HostArray | DeviceArray, number>();
  const readers = (t: Tensor) => owned.get(t.storage) ?? -1;
  const unread = (t: Tensor) => {
    const n = owned.get(t.storage);
    if (n !== undefined) owned.set(t.storage, n - 1);
  };
  const inPlaceTarget = (t: Tensor) => readers(t) === 1 && t.isContiguous;
  const recycler = new HostRecycler();
  const releaseDead = () => {
    for (const [storage, n] of owned) {
      if (n > 0) continue;
      owned.delete(storage);
      recycler.release(storage as HostArray);
    }
  };
  const leaves = releaseGraph ? order.filter((t) => !t.node) : [];
  noGrad(() => withHostRecycler(recycler, () => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      grads.delete(t);
      if (!g) continue;
      if (!t.node) {
        // Gradients are never written in place while shared (one may reach several inputs), so a gradient
        // that only this pass reads becomes the leaf's without a copy, and is added into when it has one.
        unread(g);
        let grad: Tensor;
        if (t.grad && readers(g) === 0 && g.isContiguous) grad = (ops().binaryInPlace('add', g, t.grad), g);
        else grad = t.grad ? ops().add(t.grad, g) : ops().contiguous(g);
        if (grad.storage === g.storage) owned.delete(g.storage);
        setGrad(t, grad);
        releaseDead();
        continue;
      }
      recycler.handedOut.clear();
      const inputGrads = t.node.backward(g);
      unread(g);
      t.node.inputs.forEach((input, j) => {
        const ig = inputGrads[j];
        if (!ig || !input.requiresGrad) return;
        if (!sameShape(ig.shape, input.shape)) {
          throw new Error(`internal: ${t.node!.op} backward gave a gradient of shape [${ig.shape}] for an input of shape [${input.shape}]`);
        }
        const n = owned.get(ig.storage);
        if (n !== undefined) owned.set(ig.storage, n + 1);
        else if (recycler.handedOut.has(ig.storage as HostArray)) owned.set(ig.storage, 1);
        const prev = grads.get(input);
        if (!prev) {
          grads.set(input, ig);
        } else if (inPlaceTarget(prev)) {
          ops().binaryInPlace('add', prev, ig);
          unread(ig);
        } else if (inPlaceTarget(ig)) {
          ops().binaryInPlace('add', ig, prev);
          unread(prev);
          grads.set(input, ig);
        } else {
          const sum = ops().add(prev, ig);
          unread(prev);
          unread(ig);
          if (recycler.handedOut.has(sum.storage as HostArray)) owned.set(sum.storage, 1);
          grads.set(input, sum);
        }
      });
      releaseDead();
      nodeRegistry.unregister(t.node);
      nodeCount--;
      t.node = null;
    }
    if (releaseGraph) releaseActivations(root, order, leaves, recycler);
  }));
}

// backward({ releaseGraph: true }): the host buffers of the graph's intermediate tensors go to the pass's recycler,
// which serves the next forward (withHostRecycler). Why: the forward's activations were fresh ArrayBuffers every
// step (250 MB a 5m step), and V8 answers fresh external memory with a collection per 32-64 MB, paused on the
// one thread that runs the op layer. Only buffers the allocator made uninitialized (ops' outputs) are released,
// never one that a leaf (a parameter, or a view of one), a leaf's gradient or the root shares. Each buffer moves
// to a new ArrayBuffer (structuredClone's transfer: no copy, and no new external memory for V8 to count), which
// detaches the old one, so a released tensor read later throws instead of seeing another tensor's values.
function releaseActivations(root: Tensor, order: readonly Tensor[], leaves: readonly Tensor[], recycler: HostRecycler): void {
  const kept = new Set<unknown>([root.storage]);
  for (const leaf of leaves) {
    kept.add(leaf.storage);
    if (leaf.grad) kept.add(leaf.grad.storage);
  }
  const released = new Set<unknown>();
  for (const t of order) {
    const s = t.storage;
    if (kept.has(s) || released.has(s) || s instanceof DeviceArray || !isUninitializedHostArray(s)) continue;
    released.add(s);
    recycler.release(moveHostArray(s));
  }
}

/**
 * Sets (or, with null, clears) a leaf's gradient. On the CPU a plain assignment. On a device the leaf owns its
 * gradient buffer: it is kept out of scopes, so gradients accumulate over the micro-batch scopes of a step, and
 * the previous buffer is freed when replaced; Module.zeroGrad() frees the last one. A buffer that another leaf
 * already owns (one gradient reaching two leaves) is copied first.
 */
export function setGrad(t: Tensor, grad: Tensor | null): void {
  const old = t.grad;
  let next = grad;
  if (next && next.storage instanceof DeviceArray) {
    if (next.storage.kept && next !== old) next = ops().contiguous(next, true);
    keep(next);
  }
  t.grad = next;
  if (old && old.storage instanceof DeviceArray && old.storage !== next?.storage) dispose(old);
}

// The op module imports this one; reaching it through a late-bound getter keeps the import graph acyclic at
// load time.
type OpsForTape = {
  add(a: Tensor, b: Tensor): Tensor;
  binaryInPlace(op: 'add', target: Tensor, x: Tensor): void;
  onesLike(t: Tensor): Tensor;
  contiguous(t: Tensor, copy?: boolean): Tensor;
  to(t: Tensor, device: Device): Tensor;
};
let opsModule: OpsForTape | undefined;
export function bindTapeOps(m: OpsForTape): void {
  opsModule = m;
}
function ops(): OpsForTape {
  if (!opsModule) throw new Error('internal: tensor ops not loaded (import from src/tensor/index.ts)');
  return opsModule;
}
