// The R1 pipeline at toy size: every stage runs in seconds and leaves its folder, stage.json and models; a run
// killed inside a stage resumes it (the same result as a run never killed), finished stages are skipped, one stage
// reruns alone, and the report compares every model.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultR1PipelineConfig, R1_STAGE_NAMES, runR1Pipeline, stageDir, STAGE_FILE, type R1PipelineConfig, type StageRecord } from '../../src/pipeline/r1.ts';
import { UserError } from '../../src/util/errors.ts';

const root = mkdtempSync(join(tmpdir(), 'r1-pipeline-'));
const tiny: R1PipelineConfig = {
  ...defaultR1PipelineConfig,
  out: join(root, 'run'),
  cacheDir: join(root, 'cache'),
  baseDocuments: 300, baseDrillDocuments: 10, baseDictionaryDocuments: 10, baseVocabSize: 300, baseSteps: 3, studentSteps: 2, baseAttempts: 1, baseBatchSize: 2, baseSeqLen: 64,
  baseModelOverrides: { hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 16 },
  studentModelOverrides: { hiddenSize: 16, intermediateSize: 32, headDim: 8 },
  promptsPerStep: 2, groupSize: 2, maxNewTokens: 8, rlLr: 1e-3,
  zeroSteps: 2, reasoningSteps: 2, allSteps: 2,
  coldStartPrompts: 3, coldStartSamples: 2, rejectionPrompts: 3, rejectionSamples: 2, distillPrompts: 3, distillSamples: 2,
  rewardPairs: 8, evalK: 2, evalLimit: 3, generalEvalLimit: 3, checkpointEvery: 1,
};
const quiet = { log: () => {}, progress: false };

/**
 * Reasoning conversations written by hand, for the cold start, stage 3 and distillation: toy models trained for a
 * few steps get nothing right, so rejection sampling would keep nothing (its error is tested below).
 */
function reasoningFile(): string {
  const file = join(root, 'reasoning.jsonl');
  const rows = [['Mia has 12 marbles. She buys 5 more marbles. How many marbles does Mia have now?', '<think> start with 12. add 5: 12 + 5 = 17. so the answer is 17. </think> The answer is \\boxed{17}.'],
    ['Sam has 9 shells. He loses 3 shells. How many shells does Sam have now?', '<think> start with 9. take away 3: 9 - 3 = 6. so the answer is 6. </think> The answer is \\boxed{6}.']];
  writeFileSync(file, rows.map(([q, a]) => `${JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] })}\n`).join(''));
  return file;
}

