import { embedding, type Tensor } from '../tensor/index.ts';
import { initialWeight, Module, type WeightInit } from './module.ts';

/** A lookup table of token vectors [vocab, dim]. */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(vocabSize: number, dim: number, rng: WeightInit, std = 0.02) {
    super();
    this.weight = this.parameter('weight', initialWeight([vocabSize, dim], rng, std));
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
