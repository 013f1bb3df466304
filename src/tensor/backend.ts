// Backends: a name, a device and a kernel table (src/tensor/kernels.ts). The two CPU backends share host
// storage (typed arrays), so a tensor moves between them for free: `reference` is plain TypeScript, the living
// definition of every kernel; `native` is the C++ core (native/cpu) and is the default where it is built. The
// CUDA backend (backends/cuda.ts) keeps its tensors in device memory (DeviceArray) and adds what ops need to
// create and move them there.
import type { DeviceArray, DeviceMemory } from './device.ts';
import type { Kernels } from './kernels.ts';

export type DType = 'f32' | 'f64' | 'i32';
export type { Device } from './device.ts';
export type FloatArray = Float32Array | Float64Array;
export type HostArray = FloatArray | Int32Array;

export interface Backend {
  readonly name: 'reference' | 'native';
  readonly device: 'cpu';
  readonly kernels: Kernels<FloatArray, Int32Array>;
  /**
   * A decode step's draw for every row of float32 logits [rows, vocab] in one call (native: r1_sample in
   * native/r1.h): params holds 5 numbers a row (temperature, topP, minP, topK, the row's uniform), ids and
   * logprobs receive each row's token among ids < sampleVocab and its log-softmax. The tokens are exactly those
   * src/generate/sampler.ts draws row by row, which is what the sampling engine does where this is absent (the
   * reference backend).
   */
  readonly sample?: (logits: Float32Array, rows: number, vocab: number, sampleVocab: number, params: Float64Array, ids: Int32Array, logprobs: Float32Array) => void;
}

/** A backend whose buffers live in device memory; its kernels take device addresses (numbers). */
export interface DeviceBackend {
  readonly name: 'cuda';
  readonly device: 'cuda';
  readonly kernels: Kernels<number, number>;
  readonly memory: DeviceMemory;
  /** An uninitialised buffer of n elements (float64 is refused with a clear error). */
  alloc(dtype: DType, n: number): DeviceArray;
  upload(data: HostArray): DeviceArray;
  /** Copies host data into an existing buffer from element `offset` on (its dtype's element size). */
  write(array: DeviceArray, offset: number, data: HostArray): void;
  fill(array: DeviceArray, value: number): void;
  /** Copies n elements between buffers of the same element size, by address. */
  copy(dst: number, src: number, n: number): void;
  /** Converts n contiguous elements between float32 and int32 (toward zero, as a C cast). */
  convert(src: number, srcDtype: 'f32' | 'i32', dst: number, n: number): void;
  /**
   * Registers a float32 buffer as a weight (again after a write the library does not see), so that bf16 GEMMs
   * read a bf16 copy rounded once per optimizer step instead of rounding it on every call (native/r1_cuda.h).
   */
  registerWeight(array: DeviceArray): void;
  /**
   * The same for a float32 buffer that is not a weight but that more than one bf16 GEMM reads (an activation
   * read again by its weight's gradient, an output gradient read by both input gradients): one rounding instead
   * of one per GEMM. A no-op outside bf16 precision and while recording a CUDA graph.
   */
  shareBf16Operand(array: DeviceArray): void;
  /**
   * Promises a fresh float32 output buffer to its bf16 copy alone, before the kernel that produces it runs: the
   * kernel then writes only the copy, which bf16 GEMMs read (native/r1_cuda.h, "bf16-only outputs"); any other
   * use of the buffer writes the floats back from the copy first (DeviceArray.address). For outputs that only
   * GEMMs read. A no-op outside bf16 precision and while recording a CUDA graph.
   */
  bf16OnlyOutput(array: DeviceArray): void;
  /**
   * Draws one token per row of float32 logits [rows, vocab] on the device (r1_cuda_sample in native/r1_cuda.h):
   * params holds 32 bytes per row, out receives 3 * rows words (ids, then log-probability bits); selects: whether
   * some row has top-k or top-p on. Addresses.
   */
  sample(logits: number, rows: number, vocab: number, sampleVocab: number, params: number, out: number, selects: boolean): void;
  /**
   * A download of `bytes` from a device address that waits only for the work queued before it
   * (r1_cuda_download_begin), returning its slot: downloadEnd(slot, dst) then waits for it and fills dst
   * (dst.byteLength = bytes). At most two begun and not ended.
   */
  downloadBegin(address: number, bytes: number): number;
  downloadEnd(slot: number, dst: ArrayBufferView): void;
  /** acc[0] += sum of x[i]^2 over i < n, without waiting for the device (r1_cuda_sum_squares_add). Addresses. */
  sumSquaresAdd(x: number, n: number, acc: number): void;
  /**
   * cache[b, column[b], :] = src[b, :] for a cache [B, capacity, width] of float32 or, with bf16, of bf16 elements
   * (r1_cuda_write_columns). Addresses.
   */
  writeColumns(cache: number, src: number, column: number, B: number, capacity: number, width: number, bf16: boolean): void;
  /**
   * One query per row over the keys [kvStart[b], kvEnd[b]) of a cache of float32 or (bf16) bf16 elements
   * (r1_cuda_decode_attention). Addresses; strides in elements.
   */
  decodeAttention(q: number, k: number, v: number, out: number, kvStart: number, kvEnd: number, B: number, Hq: number, Hkv: number, D: number,
    capacity: number, kvBatchStride: number, vBatchStride: number, scale: number, bf16: boolean, outBf16: boolean): void;
  /** n float32 values rounded to n bf16 at dst (r1_cuda_to_bf16). Addresses. */
  toBf16(src: number, dst: number, n: number): void;
  /** The fused kernels of a dense model's decode step (r1_cuda_linear, r1_cuda_add_rmsnorm, r1_cuda_rope_write_kv, r1_cuda_swiglu_rows). Addresses; 0 = none. */
  linear(x: number, xBf16: boolean, w: number, wBf16: boolean, bias: number, y: number, m: number, n: number, k: number): void;
  addRmsNorm(x: number, residual: number, w: number, sum: number, y: number, rows: number, dim: number, eps: number, bf16: boolean): void;
  ropeWriteKv(qkv: number, positions: number, cos: number, sin: number, column: number, q: number, kCache: number, vCache: number,
    B: number, Hq: number, Hkv: number, D: number, rotDim: number, interleaved: boolean, capacity: number, bf16: boolean): void;
  swigluRows(gateUp: number, y: number, rows: number, inter: number, bf16: boolean): void;
  linearSwiglu(x: number, w: number, y: number, m: number, inter: number, k: number): void;
  /** DeepSeekMoE and MLA on the device (r1_cuda_moe_*, r1_cuda_grouped_*, r1_cuda_mla_decode_attention; src/tensor/moe.ts). Addresses. */
  moeRoute(scores: number, bias: number, experts: number, n: number, E: number, K: number, groups: number, topkGroup: number): void;
  expertCounts(experts: number, counts: number, n: number, K: number, E: number, tokensPerSegment: number): void;
  moeDispatch(experts: number, n: number, K: number, E: number, offsets: number, tokenOfRow: number, slotOfRow: number): void;
  groupedLinear(a: number, weights: readonly number[], offsets: number, out: number, rows: number, J: number, Kd: number, transposedW: boolean): void;
  groupedWeightGrad(dy: number, x: number, offsets: number, grads: readonly number[], N: number, C: number): void;
  mlaDecodeAttention(q: number, cache: number, out: number, kvStart: number, kvEnd: number, B: number, H: number, D: number, Dv: number, capacity: number,
    scale: number, bf16: boolean): void;
  linearRopeKv(x: number, w: number, bias: number, positions: number, cos: number, sin: number, column: number, q: number, kCache: number, vCache: number,
    B: number, Hq: number, Hkv: number, D: number, interleaved: boolean, capacity: number, cacheBf16: boolean, k: number): void;
}

