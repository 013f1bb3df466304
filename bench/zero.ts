// R1-Zero learning on the laptop: runs `r1 zero` with its defaults (what `npm start` runs) and reports whether
// GRPO raised held-out pass@1 by at least 25 points, with the time of each phase. Prints a table and writes
// bench/results/zero.json. Not a timed test: a full run takes minutes.
//   node --import tsx bench/zero.ts            (reuses a cached base model, as npm start does)
//   node --import tsx bench/zero.ts --fresh    (a fresh cache folder: base-model pretraining timed too)
//   node --import tsx bench/zero.ts '{"steps": 40}'   (ZeroConfig fields changed from the defaults)
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './machine.ts';
import { comparisonTable } from '../src/pipeline/report.ts';
import { defaultZeroConfig, runZero, type ZeroConfig } from '../src/pipeline/zero.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const fresh = process.argv.includes('--fresh');
const overrides = JSON.parse(process.argv.slice(2).find((a) => a.startsWith('{')) ?? '{}') as Partial<ZeroConfig>;
const scratch = mkdtempSync(join(tmpdir(), 'r1-bench-zero-'));
const config: ZeroConfig = {
  ...defaultZeroConfig,
  out: join(scratch, 'run'),
  cacheDir: fresh ? join(scratch, 'cache') : join(root, defaultZeroConfig.cacheDir),
  ...overrides,
};


const loadBefore = loadavg()[0];
const start = performance.now();
const result = await runZero(config, { progress: false });
const wallSeconds = (performance.now() - start) / 1000;
const gain = result.after.passAt1 - result.before.passAt1;

console.log(`\n${comparisonTable(result.before, result.after)}\n`);
const phases = Object.entries(result.seconds).map(([name, s]) => `${name} ${s.toFixed(0)} s`).join(', ');
console.log(`pass@1 gain ${(100 * gain).toFixed(1)} points (target >= 25): ${gain >= 0.25 ? 'met' : 'NOT met'}`);
console.log(`wall ${wallSeconds.toFixed(0)} s (${phases}); load average ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after`);
console.log(`report: ${result.reportFile}`);

const perStep = result.records.map((r) => r.samplingSeconds + r.referenceSeconds + r.trainingSeconds);
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/zero.json'), `${JSON.stringify({
  date: new Date().toISOString(),
  machine: { ...machine(), loadAverage: loadBefore },
  command: `node --import tsx bench/zero.ts${fresh ? ' --fresh' : ''}${Object.keys(overrides).length ? ` '${JSON.stringify(overrides)}'` : ''}`,
  baseModelCached: !fresh && result.seconds.base < 5,
  before: { passAt1: result.before.passAt1, passAtK: result.before.passAtK, consAtK: result.before.consAtK, formatRate: result.before.formatRate, meanLength: result.before.meanLength },
  after: { passAt1: result.after.passAt1, passAtK: result.after.passAtK, consAtK: result.after.consAtK, formatRate: result.after.formatRate, meanLength: result.after.meanLength },
  passAt1Gain: gain,
  target: 0.25,
  k: result.before.k,
  questions: result.before.questions,
  steps: result.records.length,
  seconds: { ...result.seconds, wall: wallSeconds, meanStep: perStep.reduce((a, b) => a + b, 0) / Math.max(perStep.length, 1) },
  curve: result.records.map((r) => ({ step: r.step, reward: r.reward, accuracy: r.accuracy, formatRate: r.formatRate, length: r.responseLengthMean, kl: r.kl })),
  config,
}, null, 2)}\n`);
