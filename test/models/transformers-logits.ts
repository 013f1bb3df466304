// The check both Hugging Face reference tests make (hf-reference.test.ts for the dense family,
// deepseek-hf.test.ts for DeepSeek): a model's logits for a prompt against the float32 logits transformers
// computed for it, compared relative to the largest of them, on one backend.
import assert from 'node:assert/strict';
import type { CausalLM } from '../../src/models/pretrained.ts';
import { noGrad, tensor, withBackend } from '../../src/tensor/index.ts';

export function assertTransformersLogits(model: CausalLM, backend: 'native' | 'reference', prompt: readonly number[], expected: readonly number[][],
  relativeTolerance: number): void {
  const logits = withBackend(backend, () => noGrad(() => model.forward(tensor(prompt, [1, prompt.length], 'i32'))));
  const got = logits.toArray();
  const scale = Math.max(...expected.flat().map(Math.abs));
  let worst = 0;
  expected.flat().forEach((want, i) => (worst = Math.max(worst, Math.abs(got[i] - want))));
  assert.ok(worst <= relativeTolerance * scale, `max |r1ts - transformers| = ${worst.toExponential(2)} (scale ${scale.toFixed(3)})`);
}
