// Evaluation on a tiny model: the headline figures agree with the per-response verdicts (pass@1 is the mean
// correctness, pass@k and cons@k follow the estimators), a verifier that throws scores a response wrong
// instead of crashing, and the JSON report is written and reads back the same.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { passAtK } from '../../src/eval/estimators.ts';
import { evaluateModel, summary, writeEvalReport, type EvalReport } from '../../src/eval/evaluate.ts';
import type { Example, Task } from '../../src/tasks/task.ts';
import { tinyModel, tinyTokenizer } from '../generate/fixtures.ts';

const tokenizer = tinyTokenizer();
const model = tinyModel(5);

// Questions whose "answer" is the first character of the completion; correct when it is in the reference set.
const questions: Example[] = Array.from({ length: 5 }, (_, i) => ({ id: `q${i}`, question: `question ${i}`, reference: 'aeiou tc'.slice(i, i + 4) }));
function charTask(verify?: Task['verify']): Task {
  return {
    name: 'chars', description: 'first character', sample: () => [], testSet: () => questions,
    verify: verify ?? ((completion, example) => {
      const answer = completion.trim().slice(0, 1) || null;
      return { answer, correct: answer !== null && (example.reference as string).includes(answer) };
    }),
  };
}
// The fixture model has 128 positions: a short prompt instead of the R1-Zero template.
const options = { k: 4, temperature: 1, topP: 1, maxNewTokens: 6, limit: null, seed: 3, prompt: (q: string) => `Q: ${q} A:` };

describe('evaluateModel', () => {
  const report = evaluateModel(model, tokenizer, charTask(), options);

  it('figures agree with the responses they summarise', () => {
    assert.equal(report.questions, 5);
    assert.ok(report.details.every((d) => d.responses.length === 4));
    const correct = report.details.map((d) => d.responses.filter((r) => r.correct).length);
    assert.equal(report.passAt1, correct.reduce((a, c) => a + c / 4, 0) / 5);
    assert.equal(report.passAtK, correct.reduce((a, c) => a + passAtK(4, c, 4), 0) / 5);
    for (const d of report.details) {
      const counts = new Map<string, number>();
      for (const r of d.responses) if (r.answer !== null) counts.set(r.answer, (counts.get(r.answer) ?? 0) + 1);
      if (d.votedAnswer !== null) assert.equal(counts.get(d.votedAnswer), Math.max(...counts.values()));
      assert.equal(d.votedCorrect, d.votedAnswer !== null && (d.reference as string).includes(d.votedAnswer));
    }
    assert.equal(report.consAtK, report.details.filter((d) => d.votedCorrect).length / 5);
    assert.ok(report.meanLength > 0 && report.meanLength <= 6);
  });

  it('is deterministic for a seed, and --limit takes the first questions', () => {
    const again = evaluateModel(model, tokenizer, charTask(), { ...options, limit: 2 });
    assert.deepEqual(again.details, report.details.slice(0, 2));
  });

  it('a verifier that throws makes the response wrong, not the evaluation fail', () => {
    const broken = evaluateModel(model, tokenizer, charTask(() => { throw new Error('verifier bug'); }), { ...options, limit: 1 });
    assert.equal(broken.passAt1, 0);
    assert.ok(broken.details[0].responses.every((r) => r.answer === null && !r.correct));
  });

  it('writes the JSON report', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'r1-eval-')), 'eval.json');
    await writeEvalReport(file, report);
    const read = JSON.parse(readFileSync(file, 'utf8')) as EvalReport;
    assert.deepEqual(summary(read), summary(report));
    assert.equal(read.details[0].responses[0].text, report.details[0].responses[0].text);
    for (const key of ['passAt1', 'passAtK', 'consAtK', 'formatRate', 'meanLength', 'k', 'temperature', 'topP'] as const) assert.equal(typeof read[key], 'number');
  });
});
