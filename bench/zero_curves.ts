// The R1-Zero signature of a finished GRPO run folder (issue 16; R1 paper Fig. 3's shape): response length,
// accuracy and reflection words over the steps, with early and late completions side by side, and for arithmetic
// runs the answers' length and guesses by the problem's number of operations. Prints Markdown
// for docs/BENCHMARKS.md and writes the three curves as one SVG image (the report's own chart()).
//   node --import tsx bench/zero_curves.ts RUN_DIR [FIGURE.svg]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { METRICS_FILE, readJsonl, SAMPLES_FILE } from '../src/io/checkpoint.ts';
import { chart, type StepSamples } from '../src/pipeline/report.ts';
import type { GrpoStepRecord } from '../src/rl/trainer.ts';
import type { EvalReport } from '../src/eval/evaluate.ts';
import { operationsOfQuestion } from '../src/tasks/arithmetic.ts';
import { GUESS_OPENING } from '../src/tasks/reasoning-styles.ts';

const [run, figure] = process.argv.slice(2);
if (!run) throw new Error('usage: bench/zero_curves.ts RUN_DIR [FIGURE.svg]');
const records = await readJsonl<GrpoStepRecord>(join(run, METRICS_FILE));
// samples.jsonl is the largest file of a run: a folder kept without it (docs/zero-gpu-*) still gives the rest.
const kept = existsSync(join(run, SAMPLES_FILE)) ? await readJsonl<StepSamples>(join(run, SAMPLES_FILE)) : [];
const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8')) as { before: Record<string, Figures>; after: Record<string, Figures> };

interface Figures { passAt1: number; passAtK: number; consAtK: number; formatRate: number; meanLength: number; k?: number }

/** A centred moving mean over `width` steps: single steps of 128 samples are noisy. */
function smooth(values: readonly number[], width = 5): number[] {
  return values.map((_, i) => {
    const window = values.slice(Math.max(0, i - (width >> 1)), i + (width >> 1) + 1);
    return window.reduce((a, b) => a + b, 0) / window.length;
  });
}

const steps = records.map((r) => r.step);
const length = smooth(records.map((r) => r.responseLengthMean));
const low = Math.min(...length);
const lowStep = steps[length.indexOf(low)];
const late = Math.max(...length.slice(length.indexOf(low)));
const last = length.at(-1)!;

console.log(`## ${run}\n`);
for (const [source, before] of Object.entries(summary.before)) {
  const after = summary.after[source];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log('| held-out | base | after GRPO |\n| --- | --: | --: |');
  console.log(`| pass@1 | ${pct(before.passAt1)} | ${pct(after.passAt1)} |\n| pass@k | ${pct(before.passAtK)} | ${pct(after.passAtK)} |\n| cons@k | ${pct(before.consAtK)} | ${pct(after.consAtK)} |`);
  console.log(`| format rate | ${pct(before.formatRate)} | ${pct(after.formatRate)} |\n| mean response length (tokens) | ${before.meanLength.toFixed(1)} | ${after.meanLength.toFixed(1)} |\n`);
}
const raw = records.map((r) => r.responseLengthMean);
const rawLow = Math.min(...raw);
console.log(`Response length per step: lowest ${rawLow.toFixed(1)} tokens at step ${steps[raw.indexOf(rawLow)]}, highest after it ${Math.max(...raw.slice(raw.indexOf(rawLow))).toFixed(1)} (${(Math.max(...raw.slice(raw.indexOf(rawLow))) / rawLow).toFixed(2)}x).`);
console.log(`Response length (5-step moving mean): low point ${low.toFixed(1)} tokens at step ${lowStep}, highest after it ${late.toFixed(1)} (${(late / low).toFixed(2)}x), last ${last.toFixed(1)} (${(last / low).toFixed(2)}x).\n`);

const every = Math.max(1, Math.round(records.length / 10));
const shown = records.filter((r, i) => i === 0 || (i + 1) % every === 0 || i === records.length - 1);
const row = (label: string, f: (r: GrpoStepRecord) => string) => `| ${label} | ${shown.map(f).join(' | ')} |`;
// A figure a record lacks prints as '-' (curves read back from a report's charts have no truncation rate).
const fixed = (x: number | null | undefined, digits = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '-');
console.log(row('step', (r) => String(r.step)));
console.log(`| --- |${shown.map(() => ' --: |').join('')}`);
console.log(row('accuracy', (r) => fixed(r.accuracy)));
console.log(row('response length (tokens)', (r) => fixed(r.responseLengthMean, 1)));
console.log(row('reflection words per response', (r) => fixed(r.reflectionWords)));
console.log(row('format rate', (r) => fixed(r.formatRate)));
console.log(row('truncated', (r) => fixed(r.truncatedRate)));
console.log(row('KL to base', (r) => fixed(r.kl, 3)));

for (const { step, samples } of kept.length > 1 ? [kept[0], kept.at(-1)!] : kept) {
  console.log(`\nStep ${step}, the first completion of each of the first 3 groups:\n`);
  const firsts = samples.filter((s, i) => i === 0 || samples[i - 1].group !== s.group).slice(0, 3);
  for (const s of firsts) console.log(`- (${s.correct ? 'right' : 'wrong'}) \`${s.completion.replace(/`/g, "'").replace(/\s+/g, ' ')}\``);
}

