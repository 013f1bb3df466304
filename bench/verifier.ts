// The answer checker against the one before Math-Verify's level (commit 00758f2, loaded from git): agreement with
// the expected verdicts of the suite (test/rewards/answer-cases.ts) in both modes of `r1 verify-answer`, false
// positives among them, and speed in verdicts per second on GSM8K's test set (each reference solution, a boxed and
// a "final answer" rewrite of it, and one with a wrong `#### N+1`, checked with every place allowed). Prints a
// table and writes bench/results/verifier.json.
//   node --import tsx bench/verifier.ts [--repeats 5]
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { verifyPair } from '../src/cli/verify-answer.ts';
import { checkAnswer } from '../src/rewards/answer.ts';
import { ANSWER_PLACES } from '../src/rewards/extract.ts';
import { ANSWER_CASES, type Case } from '../test/rewards/answer-cases.ts';
import { machine } from './machine.ts';

const BEFORE = '00758f2';
const root = fileURLToPath(new URL('../', import.meta.url));
const repeats = process.argv.includes('--repeats') ? Number(process.argv[process.argv.indexOf('--repeats') + 1]) : 5;

interface Checker {
  name: string;
  /** `r1 verify-answer GOLD PRED` without and with --extract. */
  verify: (gold: string, pred: string, extract: boolean) => boolean;
  /** The accuracy reward's verdict on a completion with every place allowed. */
  check: (completion: string, gold: string) => boolean;
}

interface BeforeModule {
  answersEquivalent(gold: string, pred: string): boolean;
  extractAnswer(text: string): { answer: string } | null;
  checkAnswer(completion: string, gold: string, places: readonly string[]): { correct: boolean };
  ANSWER_PLACES: readonly string[];
}

/** The checker of commit BEFORE, its two files written beside the results with their imports pointed at src/. */
async function loadBefore(): Promise<Checker> {
  const dir = join(root, 'bench', 'results', `.checker-${BEFORE}`);
  mkdirSync(dir, { recursive: true });
  for (const file of ['answer.ts', 'math-eval.ts']) {
    const source = execFileSync('git', ['show', `${BEFORE}:src/rewards/${file}`], { cwd: root, encoding: 'utf8' })
      .replaceAll("'../tasks/task.ts'", JSON.stringify(join(root, 'src/tasks/task.ts')))
      .replaceAll("'../tensor/random.ts'", JSON.stringify(join(root, 'src/tensor/random.ts')));
    writeFileSync(join(dir, file), source);
  }
  const before = (await import(pathToFileURL(join(dir, 'answer.ts')).href)) as BeforeModule;
  return {
    name: `before (${BEFORE})`,
    verify: (gold, pred, extract) => {
      const answer = extract ? (before.extractAnswer(pred)?.answer ?? null) : pred;
      return answer !== null && before.answersEquivalent(gold, answer);
    },
    check: (completion, gold) => before.checkAnswer(completion, gold, before.ANSWER_PLACES).correct,
  };
}

const now: Checker = {
  name: 'now',
  verify: (gold, pred, extract) => verifyPair(gold, pred, { extract, places: ANSWER_PLACES }).correct,
  check: (completion, gold) => checkAnswer(completion, gold, ANSWER_PLACES).correct,
};

interface Agreement {
  agree: number;
  cases: number;
  falsePositives: number;
  wrongAnswers: number;
}

function agreement(checker: Checker, cases: readonly Case[], extract: boolean): Agreement {
  const result = { agree: 0, cases: cases.length, falsePositives: 0, wrongAnswers: 0 };
  for (const [gold, pred, expected] of cases) {
    const verdict = checker.verify(gold, pred, extract);
    if (verdict === expected) result.agree++;
    if (!expected) {
      result.wrongAnswers++;
      if (verdict) result.falsePositives++;
    }
  }
  return result;
}

/** GSM8K's test set as completions to check: [completion, gold, expected verdict]. */
function gsm8kCompletions(): Array<[string, string, boolean]> {
  const lines = readFileSync(join(root, 'test/rewards/fixtures/gsm8k/test.jsonl'), 'utf8').trim().split('\n');
  return lines.flatMap((line): Array<[string, string, boolean]> => {
    const solution = (JSON.parse(line) as { answer: string }).answer;
    const gold = solution.slice(solution.lastIndexOf('####') + 4).trim();
    const body = solution.replace(/####[^\n]*$/, '');
    const wrong = String(Number(gold.replace(/,/g, '')) + 1);
    return [
      [solution, gold, true],
      [`${body}So the answer is $\\boxed{${gold}}$.`, gold, true],
      [`${body}The final answer is $${gold}$. I hope it is correct.`, gold, true],
      [`${body}#### ${wrong}`, gold, false],
    ];
  });
}

interface Speed {
  verdictsPerSecond: number;
  correct: number;
  verdicts: number;
}

/** Verdicts per second of each checker (the median of `repeats` passes, the checkers alternating pass by pass). */
function speeds(checkers: readonly Checker[], completions: ReadonlyArray<[string, string, boolean]>): Speed[] {
  const correct = checkers.map((checker) => completions.filter(([completion, gold, expected]) => checker.check(completion, gold) === expected).length);
  const rates: number[][] = checkers.map(() => []);
  for (let r = 0; r < repeats; r++) {
    checkers.forEach((checker, i) => {
      const start = performance.now();
      for (const [completion, gold] of completions) checker.check(completion, gold);
      rates[i].push(completions.length / ((performance.now() - start) / 1000));
    });
  }
  return checkers.map((_, i) => {
    const sorted = [...rates[i]].sort((a, b) => a - b);
    return { verdictsPerSecond: sorted[Math.floor(sorted.length / 2)], correct: correct[i], verdicts: completions.length };
  });
}

const suite = Object.values(ANSWER_CASES).flat();
const completions = gsm8kCompletions();
const checkers = [await loadBefore(), now];
const gsm8k = speeds(checkers, completions);
const rows = checkers.map((checker, i) => ({
  checker: checker.name,
  suite: agreement(checker, suite, false),
  suiteExtract: agreement(checker, suite, true),
  gsm8k: gsm8k[i],
}));

const pct = (a: Agreement) => `${((100 * a.agree) / a.cases).toFixed(1)}% (${a.agree}/${a.cases}), ${a.falsePositives}/${a.wrongAnswers} false positives`;
console.log(`suite: ${suite.length} cases; GSM8K: ${completions.length} completions, median of ${repeats} alternating passes`);
console.log(['checker', 'suite, answers as given', 'suite, --extract', 'GSM8K verdicts/s', 'GSM8K right'].join(' | '));
for (const row of rows) {
  console.log([row.checker, pct(row.suite), pct(row.suiteExtract), row.gsm8k.verdictsPerSecond.toFixed(0), `${row.gsm8k.correct}/${row.gsm8k.verdicts}`].join(' | '));
}
const out = join(root, 'bench', 'results', 'verifier.json');
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), repeats, rows }, null, 2)}\n`);
console.log(`wrote ${out}`);
process.exit(0); // the parser workers are unref'd, but the old checker's may still be starting
