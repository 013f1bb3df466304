// Programs judged per second by the code reward (src/rewards/code.ts): the generated code task's programs, each
// against its 3 stdin/stdout tests, run in the bubblewrap sandbox and, to measure what the isolation costs, with
// isolation 'none' (the interpreter started directly, same wall and output limits). Half the programs are the
// reference solutions, half a wrong one (as in a GRPO batch), in Python and JavaScript, with 1 and 2 workers.
// Prints a table and writes bench/results/code_reward.json.
//   node --import tsx bench/code_reward.ts [programs per row, default 40]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { judgePrograms, type CodeProgram } from '../src/rewards/code.ts';
import { Sandbox, type Language } from '../src/rewards/sandbox.ts';
import { formulaProgram, generatedCodeTask, type CodeReference } from '../src/tasks/code.ts';
import { Rng } from '../src/tensor/random.ts';
import { machine } from './machine.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const count = Number(process.argv[2] ?? 40);

function programs(language: Language): CodeProgram[] {
  const task = generatedCodeTask({ level: 2, language, sandbox: { workers: 1 } });
  return task.sample(new Rng(11), count).map((example, i) => {
    const reference = example.reference as CodeReference;
    return { language, tests: reference.tests, code: i % 2 === 0 ? reference.solution! : formulaProgram(language, 'a + b + 1') };
  });
}

interface Row { language: Language; isolation: 'bwrap' | 'none'; workers: number; programs: number; runs: number; seconds: number; programsPerSecond: number; msPerRun: number; passed: number }

// Both isolations start the same interpreter binaries: the ones the sandbox found.
const interpreters = new Sandbox({ workers: 1 }).interpreters;
const rows: Row[] = [];
for (const language of ['python', 'javascript'] as const) {
  const batch = programs(language);
  for (const [isolation, workers] of [['none', 1], ['bwrap', 1], ['none', 2], ['bwrap', 2]] as const) {
    const sandbox = new Sandbox({ isolation, workers, interpreters, limits: { wallMs: 20_000 } });
    judgePrograms(sandbox, batch.slice(0, 2)); // warm the interpreter's files in the page cache
    const started = performance.now();
    const verdicts = judgePrograms(sandbox, batch);
    const seconds = (performance.now() - started) / 1000;
    const runs = batch.reduce((n, p) => n + p.tests.length, 0);
    const passed = verdicts.filter((v) => v.status === 'passed').length;
    if (passed !== Math.ceil(batch.length / 2)) throw new Error(`${language} ${isolation}: ${passed} programs passed, expected the ${Math.ceil(batch.length / 2)} reference solutions`);
    rows.push({ language, isolation, workers, programs: batch.length, runs, seconds, programsPerSecond: batch.length / seconds, msPerRun: (seconds * 1000 * workers) / runs, passed });
  }
}

const pad = (s: string | number, n: number) => String(s).padStart(n);
console.log(`code reward: ${count} programs x 3 tests per row (${interpreters.python}, ${interpreters.javascript}); load average ${machine().loadAverage.toFixed(1)}`);
console.log(`${'language'.padEnd(12)}${'isolation'.padEnd(11)}${pad('workers', 8)}${pad('programs/s', 12)}${pad('ms/run', 9)}${pad('vs none', 9)}`);
for (const row of rows) {
  const bare = rows.find((r) => r.language === row.language && r.workers === row.workers && r.isolation === 'none')!;
  console.log(`${row.language.padEnd(12)}${row.isolation.padEnd(11)}${pad(row.workers, 8)}${pad(row.programsPerSecond.toFixed(1), 12)}${pad(row.msPerRun.toFixed(1), 9)}${pad(`${(row.programsPerSecond / bare.programsPerSecond).toFixed(2)}x`, 9)}`);
}
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/code_reward.json'), `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), interpreters, rows }, null, 2)}\n`);
