#!/usr/bin/env node
// Builds the CUDA backend (native/cuda/*.cu) into build/libr1cuda.so: every kernel of native/r1.h plus the
// runtime of native/r1_cuda.h, loaded at run time by src/tensor/backends/cuda-library.ts. Needs nvcc (CUDA 12
// or 13) and the CUDA runtime headers only: cuBLASLt is opened with dlopen when the library initialises, and
// cudart is linked statically, so the library needs nothing but the NVIDIA driver (and cuBLASLt) at run time.
//
// Architectures: sm_80 (A100) and sm_90 (H100/H200) by default; R1_CUDA_ARCH="90" (or "80,90", ...) overrides.
// Files compile in parallel, at most R1_CUDA_JOBS (default 2) at a time.
//
// `--optional` (the install script's step): skipped when R1_CUDA=0 or when there is no nvcc, and a failed build
// only warns, since the CPU backend works without it.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'native', 'cuda');
const outDir = join(root, 'build');
const libName = 'libr1cuda.so';

function findNvcc() {
  const candidates = [process.env.NVCC, 'nvcc', '/usr/local/cuda/bin/nvcc'].filter(Boolean);
  for (const nvcc of candidates) {
    try {
      execFileSync(nvcc, ['--version'], { stdio: 'ignore' });
      return nvcc;
    } catch {}
  }
  return undefined;
}

/** Builds the library; throws with a message naming what failed. Returns the path built. */
export async function buildCuda({ quiet = false } = {}) {
  const nvcc = findNvcc();
  if (!nvcc) {
    throw new Error('nvcc not found (tried $NVCC, nvcc on PATH, /usr/local/cuda/bin/nvcc): install the CUDA toolkit (12 or 13) to build the CUDA backend');
  }
  const archs = (process.env.R1_CUDA_ARCH ?? '80,90').split(',').map((a) => a.trim()).filter(Boolean);
  if (archs.length === 0 || archs.some((a) => !/^\d+[a-z]?$/.test(a))) {
    throw new Error(`R1_CUDA_ARCH must list compute capabilities such as "90" or "80,90" (got "${process.env.R1_CUDA_ARCH}")`);
  }
  const gencode = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
  const flags = ['-std=c++17', '-O3', '-Xcompiler', '-fPIC', '-Xcompiler', '-fvisibility=hidden', '-DNDEBUG',
    ...gencode, `-I${join(root, 'native')}`];
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cu')).sort().map((f) => join(srcDir, f));
  mkdirSync(outDir, { recursive: true });
  const objDir = join(outDir, `cuda-obj-${process.pid}`);
  mkdirSync(objDir, { recursive: true });
  const tmp = join(outDir, `${libName}.tmp-${process.pid}`);
  const started = Date.now();
  const run = promisify(execFile);
  const objects = sources.map((src) => join(objDir, src.split(/[\\/]/).pop().replace(/\.cu$/, '.o')));
  const jobs = Math.max(1, Number(process.env.R1_CUDA_JOBS ?? 2));
  let next = 0;
  async function worker() {
    while (next < sources.length) {
      const i = next++;
      await run(nvcc, [...flags, '-c', sources[i], '-o', objects[i]], { maxBuffer: 64 * 1024 * 1024 }).catch((err) => {
        throw new Error(`compiling ${sources[i]} failed:\n${err.stderr || err.message}`);
      });
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(jobs, sources.length) }, worker));
    await run(nvcc, [...gencode, '-shared', '-cudart', 'static', ...objects, '-o', tmp, '-ldl', '-lpthread'], { maxBuffer: 64 * 1024 * 1024 })
      .catch((err) => { throw new Error(`linking ${libName} failed:\n${err.stderr || err.message}`); });
  } finally {
    rmSync(objDir, { recursive: true, force: true });
  }
  // Rename so that a running process keeps its mapped library and a failed build never leaves half a file.
  renameSync(tmp, join(outDir, libName));
  if (!quiet) {
    console.log(`r1ts: built build/${libName} (sm_${archs.join(', sm_')}) with ${nvcc} from ${sources.length} sources in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  return join(outDir, libName);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const optional = process.argv.includes('--optional');
  if (optional && (process.env.R1_CUDA === '0' || !findNvcc())) process.exit(0);
  try {
    await buildCuda();
  } catch (err) {
    if (optional) {
      console.warn(`r1ts: warning: the CUDA backend was not built (the CPU backend works without it): ${err.message}`);
      process.exit(0);
    }
    console.error(`r1ts: building the CUDA backend failed: ${err.message}`);
    process.exit(1);
  }
  if (!existsSync(join(outDir, libName))) process.exit(1);
}
