// Tiny models and a tiny tokenizer for the generation, model-loading and CLI tests: small enough for the
// reference backend, with weights large enough (std 0.3 instead of 0.02) that next-token distributions are
// peaked, so greedy choices are not decided by float32 rounding.
import type { SamplingParams } from '../../src/generate/sampler.ts';
import { DenseModel, type DenseConfig } from '../../src/models/dense.ts';
import { copyInto, noGrad, randn, Rng } from '../../src/tensor/index.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { trainBpe, type TrainedBpe } from '../../src/tokenizer/train.ts';

const CORPUS = [
  'the cat sat on the mat. ',
  'a dog ran to the park and the cat saw it. ',
  'numbers: 12 + 30 = 42, and 7 * 6 = 42 too. ',
  '<think>two and two</think><answer>4</answer> ',
];

let trained: TrainedBpe | undefined;

/** A byte-level BPE of 300 ids (eos <|im_end|>), trained on a few sentences. */
export function tinyBpe(): TrainedBpe {
  trained ??= trainBpe(CORPUS.flatMap((t) => Array<string>(20).fill(t)), { vocabSize: 300 });
  return trained;
}

export function tinyTokenizer(): Tokenizer {
  const bpe = tinyBpe();
  return Tokenizer.fromJson(bpe.tokenizerJson, bpe.tokenizerConfig);
}

export function tinyConfig(overrides: Partial<DenseConfig> = {}): DenseConfig {
  return {
    family: 'qwen2', vocabSize: 304, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2,
    headDim: 8, maxPositionEmbeddings: 128, ropeTheta: 10000, ropeScaling: null, rmsNormEps: 1e-6,
    tieWordEmbeddings: true, attentionBias: true, bosTokenId: null, eosTokenId: null, ...overrides,
  };
}

/** A tiny model whose weights (norm scales aside) are redrawn with std 0.3, and biases with std 0.1. */
export function tinyModel(seed = 1, overrides: Partial<DenseConfig> = {}): DenseModel {
  const model = new DenseModel(tinyConfig(overrides), seed);
  const rng = new Rng(seed + 1000);
  noGrad(() => {
    for (const [name, p] of model.namedParameters()) {
      if (name.endsWith('norm.weight')) continue;
      copyInto(randn(p.shape, rng, name.endsWith('.bias') ? 0.1 : 0.3), p);
    }
  });
  return model;
}

/** Sampling settings that cover greedy, temperature, top-k, top-p, min-p and their combinations (the fused samplers' tests). */
export const SAMPLING_SETTINGS: readonly SamplingParams[] = [
  { temperature: 0, topK: 0, topP: 1, minP: 0 },
  { temperature: 1, topK: 0, topP: 1, minP: 0 },
  { temperature: 0.7, topK: 0, topP: 1, minP: 0 },
  { temperature: 1, topK: 40, topP: 1, minP: 0 },
  { temperature: 1, topK: 0, topP: 0.9, minP: 0 },
  { temperature: 0.8, topK: 50, topP: 0.8, minP: 0 },
  { temperature: 1, topK: 0, topP: 1, minP: 0.05 },
  { temperature: 1.3, topK: 0, topP: 0.95, minP: 0.02 },
];