// Arithmetic runs: the answers' length against the problem's (its number of operations), held-out before and
// after, and how often the training samples of each length guess ("i think it is ...") over the steps.
const runConfig = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { config: { sources: Array<{ name: string; task: string }> } };
for (const source of runConfig.config.sources.filter((s) => s.task === 'arithmetic')) {
  const [before, after] = ['before', 'after'].map((phase) => join(run, `${phase}.${source.name}.json`));
  if (!existsSync(before) || !existsSync(after)) continue;
  const byOperations = (file: string) => {
    const report = JSON.parse(readFileSync(file, 'utf8')) as EvalReport;
    return groupBy(report.details.flatMap((d) => d.responses.map((r) => ({ operations: operationsOfQuestion(d.question), correct: r.correct, length: r.lengthTokens, guess: isGuess(r.text) }))));
  };
  const [was, now] = [byOperations(before), byOperations(after)];
  console.log(`\nHeld-out (${source.name}) by the problem's number of operations (pass@1 over all samples):\n`);
  console.log('| operations (responses) | pass@1 base -> after | length base -> after (tokens) | guesses base -> after |\n| --- | --: | --: | --: |');
  for (const [operations, a] of was) {
    const b = now.get(operations)!;
    const pct = (x: number) => `${Math.round(100 * x)}%`;
    console.log(`| ${operations} (${a.n}) | ${pct(a.correct)} -> ${pct(b.correct)} | ${a.length.toFixed(0)} -> ${b.length.toFixed(0)} | ${pct(a.guess)} -> ${pct(b.guess)} |`);
  }
}
if (runConfig.config.sources.some((s) => s.task === 'arithmetic') && kept.length > 0) {
  const answers = kept.map((k) => ({ step: k.step, answers: k.samples.map((s) => ({ operations: operationsOfQuestion(s.question), correct: s.correct, length: 0, guess: isGuess(s.completion) })) }));
  const operations = [...groupBy(answers.flatMap((a) => a.answers)).keys()];
  const last = steps.at(-1)!;
  const windows = [[1, 10], [11, 20], [21, 30], [31, 50], [51, 100], [101, 200], [201, 300], [301, last]].filter(([lo, hi]) => lo <= last && lo <= hi);
  console.log("\nTraining samples kept (samples.jsonl), by the problem's number of operations: share of guesses, accuracy (samples)\n");
  console.log(`| steps | ${operations.map((ops) => `${ops} operations`).join(' | ')} |\n| --- |${operations.map(() => ' --: |').join('')}`);
  for (const [lo, hi] of windows) {
    const groups = groupBy(answers.filter((a) => a.step >= lo && a.step <= hi).flatMap((a) => a.answers));
    const cell = (ops: number) => {
      const g = groups.get(ops);
      return g === undefined ? '-' : `${Math.round(100 * g.guess)}%, ${g.correct.toFixed(2)} (${g.n})`;
    };
    console.log(`| ${lo}-${Math.min(hi, last)} | ${operations.map(cell).join(' | ')} |`);
  }
}

interface Answer { operations: number; correct: boolean; length: number; guess: boolean }

/** Means per number of operations, in increasing order. */
function groupBy(answers: readonly Answer[]): Map<number, { n: number; correct: number; length: number; guess: number }> {
  const groups = new Map<number, Answer[]>();
  for (const a of answers) groups.set(a.operations, [...(groups.get(a.operations) ?? []), a]);
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  return new Map([...groups].sort(([a], [b]) => a - b).map(([ops, of]) => [ops, {
    n: of.length, correct: mean(of.map((a) => +a.correct)), length: mean(of.map((a) => a.length)), guess: mean(of.map((a) => +a.guess)),
  }]));
}

function isGuess(completion: string): boolean {
  return completion.trimStart().startsWith(`<think> ${GUESS_OPENING}`);
}

if (figure) {
  const charts = [
    chart('Mean response length (tokens)', steps, [{ name: 'length', values: records.map((r) => r.responseLengthMean) }, { name: '5-step mean', values: length }], { min: 0 }),
    chart('Accuracy of training samples', steps, [{ name: 'accuracy', values: records.map((r) => r.accuracy) }], { min: 0, max: 1 }),
    chart('Reflection words per response', steps, [{ name: 'wait, check, mistake, ...', values: records.map((r) => r.reflectionWords) }], { min: 0 }),
  ];
  // chart() draws each as an <svg> inside an HTML <figure>: set them side by side in one image, titles above.
  const panels = charts.map((html, i) => {
    const title = /<figcaption>(.*?)<\/figcaption>/.exec(html)![1];
    const svg = /<svg[\s\S]*<\/svg>/.exec(html)![0].replace('<svg ', `<svg x="${i * 470}" y="20" `);
    return `<text x="${i * 470 + 48}" y="14" font-size="13" font-weight="600">${title}</text>${svg}`;
  });
  writeFileSync(figure, `<svg xmlns="http://www.w3.org/2000/svg" width="1410" height="240" viewBox="0 0 1410 240" font-family="sans-serif"><rect width="1410" height="240" fill="white"/>${panels.join('')}</svg>\n`);
  console.log(`\nfigure: ${figure}`);
}
