// Rejection sampling on a tiny model: each readability filter removes what it names, every sample is counted
// once, the judge (a real HTTP server on 127.0.0.1) decides what the rules reject, a run stopped by a kill or by
// a judge that went down resumes to the same data, and an empty result says which filter removed what.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { saveModel } from '../../src/models/pretrained.ts';
import {
  defaultRejectionSampleConfig, firstFailingFilter, rejectionSample, SAMPLE_FILTERS, type FilterOptions, type RejectionSampleConfig,
} from '../../src/pipeline/rejection-sample.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { UserError } from '../../src/util/errors.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'r1-rejection-'));
const quiet = { log: () => {}, progress: false };

describe('readability filters', () => {
  const options: FilterOptions = { formatRule: 'readable', language: 'en', minLanguageConsistency: 1, maxParagraphWords: 8, allowCode: false };
  const good = '<think>add two and two</think> The answer is \\boxed{4}.';
  const cases: Array<[string, string, boolean, keyof typeof SAMPLE_FILTERS | null]> = [
    ['a readable, finished answer', good, false, null],
    ['a truncated one', good, true, 'truncated'],
    ['R1-Zero tags instead of a summary', '<think>add</think> <answer>4</answer>', false, 'format'],
    ['a Chinese word in an English chain of thought', '<think>add two and 两</think> The answer is \\boxed{4}.', false, 'languageMixing'],
    ['a paragraph of nine words', '<think>one two three four five six seven eight nine</think> \\boxed{4}', false, 'longParagraph'],
    ['short paragraphs split by a blank line', '<think>one two three four\n\nfive six seven eight nine</think> ok \\boxed{4}', false, null],
    ['a code block', '<think>add</think> Run\n```\nprint(4)\n```\n\\boxed{4}', false, 'codeBlock'],
  ];
  for (const [what, response, truncated, expected] of cases) {
    it(`${what}: ${expected ?? 'kept'}`, () => assert.equal(firstFailingFilter({ response, truncated }, options), expected));
  }
  it('math and a response without words are not language mixing; code passes where code is allowed', () => {
    assert.ok(SAMPLE_FILTERS.languageMixing({ response: '<think>12 + 5 = 17</think> \\boxed{17}', truncated: false }, options));
    assert.ok(SAMPLE_FILTERS.codeBlock({ response: '```\nx\n```', truncated: false }, { ...options, allowCode: true }));
  });
});

