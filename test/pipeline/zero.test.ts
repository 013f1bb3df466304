// The R1-Zero recipe end to end at toy size: a base model is made and cached, evaluated, trained with GRPO and
// evaluated again; the report is one self-contained HTML page. Bad inputs fail before any work with errors
// naming the file, and completions that try to run code earn nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultZeroConfig, runZero, zeroRewards, type ZeroConfig } from '../../src/pipeline/zero.ts';
import { comparisonTable } from '../../src/pipeline/report.ts';
import { scoreSample } from '../../src/rewards/reward.ts';
import { countdownTask } from '../../src/tasks/countdown.ts';
import { UserError } from '../../src/util/errors.ts';

const root = mkdtempSync(join(tmpdir(), 'r1-zero-'));
const tiny: ZeroConfig = {
  ...defaultZeroConfig,
  cacheDir: join(root, 'cache'),
  out: join(root, 'run'),
  steps: 2, promptsPerStep: 2, groupSize: 2, maxNewTokens: 6, checkpointEvery: 1, lr: 1e-3,
  evalK: 2, evalLimit: 3, baseAttempts: 1,
  baseDocuments: 200, baseDrillDocuments: 10, baseVocabSize: 300, baseSteps: 3, baseBatchSize: 2, baseSeqLen: 64,
  baseModelOverrides: { hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 16 },
};
const quiet = { log: () => {}, progress: false };
const STYLES = { guessRate: 0.5, guessCorrectRate: 0.25, checkedRate: 0.3, slipRate: 0.2 };

