// Backends: a name, a device and a kernel table (src/tensor/kernels.ts). The two CPU backends share host
// storage (typed arrays), so a tensor moves between them for free: `reference` is plain TypeScript, the living
// definition of every kernel; `native` is the C++ core (native/cpu) and is the default where it is built.
import type { Kernels } from './kernels.ts';

export type DType = 'f32' | 'f64' | 'i32';
export type Device = 'cpu' | 'cuda';
export type FloatArray = Float32Array | Float64Array;
export type HostArray = FloatArray | Int32Array;

export interface Backend {
  readonly name: 'reference' | 'native';
  readonly device: Device;
  readonly kernels: Kernels<FloatArray, Int32Array>;
}

export function allocHost(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case 'f32': return new Float32Array(n);
    case 'f64': return new Float64Array(n);
    case 'i32': return new Int32Array(n);
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
