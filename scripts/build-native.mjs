#!/usr/bin/env node
// Builds the native CPU core (native/cpu/*.cpp) into build/ as one shared library with a plain C ABI,
// loaded at run time through koffi. Runs from `npm install`; needs only a C++17 compiler.
// The library is built for the machine it is installed on (-march=native): it never travels.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, existsSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { platform, arch, availableParallelism } from 'node:os';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'native', 'cpu');
const outDir = join(root, 'build');
const libName = platform() === 'darwin' ? 'libr1cpu.dylib' : platform() === 'win32' ? 'r1cpu.dll' : 'libr1cpu.so';

function findCompiler() {
  for (const cxx of [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean)) {
    try {
      execFileSync(cxx, ['--version'], { stdio: 'ignore' });
      return cxx;
    } catch {}
  }
  console.error('r1ts: no C++ compiler found (tried $CXX, c++, g++, clang++). Install one (Debian: apt install g++; macOS: xcode-select --install) and run `npm install` again.');
  process.exit(1);
}

const cxx = findCompiler();
const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cpp')).map((f) => join(srcDir, f));
// Apple clang rejects -march=native on arm64; -mcpu=native is its spelling there.
const archFlags = arch() === 'arm64' && platform() === 'darwin' ? ['-mcpu=native'] : ['-march=native'];
// R1_GEMM_WIDE=1 builds the AVX-512 GEMM tile on an AVX2 machine (native/cpu/gemm.cpp), for testing it there.
const testFlags = process.env.R1_GEMM_WIDE === '1' ? ['-DR1_GEMM_WIDE'] : [];
const flags = ['-std=c++17', '-O3', '-fPIC', '-pthread', '-fno-math-errno', '-DNDEBUG', ...archFlags, ...testFlags, `-I${join(root, 'native')}`];
mkdirSync(outDir, { recursive: true });
const objDir = join(outDir, `obj-${process.pid}`);
mkdirSync(objDir, { recursive: true });
const tmp = join(outDir, `${libName}.tmp-${process.pid}`);
const started = Date.now();
// Sources compile in parallel (one compiler per core), then link into one library.
const run = promisify(execFile);
const objects = sources.map((src) => join(objDir, src.split(/[\\/]/).pop().replace(/\.cpp$/, '.o')));
let next = 0;
async function worker() {
  while (next < sources.length) {
    const i = next++;
    await run(cxx, [...flags, '-c', sources[i], '-o', objects[i]], { maxBuffer: 64 * 1024 * 1024 }).catch((err) => {
      process.stderr.write(err.stderr || String(err));
      throw new Error(`compiling ${sources[i]} failed`);
    });
  }
}
try {
  await Promise.all(Array.from({ length: Math.min(availableParallelism(), sources.length) }, worker));
  execFileSync(cxx, [...flags, '-shared', ...objects, '-o', tmp], { stdio: 'inherit' });
} catch (err) {
  console.error(`r1ts: building the native CPU core failed (${cxx}): ${err.message}`);
  process.exit(1);
} finally {
  rmSync(objDir, { recursive: true, force: true });
}
// Rename so that a process already running keeps its mapped library and a failed build never leaves half a file.
renameSync(tmp, join(outDir, libName));
console.log(`r1ts: built build/${libName} with ${cxx} from ${sources.length} sources in ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (!existsSync(join(outDir, libName))) process.exit(1);