describe('runR1Pipeline', () => {
  it('runs every stage, resumes a stage killed midway to the same result, skips finished stages, reruns one alone', async () => {
    const data = reasoningFile();
    const config = { ...tiny, coldStartData: data, sftData: data, distillData: data };
    const full = await runR1Pipeline({ ...config, out: join(root, 'uninterrupted') }, quiet);
    assert.deepEqual(full.records.map((r) => r.stage), [...R1_STAGE_NAMES]);
    for (const record of full.records) {
      assert.ok(existsSync(join(stageDir(full.out, record.stage), STAGE_FILE)));
      for (const dir of Object.values(record.models)) assert.ok(existsSync(join(dir, 'config.json')), `${record.stage}: ${dir}`);
      assert.ok(Object.keys(record.scores).length > 0, record.stage);
    }
    const html = readFileSync(full.reportFile, 'utf8');
    for (const label of ['R1-Zero', 'cold start', 'reasoning RL', 'R1-Zero with the language reward', 'rejection sampling + SFT', 'RL for all scenarios', 'distilled', 'RL only']) assert.ok(html.includes(label), `no ${label} row`);
    assert.match(html, /<polyline/);
    assert.doesNotMatch(html, /<script|\bsrc=|\bhref=/);

    // The language reward's ablation is R1-Zero's RL with that reward added, nothing else: the same first samples
    // (same seeds, same base), a reward that counts the language part only in the ablation.
    const firstStep = (stage: 'zero' | 'zero-language') => JSON.parse(readFileSync(join(stageDir(full.out, stage), 'metrics.jsonl'), 'utf8').split('\n')[0]) as { reward: number; rewardParts: Record<string, number> };
    const [zero, ablation] = [firstStep('zero'), firstStep('zero-language')];
    assert.deepEqual(ablation.rewardParts, zero.rewardParts);
    const parts = zero.rewardParts;
    assert.ok(parts['language:en'] > 0, 'the chains have English words for the language reward to count');
    assert.ok(Math.abs(zero.reward - (parts.accuracy + config.formatWeight * parts.format)) < 1e-9, JSON.stringify(zero));
    assert.ok(Math.abs(ablation.reward - (parts.accuracy + config.formatWeight * parts.format + config.languageWeight * parts['language:en'])) < 1e-9, JSON.stringify(ablation));

    // Killed inside reasoning RL (in its second GRPO step, after the first step's checkpoint): the rerun skips what finished and
    // resumes the stage from its checkpoint, ending where the uninterrupted run did.
    const killed = new Error('simulated kill');
    await assert.rejects(runR1Pipeline(config, { ...quiet, onGrpoStep: (stage, step) => { if (stage === 'reasoning-rl' && step === 2) throw killed; } }), (e) => e === killed);
    assert.ok(!existsSync(join(stageDir(config.out, 'reasoning-rl'), STAGE_FILE)));
    const lines: string[] = [];
    const resumed = await runR1Pipeline(config, { ...quiet, log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.includes('stage reasoning-rl') && l.includes('(resuming)')), lines.join('\n'));
    assert.ok(!lines.some((l) => l.includes('== stage zero')), 'a finished stage ran again');
    const scoresOf = (records: StageRecord[], stage: string) => records.find((r) => r.stage === stage)!.scores;
    // Seeded stages reproduce exactly; the RL-only student trains for the distillation's wall time, a number of
    // steps that depends on the machine's load.
    for (const stage of R1_STAGE_NAMES.filter((name) => name !== 'student-rl')) assert.deepEqual(scoresOf(resumed.records, stage), scoresOf(full.records, stage), stage);
    assert.ok(resumed.records.find((r) => r.stage === 'student-rl')!.counts.steps >= 1);
    const metrics = readFileSync(join(stageDir(config.out, 'reasoning-rl'), 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    assert.deepEqual(metrics, [1, 2]);

    // One stage alone, from the outputs of the stages before it; the others are left as they were.
    const before = readdirSync(stageDir(config.out, 'zero'));
    const alone = await runR1Pipeline({ ...config, stage: 'distill' }, quiet);
    assert.deepEqual(scoresOf(alone.records, 'distill'), scoresOf(full.records, 'distill'));
    assert.deepEqual(readdirSync(stageDir(config.out, 'zero')), before);
  });

  it('made from R1-Zero samples, cold-start data that keeps nothing, after maxPromptsFactor times the prompts, is an error naming what removed what', async () => {
    const out = join(root, 'from-zero');
    // 3 prompts planned, 4 times as many drawn while fewer than minKeptExamples were kept: 12 prompts of 2 samples.
    await assert.rejects(runR1Pipeline({ ...tiny, out }, quiet), (e: Error) => e instanceof UserError && /rejection sampling kept nothing: of 24 samples of 12 prompts, truncated removed \d+/.test(e.message));
    assert.ok(existsSync(join(stageDir(out, 'zero'), STAGE_FILE)), 'the stages before it are kept');
    assert.ok(!existsSync(join(stageDir(out, 'cold-start'), STAGE_FILE)));
  });

  it('names what is missing: a stage run alone before the stages it needs, or the same language twice', async () => {
    const out = join(root, 'empty');
    await assert.rejects(runR1Pipeline({ ...tiny, out, stage: 'reasoning-rl' }, quiet), (e: Error) => e instanceof UserError && /needs the outputs of cold-start/.test(e.message));
    await assert.rejects(runR1Pipeline({ ...tiny, out, secondLanguage: 'en' }, quiet), (e: Error) => e instanceof UserError && /both en/.test(e.message));
    rmSync(out, { recursive: true, force: true });
  });
});
