// The deepseek family against Hugging Face transformers: tiny random DeepseekV3ForCausalLM checkpoints saved
// by transformers 5.17 (test/io/fixtures/make_hf_deepseek.py, run on the GPU machine) carry the float32 logits
// and the greedy continuation transformers computed for a fixed prompt; r1ts must reproduce both from the same
// files. "v3" has V3's layout (compressed queries, group-limited routing, interleaved rotary pairs); the
// other has V2-Lite's plain q_proj, rotate_half pairing and a tied head. (The other direction, folders saved
// by r1ts opening in transformers with the same logits, was checked with make_hf_deepseek.py --load on
// save_r1ts_deepseek.ts's output: max difference 1.7e-6 of logits of scale ~3.)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BatchDecoder } from '../../src/generate/engine.ts';
import { argmax } from '../../src/generate/sampler.ts';
import { loadHfModel } from '../../src/io/hf.ts';
import { modelFromTensors } from '../../src/models/pretrained.ts';
import { noGrad } from '../../src/tensor/index.ts';
import { assertTransformersLogits } from './transformers-logits.ts';

const fixtures = new URL('../io/fixtures/hf-deepseek/', import.meta.url).pathname;

interface Expected { config: Record<string, unknown>; tensorNames: string[]; prompt: number[]; logits: number[][]; greedy: number[] }

// Both sides compute in float32 from the same bf16-rounded weights and differ only in summation order (~1e-6
// of the logits' scale); 1e-4 of the largest logit still catches a wrong rotary pairing, a missing norm, a
// wrong routing choice or gate (errors of 1e-2 and more).
const RELATIVE_TOLERANCE = 1e-4;

async function load(name: string) {
  const dir = join(fixtures, name);
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  const hf = await loadHfModel(dir);
  return { dir, expected, hf, model: modelFromTensors(hf.config, hf.tensors, dir) };
}

for (const name of ['v3', 'v2lite-shape', 'v3-yarn']) {
  describe(`deepseek ${name} against transformers`, () => {
    it('reads the config transformers wrote, and every tensor it saved', async () => {
      const { expected, hf } = await load(name);
      for (const [field, value] of Object.entries(expected.config)) assert.deepEqual((hf.config as unknown as Record<string, unknown>)[field], value, field);
      // transformers writes num_nextn_predict_layers 1 but saves no MTP module: nothing to train beside it.
      assert.equal(hf.config.family === 'deepseek' && hf.config.mtpDepth, 0);
      assert.deepEqual([...hf.tensors.keys()].sort(), expected.tensorNames.filter((n) => !(hf.config.tieWordEmbeddings && n === 'lm_head.weight')));
    });

    for (const backend of ['native', 'reference'] as const) {
      it(`reproduces the logits of the prompt (${backend} backend)`, async () => {
        const { expected, model } = await load(name);
        assertTransformersLogits(model, backend, expected.prompt, expected.logits, RELATIVE_TOLERANCE);
      });
    }

    it('generates the same greedy tokens through the engine\'s latent KV cache', async () => {
      const { expected, model } = await load(name);
      const decoder = new BatchDecoder(model, 1, expected.prompt.length + expected.greedy.length);
      const tokens: number[] = [];
      noGrad(() => {
        let logits = decoder.enter([{ id: 0, prompt: expected.prompt }]);
        for (let i = 0; i < expected.greedy.length; i++) {
          tokens.push(argmax(logits.floats()));
          if (i + 1 < expected.greedy.length) logits = decoder.next([tokens[i]]);
        }
      });
      assert.deepEqual(tokens, expected.greedy);
    });
  });
}
