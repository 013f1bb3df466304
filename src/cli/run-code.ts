// `r1 run-code`: the code reward's judge from the shell. Runs `{"language", "code", "tests"}` lines of a JSONL file
// in the sandbox and prints one JSON verdict per line ({"line", "status", "passed", "total", "timeMs", "stderr"},
// or {"line", "error"} for a malformed line), so a user can see what the reward would say before a run relies on it.
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { judgeCodeJsonl } from '../rewards/code.ts';
import { defaultSandboxLimits, Sandbox, type SandboxLimits } from '../rewards/sandbox.ts';
import { Settings, type Fields } from './settings.ts';

export interface RunCodeConfig extends SandboxLimits {
  /** The programs: one {"language", "code", "tests"} object per line. */
  jsonl: string;
  /** Where the verdicts go (null: stdout). */
  out: string | null;
  /** Runs at once (null: the number of CPUs). */
  workers: number | null;
}

const limit = z.number().int().min(1, 'must be a whole number of at least 1');

const FIELDS: Fields<RunCodeConfig> = {
  jsonl: { schema: z.string(), flag: '--jsonl <file>', help: 'the programs, one JSON object per line' },
  out: { schema: z.string().min(1).nullable(), flag: '--out <file>', help: 'write the verdicts here instead of stdout' },
  workers: { schema: limit.nullable(), flag: '--workers <n>', help: 'runs at once (default: the number of CPUs)' },
  wallMs: { schema: limit, flag: '--wall-ms <ms>', help: 'wall-clock time of one test run' },
  cpuSeconds: { schema: limit, flag: '--cpu-seconds <s>', help: 'CPU time of one test run' },
  memoryMb: { schema: limit, flag: '--memory-mb <mib>', help: 'data segment (heap) of each process' },
  addressSpaceMb: { schema: limit, flag: '--address-space-mb <mib>', help: 'address space of each process (node reserves about 1 GiB)' },
  processes: { schema: limit, flag: '--processes <n>', help: 'processes and threads at once' },
  outputBytes: { schema: limit, flag: '--output-bytes <n>', help: 'stdout + stderr kept of a run; past it the run is killed (output_limit)' },
  tmpMb: { schema: limit, flag: '--tmp-mb <mib>', help: 'size of the private /tmp and of any file written' },
};

const settings = new Settings('run-code', FIELDS, { ...defaultSandboxLimits, jsonl: '', out: null, workers: null }, {
  required: { jsonl: 'name the file of programs' },
});

/** Judges the file's programs, writing one verdict line each to `--out` or stdout; returns the counts. */
export async function runCode(config: RunCodeConfig): Promise<{ lines: number; passed: number; errors: number }> {
  const { jsonl, out: outFile, workers, ...limits } = config;
  const sandbox = new Sandbox({ limits, ...(workers === null ? {} : { workers }) });
  const out = outFile === null ? process.stdout : createWriteStream(outFile);
  const summary = await judgeCodeJsonl(jsonl, sandbox, (result) => out.write(`${JSON.stringify(result)}\n`));
  if (out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return summary;
}

export function register(program: Command): void {
  settings.register(program, {
    summary: 'run programs against their tests in the sandbox (the code reward\'s judge)',
    description:
      'Runs every {"language": "python"|"javascript", "code": "...", "tests": [{"input", "output"} | {"assert"}]} line of a JSONL file ' +
        'in the sandbox (bubblewrap: no network, no host files, limited time, memory, processes and output) and writes one JSON verdict per line: ' +
        '{"line", "status", "passed", "total", "timeMs", "stderr"}; status is passed, wrong_answer, runtime_error, output_limit, memory_limit, ' +
        'timeout, compile_error or no_code. A malformed line gives {"line", "error"} and the others still run.',
  }, async (config) => {
    const summary = await runCode(config);
    console.error(`${summary.lines} programs: ${summary.passed} passed, ${summary.lines - summary.passed - summary.errors} failed, ${summary.errors} malformed`);
  });
}
