// The CLI as a user runs it (src through tsx), in its own process: commander exits after printing help, and an
// error a user can fix ends the process with status 1 and one line on stderr.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ENTRY = "import { main } from './src/cli/main.ts'; await main(process.argv);";

export function r1(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, 'r1', ...args], { encoding: 'utf8', cwd: join(import.meta.dirname, '../..') });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}
