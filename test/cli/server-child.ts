// `r1 serve` and `r1 dashboard` run as a user runs them: a child process that prints its address and serves
// there until SIGTERM.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const mainModule = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Node arguments that run `r1 ...args` from the sources. */
export const r1Args = (...args: string[]): string[] => ['--import', 'tsx', '-e', `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`, 'r1', ...args];

/**
 * Runs `r1 ...args`, waits for the address it prints (the first http://127.0.0.1:PORT on stdout), calls
 * `use(address)`, then stops it with SIGTERM and checks that it exits with 0.
 */
export async function withServerChild(args: string[], use: (address: string) => Promise<void>): Promise<void> {
  const child = spawn(process.execPath, r1Args(...args)) as ChildProcessWithoutNullStreams;
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const address = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (data: Buffer) => {
        out += data.toString();
        const found = out.match(/(http:\/\/127\.0\.0\.1:\d+)/);
        if (found) resolve(found[1]);
      });
      void exited.then((code) => reject(new Error(`r1 ${args.join(' ')} exited with ${code} before serving: ${out}`)));
    });
    await use(address);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
}