describe('runZero', () => {
  it('makes a base model, trains it, evaluates before and after, and writes a self-contained report', async () => {
    const result = await runZero(tiny, quiet);
    assert.equal(result.records.length, 2);
    assert.equal(result.before.questions, 3);
    assert.ok(existsSync(join(result.finalDir, 'model.safetensors')));
    assert.equal(readFileSync(join(result.out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 2);
    const html = readFileSync(result.reportFile, 'utf8');
    assert.match(html, /<h1>R1-Zero on the CPU<\/h1>/, 'the heading names where the run computed');
    assert.match(html, /<svg[^>]*>[\s\S]*<polyline/);
    for (const title of ['Mean reward', 'Accuracy', 'Mean response length', 'KL']) assert.ok(html.includes(title), `no ${title} chart`);
    // Nothing is fetched: no scripts, no links or sources (the only URL is the SVG namespace).
    assert.doesNotMatch(html, /<script|\bsrc=|\bhref=|<link/);
    assert.deepEqual([...html.matchAll(/https?:\/\/[^"\s]+/g)].map((m) => m[0]).filter((u) => u !== 'http://www.w3.org/2000/svg'), []);
    assert.match(html, /base model<\/th><th>after GRPO/);
    const summary = JSON.parse(readFileSync(join(result.out, 'summary.json'), 'utf8'));
    assert.equal(summary.before.reasoning.passAt1, result.before.passAt1);
    assert.equal(summary.baseModelDir, result.baseModelDir);
    assert.ok(existsSync(join(result.out, 'before.reasoning.json')) && existsSync(join(result.out, 'after.reasoning.json')));
    assert.match(comparisonTable(result.before, result.after), /^ +base +after GRPO +change\n[- ]+\npass@1 /);

    // A second run reuses the cached base model instead of pretraining again.
    const lines: string[] = [];
    await runZero({ ...tiny, out: join(root, 'run2'), steps: 1 }, { ...quiet, log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.startsWith('using the cached base model')), lines.join('\n'));
    assert.equal(readdirSync(tiny.cacheDir).length, 1);

    // A resume without --model goes on from the model its run started from, without making or checking a base model;
    // one given another task fails before any work.
    const resumeLines: string[] = [];
    const resumed = await runZero({ ...tiny, resume: true, steps: 3 }, { ...quiet, log: (l) => resumeLines.push(l) });
    assert.equal(resumed.baseModelDir, result.baseModelDir);
    assert.equal(resumed.records.length, 3);
    assert.ok(!resumeLines.some((l) => /cached base model|making a base model/.test(l)), resumeLines.join('\n'));
    await assert.rejects(runZero({ ...tiny, task: 'countdown', level: null, resume: true }, quiet), /started with other prompt sources \(tasks arithmetic; given countdown\)/);
  });

  it('names what is wrong with a model folder or a task file before doing any work', async () => {
    const bare = join(root, 'bare');
    await assert.rejects(runZero({ ...tiny, model: bare, out: join(root, 'r3') }, quiet), (e: Error) => e instanceof UserError && /bare: no such model folder/.test(e.message));
    const file = join(root, 'problems.jsonl');
    writeFileSync(file, '{"question": "1 + 1?", "answer": "2"}\n{"question": "no answer here"}\nnot json\n');
    await assert.rejects(runZero({ ...tiny, task: `jsonl:${file}`, level: null, out: join(root, 'r4') }, quiet), (e: Error) => e instanceof UserError && e.message.includes(`${file}:2`));
    // The default level is a generated task's: with it, as `r1 zero --task jsonl:PATH` and `code:PATH` run, a file task
    // gets as far as its file; another level fails naming it.
    await assert.rejects(runZero({ ...tiny, task: `jsonl:${file}`, level: defaultZeroConfig.level, out: join(root, 'r4') }, quiet), (e: Error) => e instanceof UserError && e.message.includes(`${file}:2`));
    await assert.rejects(runZero({ ...tiny, task: `jsonl:${file}`, level: 3, out: join(root, 'r4') }, quiet), /task jsonl: level applies only to generated tasks/);
    const codeFile = join(root, 'programs.jsonl');
    writeFileSync(codeFile, '{"prompt": "Print 1.", "tests": [{"input": "", "output": "1\\n"}]}\n{"prompt": "no tests"}\n');
    await assert.rejects(runZero({ ...tiny, task: `code:${codeFile}`, level: defaultZeroConfig.level, out: join(root, 'r4') }, quiet), (e: Error) => e instanceof UserError && e.message.includes(`${codeFile}:2`));
    await assert.rejects(runZero({ ...tiny, task: 'countdown', level: null, out: join(root, 'r5') }, quiet), /cannot write pretraining text/);
    await assert.rejects(runZero({ ...tiny, task: 'code', codeLanguage: 'javascript', out: join(root, 'r6') }, quiet), /the base model r1ts makes writes Python/);
    await assert.rejects(runZero({ ...tiny, task: 'code', baseStyles: STYLES, out: join(root, 'r7') }, quiet), /baseStyles .* for the arithmetic task only/);
  });

  it('with baseStyles, pretrains on guesses, worked and checked chains, and reports reflection words and completions during training', async () => {
    const cacheDir = join(root, 'styled-cache');
    const result = await runZero({ ...tiny, cacheDir, out: join(root, 'styled'), level: 2, baseStyles: STYLES }, quiet);
    const corpus = readFileSync(join(result.baseModelDir, '..', 'corpus.jsonl'), 'utf8');
    for (const mark of ['i think it is', 'so the answer is', 'check: ']) assert.ok(corpus.includes(mark), mark);
    const html = readFileSync(result.reportFile, 'utf8');
    assert.ok(html.includes('Reflection words per response'));
    assert.match(html, /Completions during training[\s\S]*Step 1[\s\S]*Step 2/);
    // The styles decide the base model: other styles make another one.
    await runZero({ ...tiny, cacheDir, out: join(root, 'styled2'), level: 2, baseStyles: { ...STYLES, checkedRate: 0.9 }, steps: 1 }, quiet);
    assert.equal(readdirSync(cacheDir).length, 2);
  });

  it('pretrains a base model below baseMinPassAt1 on training problems again from another initialization, and uses the best of baseAttempts runs', async () => {
    const cacheDir = join(root, 'retry-cache');
    const lines: string[] = [];
    const result = await runZero({ ...tiny, cacheDir, out: join(root, 'retry'), steps: 1, baseMinPassAt1: 0.99, baseAttempts: 2 }, { ...quiet, log: (l) => lines.push(l) });
    const runs = lines.filter((l) => /^base model, pretraining run \d: pass@1 [\d.]+% on 3 training problems \(below 99\.0%\)$/.test(l));
    assert.equal(runs.length, 2, lines.join('\n'));
    assert.ok(lines.some((l) => l.startsWith('no pretraining run reached 99.0%: using the best')));
    // Two bases of one text from two seeds.
    const folders = readdirSync(cacheDir);
    assert.equal(folders.length, 2);
    const corpora = folders.map((d) => readFileSync(join(cacheDir, d, 'corpus.jsonl'), 'utf8'));
    assert.equal(corpora[0], corpora[1]);
    assert.ok(result.baseModelDir.startsWith(cacheDir));
    // A usable first run is the only one, and it is the first of the two.
    const usable: string[] = [];
    const first = await runZero({ ...tiny, cacheDir, out: join(root, 'retry2'), steps: 1, baseMinPassAt1: 0, baseAttempts: 2 }, { ...quiet, log: (l) => usable.push(l) });
    assert.deepEqual(usable.filter((l) => l.startsWith('base model, pretraining run')).map((l) => l.slice(0, 30)), ['base model, pretraining run 1:']);
    assert.ok(usable.some((l) => l.startsWith('using the cached base model')));
    assert.deepEqual(readdirSync(cacheDir), folders);
    assert.ok(folders.includes(first.baseModelDir.split('/').at(-2)!));
  });

  it('runs on the generated code task, its programs judged in the sandbox', { skip: spawnSync('sh', ['-c', 'command -v bwrap']).status === 0 ? false : 'bubblewrap is not installed' }, async () => {
    const result = await runZero({ ...tiny, task: 'code', level: 1, out: join(root, 'code'), maxNewTokens: 12, sandboxWorkers: 2, sandboxLimits: { wallMs: 5000 } }, quiet);
    assert.equal(result.records.length, 2);
    assert.equal(result.before.task, 'code');
    assert.ok(result.records.every((r) => r.rewardParts.accuracy >= 0 && r.rewardParts.accuracy <= 1 && r.rewardFailures === 0));
  });
});

describe('zeroRewards', () => {
  it('a Countdown answer that tries to run code earns nothing and runs nothing', () => {
    const task = countdownTask({ level: 1 });
    const example = task.testSet(1)[0];
    const rewards = zeroRewards(task, { accuracyWeight: 1, formatWeight: 0.5, formatRule: 'strict', tagCountWeight: 0 });
    for (const attack of ['process.exit(1)', 'require("fs").rmSync("/")', '(()=>{while(true){}})()', 'constructor.constructor("return 1")()']) {
      const score = scoreSample(rewards, { prompt: '', completion: `<think> x </think> <answer> ${attack} </answer>`, reference: example.reference });
      assert.equal(score.parts.accuracy, 0, attack);
      assert.equal(score.parts.format, 1);
      assert.deepEqual(score.failed, []);
    }
  });
});