export function allocHost(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case 'f32': return new Float32Array(n);
    case 'f64': return new Float64Array(n);
    case 'i32': return new Int32Array(n);
  }
}

/**
 * A host array whose contents are whatever the allocator held before, for outputs that a kernel overwrites whole
 * (r1.h): zeroing memory that is written next anyway was ~4% of a small model's training step, and a fresh
 * zeroed megabyte costs ~10x a reused unzeroed one. Small arrays stay zeroed: V8 makes those faster itself.
 */
export function allocHostUninitialized(dtype: DType, n: number): HostArray {
  const bytes = dtype === 'f64' ? 8 : 4;
  if (n * bytes < 4096) return allocHost(dtype, n);
  const reused = recycler?.take(dtype, n) ?? spare?.take(dtype, n) ?? stepSpare?.take(dtype, n);
  if (reused) {
    recycler?.handedOut.add(reused);
    return reused;
  }
  const array = hostView(dtype, Buffer.allocUnsafeSlow(n * bytes).buffer, n);
  recycler?.handedOut.add(array);
  uninitialized.add(array);
  return array;
}

// The arrays allocHostUninitialized made (ops' outputs and scratch), as against arrays a caller gave (tensor()) or
// zeroed ones: only these may be released by backward({ releaseGraph: true }) (tensor.ts).
const uninitialized = new WeakSet<HostArray>();

export function isUninitializedHostArray(array: HostArray): boolean {
  return uninitialized.has(array);
}

/**
 * The same memory as `array` in a new array, `array`'s ArrayBuffer detached (its length reads 0): a buffer handed
 * on to another owner cannot be read or written through the old one by mistake. No copy; V8 does not count the
 * moved buffer as new external memory.
 */
export function moveHostArray(array: HostArray): HostArray {
  const n = array.length;  // read before the transfer: a detached array's length is 0
  const buffer = array.buffer as ArrayBuffer;
  const moved = hostView(hostDtype(array), structuredClone(buffer, { transfer: [buffer] }), n);
  uninitialized.add(moved);
  return moved;
}

