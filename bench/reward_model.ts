// The helpfulness reward model of R1's last stage, in miniature: a scalar head on a small base model trained with
// the Bradley-Terry loss on generated instruction preference pairs (tasks/instructions.ts: the right response
// against a wrong answer, the other language, buried in extra words, or no summary), then its accuracy
// (r(chosen) > r(rejected)) on pairs drawn from held-out instructions. Prints a table and writes
// bench/results/reward_model.json. Not a timed test.
//   node --import tsx bench/reward_model.ts MODEL_DIR                 (e.g. the R1-Zero demo's cached base model)
//   node --import tsx bench/reward_model.ts MODEL_DIR '{"epochs": 2}' (RewardModelConfig fields changed)
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './machine.ts';
import { loadRewardModel } from '../src/models/reward-model.ts';
import { instructionPreferencePairs } from '../src/tasks/instructions.ts';
import { Rng } from '../src/tensor/index.ts';
import { defaultRewardModelConfig, readPreferencePairs, scorePreferencePairs, trainRewardModel, type RewardModelConfig } from '../src/train/reward-model.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const model = process.argv[2];
if (!model || model.startsWith('{')) throw new Error('usage: node --import tsx bench/reward_model.ts MODEL_DIR [config JSON]');
const overrides = JSON.parse(process.argv.slice(3).find((a) => a.startsWith('{')) ?? '{}') as Partial<RewardModelConfig>;
const scratch = mkdtempSync(join(tmpdir(), 'r1-bench-rm-'));
const data = join(scratch, 'pairs.jsonl');
const test = join(scratch, 'test-pairs.jsonl');
// Training pairs from training-side instructions; the test pairs come from another seed (their instructions may
// repeat training ones: the generator's space is small; the held-out split of the trainer is by pair content).
writeFileSync(data, instructionPreferencePairs(new Rng(1), 2000).map((p) => `${JSON.stringify(p)}\n`).join(''));
writeFileSync(test, instructionPreferencePairs(new Rng(2), 500).map((p) => `${JSON.stringify(p)}\n`).join(''));
const config: RewardModelConfig = {
  ...defaultRewardModelConfig, data, model, out: join(scratch, 'run'), epochs: 1, batchSize: 32, microBatchSize: 32, lr: 1e-4, warmup: 5,
  validationFraction: 0.1, checkpointEvery: 1000, ...overrides,
};

const start = performance.now();
const result = await trainRewardModel(config, { progress: false });
const trainSeconds = (performance.now() - start) / 1000;
const { model: rm, tokenizer } = await loadRewardModel(result.finalDir);
const scored = scorePreferencePairs(rm, tokenizer, readPreferencePairs(test), 32);
const first = result.records[0];
const last = result.records.at(-1)!;

const rows = [
  ['training pairs', String(result.counts.train)],
  ['steps', String(result.steps)],
  ['loss first -> last step', `${first.loss.toFixed(3)} -> ${last.loss.toFixed(3)}`],
  ['held-out pairs accuracy', `${(100 * (result.validation?.accuracy ?? NaN)).toFixed(1)}% of ${result.validation?.pairs ?? 0}`],
  ['test pairs (other seed) accuracy', `${(100 * scored.accuracy).toFixed(1)}% of ${scored.scores.length}`],
  ['training time', `${trainSeconds.toFixed(0)} s`],
];
const width = Math.max(...rows.map(([k]) => k.length));
console.log(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n'));

mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/reward_model.json'), `${JSON.stringify({
  date: new Date().toISOString(), machine: machine(),
  command: `node --import tsx bench/reward_model.ts ${model}${Object.keys(overrides).length ? ` '${JSON.stringify(overrides)}'` : ''}`,
  counts: result.counts, steps: result.steps, validation: result.validation, testAccuracy: scored.accuracy, trainSeconds,
  curve: result.records.map((r) => ({ step: r.step, loss: r.loss, accuracy: r.accuracy, margin: r.margin })),
  config,
}, null, 2)}\n`);
