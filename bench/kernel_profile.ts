// Where a benchmark's time goes on the CPU backend, by kernel: PROFILE=1 in bench/train.ts and bench/sample.ts.
import { cpuBackend } from '../src/tensor/index.ts';

/**
 * Times every kernel call of `runs` calls of run() (the CPU kernel table's functions wrapped in place, then put
 * back) and prints ms per run by kernel (wall time, and the process's CPU time: with one thread, `taskset -c 0`,
 * the steadier figure on a shared machine), matrix products by shape with their GFLOP/s; what is left of a run is
 * the TypeScript op layer, allocation and the garbage collector. Also the process's CPU time outside kernel
 * calls (with one thread, `taskset -c 0`, that is the op layer and the collector, steadier than wall time on a
 * loaded machine; `node --trace-gc` lists the collector's share).
 */
export function profileKernels(run: () => void, runs: number, what: string): void {
  const kernels = cpuBackend().kernels as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = { ...kernels };
  const byKey = new Map<string, { calls: number; ms: number; cpuMs: number; flops: number }>();
  let kernelCpuUs = 0;
  for (const [name, fn] of Object.entries(originals)) {
    if (typeof fn !== 'function') continue;
    kernels[name] = (...args: unknown[]) => {
      const cpu = process.cpuUsage();
      const t = performance.now();
      const result = fn(...args);
      const ms = performance.now() - t;
      const used = process.cpuUsage(cpu);
      kernelCpuUs += used.user + used.system;
      let key = name, flops = 0;
      if (name === 'matmul') {
        const [, , , b, m, n, k, transA, transB] = args as number[];
        key = `matmul ${b > 1 ? `${b} x ` : ''}${m}x${n}x${k} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
        flops = 2 * b * m * n * k;
      }
      const entry = byKey.get(key) ?? { calls: 0, ms: 0, cpuMs: 0, flops: 0 };
      entry.calls++, entry.ms += ms, entry.cpuMs += (used.user + used.system) / 1000, entry.flops += flops;
      byKey.set(key, entry);
      return result;
    };
  }
  const start = performance.now();
  const startCpu = process.cpuUsage();
  try {
    for (let i = 0; i < runs; i++) run();
  } finally {
    Object.assign(kernels, originals);
  }
  const cpu = process.cpuUsage(startCpu);
  const outsideCpuMs = (cpu.user + cpu.system - kernelCpuUs) / 1000 / runs;
  const runMs = (performance.now() - start) / runs;
  let kernelMs = 0;
  console.log(`  profile over ${runs} ${what}s: ${runMs.toFixed(1)} ms/${what}`);
  for (const [key, e] of [...byKey].sort((a, b) => b[1].ms - a[1].ms)) {
    kernelMs += e.ms / runs;
    const rate = e.flops ? `  ${(e.flops / e.ms / 1e6).toFixed(1)} GFLOP/s` : '';
    console.log(`  ${(e.ms / runs).toFixed(2).padStart(9)} ms ${((100 * e.ms) / runs / runMs).toFixed(1).padStart(5)}%  ${(e.cpuMs / runs).toFixed(1).padStart(8)} ms CPU  ${String(e.calls / runs).padStart(5)} calls  ${key}${rate}`);
  }
  console.log(`  ${(runMs - kernelMs).toFixed(2).padStart(9)} ms ${((100 * (runMs - kernelMs)) / runMs).toFixed(1).padStart(5)}%  outside the kernels`);
  console.log(`  outside the kernels: ${outsideCpuMs.toFixed(1)} ms of CPU per ${what} (all threads)`);
}

