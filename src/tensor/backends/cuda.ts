// The CUDA backend: the kernels of build/libr1cuda.so (cuda-library.ts) over tensors in device memory. It is
// initialised once, on first use, on device 0 or R1_CUDA_DEVICE; where there is no GPU or no built library,
// every use throws one error saying why and how to build it. Device kernels are float32 and int32: a float64
// tensor on CUDA is refused when it is allocated.
//
// Precision (`useDevice('cuda', 'bf16')`, the CLI's --precision): GEMMs round their operands to bfloat16 and
// accumulate in float32 (autocast-style); the products with weights and the activations that GEMMs read are kept
// as bf16 (bf16-only outputs, docs/DESIGN.md); parameters, their gradients, optimizer moments, the residual
// stream and the loss stay float32. bfloat16 has float32's exponent range, so gradients do not underflow and no loss scaling is
// needed (it is for float16).
import { registerCudaBackend, type DeviceBackend, type DType, type HostArray } from '../backend.ts';
import { DeviceArray, holdAllocations, setDefaultDevice, type Device, type DeviceMemory } from '../device.ts';
import { openCudaLibrary, type CudaLibrary, type CudaMemoryStats, type ProfileSpan } from './cuda-library.ts';

export type Precision = 'f32' | 'bf16';

let loaded: { backend: DeviceBackend; library: CudaLibrary } | undefined;
let precision: Precision = 'f32';
let failure: Error | undefined;
let recording = false; // inside captureGraph

function load(): { backend: DeviceBackend; library: CudaLibrary } {
  if (loaded) return loaded;
  if (failure) throw failure;
  try {
    const library = openCudaLibrary();
    const device = cudaDeviceIndex(library.deviceCount());
    library.init(device);
    loaded = { library, backend: makeBackend(library) };
    return loaded;
  } catch (err) {
    failure = new Error(`CUDA backend not available: ${(err as Error).message}; run npm run build:cuda on a machine with nvcc`);
    throw failure;
  }
}

function cudaDeviceIndex(count: number): number {
  const wanted = process.env.R1_CUDA_DEVICE;
  if (wanted === undefined || wanted === '') return 0;
  const index = Number(wanted);
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new Error(`R1_CUDA_DEVICE=${wanted} is not a device index in [0, ${count})`);
  }
  return index;
}

