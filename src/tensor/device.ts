// Devices, device memory and its lifetime.
//
// A tensor's storage is host memory (a typed array, owned by the JavaScript garbage collector) or device memory
// (a DeviceArray: an address in GPU memory that the collector cannot see). Creation functions put new tensors
// on the default device (`setDefaultDevice`, `withDevice`), so model code written once runs on either; ops put
// their outputs on the device of their inputs.
//
// The lifetime rule for device memory (the tf.js `tidy` pattern): `scope(fn)` frees, when fn returns, every
// device buffer allocated inside it that is neither reachable from its return value (tensors, and arrays, Maps
// and plain objects holding them) nor kept with `keep(t)`; what the return value reaches passes to the
// enclosing scope. Parameters, optimizer moments and anything meant to outlive a step are kept; `dispose(t)`
// frees a buffer at once. A FinalizationRegistry frees what escapes both (a buffer allocated outside any scope
// and dropped), as a backstop only: the collector runs when host memory is short, not GPU memory. A freed
// buffer used again throws, naming how it was freed, instead of reading memory that now belongs to another
// tensor. The autograd graph holds its saved tensors only through closures, so a backward must run inside the
// scope of its forward. On the CPU, scopes cost nothing: host arrays are never tracked.

export type Device = 'cpu' | 'cuda';

let currentDevice: Device = 'cpu';

/** The device that creation functions (empty, zeros, tensor, randn, ...) allocate on. */
export function defaultDevice(): Device {
  return currentDevice;
}

export function setDefaultDevice(device: Device): void {
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`unknown device '${String(device)}' (known: cpu, cuda)`);
  currentDevice = device;
}

/** Runs fn with `device` as the default device. */
export function withDevice<T>(device: Device, fn: () => T): T {
  const previous = currentDevice;
  setDefaultDevice(device);
  try {
    return fn();
  } finally {
    currentDevice = previous;
  }
}

/** What a device buffer needs from its backend: releasing it and reading it back. */
export interface DeviceMemory {
  readonly device: Device;
  free(address: number): void;
  /** Copies bytes from the device address into the host array (dst.byteLength bytes). */
  download(dst: ArrayBufferView, address: number): void;
  /** Writes a bf16-only buffer's floats from its bf16 copy (DeviceArray.floatsPending). */
  widenBf16Only?(address: number, n: number): void;
}

type FreedBy = 'scope' | 'dispose';

// The backstop: a DeviceArray dropped without being freed returns its memory when it is collected. The held
// value must not reference the array itself (it would never be collected).
const collected = new FinalizationRegistry<{ memory: DeviceMemory; address: number }>(({ memory, address }) => memory.free(address));

/** A float32 or int32 buffer in device memory. Views of a tensor share it. */
export class DeviceArray {
  readonly length: number;
  readonly dtype: 'f32' | 'i32';
  readonly memory: DeviceMemory;
  /**
   * The host values this int32 buffer was uploaded from, while the device copy is unchanged: ops that check
   * indices (embedding ids, targets, positions) read it instead of waiting for a download.
   */
  hostMirror: Int32Array | null = null;
  /** Never freed by a scope (parameters, optimizer moments). */
  kept = false;
  /**
   * Has a bf16 copy registered with its backend (ops.registerWeight: a weight; or an activation or gradient that
   * several bf16 GEMMs read, see ops.matmul): writes into it must register it again.
   */
  weight = false;
  /**
   * Registered by ops.registerWeight: a parameter. In bf16 precision a GEMM with a weight operand writes its
   * output (an activation, or an activation's gradient) as bf16 alone (ops.matmul).
   */
  modelWeight = false;
  /**
   * The floats were not written: a bf16-only output (DeviceBackend.bf16OnlyOutput) whose values are in its bf16
   * copy. address() writes them back before handing the buffer to anything; rawAddress() does not, for the GEMM
   * operands and registrations that read the copy.
   */
  floatsPending = false;
  private readonly base: number;
  private freedBy: FreedBy | null = null;