function hostView(dtype: DType, buffer: ArrayBuffer, n: number): HostArray {
  switch (dtype) {
    case 'f32': return new Float32Array(buffer, 0, n);
    case 'f64': return new Float64Array(buffer, 0, n);
    case 'i32': return new Int32Array(buffer, 0, n);
  }
}

function hostDtype(array: HostArray): DType {
  return array instanceof Float32Array ? 'f32' : array instanceof Float64Array ? 'f64' : 'i32';
}

/**
 * Host buffers that backward() (tensor.ts) knows to be dead, handed out again by allocHostUninitialized while
 * it runs. Every array of a training step was a fresh ArrayBuffer (650 MB a 5m step), and V8 answers fresh
 * external memory with a scavenge per 32 MB and a mark-compact per 64 MB, ~30 collections a step; buffers
 * reused within the backward pass are not new external memory. `handedOut` collects what the allocator handed
 * out (new or reused) since it was last cleared, which is how backward() tells a gradient its op just made
 * from one that may be shared.
 */
export class HostRecycler {
  readonly handedOut = new Set<HostArray>();
  private readonly free = new Map<string, HostArray[]>();

  take(dtype: DType, n: number): HostArray | undefined {
    return this.free.get(`${dtype} ${n}`)?.pop();
  }

  /** A buffer nothing reads or writes any more. */
  release(array: HostArray): void {
    const key = `${hostDtype(array)} ${array.length}`;
    const list = this.free.get(key);
    if (list) list.push(array);
    else this.free.set(key, [array]);
  }
}

let recycler: HostRecycler | null = null;
// What the last backward pass freed and did not use again: the next step's forward allocates its activations
// (arrays of the same shapes) from it. Replaced by the next pass's leftovers, so it holds at most one pass's.
let spare: HostRecycler | null = null;

// Gradient buffers the end of a training step handed back (optimizer.ts: clipGradNorm's release, releaseGradients):
// the next step's weight gradients and clipped copies have the same shapes. Started again by each releaseGradients,
// so it holds at most what one step released (two sets of a model's gradients).
let stepSpare: HostRecycler | null = null;

/**
 * Hands host arrays that nothing will read again to later allocations (each moved first, see moveHostArray);
 * `startAgain` drops what earlier calls handed back and nobody took. Arrays the allocator did not make
 * uninitialized, or already moved, are left alone.
 */
export function releaseHostArrays(arrays: Iterable<HostArray>, startAgain: boolean): void {
  if (startAgain || !stepSpare) stepSpare = new HostRecycler();
  for (const array of arrays) if (array.length > 0 && uninitialized.has(array)) stepSpare.release(moveHostArray(array));
}

/**
 * Runs fn with `r` serving host allocations from the buffers released to it (then from the previous pass's
 * leftovers); what is left in `r` afterwards serves later allocations until the next call.
 */
export function withHostRecycler<T>(r: HostRecycler, fn: () => T): T {
  const previous = recycler;
  recycler = r;
  try {
    return fn();
  } finally {
    recycler = previous;
    r.handedOut.clear();
    spare = r;
  }
}

const backends = new Map<string, () => Backend>();
let active: Backend | undefined;

/** Backends register themselves lazily; the first `cpuBackend()` call picks native if it loads. */
export function registerBackend(name: Backend['name'], load: () => Backend): void {
  backends.set(name, load);
}

export function cpuBackend(): Backend {
  if (active) return active;
  const wanted = process.env.R1_BACKEND;
  if (wanted) return (active = loadBackend(wanted as Backend['name']));
  try {
    active = loadBackend('native');
  } catch (err) {
    process.emitWarning(`r1ts: native CPU core unavailable (${(err as Error).message}); using the slow reference backend. Run \`npm install\` (or \`npm run build\`) to build it.`);
    active = loadBackend('reference');
  }
  return active;
}

export function loadBackend(name: Backend['name']): Backend {
  const load = backends.get(name);
  if (!load) throw new Error(`unknown backend '${name}' (known: ${[...backends.keys()].join(', ')})`);
  return load();
}

/** Runs fn with `name` as the CPU backend (tests run one body on every backend this way). */
export function withBackend<T>(name: Backend['name'], fn: () => T): T {
  const previous = active;
  active = loadBackend(name);
  try {
    return fn();
  } finally {
    active = previous;
  }
}

let loadCuda: (() => DeviceBackend) | undefined;

export function registerCudaBackend(load: () => DeviceBackend): void {
  loadCuda = load;
}

/** The CUDA backend, initialised on first use; throws "CUDA backend not available: <reason>; ..." without one. */
export function cudaBackend(): DeviceBackend {
  if (!loadCuda) throw new Error('internal: the CUDA backend is not registered (import from src/tensor/index.ts)');
  return loadCuda();
}

/** The kernel table of a device: the active CPU backend's or the CUDA backend's. */
export function kernelsOn(device: 'cpu' | 'cuda'): Kernels<FloatArray | number, Int32Array | number> {
  return device === 'cpu' ? cpuBackend().kernels : cudaBackend().kernels;
}