function makeBackend(library: CudaLibrary): DeviceBackend {
  const memory: DeviceMemory = {
    device: 'cuda',
    free: (address) => library.free(address),
    download: (dst, address) => library.download(dst, address),
    widenBf16Only: (address, n) => library.widenBf16Only(address, n),
  };
  const deviceDtype = (dtype: DType): 'f32' | 'i32' => {
    if (dtype === 'f64') throw new TypeError('float64 tensors are not supported on cuda (its kernels are float32 and int32); cast to f32 first');
    return dtype;
  };
  const alloc = (dtype: DType, n: number): DeviceArray => {
    const d = deviceDtype(dtype);
    // A zero-size tensor still gets a buffer of its own, so that freeing it is uniform.
    return new DeviceArray(memory, library.alloc(Math.max(n, 1) * 4), n, d);
  };
  return {
    name: 'cuda',
    device: 'cuda',
    kernels: library.kernels,
    memory,
    alloc,
    upload(data: HostArray): DeviceArray {
      const dtype: DType = data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : 'f64';
      const array = alloc(dtype, data.length);
      if (data.length > 0) library.upload(array.address(() => 'an upload'), data);
      if (data instanceof Int32Array) array.hostMirror = data;
      return array;
    },
    write(array, offset, data) {
      if (offset < 0 || offset + data.length > array.length) throw new RangeError(`write: ${data.length} elements at ${offset} do not fit a buffer of ${array.length}`);
      if (data.BYTES_PER_ELEMENT !== 4) throw new TypeError('write: device buffers hold 4-byte elements (float32 or int32)');
      if (data.length > 0) library.upload(array.address(() => 'a write') + offset * 4, data);
      // A whole int32 buffer written from the host keeps its host values, as an upload does (index checks read them).
      array.hostMirror = data instanceof Int32Array && offset === 0 && data.length === array.length ? data : null;
    },
    fill(array, value) {
      const address = array.address(() => 'a fill');
      if (array.dtype === 'i32') library.fillI32(address, value, array.length);
      else library.fill(address, value, array.length);
      array.hostMirror = null;
    },
    copy: (dst, src, n) => library.copy(dst, src, n * 4),
    convert(src, srcDtype, dst, n) {
      if (srcDtype === 'f32') library.f32ToI32(src, dst, n);
      else library.i32ToF32(src, dst, n);
    },
    sample: (logits, rows, vocab, sampleVocab, params, out, selects) => library.sample(logits, rows, vocab, sampleVocab, params, out, selects),
    sumSquaresAdd: (x, n, acc) => library.sumSquaresAdd(x, n, acc),
    downloadBegin: (address, bytes) => library.downloadBegin(address, bytes),
    downloadEnd: (slot, dst) => library.downloadEnd(slot, dst),
    writeColumns: (cache, src, column, B, capacity, width, bf16) => library.writeColumns(cache, src, column, B, capacity, width, bf16),
    decodeAttention: (q, k, v, out, kvStart, kvEnd, B, Hq, Hkv, D, capacity, kvBatchStride, vBatchStride, scale, bf16, outBf16) =>
      library.decodeAttention(q, k, v, out, kvStart, kvEnd, B, Hq, Hkv, D, capacity, kvBatchStride, vBatchStride, scale, bf16, outBf16),
    toBf16: (src, dst, n) => library.toBf16(src, dst, n),
    linear: (x, xBf16, w, wBf16, bias, y, m, n, k) => library.linear(x, xBf16, w, wBf16, bias, y, m, n, k),
    addRmsNorm: (x, residual, w, sum, y, rows, dim, eps, bf16) => library.addRmsNorm(x, residual, w, sum, y, rows, dim, eps, bf16),
    ropeWriteKv: (qkv, positions, cos, sin, column, q, kCache, vCache, B, Hq, Hkv, D, rotDim, interleaved, capacity, bf16) =>
      library.ropeWriteKv(qkv, positions, cos, sin, column, q, kCache, vCache, B, Hq, Hkv, D, rotDim, interleaved, capacity, bf16),
    swigluRows: (gateUp, y, rows, inter, bf16) => library.swigluRows(gateUp, y, rows, inter, bf16),
    linearSwiglu: (x, w, y, m, inter, k) => library.linearSwiglu(x, w, y, m, inter, k),
    moeRoute: (scores, bias, experts, n, E, K, groups, topkGroup) => library.moeRoute(scores, bias, experts, n, E, K, groups, topkGroup),
    expertCounts: (experts, counts, n, K, E, tokensPerSegment) => library.expertCounts(experts, counts, n, K, E, tokensPerSegment),
    moeDispatch: (experts, n, K, E, offsets, tokenOfRow, slotOfRow) => library.moeDispatch(experts, n, K, E, offsets, tokenOfRow, slotOfRow),
    groupedLinear: (a, weights, offsets, out, rows, J, Kd, transposedW) => library.groupedLinear(a, weights, offsets, out, rows, J, Kd, transposedW),
    groupedWeightGrad: (dy, x, offsets, grads, N, C) => library.groupedWeightGrad(dy, x, offsets, grads, N, C),
    mlaDecodeAttention: (q, cache, out, kvStart, kvEnd, B, H, D, Dv, capacity, scale, bf16) =>
      library.mlaDecodeAttention(q, cache, out, kvStart, kvEnd, B, H, D, Dv, capacity, scale, bf16),
    linearRopeKv: (x, w, bias, positions, cos, sin, column, q, kCache, vCache, B, Hq, Hkv, D, interleaved, capacity, cacheBf16, k) =>
      library.linearRopeKv(x, w, bias, positions, cos, sin, column, q, kCache, vCache, B, Hq, Hkv, D, interleaved, capacity, cacheBf16, k),
    registerWeight(array) {
      // The bf16 copy costs half the weight's bytes again: only worth it when GEMMs read bf16.
      if (precision !== 'bf16' || array.dtype !== 'f32' || array.length === 0) return;
      // Registered again after a write (copyInto), an activation that had a copy stays an activation.
      if (!array.weight) array.modelWeight = true;
      library.registerWeight(array.address(() => 'a weight'), array.length);
      array.weight = true;
    },
    shareBf16Operand(array) {
      // A graph must not read a copy rounded before its recording (the buffer may change between replays).
      if (array.weight || recording || precision !== 'bf16' || array.dtype !== 'f32' || array.length === 0) return;
      // Not registerWeight: the copy that the producer kernel of this activation wrote must stay current.
      library.shareBf16Operand(array.rawAddress(() => 'a bf16 operand'), array.length);
      array.weight = true;
    },
    bf16OnlyOutput(array) {
      if (recording || precision !== 'bf16' || array.dtype !== 'f32' || array.length === 0) return;
      if (!library.bf16OnlyOutput(array.rawAddress(() => 'a bf16-only output'), array.length)) return;
      array.floatsPending = true;
      array.weight = true;
    },
  };
}

registerCudaBackend(() => load().backend);