  constructor(memory: DeviceMemory, address: number, length: number, dtype: 'f32' | 'i32') {
    this.memory = memory;
    this.base = address;
    this.length = length;
    this.dtype = dtype;
    collected.register(this, { memory, address }, this);
    frames.at(-1)?.push(this);
  }

  get isFreed(): boolean {
    return this.freedBy !== null;
  }

  /**
   * The base address, its floats written (see floatsPending); `what` describes the tensor in the error when the
   * buffer has been freed.
   */
  address(what: () => string): number {
    const address = this.rawAddress(what);
    if (this.floatsPending) {
      this.floatsPending = false;
      this.memory.widenBf16Only!(address, this.length);
    }
    return address;
  }

  /** The base address as it is: for bf16 GEMM operands and the bf16 copies' registry, which read the copy. */
  rawAddress(what: () => string): number {
    if (this.freedBy !== null) {
      throw new Error(this.freedBy === 'scope'
        ? `${what()} was used after its scope ended: its ${this.memory.device} memory was freed when scope() returned (return it from the scope or keep() it)`
        : `${what()} was used after dispose() freed its ${this.memory.device} memory`);
    }
    return this.base;
  }

  free(by: FreedBy): void {
    if (this.freedBy !== null) return;
    this.freedBy = by;
    this.hostMirror = null;
    collected.unregister(this);
    this.memory.free(this.base);
  }
}

// One frame per active scope: the device buffers allocated while it is the innermost one.
const frames: DeviceArray[][] = [];

/**
 * Runs fn and frees the device buffers allocated inside it that its return value does not reach (header).
 * fn must be synchronous: buffers allocated after an await would escape the scope.
 */
export function scope<T>(fn: () => T): T {
  frames.push([]);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    release(frames.pop()!, new Set());
    throw err;
  }
  const frame = frames.pop()!;
  if (result instanceof Promise) {
    release(frame, new Set());
    throw new Error('scope() takes a synchronous function (device buffers allocated after an await would escape it)');
  }
  if (frame.length > 0) release(frame, reachableArrays(result));
  return result;
}

function release(frame: DeviceArray[], survivors: Set<DeviceArray>): void {
  const parent = frames.at(-1);
  for (const array of frame) {
    if (array.isFreed || array.kept) continue;
    if (survivors.has(array)) parent?.push(array);
    else array.free('scope');
  }
}

// Structural types, to stay free of an import cycle with tensor.ts (which imports this file).
interface WithStorage { storage: unknown; grad: unknown }

function reachableArrays(value: unknown): Set<DeviceArray> {
  const found = new Set<DeviceArray>();
  const seen = new Set<unknown>();
  const visit = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (v instanceof DeviceArray) {
      found.add(v);
    } else if (isTensorLike(v)) {
      visit(v.storage);
      visit(v.grad);
    } else if (Array.isArray(v)) {
      for (const item of v) visit(item);
    } else if (v instanceof Map) {
      for (const [key, item] of v) {
        visit(key);
        visit(item);
      }
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      for (const item of Object.values(v)) visit(item);
    }
  };
  visit(value);
  return found;
}

function isTensorLike(v: object): v is WithStorage {
  return 'storage' in v && 'shape' in v && 'strides' in v;
}

/**
 * Runs fn and exempts every device buffer it allocates from every scope, returning them: for an owner that frees
 * them together later (a CUDA graph, whose replays write into what its recording allocated).
 */
export function holdAllocations<T>(fn: () => T): { result: T; held: DeviceArray[] } {
  const frame: DeviceArray[] = [];
  frames.push(frame);
  try {
    return { result: fn(), held: frame };
  } finally {
    frames.pop();
    for (const array of frame) array.kept = true;
  }
}

/** Exempts a tensor's buffer from every scope (it is freed by dispose() or, dropped, by the collector). */
export function keep<T extends { storage: unknown }>(t: T): T {
  if (t.storage instanceof DeviceArray) t.storage.kept = true;
  return t;
}

/** Frees a tensor's device buffer now (and so that of every view sharing it); a no-op on the CPU. */
export function dispose(t: { storage: unknown }): void {
  if (t.storage instanceof DeviceArray) t.storage.free('dispose');
}
