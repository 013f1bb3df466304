import { embedding, randn, type Rng, type Tensor } from '../tensor/index.ts';
import { Module } from './module.ts';

/** A lookup table of token vectors [vocab, dim]. */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(vocabSize: number, dim: number, rng: Rng, std = 0.02) {
    super();
    this.weight = this.parameter('weight', randn([vocabSize, dim], rng, std));
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