/** Whether the CUDA backend loads here; the reason when it does not (tests skip with it). */
export function cudaAvailable(): { ok: true } | { ok: false; reason: string } {
  try {
    load();
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/** The loaded CUDA library (initialising the backend; throws its clear error without a GPU): for NCCL (src/distributed). */
export function cudaLibrary(): CudaLibrary {
  return load().library;
}

/**
 * The device a program computes on, chosen once at its edge (the CLI's --device and --precision): sets the
 * default device and, for CUDA, initialises the backend (throwing its clear error without one) and sets the
 * GEMM precision. bf16 needs CUDA: the CPU core has no bfloat16 GEMM.
 */
export function useDevice(device: Device, precision: Precision = 'f32'): void {
  if (device === 'cpu') {
    if (precision !== 'f32') throw new Error(`precision '${precision}' needs --device cuda (the CPU kernels compute in float32)`);
  } else {
    setMatmulPrecision(precision);
  }
  setDefaultDevice(device);
}

/** GEMM precision of the CUDA backend: 'f32' (exact float32, the default) or 'bf16' (bfloat16 operands, float32 accumulation). */
export function setMatmulPrecision(value: Precision): void {
  load().library.setMatmulPrecision(value);
  precision = value;
}

/**
 * The most rows (default 0: off, slower than cuBLASLt as measured so far, docs/BENCHMARKS.md) for which a bf16
 * decodeLinear runs on the skinny tensor-core GEMM (native/cuda/skinny_gemm.cu: the weights streamed once over
 * the whole GPU) instead of cuBLASLt. Returns the previous setting. Graphs recorded earlier keep their kernels.
 */
export function setSkinnyGemmRows(rows: number): number {
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`setSkinnyGemmRows: ${rows} is not a row count (a non-negative integer)`);
  return load().library.setSkinnyGemmRows(rows);
}

/** The GEMM precision set last (setMatmulPrecision, useDevice): what a GEMM's operands are rounded to. */
export function matmulPrecision(): Precision {
  return precision;
}

/** Bytes of device memory in use, reserved by the caching allocator, the peak in use, and live blocks. */
export function cudaMemoryStats(): CudaMemoryStats {
  return load().library.memoryStats();
}

/** A recorded sequence of CUDA work, replayed with one launch; dispose() frees it and the memory it uses. */
export interface CudaGraph {
  launch(): void;
  dispose(): void;
}

/**
 * Records the CUDA work fn queues as a graph instead of running it (nothing runs until launch()). Every device
 * buffer fn allocates is held for the graph's lifetime, since replays write into it: fn's result may be read
 * after each launch(), and is freed by dispose(). fn must not read device memory back (a download waits for
 * work that is only being recorded) nor free what it allocated.
 */
export function captureGraph<T>(fn: () => T): { graph: CudaGraph; result: T } {
  const { library } = load();
  library.graphBegin();
  let held: DeviceArray[] = [];
  let result: T;
  let handle: number;
  recording = true;
  try {
    ({ result, held } = holdAllocations(fn));
  } finally {
    recording = false;
    // Ends the recording even when fn threw, so that the stream runs work again.
    handle = library.graphEnd();
  }
  const freed = held.filter((array) => array.isFreed);
  if (freed.length > 0) {
    library.graphDestroy(handle);
    for (const array of held) array.free('dispose');
    throw new Error(`captureGraph: ${freed.length} buffers were freed while recording; the graph would write into memory given to others`);
  }
  let disposed = false;
  const graph: CudaGraph = {
    launch() {
      if (disposed) throw new Error('a CUDA graph was launched after dispose()');
      library.graphLaunch(handle);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      library.graphDestroy(handle);
      for (const array of held) array.free('dispose');
    },
  };
  return { graph, result };
}

/** Device time spent in one kind of work over a profiled stretch (profileCuda). */
export interface CudaProfileRow { what: string; calls: number; ms: number }

/**
 * Runs fn with every kernel call bracketed by CUDA events and returns, beside fn's result, the device time of
 * each kind of work, largest first: each kernel of the table (plus fill and copy), the bf16 rounding of GEMM
 * and attention operands (separated from the call that does it), and 'between calls': time the device spent
 * waiting for the host's next call (or in calls that are not bracketed: sampling, NCCL). The rows add up to the
 * device time from start to end. The events cost the host about a microsecond per call; fn must not record a
 * CUDA graph.
 */
export function profileCuda<T>(fn: () => T, capacity = 1 << 17): { result: T; rows: CudaProfileRow[]; totalMs: number } {
  const { library } = load();
  library.synchronize();
  library.profileStart(capacity);
  let result: T;
  let spans: ProfileSpan[];
  try {
    result = fn();
  } finally {
    spans = library.profileStop();
  }
  const byName = new Map<string, CudaProfileRow>();
  let totalMs = 0;
  for (const span of spans) {
    const row = byName.get(span.what) ?? { what: span.what, calls: 0, ms: 0 };
    row.ms += span.ms;
    if (span.opens) row.calls++;
    byName.set(span.what, row);
    totalMs += span.ms;
  }
  return { result, rows: [...byName.values()].sort((a, b) => b.ms - a.ms), totalMs };
}

/**
 * Waits until every kernel queued on `device` has run (for timings; asynchronous faults surface here). A no-op
 * on the CPU, whose kernels have finished when they return.
 */
export function synchronize(device: Device): void {
  if (device === 'cuda') load().library.synchronize();
}
