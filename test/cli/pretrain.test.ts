import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

// The CLI as a user runs it (src through tsx, so no build is needed), in its own process.
const ENTRY = "import { main } from './src/cli/main.ts'; await main(process.argv);";
const ROOT = join(import.meta.dirname, '../..');
function r1(...args: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, 'r1', ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function tinyConfigFile(dir: string): string {
  const config = join(dir, 'tiny.json');
  writeFileSync(config, JSON.stringify({
    syntheticDocuments: 200, vocabSize: 400, evalBatches: 2, sampleTokens: 8,
    modelOverrides: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 16 },
  }));
  return config;
}

const metricLines = (out: string) => (existsSync(join(out, 'metrics.jsonl')) ? readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.endsWith('}')) : []);

test('r1 pretrain --help documents every flag', () => {
  const { code, stdout } = r1('pretrain', '--help');
  assert.equal(code, 0);
  for (const flag of ['--corpus', '--out', '--size', '--model', '--steps', '--batch-size', '--seq-len', '--lr', '--warmup', '--checkpoint-every', '--resume', '--seed', '--time-limit-minutes', '--config']) {
    assert.match(stdout, new RegExp(`${flag}\\b[^\\n]*\\S+ `), `no help for ${flag}`);
  }
});

test('r1 pretrain trains from a config file and flags, then --resume continues the run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-cli-pretrain-'));
  const config = tinyConfigFile(dir);
  const out = join(dir, 'run');
  const common = ['--config', config, '--out', out, '--batch-size', '4', '--seq-len', '16', '--warmup', '1', '--checkpoint-every', '2', '--samples', '2'];
  const first = r1('pretrain', ...common, '--steps', '3');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /3 steps: train loss \d+\.\d+, validation loss \d+\.\d+/);
  assert.equal(first.stdout.match(/--- sample/g)?.length, 2);
  assert.ok(existsSync(join(out, 'final', 'model.safetensors')));
  assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 3);

  const again = r1('pretrain', ...common, '--steps', '5');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds checkpoints; pass --resume/);
  const resumed = r1('pretrain', ...common, '--steps', '5', '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .* from step 3/);
  assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 5);
});

test('bad flags and config fields are named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-cli-pretrain-'));
  let run = r1('pretrain', '--steps', 'ten', '--out', dir);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /^r1: --steps "ten": /);
  run = r1('pretrain', '--size', '7m', '--out', dir);
  assert.match(run.stderr, /^r1: --size "7m": .*"1m"\|"5m"\|"20m"/);
  const config = join(dir, 'bad.json');
  writeFileSync(config, JSON.stringify({ stepz: 3, lr: -1 }));
  run = r1('pretrain', '--config', config);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /bad\.json: field "stepz": not a setting of r1 pretrain/);
  assert.match(run.stderr, /bad\.json: field "lr": /);
  run = r1('pretrain', '--corpus', join(dir, 'missing.txt'), '--out', join(dir, 'run'));
  assert.equal(run.code, 1);
  assert.match(run.stderr, /missing\.txt: cannot read/);
});

test('a run killed with SIGKILL at an arbitrary step and resumed logs the same losses as an uninterrupted run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-cli-pretrain-'));
  const config = tinyConfigFile(dir);
  const args = (out: string) => ['pretrain', '--config', config, '--out', out, '--batch-size', '4', '--seq-len', '16', '--steps', '40', '--checkpoint-every', '5', '--samples', '0'];
  const whole = join(dir, 'whole');
  assert.equal(r1(...args(whole)).code, 0);

  const killed = join(dir, 'killed');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, 'r1', ...args(killed)], { cwd: ROOT, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  // Kill somewhere past the first checkpoints, wherever the process happens to be (a step, a save, a log write).
  while (metricLines(killed).length < 17 && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 5));
  child.kill('SIGKILL');
  await exited;
  assert.equal(child.signalCode, 'SIGKILL', 'the run finished before it could be killed');

  const resumed = r1(...args(killed), '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  const losses = (out: string) => metricLines(out).map((line) => { const r = JSON.parse(line); return [r.step, r.loss, r.gradNorm]; });
  assert.deepEqual(losses(killed), losses(whole));
});
