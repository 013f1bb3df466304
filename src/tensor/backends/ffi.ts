// What the two koffi-bound libraries (the native CPU core and the CUDA library) share: binding a table of C
// declarations with an error naming the missing function and how to rebuild, and passing shapes and strides.
import type koffi from 'koffi';
import { MAX_DIMS, type Dims } from '../kernels.ts';

/** Every declaration bound from `lib`; a missing symbol names the library and the command that rebuilds it. */
export function bindFunctions<D extends Record<string, string>>(lib: ReturnType<typeof koffi.load>, path: string,
  declarations: D, rebuild: string): { -readonly [name in keyof D]: (...args: any[]) => any } {
  const fns = {} as { -readonly [name in keyof D]: (...args: any[]) => any };
  for (const [name, declaration] of Object.entries(declarations)) {
    try {
      fns[name as keyof D] = lib.func(declaration);
    } catch (err) {
      throw new Error(`${path} lacks ${name} (${(err as Error).message}): rebuild it with \`${rebuild}\``);
    }
  }
  return fns;
}

// Shapes and strides go to C as host int64 arrays. Filling a preallocated BigInt64Array through BigInt() measured
// ~300 ns for a 2-D copy call, against ~900 ns for plain arrays (koffi converts each) and ~600 ns for writing
// the two 32-bit halves through an Int32Array view.
export class DimsBuffer {
  private readonly buffer = new BigInt64Array(MAX_DIMS);
  fill(dims: Dims): BigInt64Array {
    for (let i = 0; i < dims.length; i++) this.buffer[i] = BigInt(dims[i]);
    return this.buffer;
  }
}
