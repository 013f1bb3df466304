// The dense model against Hugging Face transformers: tiny random Llama and Qwen2 checkpoints saved by
// transformers 5.17 (test/io/fixtures/make_hf_tiny.py, run on the GPU machine) carry the float32 logits that
// transformers computed for a fixed prompt; r1ts must reproduce them from the same files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadHfWeights, readHfConfig } from '../../src/io/hf.ts';
import { DenseModel } from '../../src/models/dense.ts';
import { assertTransformersLogits } from './transformers-logits.ts';

const fixtures = new URL('../io/fixtures/hf-tiny/', import.meta.url).pathname;

// Both sides compute in float32 from the same bf16-rounded weights; they differ only in summation order, which
// over these widths (16-40 terms, two layers) moves logits by ~1e-6 of their scale. 1e-4 of the largest
// logit leaves room for that and catches any wrong rotary pairing, scaling, bias or norm (errors of ~1e-1).
const RELATIVE_TOLERANCE = 1e-4;

for (const backend of ['native', 'reference'] as const) {
  describe(`dense model logits equal transformers' (${backend} backend)`, () => {
    for (const name of ['llama', 'llama3-rope', 'llama-yarn', 'qwen2', 'qwen2-sharded']) {
      it(name, async () => {
        const dir = join(fixtures, name);
        const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { prompt: number[]; logits: number[][] };
        const { config } = await readHfConfig(dir);
        const weights = await loadHfWeights(dir, config);
        const model = new DenseModel(config, null);
        model.loadState(weights, dir);
        assertTransformersLogits(model, backend, expected.prompt, expected.logits, RELATIVE_TOLERANCE);
      });
    }
  });
}
