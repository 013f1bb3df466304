// `r1 run-code`: the code reward's judge from the shell. Runs `{"language", "code", "tests"}` lines of a JSONL file
// in the sandbox and prints one JSON verdict per line ({"line", "status", "passed", "total", "timeMs", "stderr"},
// or {"line", "error"} for a malformed line), so a user can see what the reward would say before a run relies on it.
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { judgeCodeJsonl } from '../rewards/code.ts';
import { defaultSandboxLimits, Sandbox, type SandboxLimits } from '../rewards/sandbox.ts';
import { UserError } from '../util/errors.ts';

/** Each sandbox limit's flag (`wallMs` -> `--wall-ms`), so that every limit is a setting of the command. */
const LIMIT_FLAGS: Record<keyof SandboxLimits, { flag: string; help: string }> = {
  wallMs: { flag: '--wall-ms <ms>', help: 'wall-clock time of one test run' },
  cpuSeconds: { flag: '--cpu-seconds <s>', help: 'CPU time of one test run' },
  memoryMb: { flag: '--memory-mb <mib>', help: 'data segment (heap) of each process' },
  addressSpaceMb: { flag: '--address-space-mb <mib>', help: 'address space of each process (node reserves about 1 GiB)' },
  processes: { flag: '--processes <n>', help: 'processes and threads at once' },
  outputBytes: { flag: '--output-bytes <n>', help: 'stdout + stderr kept of a run; past it the run is killed (output_limit)' },
  tmpMb: { flag: '--tmp-mb <mib>', help: 'size of the private /tmp and of any file written' },
};

function positiveInt(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UserError(`${name} must be a whole number of at least 1, got ${JSON.stringify(text)}`);
  return value;
}

export function register(program: Command): void {
  const command = program
    .command('run-code')
    .summary('run programs against their tests in the sandbox (the code reward\'s judge)')
    .description(
      'Runs every {"language": "python"|"javascript", "code": "...", "tests": [{"input", "output"} | {"assert"}]} line of a JSONL file ' +
        'in the sandbox (bubblewrap: no network, no host files, limited time, memory, processes and output) and writes one JSON verdict per line: ' +
        '{"line", "status", "passed", "total", "timeMs", "stderr"}; status is passed, wrong_answer, runtime_error, output_limit, memory_limit, ' +
        'timeout, compile_error or no_code. A malformed line gives {"line", "error"} and the others still run.',
    )
    .requiredOption('--jsonl <file>', 'the programs, one JSON object per line')
    .option('--out <file>', 'write the verdicts here instead of stdout')
    .option('--workers <n>', 'runs at once (default: the number of CPUs)');
  for (const [key, { flag, help }] of Object.entries(LIMIT_FLAGS)) command.option(flag, `${help} (default ${defaultSandboxLimits[key as keyof SandboxLimits]})`);
  command.action(async (opts: Record<string, string | undefined>) => {
    const limits: Partial<SandboxLimits> = {};
    for (const [key, { flag }] of Object.entries(LIMIT_FLAGS)) {
      const text = opts[key];
      if (text !== undefined) limits[key as keyof SandboxLimits] = positiveInt(flag.split(' ')[0], text);
    }
    const sandbox = new Sandbox({ limits, ...(opts.workers === undefined ? {} : { workers: positiveInt('--workers', opts.workers) }) });
    const out = opts.out === undefined ? process.stdout : createWriteStream(opts.out);
    const summary = await judgeCodeJsonl(opts.jsonl!, sandbox, (result) => out.write(`${JSON.stringify(result)}\n`));
    if (out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    console.error(`${summary.lines} programs: ${summary.passed} passed, ${summary.lines - summary.passed - summary.errors} failed, ${summary.errors} malformed`);
  });
}