describe('rejectionSample', () => {
  let modelDir = '';
  let problems = '';
  // A judge server: accepts an answer of even length (a deterministic rule, so runs can be compared); it can be
  // told to fail every request from some point on, as a server that goes down.
  let failFrom = Infinity;
  let judged = 0;
  let server: Server;
  let judgeUrl = '';

  before(async () => {
    const tokDir = join(root, 'tok');
    await saveTrainedBpe(tokDir, tinyBpe());
    modelDir = join(root, 'model');
    await saveModel(tinyModel(4), Tokenizer.fromFile(tokDir), modelDir);
    problems = join(root, 'problems.jsonl');
    writeFileSync(problems, Array.from({ length: 12 }, (_, i) => JSON.stringify({ question: `What is ${i} + ${i}?`, answer: String(2 * i) })).join('\n'));
    server = createServer((req, res) => {
      let text = '';
      req.on('data', (c) => { text += c; });
      req.on('end', () => {
        judged++;
        if (judged >= failFrom) {
          res.writeHead(500);
          res.end('down');
          return;
        }
        const answer = (JSON.parse(text) as { messages: Array<{ content: string }> }).messages[0].content.match(/Student answer: ([\s\S]*)\n\nReply/)![1];
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: JSON.stringify({ analysis: '-', correctness: answer.length % 2 === 0 ? 'correct' : 'incorrect' }) } }] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    judgeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(() => server.close());

  const config = (out: string, overrides: Partial<RejectionSampleConfig> = {}): RejectionSampleConfig => ({
    ...defaultRejectionSampleConfig, model: modelDir, task: `jsonl:${problems}`, template: 'plain', samplesPerPrompt: 4, keepPerPrompt: 1,
    maxNewTokens: 12, stop: [' '], chunkPrompts: 3, judge: judgeUrl, judgeAttempts: 2, judgeTimeoutMs: 5000, out, ...overrides,
  });

  it('counts every sample once, keeps at most keepPerPrompt, and writes SFT conversations', async () => {
    failFrom = Infinity;
    const { counts, file } = await rejectionSample(config(join(root, 'straight')), quiet);
    const removed = Object.values(counts.removed).reduce((a, b) => a + b, 0);
    assert.equal(counts.sampled, counts.prompts * 4);
    assert.equal(removed + counts.kept, counts.sampled);
    assert.ok(counts.removed.truncated > 0 && counts.judged > 0 && counts.judgeAccepted > 0 && counts.judgeAccepted < counts.judged, JSON.stringify(counts));
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, counts.kept);
    assert.ok(counts.kept <= counts.prompts);
    for (const { messages } of lines) {
      assert.equal(messages.length, 2);
      assert.match(messages[0].content, /^What is \d+ \+ \d+\?$/);
      assert.equal(messages[1].role, 'assistant');
    }
    assert.deepEqual(JSON.parse(readFileSync(join(root, 'straight', 'summary.json'), 'utf8')), counts);
    await assert.rejects(rejectionSample(config(join(root, 'straight')), quiet), /already holds a rejection-sampling run; pass --resume/);
  });

  it('resumes after a kill, and after a judge that went down, to the same data', async () => {
    failFrom = Infinity;
    const straight = readFileSync(join(root, 'straight', 'sft.jsonl'), 'utf8');
    const killed = join(root, 'killed');
    await assert.rejects(rejectionSample(config(killed), { ...quiet, onChunk: (done) => { if (done === 6) throw new Error('killed'); } }), /killed/);
    await rejectionSample({ ...config(killed), resume: true }, quiet);
    assert.equal(readFileSync(join(killed, 'sft.jsonl'), 'utf8'), straight);

    // The judge goes down after the first chunk: the run stops with an error naming it, keeping the chunk done.
    const down = join(root, 'down');
    await assert.rejects(rejectionSample(config(down), { ...quiet, onChunk: () => { failFrom = judged + 1; } }), (e: Error) => e instanceof UserError && e.message.includes(judgeUrl) && /gave up after 2 attempts; the last one got HTTP 500/.test(e.message));
    const state = JSON.parse(readFileSync(join(down, 'state.json'), 'utf8'));
    assert.equal(readFileSync(join(down, 'sft.jsonl'), 'utf8').split('\n').filter(Boolean).length, state.lines);
    failFrom = Infinity;
    await rejectionSample({ ...config(down), resume: true }, quiet);
    assert.equal(readFileSync(join(down, 'sft.jsonl'), 'utf8'), straight);
  });

  it('draws prompts past --prompts while fewer than minKept are kept, up to maxPrompts, the first ones unchanged', async () => {
    failFrom = Infinity;
    // Planned prompts that are not a whole number of chunks are drawn exactly when nothing more is wanted.
    const uneven = await rejectionSample(config(join(root, 'uneven'), { prompts: 4, maxPrompts: 12 }), quiet);
    assert.equal(uneven.counts.prompts, 4);
    const planned = await rejectionSample(config(join(root, 'planned'), { prompts: 3 }), quiet);
    const plannedLines = readFileSync(planned.file, 'utf8');
    // The straight run sampled every training problem of the file (maxPrompts 12 allows them all).
    const straight = JSON.parse(readFileSync(join(root, 'straight', 'summary.json'), 'utf8')) as { kept: number; prompts: number };
    assert.ok(straight.kept >= planned.counts.kept + 2, 'the fixture keeps more over 12 prompts than over 3');
    const wanted = planned.counts.kept + 2;
    const extended = await rejectionSample(config(join(root, 'extended'), { prompts: 3, minKept: wanted, maxPrompts: 12 }), quiet);
    assert.ok(extended.counts.kept >= wanted && extended.counts.prompts > 3, JSON.stringify(extended.counts));
    // It stops at the first chunk that reaches the minimum: the chunk before it had fewer.
    const before = await rejectionSample(config(join(root, 'before'), { prompts: extended.counts.prompts - 3 }), quiet);
    assert.ok(before.counts.kept < wanted);
    assert.ok(readFileSync(extended.file, 'utf8').startsWith(plannedLines));
    // A minimum that cannot be reached: every allowed prompt is drawn, and what was kept is kept.
    const all = await rejectionSample(config(join(root, 'unreachable'), { prompts: 3, minKept: 1000, maxPrompts: 12 }), quiet);
    assert.equal(all.counts.prompts, straight.prompts);
    assert.equal(all.counts.kept, straight.kept);
  });

  it('with nothing kept, says which filter removed what (and still writes the counts)', async () => {
    const out = join(root, 'empty');
    await assert.rejects(rejectionSample(config(out, { judge: null }), quiet), (e: Error) => e instanceof UserError
      && /rejection sampling kept nothing: of \d+ samples of \d+ prompts, truncated removed \d+, .*incorrect removed \d+/.test(e.message));
    assert.ok(existsSync(join(out, 'summary.json')));
    await assert.rejects(rejectionSample(config(join(root, 'gen'), { task: 'arithmetic', judge: null }), quiet), /give the number of prompts \(--prompts N\)/);
  });
});
